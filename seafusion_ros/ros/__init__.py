"""The ROS 2 layer: the node and what only it needs (message conversion, parameters, diagnostics, bag I/O).

Thin by design: processing lives in the ROS-free packages (inference, imaging). Importing this package
needs rclpy and the message packages.
"""
