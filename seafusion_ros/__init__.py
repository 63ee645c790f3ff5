"""seafusion_ros: SeAFusion infrared/visible fusion, segmentation and the ROS 2 node around them.

The core (models, engine, metrics, training, bag tools) imports without rclpy; only
``seafusion_ros.ros`` needs a ROS 2 runtime.
"""

__version__ = "0.1.0"
