"""Overlapping tiles whose stitched outputs equal the whole-frame output, sized to a memory budget.

A stride-1 network's output pixel depends only on the inputs within its receptive radius r. A tile
that reads r pixels beyond its core (its halo) therefore computes every core pixel from the same inputs
as the whole frame does: inside the frame the halo supplies the real neighbours; at the frame's border
the tile's border is the frame's, with the same zero padding. Cores partition the frame, so keeping each
tile's core and dropping its halo reproduces the whole-frame result (up to the order of floating-point
sums inside the convolution kernels).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from itertools import pairwise

import torch
from torch import nn

MIN_CORE = 16  # smallest useful core side: below it the halo costs more than the core


@dataclass(frozen=True)
class Tile:
    """``rows`` x ``cols`` is the core (frame coordinates) this tile writes; ``read_rows`` x ``read_cols``
    the core plus the halo, clipped to the frame, that it reads."""

    rows: slice
    cols: slice
    read_rows: slice
    read_cols: slice

    @property
    def core(self) -> tuple[slice, slice]:
        return self.rows, self.cols

    @property
    def read(self) -> tuple[slice, slice]:
        return self.read_rows, self.read_cols

    @property
    def crop(self) -> tuple[slice, slice]:
        """The core inside the region read (to cut from the tile's output)."""
        top, left = self.rows.start - self.read_rows.start, self.cols.start - self.read_cols.start
        return slice(top, top + self.rows.stop - self.rows.start), slice(left, left + self.cols.stop - self.cols.start)


def _balanced_spans(length: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` consecutive spans covering 0..length whose sizes differ by at most one."""
    bounds = [round(i * length / parts) for i in range(parts + 1)]
    return list(pairwise(bounds))


def plan_tiles(height: int, width: int, max_read_pixels: int, halo: int) -> list[Tile]:
    """Row-major grid of tiles over a height x width frame, each reading at most ``max_read_pixels``.

    A frame that fits is one tile without halo. Otherwise cores are near-square, balanced in size (no
    sliver at the right or bottom edge) and at most ``isqrt(max_read_pixels) - 2 * halo`` on a side.
    Raises ValueError when that leaves a core under MIN_CORE pixels.
    """
    if height * width <= max_read_pixels:
        return [Tile(slice(0, height), slice(0, width), slice(0, height), slice(0, width))]
    core = math.isqrt(max_read_pixels) - 2 * halo
    if core < MIN_CORE:
        raise ValueError(f"a tile of {max_read_pixels} pixels leaves a core of {core} pixels inside a halo of "
                         f"{halo}; at least {MIN_CORE} are needed: raise the memory budget")
    row_spans = _balanced_spans(height, math.ceil(height / core))
    col_spans = _balanced_spans(width, math.ceil(width / core))
    return [Tile(slice(top, bottom), slice(left, right),
                 slice(max(top - halo, 0), min(bottom + halo, height)),
                 slice(max(left - halo, 0), min(right + halo, width)))
            for top, bottom in row_spans for left, right in col_spans]


def receptive_radius(network: nn.Module, inputs: int = 2, limit: int = 16) -> int:
    """Measured receptive radius (pixels) of a stride-1 image network taking ``inputs`` N x 1 x H x W maps.

    A copy with every weight 1 and every bias 0 maps non-negative inputs to non-negative activations
    through monotone operations (convolution, leaky ReLU, concatenation, sums, |x| of a non-negative
    value, tanh), so a unit impulse raises exactly the outputs it can reach (by at least tanh(1) / 2): no
    weights can cancel its effect. The radius is the farthest output it raises.
    """
    probe = copy.deepcopy(network).to("cpu", torch.float32, memory_format=torch.contiguous_format).eval()
    with torch.no_grad():
        for name, parameter in probe.named_parameters():
            parameter.fill_(0.0 if name.endswith("bias") else 1.0)
        while True:
            side = 2 * limit + 1
            zeros = [torch.zeros(1, 1, side, side) for _ in range(inputs)]
            impulses = [z.clone() for z in zeros]
            for impulse in impulses:
                impulse[0, 0, limit, limit] = 1.0
            changed = (probe(*impulses) != probe(*zeros))[0, 0].nonzero()
            radius = int((changed - limit).abs().max())
            if radius < limit:
                return radius
            limit *= 2
