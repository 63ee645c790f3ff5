"""Y/Cr/Cb conversion as the reference defines it."""

from __future__ import annotations

import pytest
import torch

from seafusion_ros.inference.colour import rgb_to_ycrcb, ycrcb_to_rgb


def test_known_values():
    rgb = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    y, cr, cb = rgb_to_ycrcb(rgb)
    assert float(y) == pytest.approx(0.299)
    assert float(cr) == pytest.approx(0.713 * (1 - 0.299) + 0.5)
    assert float(cb) == pytest.approx(0.564 * (0 - 0.299) + 0.5)


def test_round_trip_is_close_to_identity_on_a_batch():
    torch.manual_seed(0)
    rgb = torch.rand(3, 3, 17, 23)
    back = ycrcb_to_rgb(*rgb_to_ycrcb(rgb))
    assert torch.allclose(back, rgb, atol=2e-3)  # the published coefficients are rounded to 3 digits


def test_gray_has_neutral_chroma_and_recombines_to_gray():
    gray = torch.rand(1, 1, 8, 8).expand(1, 3, 8, 8)
    y, cr, cb = rgb_to_ycrcb(gray)
    assert torch.allclose(cr, torch.full_like(cr, 0.5), atol=1e-6)
    assert torch.allclose(cb, torch.full_like(cb, 0.5), atol=1e-6)
    assert torch.allclose(ycrcb_to_rgb(y, cr, cb), gray, atol=1e-6)


def test_output_is_clamped():
    y = torch.ones(1, 1, 2, 2)
    rgb = ycrcb_to_rgb(y, torch.ones_like(y), torch.zeros_like(y))
    assert float(rgb.max()) <= 1.0 and float(rgb.min()) >= 0.0


def test_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        rgb_to_ycrcb(torch.rand(3, 4, 4))
