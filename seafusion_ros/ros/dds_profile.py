"""The Fast DDS profile for camera-sized images, applied by default to the seafusion processes.

Fast DDS's default shared-memory segment (512 KB) is smaller than one 640x480 RGB image, so images go
over fragmented UDP, where a lost fragment waits for a retransmission: measured here, 2.9 s instead of
0.6 s from camera stamp to the node's output, and lost best-effort frames. The packaged profile gives
shared memory a 16 MB segment. It must be in effect before rclpy.init(); a profile the user set with
FASTDDS_DEFAULT_PROFILES_FILE is left alone. Other middlewares ignore the variable.

``python3 -m seafusion_ros.ros.dds_profile`` prints the profile's path, for other processes of the graph.
"""

from __future__ import annotations

import os
from pathlib import Path

PROFILE = Path(__file__).resolve().with_name("fastdds_large_images.xml")
ENV = "FASTDDS_DEFAULT_PROFILES_FILE"


def use_large_image_profile() -> str:
    """Set the profile for this process (and its children) unless one is already set; returns the one in use."""
    return os.environ.setdefault(ENV, str(PROFILE))


if __name__ == "__main__":
    print(PROFILE)
