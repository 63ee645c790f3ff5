"""sensor_msgs/Image and CompressedImage messages as rosbags dataclasses: build, serialise and read them."""

from __future__ import annotations

import numpy as np
from rosbags.typesys import Stores, get_typestore

from seafusion_ros.imaging.compressed import encode_compressed
from seafusion_ros.imaging.encodings import decode_image, encode_image
from seafusion_ros.imaging.stamps import ns_to_sec_nanosec

# Pinned: LATEST moves with rosbags releases. Image, Header and Time are identical across ROS 2 distros.
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)  # what a camera input topic may carry
_Image = TYPESTORE.types[IMAGE_TYPE]
_CompressedImage = TYPESTORE.types[COMPRESSED_TYPE]
_Header = TYPESTORE.types["std_msgs/msg/Header"]
_Time = TYPESTORE.types["builtin_interfaces/msg/Time"]


def header(stamp_ns: int, frame_id: str):
    sec, nanosec = ns_to_sec_nanosec(stamp_ns)
    return _Header(stamp=_Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def image_message(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str, msg_header=None):
    """An unpadded Image; ``msg_header`` (copied from an input) overrides stamp and frame id."""
    height, width, step, bigendian, data = encode_image(array, encoding)
    return _Image(header=msg_header if msg_header is not None else header(stamp_ns, frame_id), height=height,
                  width=width, encoding=encoding, is_bigendian=int(bigendian), step=step,
                  data=np.frombuffer(data, np.uint8))


def compressed_message(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str, codec: str,
                       jpeg_quality: int = 90):
    """A CompressedImage in image_transport's ``compressed`` format (e.g. ``rgb8; jpeg compressed bgr8``)."""
    fmt, data = encode_compressed(array, encoding, codec, jpeg_quality)
    return _CompressedImage(header=header(stamp_ns, frame_id), format=fmt, data=np.frombuffer(data, np.uint8))


def serialize_image(msg, msgtype: str = IMAGE_TYPE) -> bytes:
    return bytes(TYPESTORE.serialize_cdr(msg, msgtype))


def deserialize_image(raw: bytes, msgtype: str = IMAGE_TYPE):
    """An Image or (``msgtype`` = COMPRESSED_TYPE) CompressedImage message from its CDR bytes."""
    return TYPESTORE.deserialize_cdr(raw, msgtype)


def image_array(msg, allowed: tuple[str, ...] | None = None) -> np.ndarray:
    """Decode an Image message (honours step and is_bigendian); ImageFormatError names the problem."""
    return decode_image(msg) if allowed is None else decode_image(msg, allowed)
