"""sensor_msgs/Image layout rules <-> numpy, for any Image-like object (rclpy or rosbags messages).

ROS-free: the node (rclpy messages) and the bag tools (rosbags dataclasses) share these rules.
Decoding honours ``step`` (row padding) and ``is_bigendian`` and returns a native-endian array that
owns its memory; encoding produces unpadded rows (``step = width x channels x itemsize``).
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

import numpy as np

# encoding -> (numpy dtype, channels): the encodings the package reads and writes.
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


def check_layout(msg: ImageLike, allowed: tuple[str, ...] = tuple(ENCODINGS)) -> tuple[np.dtype, int]:
    """Validate encoding, size, step and data length without touching pixels; returns (dtype, channels)."""
    if msg.encoding not in ENCODINGS:
        raise ImageFormatError(
            "unknown_encoding", f"unsupported encoding {msg.encoding!r} (supported: {', '.join(ENCODINGS)})")
    if msg.encoding not in allowed:
        raise ImageFormatError(
            "unknown_encoding", f"encoding {msg.encoding!r} is not accepted here (accepted: {', '.join(allowed)})")
    dtype, channels = ENCODINGS[msg.encoding]
    if msg.height == 0 or msg.width == 0:
        raise ImageFormatError("zero_size", f"image is empty ({msg.width} x {msg.height})")
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes:
        raise ImageFormatError("short_data", f"step {msg.step} is smaller than width x pixel size = {row_bytes}")
    if len(msg.data) < msg.step * msg.height:
        raise ImageFormatError(
            "short_data", f"data has {len(msg.data)} bytes, step x height needs {msg.step * msg.height}")
    return dtype, channels


def decode_image(msg: ImageLike, allowed: tuple[str, ...] = tuple(ENCODINGS)) -> np.ndarray:
    """H x W (one channel) or H x W x C array in the message's channel order, native byte order."""
    dtype, channels = check_layout(msg, allowed)
    wire = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    buffer = np.frombuffer(msg.data, dtype=np.uint8, count=msg.step * msg.height)
    rows = buffer.reshape(msg.height, msg.step)[:, : msg.width * channels * dtype.itemsize]
    array = rows.copy().view(wire)  # a copy: the result never aliases the message buffer
    array = array.reshape((msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels))
    return array if wire.isnative else array.astype(dtype)


def encode_image(array: np.ndarray, encoding: str) -> tuple[int, int, int, bool, bytes]:
    """(height, width, step, is_bigendian, data) of an unpadded native-endian image holding array."""
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
