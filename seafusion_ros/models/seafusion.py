"""The SeAFusion fusion network (Tang et al., Information Fusion 2022), reference section 1.

Two identical encoders (visible luminance, infrared) built from gradient residual dense blocks,
features concatenated visible-first, and a four-layer convolutional decoder ending in
``tanh(x) / 2 + 0.5`` so the fused luminance lies in (0, 1). Stride 1 everywhere: any H x W works.
Attribute names are our own; ``checkpoint.py`` maps the authors' key names onto them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

SOBEL_X = ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0))


def _conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=True)


class EdgeMagnitude(nn.Module):
    """Depthwise |Sobel_x| + |Sobel_y|, initialised to Sobel but trainable (the release trained them)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        kx = torch.tensor(SOBEL_X).expand(channels, 1, 3, 3).clone()
        self.kernel_x = nn.Parameter(kx)
        self.kernel_y = nn.Parameter(kx.transpose(-1, -2).clone())
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        gx = F.conv2d(x, self.kernel_x, padding=1, groups=self.channels)
        gy = F.conv2d(x, self.kernel_y, padding=1, groups=self.channels)
        return gx.abs() + gy.abs()


class GradientResidualDenseBlock(nn.Module):
    """Dense stream (two 3x3 convs with concatenation, 1x1 squeeze) plus a Sobel gradient stream."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.dense_a = _conv3x3(cin, cin)
        self.dense_b = _conv3x3(2 * cin, cin)
        self.dense_out = nn.Conv2d(3 * cin, cout, kernel_size=1)
        self.edges = EdgeMagnitude(cin)
        self.edge_out = nn.Conv2d(cin, cout, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        x1 = torch.cat((x, F.leaky_relu(self.dense_a(x), 0.2)), dim=1)
        x2 = torch.cat((x1, F.leaky_relu(self.dense_b(x1), 0.2)), dim=1)
        dense = self.dense_out(x2)
        gradient = self.edge_out(self.edges(x))
        return F.leaky_relu(dense + gradient, 0.1)


def full_precision(x: Tensor) -> torch.autocast:
    """Autocast switched off for x's device: the 1-channel stems and the output head run in fp32.

    They are 0.2% of the work but decide the precision of the 8-bit inputs and output: bf16 holds only
    8 significant bits, so an 8-bit image in [0, 1] would already lose half a grey level on entry.
    """
    return torch.autocast(x.device.type, enabled=False)


class Encoder(nn.Module):
    """stem 1->16, GRDB 16->32, GRDB 32->48."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _conv3x3(1, 16)
        self.block1 = GradientResidualDenseBlock(16, 32)
        self.block2 = GradientResidualDenseBlock(32, 48)

    def forward(self, x: Tensor) -> Tensor:
        with full_precision(x):
            x = F.leaky_relu(self.stem(x.float()), 0.2)
        return self.block2(self.block1(x))


class FusionNet(nn.Module):
    """Fuses visible luminance and infrared (both N x 1 x H x W in [0, 1]) into a fused luminance."""

    def __init__(self) -> None:
        super().__init__()
        self.visible_encoder = Encoder()
        self.infrared_encoder = Encoder()
        self.decoder = nn.ModuleList([_conv3x3(96, 64), _conv3x3(64, 32), _conv3x3(32, 16)])
        self.head = _conv3x3(16, 1)

    def forward(self, visible_y: Tensor, infrared: Tensor) -> Tensor:
        x = torch.cat((self.visible_encoder(visible_y), self.infrared_encoder(infrared)), dim=1)
        for conv in self.decoder:
            x = F.leaky_relu(conv(x), 0.2)
        with full_precision(x):
            return torch.tanh(self.head(x.float())) / 2 + 0.5


def seafusion() -> FusionNet:
    """Build an uninitialised SeAFusion fusion network (166,657 parameters)."""
    return FusionNet()
