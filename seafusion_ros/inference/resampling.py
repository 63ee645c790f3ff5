"""Area and bilinear resizing of any rectangle of the output, from only the input pixels it reads.

``F.interpolate`` needs the whole input and writes the whole output at once; for a frame too large for
memory, each output tile is computed here as ``rows_weights @ input[read rows, read cols] @ cols_weights.T``
with the one-dimensional weights ``F.interpolate`` uses (``area``, and ``bilinear`` with
``align_corners=False``), so tiles stitch into the whole-frame result up to the order of float sums.
The input is fetched through a ``read(rows, cols)`` callback, so it may be computed on the fly (e.g.
the fused RGB of a frame held as luminance plus the visible image) and never exist at full size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from seafusion_ros.inference.tiling import Tile

MODES = ("area", "bilinear")

Reader = Callable[[np.ndarray, np.ndarray], Tensor]  # (row indices, col indices) -> N x C x rows x cols


def axis_weights(mode: str, in_size: int, out_size: int, start: int, stop: int) -> tuple[np.ndarray, Tensor]:
    """Input indices read by outputs ``start``..``stop - 1`` along one axis, and the (stop - start) x indices
    float32 weights that produce those outputs from them."""
    if mode not in MODES:
        raise ValueError(f"resampling mode must be one of {MODES}, got {mode!r}")
    out = np.arange(start, stop, dtype=np.int64)
    if mode == "area":  # adaptive average pooling: output i is the mean of [floor(i*in/out), ceil((i+1)*in/out))
        first = out * in_size // out_size
        last = -(-(out + 1) * in_size // out_size)
        indices = np.arange(first[0], last[-1])
        inside = (indices >= first[:, None]) & (indices < last[:, None])
        return indices, torch.from_numpy((inside / (last - first)[:, None]).astype(np.float32))
    scale = np.float32(in_size) / np.float32(out_size)  # F.interpolate's source index, in float32 as its kernels
    source = np.maximum(scale * (out.astype(np.float32) + np.float32(0.5)) - np.float32(0.5), np.float32(0.0))
    low = np.minimum(np.floor(source).astype(np.int64), in_size - 1)
    high = np.minimum(low + 1, in_size - 1)
    frac = np.clip(source - low, 0.0, 1.0)
    indices, columns = np.unique(np.concatenate((low, high)), return_inverse=True)
    weights = np.zeros((len(out), len(indices)), np.float64)
    np.add.at(weights, (np.tile(np.arange(len(out)), 2), columns), np.concatenate((1.0 - frac, frac)))
    return indices, torch.from_numpy(weights.astype(np.float32))


def resample_tile(read: Reader, in_size: tuple[int, int], out_size: tuple[int, int], mode: str, tile: Tile,
                  device: torch.device) -> Tensor:
    """The core of ``tile`` (output coordinates) of ``F.interpolate(input, out_size, mode=mode)``:
    N x C x core rows x core cols on ``device``."""
    rows, row_weights = axis_weights(mode, in_size[0], out_size[0], tile.rows.start, tile.rows.stop)
    cols, col_weights = axis_weights(mode, in_size[1], out_size[1], tile.cols.start, tile.cols.stop)
    source = read(rows, cols).float()
    return row_weights.to(device) @ source @ col_weights.to(device).T


def output_tile_pixels(in_size: tuple[int, int], out_size: tuple[int, int], max_read_pixels: int) -> int:
    """Output pixels per tile such that a tile reads about ``max_read_pixels`` input pixels at most."""
    shrink = (out_size[0] * out_size[1]) / (in_size[0] * in_size[1])
    return max(int(max_read_pixels * min(shrink, 1.0)), 1)


def fit_within(height: int, width: int, max_pixels: int) -> tuple[int, int]:
    """The largest size of the frame's aspect ratio with at most ``max_pixels`` pixels (the size itself if
    it fits)."""
    if height * width <= max_pixels:
        return height, width
    scale = (max_pixels / (height * width)) ** 0.5
    return max(int(height * scale), 1), max(int(width * scale), 1)
