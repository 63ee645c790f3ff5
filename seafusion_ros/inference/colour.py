"""RGB <-> Y/Cr/Cb as SeAFusion defines it (reference section 2), batched, on any device.

The network fuses luminance only; chroma comes from the visible image. Tensors are N x 3 x H x W
(or N x 1 x H x W for Y) with values in [0, 1], channel order R, G, B.
"""

from __future__ import annotations

import torch
from torch import Tensor

KR, KG, KB = 0.299, 0.587, 0.114
CR_SCALE, CB_SCALE = 0.713, 0.564
R_FROM_CR, G_FROM_CR, G_FROM_CB, B_FROM_CB = 1.403, 0.714, 0.344, 1.773


def rgb_to_ycrcb(rgb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Split N x 3 x H x W RGB into Y, Cr, Cb, each N x 1 x H x W."""
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f"expected an N x 3 x H x W RGB tensor, got shape {tuple(rgb.shape)}")
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    y = KR * r + KG * g + KB * b
    return y, CR_SCALE * (r - y) + 0.5, CB_SCALE * (b - y) + 0.5


def rgb_to_y(rgb: Tensor) -> Tensor:
    """Luminance only (N x 1 x H x W), for training where chroma is not needed."""
    return rgb_to_ycrcb(rgb)[0]


def ycrcb_to_rgb(y: Tensor, cr: Tensor, cb: Tensor) -> Tensor:
    """Recombine luminance with chroma into N x 3 x H x W RGB, clamped to [0, 1]."""
    dcr, dcb = cr - 0.5, cb - 0.5
    rgb = torch.cat((y + R_FROM_CR * dcr, y - G_FROM_CR * dcr - G_FROM_CB * dcb, y + B_FROM_CB * dcb), dim=1)
    return rgb.clamp_(0.0, 1.0)
