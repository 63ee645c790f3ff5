"""Online hard example mining (OHEM) cross entropy and the semantic loss built from it (reference §3).

Most pixels are easy background; averaging over all of them drowns the few object pixels. OHEM keeps
only pixels whose loss exceeds -ln(0.7) (predicted probability of the true class below 0.7), but at
least ``n_min`` of them so the gradient never vanishes. Ignore label: 255.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seafusion_ros.data.labels import IGNORE_INDEX

HARD_PROBABILITY = 0.7
AUX_WEIGHT = 0.1


class OhemCrossEntropy(nn.Module):
    """Mean cross entropy over the hard pixels.

    Args:
        probability: pixels whose true-class probability is below this are hard (loss > -ln p).
        min_kept_fraction: n_min as a fraction of all target pixels (1/16, as BiSeNet's training does).
        ignore_index: label excluded from the loss.
    """

    def __init__(self, probability: float = HARD_PROBABILITY, min_kept_fraction: float = 1 / 16,
                 ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        if not 0.0 < probability < 1.0:
            raise ValueError(f"probability must lie in (0, 1), got {probability}")
        self.threshold = -math.log(probability)
        self.min_kept_fraction = min_kept_fraction
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if logits.dim() != 4 or target.dim() != 3 or logits.shape[-2:] != target.shape[-2:]:
            raise ValueError(f"expected logits N x C x H x W and target N x H x W of the same size, "
                             f"got {tuple(logits.shape)} and {tuple(target.shape)}")
        pixel_loss = F.cross_entropy(logits, target.long(), ignore_index=self.ignore_index, reduction="none")
        losses = pixel_loss[target != self.ignore_index]
        if losses.numel() == 0:
            return logits.sum() * 0.0
        n_min = min(losses.numel(), max(1, int(target.numel() * self.min_kept_fraction)))
        hard = losses[losses > self.threshold]
        if hard.numel() >= n_min:
            return hard.mean()
        return torch.topk(losses, n_min, sorted=False).values.mean()


class SemanticLoss(nn.Module):
    """L_sem = OHEM(main) + lambda * OHEM(auxiliary), lambda = 0.1 (reference §3)."""

    def __init__(self, aux_weight: float = AUX_WEIGHT, **ohem_args: float) -> None:
        super().__init__()
        self.ohem = OhemCrossEntropy(**ohem_args)
        self.aux_weight = aux_weight

    def forward(self, main: Tensor, aux: Tensor, target: Tensor) -> Tensor:
        return self.ohem(main, target) + self.aux_weight * self.ohem(aux, target)
