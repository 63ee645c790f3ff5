"""The Fast DDS profile for camera-sized images, applied by default to the seafusion processes.

Fast DDS's default shared-memory segment (512 KB) is smaller than one 640x480 RGB image, so images go
over fragmented UDP, where a lost fragment waits for a retransmission: measured here, 2.9 s instead of
0.6 s from camera stamp to the node's output, and lost best-effort frames. The packaged profile gives
shared memory a 16 MB segment. It must be in effect before rclpy.init(); a profile the user set with
FASTDDS_DEFAULT_PROFILES_FILE or FASTRTPS_DEFAULT_PROFILES_FILE is left alone. Fast DDS 3 (Kilted on) reads
the first name; Fast DDS 2 (Humble, Jazzy) reads only the second, which is set too when ROS_DISTRO names
one of those (Fast DDS 3 warns that it is deprecated). Other middlewares ignore both.

``python3 -m seafusion_ros.ros.dds_profile`` prints the profile's path, for other processes of the graph.
"""

from __future__ import annotations

import os
from pathlib import Path

PROFILE = Path(__file__).resolve().with_name("fastdds_large_images.xml")
ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
LEGACY_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"
LEGACY_DISTROS = ("humble", "jazzy")  # Fast DDS 2.x


def use_large_image_profile() -> str:
    """Set the profile for this process (and its children) unless one is already set; returns the one in use."""
    for name in (ENV, LEGACY_ENV):
        if os.environ.get(name):
            return os.environ[name]
    os.environ[ENV] = str(PROFILE)
    if os.environ.get("ROS_DISTRO", "").lower() in LEGACY_DISTROS:
        os.environ[LEGACY_ENV] = str(PROFILE)
    return str(PROFILE)


if __name__ == "__main__":
    print(PROFILE)
