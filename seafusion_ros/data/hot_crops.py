"""Crops centred on hot infrared pixels, shared by content-loss and joint training.

People and engines cover a tiny part of a frame, so uniform crops rarely show the intensity loss a hot
object; centring a share of the crops on the warmest 1 % of infrared pixels teaches their brightness.
"""

from __future__ import annotations

import numpy as np

HOT_PERCENTILE = 99.0


def hot_pixels(infrared: np.ndarray) -> np.ndarray:
    """(row, col) of the warmest 1 % of an infrared frame's pixels, as an N x 2 array."""
    return np.argwhere(infrared >= np.percentile(infrared, HOT_PERCENTILE))


def window_around(row: int, col: int, crop: int, height: int, width: int) -> tuple[int, int]:
    """Top-left corner of the ``crop`` x ``crop`` window centred on (row, col), kept inside the frame."""
    return min(max(row - crop // 2, 0), height - crop), min(max(col - crop // 2, 0), width - crop)
