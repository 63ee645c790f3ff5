"""The BiSeNet building blocks (reference section 5) shared by both segmentation networks.

Each network brings its own backbone and wires these blocks in its ``logits_and_aux``; the eval-mode
forward (inference at the training size) and the backbone / head split of the learning rate are the
same for both, so they live here too. Attribute names are part of the checkpoint format.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class AttentionRefinement(nn.Module):
    """3x3 conv, then a channel attention vector from global pooling re-weights the features."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, cout)
        self.attention = nn.Sequential(nn.Conv2d(cout, cout, 1, bias=False), nn.BatchNorm2d(cout),
                                       nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        return x * self.attention(F.adaptive_avg_pool2d(x, 1))


class FeatureFusion(nn.Module):
    """Spatial and context features concatenated, mixed by a 1x1 conv, then re-weighted per channel
    (x + x * attention), so either path can dominate where it is the more reliable one."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, cout, kernel=1)
        self.attention = nn.Sequential(
            nn.Conv2d(cout, cout // 4, 1), nn.ReLU(inplace=True), nn.Conv2d(cout // 4, cout, 1), nn.Sigmoid()
        )

    def forward(self, spatial: Tensor, context: Tensor) -> Tensor:
        x = self.conv(torch.cat((spatial, context), dim=1))
        return x + x * self.attention(F.adaptive_avg_pool2d(x, 1))


class SegmentationHead(nn.Sequential):
    def __init__(self, cin: int, mid: int, num_classes: int) -> None:
        super().__init__(ConvBNReLU(cin, mid), nn.Conv2d(mid, num_classes, 1))


def resize(x: Tensor, like: Tensor | tuple[int, int]) -> Tensor:
    """Bilinear resize to a size or to another map's size."""
    size = like if isinstance(like, tuple) else tuple(like.shape[-2:])
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def at_inference_size(logits_of: Callable[[Tensor], Tensor], x: Tensor,
                      inference_size: tuple[int, int] | None) -> Tensor:
    """``logits_of`` run on ``x`` resized to ``inference_size`` (bilinear), its logits resized back to ``x``'s size;
    ``x`` as it is when there is no inference size or it already has it. The one rule of the eval-mode forward
    and of the inference engine, which applies it around a compiled twin of the network."""
    size = (x.shape[-2], x.shape[-1])
    if inference_size is None or tuple(inference_size) == size:
        return logits_of(x)
    return resize(logits_of(resize(x, tuple(inference_size))), size)


class BiSeNetBase(nn.Module):
    """What both networks share around their ``logits_and_aux``: ``backbone``, ``num_classes`` and
    ``inference_size`` (H, W): the eval-mode forward runs the network at that size and resizes the logits
    back, so a frame of any size is segmented at the size the network was trained at."""

    backbone: nn.Module
    num_classes: int
    inference_size: tuple[int, int] | None

    def logits_and_aux(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        if self.training:
            return self.logits_and_aux(x)
        return at_inference_size(lambda t: self.logits_and_aux(t)[0], x, self.inference_size)

    def head_parameters(self) -> list[nn.Parameter]:
        """Everything outside the backbone: trained at a higher learning rate than it (reference section 4)."""
        backbone = {id(p) for p in self.backbone.parameters()}
        return [p for p in self.parameters() if id(p) not in backbone]
