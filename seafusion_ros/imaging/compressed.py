"""sensor_msgs/CompressedImage (image_transport's ``compressed`` format) <-> numpy, for any message-like object.

ROS-free, like :mod:`seafusion_ros.imaging.encodings`. The ``format`` field names the original
encoding, the codec and what was compressed: ``"bgr8; jpeg compressed bgr8"``,
``"rgb8; jpeg compressed bgr8"``, ``"mono16; png compressed mono16"``. Drivers that predate that
convention write only ``"jpeg"`` or ``"png"``; those decode to ``bgr8``, ``mono8`` or ``mono16`` by what
the payload holds. 16-bit PNG stays 16-bit (thermal keeps its raw units for the thermal gain).

Decoded colour arrays are in OpenCV's BGR order and come back labelled ``bgr8`` / ``bgra8``, whatever the
original encoding was: the engine takes either order, so no conversion is spent on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from seafusion_ros.imaging.encodings import ImageFormatError

CODECS = ("jpeg", "png")
# Original encodings image_transport's compressed plugin writes, and the decoded array each gives.
_DECODED_AS: dict[str, tuple[str, np.dtype, int]] = {
    "mono8": ("mono8", np.dtype(np.uint8), 1),
    "8UC1": ("mono8", np.dtype(np.uint8), 1),
    "mono16": ("mono16", np.dtype(np.uint16), 1),
    "16UC1": ("mono16", np.dtype(np.uint16), 1),
    "bgr8": ("bgr8", np.dtype(np.uint8), 3),
    "rgb8": ("bgr8", np.dtype(np.uint8), 3),
    "8UC3": ("bgr8", np.dtype(np.uint8), 3),
    "bgra8": ("bgra8", np.dtype(np.uint8), 4),
    "rgba8": ("bgra8", np.dtype(np.uint8), 4),
    "8UC4": ("bgra8", np.dtype(np.uint8), 4),
}


class CompressedLike(Protocol):
    format: str
    data: Any


@dataclass(frozen=True)
class CompressedFormat:
    """A parsed ``format`` string; ``original`` is None for the bare ``"jpeg"`` / ``"png"`` of older drivers."""

    codec: str
    original: str | None


def parse_format(text: str) -> CompressedFormat:
    """Parse a CompressedImage ``format``; ImageFormatError (kind ``unknown_format``) when it is not one we read."""
    cleaned = text.strip().lower()
    if cleaned in CODECS:
        return CompressedFormat(cleaned, None)
    original, sep, rest = text.partition(";")
    words = rest.split()
    if sep and len(words) >= 2 and words[0].lower() in CODECS and words[1].lower() == "compressed":
        original = original.strip()
        if original in _DECODED_AS:
            return CompressedFormat(words[0].lower(), original)
        raise ImageFormatError(
            "unknown_format", f"compressed image of encoding {original!r} is not supported "
                              f"(supported: {', '.join(_DECODED_AS)})")
    raise ImageFormatError(
        "unknown_format", f"unknown compressed format {text!r} (expected e.g. 'bgr8; jpeg compressed bgr8', "
                          "'mono16; png compressed mono16', 'jpeg' or 'png'; compressedDepth is not supported)")


def check_compressed(msg: CompressedLike) -> CompressedFormat:
    """The cheap checks, without decoding: a payload, and a format we read."""
    if len(msg.data) == 0:
        raise ImageFormatError("empty_payload", f"compressed image ({msg.format!r}) has no data")
    return parse_format(msg.format)


def _ends_with_jpeg_eoi(payload: np.ndarray) -> bool:
    """JPEG ends with the EOI marker FF D9 (some encoders pad a few zero bytes after it)."""
    tail = payload[-32:].tobytes().rstrip(b"\x00")
    return tail.endswith(b"\xff\xd9")


def decode_compressed(msg: CompressedLike) -> tuple[np.ndarray, str]:
    """(array, encoding) of a compressed image: H x W or H x W x C, colour in BGR order.

    Raises ImageFormatError with kind ``empty_payload``, ``unknown_format``, ``corrupt_compressed``
    (the codec cannot decode the data) or ``compressed_mismatch`` (the decoded channels or bit depth
    contradict the format).
    """
    fmt = check_compressed(msg)
    payload = np.frombuffer(msg.data, dtype=np.uint8)
    if fmt.codec == "jpeg" and not _ends_with_jpeg_eoi(payload):
        # libjpeg decodes a cut-off JPEG with a warning and grey rows: refuse it rather than fuse half a frame.
        raise ImageFormatError(
            "corrupt_compressed", f"JPEG data ({payload.size} bytes) is truncated: no end-of-image marker")
    image = cv2.imdecode(payload, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ImageFormatError(
            "corrupt_compressed", f"{fmt.codec} data ({payload.size} bytes, format {msg.format!r}) cannot be decoded")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if fmt.original is None:
        bare = {1: "mono16" if image.dtype == np.uint16 else "mono8", 3: "bgr8", 4: "bgra8"}
        readable = image.dtype == np.uint8 or (image.dtype == np.uint16 and channels == 1)
        if not readable or channels not in bare:
            raise ImageFormatError(
                "compressed_mismatch", f"{fmt.codec} image decodes to {channels} x {image.dtype}, not an 8-bit "
                                       "grey/colour or 16-bit grey image")
        return image, bare[channels]
    encoding, dtype, wanted = _DECODED_AS[fmt.original]
    if channels == 3 and wanted == 1 and dtype == np.uint8 and image.dtype == np.uint8:
        # Some JPEG encoders store grey as three equal channels; the content is still grey.
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), encoding
    if channels != wanted or image.dtype != dtype:
        raise ImageFormatError(
            "compressed_mismatch", f"format {msg.format!r} promises {wanted} channel(s) of {dtype}, the data "
                                   f"decodes to {channels} channel(s) of {image.dtype}")
    return image, encoding


def encode_compressed(array: np.ndarray, encoding: str, codec: str, jpeg_quality: int = 90) -> tuple[str, bytes]:
    """(format, data) as image_transport's compressed plugin writes them; colour is stored as BGR.

    JPEG takes 8-bit images only; PNG keeps 16-bit grey.
    """
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r} (supported: {', '.join(CODECS)})")
    if encoding not in _DECODED_AS:
        raise ValueError(f"cannot compress encoding {encoding!r} (supported: {', '.join(_DECODED_AS)})")
    stored, dtype, channels = _DECODED_AS[encoding]
    if array.dtype != dtype or (1 if array.ndim == 2 else array.shape[2]) != channels:
        raise ValueError(f"encoding {encoding} needs {channels} channel(s) of {dtype}, got {array.dtype} {array.shape}")
    if codec == "jpeg" and dtype != np.uint8:
        raise ValueError(f"JPEG stores 8-bit images only; use png for {encoding}")
    if encoding in ("rgb8", "rgba8"):
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR if channels == 3 else cv2.COLOR_RGBA2BGRA)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if codec == "jpeg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, data = cv2.imencode(".jpg" if codec == "jpeg" else ".png", array, params)
    if not ok:
        raise ValueError(f"cannot encode a {array.shape} {array.dtype} image as {codec}")
    return f"{encoding}; {codec} compressed {stored}", data.tobytes()
