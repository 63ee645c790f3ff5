"""The ROS 2 layer: the node and what only it needs (message conversion, parameters, diagnostics).

Thin by design: processing lives in the ROS-free modules (engine, registration, overlay,
approximate_sync). Importing this package needs rclpy and the message packages.
"""
