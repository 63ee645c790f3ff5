"""A light real-time segmentation network in the spirit of BiSeNet, sized for this project's data.

Reference section 5: the paper segments the fused RGB image with a BiSeNet-style network (ResNet-18
context path, attention refinement at 1/16 and 1/32, main head at 1/8, auxiliary head at 1/16; about
12.9 M weights, ImageNet-pretrained). Here there are 216 training frames and a CPU, and nothing may be
downloaded, so the network is trained from scratch and kept about ten times smaller (1.0 M weights
at the default widths): a five-stage residual backbone (1/2 .. 1/32) whose 1/8 features serve as the
spatial path, attention refinement modules on the 1/16 and 1/32 features plus a global-context
vector, a feature fusion module at 1/8, a main head on the fused 1/8 features and an auxiliary head
on the 1/16 context, both upsampled to the input size. A 12.9 M network from scratch on 216 frames
would mostly memorise them and cost ~12x the CPU; at 1.07 M an epoch of 216 frames takes about 3 s at
120 x 160 and 8-20 s at 240 x 320 on one thread of the shared 2-core CPU (from scratch it still needs
100+ epochs before the small object classes emerge from the weak labels).

Input: fused RGB, N x 3 x H x W in [0, 1] (no mean/std), any H x W. Output in eval mode: main
logits N x C x H x W; in train mode: (main, auxiliary). ``logits_and_aux`` gives both in either mode
(joint training needs them from a frozen network in eval mode). ``inference_size`` (the size it was
trained at, kept in the model card) makes the eval-mode forward resize any input to that size and the
logits back, so a network trained at 120 x 160 on a CPU sees objects at its training scale on 480 x 640
frames, and runs at the cost of its training size.

The loader and the card helper also serve ``bisenet_efficientnet_lite0``
(:mod:`seafusion_ros.models.bisenet_efficientnet`, the same interface on an ImageNet-pretrained
backbone); a checkpoint's ``arch`` says which network to build.
"""

from __future__ import annotations

import os
from typing import Any

from torch import Tensor, nn
from torch.nn import functional as F

from seafusion_ros.models.bisenet_efficientnet import ARCH as EFFICIENTNET_ARCH
from seafusion_ros.models.bisenet_efficientnet import BiSeNetEfficientNet, bisenet_efficientnet_lite0
from seafusion_ros.models.checkpoint import CheckpointError, load_state_dict_strict, read_checkpoint
from seafusion_ros.models.segmentation_blocks import (
    AttentionRefinement,
    BiSeNetBase,
    ConvBNReLU,
    FeatureFusion,
    SegmentationHead,
    resize,
)

ARCH = "bisenet_lite"
ARCHS = (ARCH, EFFICIENTNET_ARCH)
DEFAULT_WIDTHS = (16, 32, 64, 96, 128)
DEFAULT_CONTEXT = 64


