"""SeAFusion's content loss (reference section 3): intensity + alpha x texture.

Intensity pulls the fused luminance towards the brighter source at each pixel (hot objects from
the infrared, lit surfaces from the visible); texture pulls its gradient magnitude towards the
stronger source gradient, so neither image's detail is lost.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from seafusion_ros.models.seafusion import SOBEL_X

DEFAULT_ALPHA = 10.0
MIN_CROP = 16  # the smallest training crop the Sobel and the network's convolutions handle with margin


def sobel_magnitude(x: Tensor) -> Tensor:
    """|Sobel_x| + |Sobel_y| of N x 1 x H x W images, fixed kernels, zero padding."""
    kx = torch.tensor(SOBEL_X, dtype=x.dtype, device=x.device).view(1, 1, 3, 3)
    kernels = torch.cat((kx, kx.transpose(-1, -2)), dim=0)
    g = F.conv2d(x, kernels, padding=1)
    return g[:, 0:1].abs() + g[:, 1:2].abs()


def content_loss(fused_y: Tensor, visible_y: Tensor, infrared: Tensor,
                 alpha: float = DEFAULT_ALPHA) -> tuple[Tensor, dict[str, float]]:
    """Return (L_int + alpha L_tex, {"intensity": ..., "texture": ...}) for N x 1 x H x W inputs."""
    intensity = (fused_y - torch.maximum(infrared, visible_y)).abs().mean()
    target_grad = torch.maximum(sobel_magnitude(infrared), sobel_magnitude(visible_y))
    texture = (sobel_magnitude(fused_y) - target_grad).abs().mean()
    total = intensity + alpha * texture
    return total, {"intensity": float(intensity.detach()), "texture": float(texture.detach())}
