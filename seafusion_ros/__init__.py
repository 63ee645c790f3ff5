"""seafusion_ros: SeAFusion infrared/visible fusion, segmentation and the ROS 2 node around them.

Data flows one way: ``imaging`` (decode, register) -> ``inference`` (fuse) -> ``models`` (segment) ->
``ros`` (publish). ``data``, ``training`` and ``evaluation`` make and measure the models; ``bags`` works
on recordings. Everything but ``ros``, ``demo`` and the ROS command-line tools imports without rclpy.
"""

__version__ = "0.1.0"
