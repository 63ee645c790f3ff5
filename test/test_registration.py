"""Thermal -> RGB warp: scale-only, homography, output size, calibration helper, errors."""

from __future__ import annotations

import numpy as np
import pytest

from seafusion_ros.imaging.registration import MAX_CACHED_MAPS, Registration, homography_from_calibration


def _ramp(height: int, width: int, dtype=np.uint16) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    return (1000 + 40 * xs + 7 * ys).astype(dtype)


def test_scale_only_stretches_thermal_onto_rgb_grid_with_pixel_centres_aligned():
    thermal = _ramp(60, 80)
    warped = Registration("scale").warp_thermal(thermal, (120, 160))
    assert warped.shape == (120, 160) and warped.dtype == np.uint16
    ys, xs = np.mgrid[0:120, 0:160]
    src_x, src_y = (xs + 0.5) / 2 - 0.5, (ys + 0.5) / 2 - 0.5
    expected = 1000 + 40 * src_x + 7 * src_y
    interior = (slice(2, -2), slice(2, -2))
    assert np.abs(warped[interior] - expected[interior]).max() <= 2  # cv2 fixed-point maps: 1/32 px


def test_homography_translation_moves_pixels_and_borders_replicate():
    thermal = np.random.default_rng(0).random((50, 70)).astype(np.float32)
    h = [1, 0, 5, 0, 1, 3, 0, 0, 1]  # thermal (x, y) appears at RGB (x + 5, y + 3)
    warped = Registration("homography", h).warp_thermal(thermal, (50, 70))
    np.testing.assert_allclose(warped[3:, 5:], thermal[:-3, :-5], atol=1e-6)
    np.testing.assert_allclose(warped[0, 5:], thermal[0, :-5], atol=1e-6)  # replicated top row
    assert np.isfinite(warped).all()


def test_output_size_resizes_visible_and_composes_with_the_warp():
    thermal = _ramp(60, 80)
    visible = np.zeros((120, 160, 3), np.uint8)
    reg = Registration("scale", output_size=(30, 40))
    ir, vis = reg.apply(thermal, visible)
    assert ir.shape == (30, 40) and vis.shape == (30, 40, 3)
    direct = Registration("scale").warp_thermal(thermal, (30, 40))
    np.testing.assert_array_equal(ir, direct)


def test_remap_maps_are_computed_once_per_size_pair():
    reg = Registration("scale")
    reg.warp_thermal(_ramp(60, 80), (120, 160))
    maps = reg._maps[((60, 80), (120, 160))]
    reg.warp_thermal(_ramp(60, 80) + 1, (120, 160))
    assert len(reg._maps) == 1 and reg._maps[((60, 80), (120, 160))] is maps
    reg.warp_thermal(_ramp(30, 40), (120, 160))
    assert len(reg._maps) == 2


def test_remap_map_cache_keeps_the_most_recently_used_size_pairs_and_never_changes_output():
    h = [1.1, 0.03, 4, -0.02, 1.05, 2, 1e-4, 0, 1]
    reg = Registration("homography", h)
    rng = np.random.default_rng(0)
    thermals = [rng.random((40 + 6 * i, 50 + 8 * i)).astype(np.float32) for i in range(6)]
    order = [0, 1, 2, 3, 0, 4, 5, 1]  # size 0 is used again before sizes 4 and 5 push older ones out
    for index in order:
        warped = reg.warp_thermal(thermals[index], (90, 120))
        assert len(reg._maps) <= MAX_CACHED_MAPS
        np.testing.assert_array_equal(warped, Registration("homography", h).warp_thermal(thermals[index], (90, 120)))
    recent_first = list(dict.fromkeys(reversed(order)))
    expected = [(thermals[i].shape, (90, 120)) for i in reversed(recent_first[:MAX_CACHED_MAPS])]
    assert len(thermals) > MAX_CACHED_MAPS and list(reg._maps) == expected


def test_none_mode_passes_matching_sizes_and_names_the_fix_for_mismatch():
    thermal = _ramp(40, 50)
    assert Registration("none").warp_thermal(thermal, (40, 50)) is thermal
    with pytest.raises(ValueError, match="registration.mode"):
        Registration("none").warp_thermal(thermal, (80, 100))


def test_homography_from_calibration_maps_points_on_the_plane():
    k_th = np.array([[400.0, 0, 80], [0, 400.0, 60], [0, 0, 1]])
    k_rgb = np.array([[800.0, 0, 320], [0, 800.0, 240], [0, 0, 1]])
    angle = np.deg2rad(2.0)
    rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    t = np.array([0.1, 0.02, 0.0])
    depth = 5.0
    h = homography_from_calibration(k_th, k_rgb, rot, t, plane_distance=depth)
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.uniform(-1, 1, 20), rng.uniform(-1, 1, 20), np.full(20, depth)])
    uv_th = (k_th @ points.T).T
    uv_th = uv_th[:, :2] / uv_th[:, 2:]
    uv_rgb = (k_rgb @ (rot @ points.T + t[:, None])).T
    uv_rgb = uv_rgb[:, :2] / uv_rgb[:, 2:]
    mapped = (h @ np.column_stack([uv_th, np.ones(20)]).T).T
    np.testing.assert_allclose(mapped[:, :2] / mapped[:, 2:], uv_rgb, atol=1e-6)
    at_infinity = homography_from_calibration(k_th, k_rgb, np.eye(3))
    np.testing.assert_allclose(at_infinity @ [80, 60, 1], [320, 240, 1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "affine"}, "registration mode"),
        ({"mode": "homography"}, "needs a homography"),
        ({"mode": "homography", "homography": [1, 0, 0, 0, 1, 0, 0, 0]}, "9 values"),
        ({"mode": "homography", "homography": [0] * 9}, "singular"),
        ({"mode": "scale", "output_size": (0, 10)}, "output size"),
    ],
)
def test_invalid_configuration_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Registration(**kwargs)
