"""Mask colourisation and alpha blending."""

from __future__ import annotations

import numpy as np
import pytest

from seafusion_ros.imaging.overlay import blend_overlay, colourise, default_palette, palette_array

PALETTE = [[0, 0, 0], [255, 0, 0], [0, 255, 0]]


def test_colourise_looks_up_the_palette_and_unknown_ids_are_black():
    mask = np.array([[0, 1], [2, 7]], np.uint8)
    colours = colourise(mask, PALETTE)
    assert colours.shape == (2, 2, 3) and colours.dtype == np.uint8
    np.testing.assert_array_equal(colours, [[[0, 0, 0], [255, 0, 0]], [[0, 255, 0], [0, 0, 0]]])


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_blend_is_the_weighted_sum(alpha):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    mask = rng.integers(0, 3, (24, 32), dtype=np.uint8)
    out = blend_overlay(image, mask, PALETTE, alpha)
    expected = np.where((mask == 0)[:, :, None], image, (1 - alpha) * image + alpha * np.asarray(PALETTE)[mask])
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.abs(out.astype(float) - expected).max() <= 1.0


def test_gray_image_is_expanded_and_mismatches_are_refused():
    mask = np.ones((4, 5), np.uint8)
    out = blend_overlay(np.full((4, 5), 100, np.uint8), mask, PALETTE, 0.5)
    np.testing.assert_array_equal(out[0, 0], [178, 50, 50])
    with pytest.raises(ValueError, match="matching mask"):
        blend_overlay(np.zeros((4, 6, 3), np.uint8), mask, PALETTE)
    with pytest.raises(ValueError, match="alpha"):
        blend_overlay(np.zeros((4, 5, 3), np.uint8), mask, PALETTE, 1.5)
    with pytest.raises(ValueError, match="class ids"):
        colourise(mask.astype(np.int32), PALETTE)


def test_palette_checks_and_default_palette():
    with pytest.raises(ValueError, match="0..255"):
        palette_array([[0, 0, 300]])
    with pytest.raises(ValueError, match="at most 256"):
        palette_array([[0, 0, 0]] * 257)
    palette = default_palette(9)
    assert len(palette) == 9 and palette[0] == [0, 0, 0]
    assert len({tuple(c) for c in palette}) == 9
