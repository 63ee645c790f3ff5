"""sensor_msgs/Image <-> numpy without cv_bridge (not available as a wheel; same result where it is).

Decoding honours ``step`` (row padding) and ``is_bigendian`` and always returns a native-endian array
that owns its memory; published images are unpadded (``step = width * channels * itemsize``).
16-bit and float thermal stay in raw units: the engine's thermal gain maps them to [0, 1].
"""

from __future__ import annotations

import sys

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

# encoding -> (numpy dtype, channels), the encodings this node reads and writes.
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "mono8": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
}

THERMAL_ENCODINGS = ("mono8", "mono16", "16UC1", "32FC1")
COLOUR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")


class ImageFormatError(ValueError):
    """A message whose layout cannot be decoded; ``kind`` names the problem for diagnostics."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def check_layout(msg: Image, allowed: tuple[str, ...] = tuple(ENCODINGS)) -> tuple[np.dtype, int]:
    """Validate encoding, size, step and data length without touching pixels; returns (dtype, channels).

    Cheap enough for a subscription callback, so bad messages never enter the synchroniser.
    """
    if msg.encoding not in ENCODINGS:
        raise ImageFormatError(
            "unknown_encoding", f"unsupported encoding {msg.encoding!r} (supported: {', '.join(ENCODINGS)})"
        )
    if msg.encoding not in allowed:
        raise ImageFormatError(
            "unknown_encoding",
            f"encoding {msg.encoding!r} is not accepted on this input (accepted: {', '.join(allowed)})",
        )
    dtype, channels = ENCODINGS[msg.encoding]
    if msg.height == 0 or msg.width == 0:
        raise ImageFormatError("zero_size", f"image is empty ({msg.width} x {msg.height})")
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes:
        raise ImageFormatError(
            "short_data", f"step {msg.step} is smaller than width x pixel size = {row_bytes}"
        )
    if len(msg.data) < msg.step * msg.height:
        raise ImageFormatError(
            "short_data", f"data has {len(msg.data)} bytes, step x height needs {msg.step * msg.height}"
        )
    return dtype, channels


def image_to_numpy(msg: Image, allowed: tuple[str, ...] = tuple(ENCODINGS)) -> np.ndarray:
    """H x W (one channel) or H x W x C array in the message's channel order, native byte order."""
    dtype, channels = check_layout(msg, allowed)
    wire = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    buffer = np.frombuffer(msg.data, dtype=np.uint8, count=msg.step * msg.height)
    rows = buffer.reshape(msg.height, msg.step)[:, : msg.width * channels * dtype.itemsize]
    array = rows.copy().view(wire)  # a copy: the result never aliases the message buffer
    shape = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    array = array.reshape(shape)
    if not wire.isnative:
        array = array.astype(dtype)
    return array


def numpy_to_image(array: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """An unpadded, native-endian Image message holding array (copied)."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported encoding {encoding!r} (supported: {', '.join(ENCODINGS)})")
    dtype, channels = ENCODINGS[encoding]
    if array.dtype != dtype:
        raise ValueError(f"encoding {encoding} needs dtype {dtype}, got {array.dtype}")
    got_channels = 1 if array.ndim == 2 else array.shape[2] if array.ndim == 3 else -1
    if got_channels != channels:
        raise ValueError(f"encoding {encoding} needs {channels} channel(s), got array of shape {array.shape}")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = sys.byteorder == "big"
    msg.step = msg.width * channels * dtype.itemsize
    msg.data = np.ascontiguousarray(array).tobytes()
    return msg
