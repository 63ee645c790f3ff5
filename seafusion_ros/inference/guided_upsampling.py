"""Guided upsampling of the fused luminance: the CPU degrade knob.

Running the network at a fraction of the resolution divides its cost by the square of that factor,
but plain interpolation would blur the result. Locally, a fused image is close to a linear mix of its
two sources, so a two-guide fast guided filter (He and Sun, 2015, with the visible luminance and the
infrared as guides) fits fused ~ a_v * visible + a_i * infrared + b in every low-resolution window,
interpolates (a_v, a_i, b) to full resolution and applies them to the full-resolution sources: edges of
either camera come back sharp.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

RADIUS = 1  # box filter radius: 3 x 3 windows at the low resolution


def _box(x: Tensor, radius: int) -> Tensor:
    """Mean over (2r+1)^2 windows with replicated borders (same size as x)."""
    return F.avg_pool2d(F.pad(x, (radius,) * 4, mode="replicate"), 2 * radius + 1, stride=1)


def guided_coefficients(fused_low: Tensor, visible_low: Tensor, infrared_low: Tensor, radius: int = RADIUS,
                        eps: float = 1e-4) -> Tensor:
    """The smoothed local model (a_v, a_i, b) as N x 3 x h x w, from ``fused_low`` and the guides resized to h x w.

    Each output reads the inputs within ``2 * radius`` pixels (two box filters in sequence): tiles of the
    low-resolution frame with that halo give the whole-frame coefficients. ``eps`` regularises flat
    regions (larger = smoother).
    """
    guides = torch.cat((visible_low, infrared_low), dim=1)
    mean_g = _box(guides, radius)
    mean_f = _box(fused_low, radius)
    cov_gf = _box(guides * fused_low, radius) - mean_g * mean_f
    var_v = _box(visible_low * visible_low, radius) - mean_g[:, :1] ** 2 + eps
    var_i = _box(infrared_low * infrared_low, radius) - mean_g[:, 1:] ** 2 + eps
    cov_vi = _box(visible_low * infrared_low, radius) - mean_g[:, :1] * mean_g[:, 1:]
    det = var_v * var_i - cov_vi * cov_vi  # > 0: eps makes the 2 x 2 covariance positive definite
    a_v = (var_i * cov_gf[:, :1] - cov_vi * cov_gf[:, 1:]) / det
    a_i = (var_v * cov_gf[:, 1:] - cov_vi * cov_gf[:, :1]) / det
    b = mean_f - a_v * mean_g[:, :1] - a_i * mean_g[:, 1:]
    return _box(torch.cat((a_v, a_i, b), dim=1), radius)


def apply_coefficients(coefficients: Tensor, visible: Tensor, infrared: Tensor) -> Tensor:
    """fused = a_v * visible + a_i * infrared + b, with the coefficients already at the guides' size."""
    return (coefficients[:, :1] * visible + coefficients[:, 1:2] * infrared + coefficients[:, 2:]).clamp_(0.0, 1.0)


def guided_upsample(fused_low: Tensor, visible_low: Tensor, infrared_low: Tensor, visible: Tensor,
                    infrared: Tensor, radius: int = RADIUS, eps: float = 1e-4) -> Tensor:
    """Upsample ``fused_low`` (N x 1 x h x w) to the size of the full-resolution guides (N x 1 x H x W).

    ``*_low`` are the guides resized to h x w. ``eps`` regularises flat regions (larger = smoother).
    """
    coefficients = guided_coefficients(fused_low, visible_low, infrared_low, radius, eps)
    return apply_coefficients(F.interpolate(coefficients, size=visible.shape[-2:], mode="bilinear",
                                            align_corners=False), visible, infrared)