class ResidualBlock(nn.Module):
    """The ResNet basic block (two 3x3 convs), with a strided 1x1 projection when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(cin, cout, stride=stride)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn2(self.conv2(self.conv1(x))) + self.shortcut(x), inplace=True)


class Backbone(nn.Module):
    """Stem at 1/2, then one residual stage per further halving; returns the 1/8, 1/16, 1/32 maps."""

    def __init__(self, widths: tuple[int, int, int, int, int]) -> None:
        super().__init__()
        w2, w4, w8, w16, w32 = widths
        self.stem = ConvBNReLU(3, w2, stride=2)
        self.stage4 = ResidualBlock(w2, w4, stride=2)
        self.stage8 = nn.Sequential(ResidualBlock(w4, w8, stride=2), ResidualBlock(w8, w8))
        self.stage16 = nn.Sequential(ResidualBlock(w8, w16, stride=2), ResidualBlock(w16, w16))
        self.stage32 = ResidualBlock(w16, w32, stride=2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        f8 = self.stage8(self.stage4(self.stem(x)))
        f16 = self.stage16(f8)
        return f8, f16, self.stage32(f16)


class BiSeNetLite(BiSeNetBase):
    """See the module docstring. ``num_classes`` includes background (class 0)."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = DEFAULT_WIDTHS,
                 context: int = DEFAULT_CONTEXT, inference_size: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.inference_size = tuple(int(v) for v in inference_size) if inference_size else None
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if len(widths) != 5:
            raise ValueError(f"widths needs 5 entries (1/2 .. 1/32), got {widths}")
        self.num_classes = num_classes
        self.widths = tuple(int(w) for w in widths)
        self.context = int(context)
        w8, w16, w32 = self.widths[2], self.widths[3], self.widths[4]
        self.backbone = Backbone(self.widths)
        self.global_context = ConvBNReLU(w32, context, kernel=1)
        self.refine32 = AttentionRefinement(w32, context)
        self.refine16 = AttentionRefinement(w16, context)
        self.smooth32 = ConvBNReLU(context, context)
        self.smooth16 = ConvBNReLU(context, context)
        self.fusion = FeatureFusion(w8 + context, 2 * context)
        self.head = SegmentationHead(2 * context, context, num_classes)
        self.aux_head = SegmentationHead(context, context // 2, num_classes)

    def logits_and_aux(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(main, auxiliary) logits at the input size, whatever the mode."""
        f8, f16, f32 = self.backbone(x)
        ctx32 = self.refine32(f32) + self.global_context(F.adaptive_avg_pool2d(f32, 1))
        ctx16 = self.refine16(f16) + self.smooth32(resize(ctx32, f16))
        main = self.head(self.fusion(f8, self.smooth16(resize(ctx16, f8))))
        aux = self.aux_head(ctx16)
        size = (x.shape[-2], x.shape[-1])
        return resize(main, size), resize(aux, size)


def bisenet_lite(num_classes: int, widths: tuple[int, ...] = DEFAULT_WIDTHS, context: int = DEFAULT_CONTEXT,
                 inference_size: tuple[int, int] | None = None) -> BiSeNetLite:
    """Build an untrained BiSeNetLite (random init; nothing is downloaded)."""
    return BiSeNetLite(num_classes, widths, context, inference_size)


SegmentationNet = BiSeNetLite | BiSeNetEfficientNet


def segmentation_card_fields(model: SegmentationNet) -> dict[str, Any]:
    """The builder arguments a model card must carry to rebuild the network (``arch`` first)."""
    inference_size = list(model.inference_size) if model.inference_size else None
    if isinstance(model, BiSeNetEfficientNet):
        return {"arch": EFFICIENTNET_ARCH, "num_classes": model.num_classes,
                "inference_size": inference_size}
    return {"arch": ARCH, "num_classes": model.num_classes, "widths": list(model.widths),
            "context_channels": model.context, "inference_size": inference_size}


def _build(arch: str, card: dict[str, Any]) -> SegmentationNet:
    """An untrained network of ``arch`` as the card describes it; without the ImageNet weights, so loading a
    checkpoint needs no weights package (the checkpoint replaces every parameter anyway)."""
    if arch == EFFICIENTNET_ARCH:
        return bisenet_efficientnet_lite0(int(card["num_classes"]), pretrained=False,
                                          inference_size=card.get("inference_size"))
    return bisenet_lite(int(card["num_classes"]), tuple(card.get("widths", DEFAULT_WIDTHS)),
                        int(card.get("context_channels", DEFAULT_CONTEXT)), card.get("inference_size"))


def load_segmentation_model(path: str | os.PathLike) -> tuple[SegmentationNet, dict[str, Any]]:
    """Build the network from one of our checkpoints; returns (model in eval mode, model_card).

    The card carries ``classes`` (names), ``palette`` ([r, g, b] per class) and ``num_classes``.
    Raises CheckpointError when the file is not a segmentation checkpoint or its card is incomplete.
    """
    ckpt = read_checkpoint(path)
    arch = ckpt.get("arch")
    if arch not in ARCHS:
        raise CheckpointError(f"{path}: holds a '{arch}' model, not a {' or '.join(ARCHS)} segmentation network")
    card = dict(ckpt.get("model_card", {}))
    missing = [k for k in ("num_classes", "classes", "palette") if k not in card]
    if missing:
        raise CheckpointError(f"{path}: model card lacks {missing}")
    if len(card["classes"]) != card["num_classes"] or len(card["palette"]) != card["num_classes"]:
        raise CheckpointError(f"{path}: model card has {card['num_classes']} classes but "
                              f"{len(card['classes'])} names and {len(card['palette'])} colours")
    model = _build(arch, card)
    load_state_dict_strict(model, ckpt["state_dict"], str(path))
    return model.eval(), card
