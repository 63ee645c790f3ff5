"""One synchronised thermal + RGB message pair -> engine input. ROS-free.

The node (rclpy messages) and the offline replay (rosbags messages) both use this, so a pair that the
live node fuses is decoded, checked and registered exactly the same way offline. Either message may be
a raw ``Image`` or a ``CompressedImage`` (told apart by its ``format`` field).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seafusion_ros.imaging.compressed import CompressedLike, decode_compressed
from seafusion_ros.imaging.encodings import (
    COLOUR_ENCODINGS,
    COLOUR_ORDER,
    THERMAL_ENCODINGS,
    ImageFormatError,
    ImageLike,
    decode_image,
)
from seafusion_ros.imaging.registration import Registration


class BadInput(ValueError):
    """A pair that cannot be fused; ``kind`` names the problem (the node's diagnostics counter)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class PreparedPair:
    """Engine input at the output size: registered thermal (raw units), visible without alpha, its order."""

    thermal: np.ndarray
    visible: np.ndarray
    visible_order: str


def is_compressed(msg: ImageLike | CompressedLike) -> bool:
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def decode_input(msg: ImageLike | CompressedLike, allowed: tuple[str, ...]) -> tuple[np.ndarray, str]:
    """(array, encoding) of a raw or compressed image whose (decoded) encoding is one of ``allowed``."""
    if not is_compressed(msg):
        return decode_image(msg, allowed), msg.encoding
    array, encoding = decode_compressed(msg)
    if encoding not in allowed:
        raise ImageFormatError(
            "unknown_encoding", f"compressed {msg.format!r} decodes to {encoding}, not accepted here "
                                f"(accepted: {', '.join(allowed)})")
    return array, encoding


def prepare_pair(thermal_msg: ImageLike | CompressedLike, rgb_msg: ImageLike | CompressedLike,
                 registration: Registration) -> PreparedPair:
    """Decode both images, reject non-finite thermal, drop alpha, warp thermal onto the output grid.

    Raises ImageFormatError (undecodable layout or compressed data) or BadInput (``nan_thermal``,
    ``size_mismatch``); both are ValueErrors with a ``kind``.
    """
    thermal, _ = decode_input(thermal_msg, THERMAL_ENCODINGS)
    visible, visible_encoding = decode_input(rgb_msg, COLOUR_ENCODINGS)
    if thermal.dtype.kind == "f" and not np.isfinite(thermal).all():
        raise BadInput(
            "nan_thermal", f"thermal 32FC1 image has {int((~np.isfinite(thermal)).sum())} NaN/inf pixels"
        )
    if visible.ndim == 3 and visible.shape[2] == 4:
        visible = np.ascontiguousarray(visible[:, :, :3])
    try:
        thermal, visible = registration.apply(thermal, visible)
    except ValueError as exc:
        raise BadInput("size_mismatch", str(exc)) from exc
    return PreparedPair(thermal, visible, COLOUR_ORDER[visible_encoding])
