"""sensor_msgs/Image (rclpy) <-> numpy without cv_bridge (not available as a wheel; same result where it is).

The layout rules (encodings, ``step`` padding, ``is_bigendian``) live in the ROS-free
:mod:`seafusion_ros.imaging.encodings`, shared with the bag tools; this module only builds rclpy messages.
16-bit and float thermal stay in raw units: the engine's thermal gain maps them to [0, 1].
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from seafusion_ros.imaging.encodings import (
    COLOUR_ENCODINGS,
    ENCODINGS,
    THERMAL_ENCODINGS,
    ImageFormatError,
    check_layout,
    encode_image,
)
from seafusion_ros.imaging.encodings import decode_image as image_to_numpy

__all__ = ["COLOUR_ENCODINGS", "ENCODINGS", "THERMAL_ENCODINGS", "ImageFormatError", "check_layout",
           "image_to_numpy", "numpy_to_image"]


def numpy_to_image(array: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """An unpadded, native-endian Image message holding array (copied)."""
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width, msg.step, bigendian, data = encode_image(array, encoding)
    msg.encoding = encoding
    msg.is_bigendian = bigendian
    msg.data = data
    return msg
