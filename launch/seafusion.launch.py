"""Launch seafusion_node (one per namespace) and optionally RViz.

Examples:
  ros2 launch seafusion_ros seafusion.launch.py thermal_topic:=/flir/image_raw rgb_topic:=/cam/image_raw
  ros2 launch seafusion_ros seafusion.launch.py namespace:=left,right        # two cameras, two nodes
  ros2 launch seafusion_ros seafusion.launch.py use_sim_time:=true          # with `ros2 bag play --clock`

Multi-camera: ``namespace`` takes a comma-separated list; each instance runs in its namespace with the
same parameters file, and relative topic names resolve inside it (``left/thermal/image_raw`` ...).
The RViz config shows the un-namespaced topics; pick the namespaced ones in its Image displays.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchContext, LaunchDescription

PACKAGE = "seafusion_ros"

ARGUMENTS = (
    ("namespace", "", "namespace of the node; a comma-separated list starts one node per namespace"),
    ("thermal_topic", "thermal/image_raw", "thermal image topic (relative names resolve in the namespace)"),
    ("rgb_topic", "rgb/image_raw", "RGB image topic (relative names resolve in the namespace)"),
    ("params_file", "", "parameters YAML; empty = the installed config/seafusion.yaml"),
    ("device", "", "torch device: auto, cpu, cuda or cuda:N; empty = the parameters file's value"),
    ("use_sim_time", "false", "use /clock (replaying a bag with `ros2 bag play --clock`)"),
    ("use_rviz", "false", "start RViz with config/seafusion.rviz"),
)


def _nodes(context: LaunchContext) -> list[Node]:
    share = get_package_share_directory(PACKAGE)
    params_file = LaunchConfiguration("params_file").perform(context) or os.path.join(
        share, "config", "seafusion.yaml"
    )
    use_sim_time = LaunchConfiguration("use_sim_time").perform(context).lower() in ("true", "1")
    overrides: dict[str, object] = {"use_sim_time": use_sim_time}
    device = LaunchConfiguration("device").perform(context)
    if device:
        overrides["device"] = device
    remaps = [
        ("thermal/image_raw", LaunchConfiguration("thermal_topic").perform(context)),
        ("rgb/image_raw", LaunchConfiguration("rgb_topic").perform(context)),
    ]
    namespaces = [ns.strip() for ns in LaunchConfiguration("namespace").perform(context).split(",")]
    return [
        Node(
            package=PACKAGE,
            executable="seafusion_node",
            name="seafusion_node",
            namespace=ns,
            parameters=[params_file, overrides],
            remappings=remaps,
            output="screen",
            emulate_tty=True,
        )
        for ns in namespaces or [""]
    ]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="seafusion_rviz",
        arguments=["-d", os.path.join(share, "config", "seafusion.rviz")],
        parameters=[{"use_sim_time": LaunchConfiguration("use_sim_time")}],
        condition=IfCondition(LaunchConfiguration("use_rviz")),
    )
    return LaunchDescription(
        [
            *[
                DeclareLaunchArgument(name, default_value=default, description=description)
                for name, default, description in ARGUMENTS
            ],
            OpaqueFunction(function=_nodes),
            rviz,
        ]
    )
