"""sensor_msgs/Image layout rules <-> numpy, for any Image-like object (rclpy or rosbags messages).

ROS-free: the node (rclpy messages) and the bag tools (rosbags dataclasses) share these rules.
Decoding honours ``step`` (row padding) and ``is_bigendian`` and returns a native-endian array that
owns its memory; encoding produces unpadded rows (``step = width x channels x itemsize``).

Decoded arrays keep the message's channel order (``COLOUR_ORDER`` names it for colour input), except
packed YUV 4:2:2 (``yuv422`` = UYVY, ``yuv422_yuy2`` = YUYV; read only), which decodes to RGB.
``8UC1`` / ``8UC3`` / ``8UC4`` are cv_bridge passthrough images: mono8 / BGR / BGRA by OpenCV convention.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

import cv2
import numpy as np

# encoding -> (numpy dtype, channels): layouts stored as they decode, so the package reads and writes them.
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "8UC3": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "8UC4": (np.dtype(np.uint8), 4),
}
# Packed YUV 4:2:2 -> cv2 conversion to RGB: two bytes per pixel, one chroma pair per two pixels (even width).
YUV422_TO_RGB: dict[str, int] = {"yuv422": cv2.COLOR_YUV2RGB_UYVY, "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2}
DECODABLE_ENCODINGS = (*ENCODINGS, *YUV422_TO_RGB)

THERMAL_ENCODINGS = ("mono8", "8UC1", "mono16", "16UC1", "32FC1")
# Colour input encoding -> channel order of its decoded array (grey has none: "rgb", the engine's default).
COLOUR_ORDER: dict[str, str] = {
    "rgb8": "rgb",
    "bgr8": "bgr",
    "8UC3": "bgr",
    "rgba8": "rgb",
    "bgra8": "bgr",
    "8UC4": "bgr",
    "mono8": "rgb",
    "8UC1": "rgb",
    "yuv422": "rgb",
    "yuv422_yuy2": "rgb",
}
COLOUR_ENCODINGS = tuple(COLOUR_ORDER)

# What each decodable encoding holds per pixel on the wire (YUV 4:2:2: two bytes).
_WIRE_LAYOUT: dict[str, tuple[np.dtype, int]] = {**ENCODINGS, **dict.fromkeys(YUV422_TO_RGB, (np.dtype(np.uint8), 2))}


class ImageLike(Protocol):
    height: int
    width: int
    encoding: str
    is_bigendian: Any
    step: int
    data: Any


class ImageFormatError(ValueError):
    """An image whose layout cannot be decoded; ``kind`` names the problem for diagnostics."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def check_layout(msg: ImageLike, allowed: tuple[str, ...] = DECODABLE_ENCODINGS) -> tuple[np.dtype, int]:
    """Validate encoding, size, step and data length without touching pixels.

    Returns the wire layout (dtype, channels per pixel; 2 for YUV 4:2:2), not the decoded one.
    """
    if msg.encoding not in _WIRE_LAYOUT:
        raise ImageFormatError(
            "unknown_encoding",
            f"unsupported encoding {msg.encoding!r} (supported: {', '.join(DECODABLE_ENCODINGS)})")
    if msg.encoding not in allowed:
        raise ImageFormatError(
            "unknown_encoding", f"encoding {msg.encoding!r} is not accepted here (accepted: {', '.join(allowed)})")
    dtype, channels = _WIRE_LAYOUT[msg.encoding]
    if msg.height == 0 or msg.width == 0:
        raise ImageFormatError("zero_size", f"image is empty ({msg.width} x {msg.height})")
    if msg.encoding in YUV422_TO_RGB and msg.width % 2:
        raise ImageFormatError(
            "odd_width", f"{msg.encoding} needs an even width (two pixels share one chroma pair), got {msg.width}")
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes:
        raise ImageFormatError("short_data", f"step {msg.step} is smaller than width x pixel size = {row_bytes}")
    if len(msg.data) < msg.step * msg.height:
        raise ImageFormatError(
            "short_data", f"data has {len(msg.data)} bytes, step x height needs {msg.step * msg.height}")
    return dtype, channels


def decode_image(msg: ImageLike, allowed: tuple[str, ...] = DECODABLE_ENCODINGS) -> np.ndarray:
    """H x W (one channel) or H x W x C array, native byte order; channel order as in the module docstring."""
    dtype, channels = check_layout(msg, allowed)
    buffer = np.frombuffer(msg.data, dtype=np.uint8, count=msg.step * msg.height)
    rows = buffer.reshape(msg.height, msg.step)[:, : msg.width * channels * dtype.itemsize]
    if msg.encoding in YUV422_TO_RGB:  # cvtColor writes a new array, so no copy of the rows is needed
        return cv2.cvtColor(rows.reshape(msg.height, msg.width, 2), YUV422_TO_RGB[msg.encoding])
    wire = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    array = rows.copy().view(wire)  # a copy: the result never aliases the message buffer
    array = array.reshape((msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels))
    return array if wire.isnative else array.astype(dtype)


def encode_image(array: np.ndarray, encoding: str) -> tuple[int, int, int, bool, bytes]:
    """(height, width, step, is_bigendian, data) of an unpadded native-endian image holding array."""
    if encoding in YUV422_TO_RGB:
        raise ValueError(f"encoding {encoding!r} is accepted as input only (can encode: {', '.join(ENCODINGS)})")
    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported encoding {encoding!r} (supported: {', '.join(ENCODINGS)})")
    dtype, channels = ENCODINGS[encoding]
    if array.dtype != dtype:
        raise ValueError(f"encoding {encoding} needs dtype {dtype}, got {array.dtype}")
    got_channels = 1 if array.ndim == 2 else array.shape[2] if array.ndim == 3 else -1
    if got_channels != channels:
        raise ValueError(f"encoding {encoding} needs {channels} channel(s), got array of shape {array.shape}")
    height, width = int(array.shape[0]), int(array.shape[1])
    return height, width, width * channels * dtype.itemsize, sys.byteorder == "big", np.ascontiguousarray(
        array).tobytes()
