"""OHEM cross entropy: hard pixels only, at least n_min of them, ignore label 255."""

import math

import pytest
import torch
from torch.nn import functional as F

from seafusion_ros.training.ohem_loss import OhemCrossEntropy, SemanticLoss


def _confident(target: torch.Tensor, num_classes: int, margin: float) -> torch.Tensor:
    """Logits that put ``margin`` on the target class of every pixel (N x C x H x W)."""
    return F.one_hot(target, num_classes).permute(0, 3, 1, 2).float() * margin


def test_all_hard_pixels_give_plain_cross_entropy():
    target = torch.randint(0, 4, (2, 8, 8))
    logits = torch.zeros(2, 4, 8, 8)  # every pixel has p = 0.25 < 0.7: all hard
    assert torch.isclose(OhemCrossEntropy()(logits, target), torch.tensor(math.log(4.0)))


def test_easy_pixels_are_dropped_when_enough_hard_ones_remain():
    target = torch.randint(0, 3, (1, 8, 8))
    logits = _confident(target, 3, 20.0)
    logits[..., :4] = 0.0  # left half: uniform, loss ln 3; right half: near-zero loss
    loss = OhemCrossEntropy(min_kept_fraction=0.25)(logits, target)
    assert torch.isclose(loss, torch.tensor(math.log(3.0)), atol=1e-6)
    plain = F.cross_entropy(logits, target)
    assert loss > 1.9 * plain


def test_at_least_n_min_pixels_are_kept():
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    logits = _confident(target, 2, 3.0)  # all easy: p(true) = sigmoid(3) = 0.95 > 0.7
    logits[0, 0, 0, 0] = 1.0  # one pixel slightly harder but still easy (p = 0.73)
    per_pixel = F.cross_entropy(logits, target, reduction="none").flatten()
    loss = OhemCrossEntropy(min_kept_fraction=2 / 16)(logits, target)
    assert torch.isclose(loss, per_pixel.topk(2).values.mean())


def test_ignore_label_is_excluded():
    target = torch.randint(0, 2, (1, 6, 6))
    logits = torch.randn(1, 2, 6, 6)
    ignored = target.clone()
    ignored[0, :3] = 255
    flipped = logits.clone()
    flipped[0, :, :3] = -flipped[0, :, :3]  # changing ignored pixels must not change the loss
    ohem = OhemCrossEntropy(min_kept_fraction=1.0)
    assert torch.isclose(ohem(logits, ignored), ohem(flipped, ignored))
    all_ignored = torch.full_like(target, 255)
    zero = ohem(logits.requires_grad_(), all_ignored)
    assert zero.item() == 0.0
    zero.backward()


def test_semantic_loss_weights_the_auxiliary_head():
    target = torch.randint(0, 4, (2, 8, 8))
    main, aux = torch.randn(2, 4, 8, 8, requires_grad=True), torch.randn(2, 4, 8, 8, requires_grad=True)
    ohem = OhemCrossEntropy()
    total = SemanticLoss()(main, aux, target)
    assert torch.isclose(total, ohem(main, target) + 0.1 * ohem(aux, target))
    total.backward()
    assert main.grad.abs().sum() > 0 and aux.grad.abs().sum() > 0


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="same size"):
        OhemCrossEntropy()(torch.zeros(1, 3, 4, 4), torch.zeros(1, 5, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="probability"):
        OhemCrossEntropy(probability=1.5)
