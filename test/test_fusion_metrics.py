"""Fusion metrics: the golden TNO values, hand-checkable cases, and invalid or degenerate input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import convolve2d

from seafusion_ros.evaluation import fusion_metrics as fm
from seafusion_ros.evaluation.fusion_metrics import METRIC_NAMES, MetricUndefinedError, fusion_scores
from seafusion_ros.evaluation.pairs import read_metric_image

TNO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tno_golden"
TIGHT = ("EN", "SD", "SF", "AG", "MI", "SCD", "CC")
LOOSE = ("VIF", "Qabf", "Nabf")


def _golden() -> dict:
    path = TNO / "golden_metrics.json"
    if not path.is_file():
        pytest.skip(f"{path} not found: ../shared data is absent beside the checkout")
    return json.loads(path.read_text())["methods"]


def _check_against_golden(method: str, names: list[str]) -> None:
    golden = _golden()[method]["per_image"]
    failures = []
    for name in names:
        scores = fusion_scores(read_metric_image(TNO / method / name), read_metric_image(TNO / "ir" / name),
                               read_metric_image(TNO / "vi" / name))
        assert not scores.undefined, (name, scores.undefined)
        for metric, tolerance in [(m, 1e-6) for m in TIGHT] + [(m, 1e-4) for m in LOOSE]:
            expected = golden[name][metric]
            got = scores.values[metric]
            if not math.isclose(got, expected, rel_tol=tolerance):
                failures.append(f"{method}/{name} {metric}: {got!r} != {expected!r}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("method", ["fused_seafusion", "fused_ifcnn"])
def test_golden_values_on_three_pairs(method: str) -> None:
    # fused_ifcnn holds gray PNGs, fused_seafusion RGB ones: both gray paths are exercised.
    _check_against_golden(method, ["01.png", "21.png", "42.png"])


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fused_seafusion", "fused_ifcnn"])
def test_golden_values_on_all_42_pairs(method: str) -> None:
    names = sorted(_golden()[method]["per_image"])
    assert len(names) == 42
    _check_against_golden(method, names)


def test_golden_means_match_reference_document() -> None:
    mean = _golden()["fused_seafusion"]["mean"]
    assert mean["VIF"] == pytest.approx(0.7042, abs=5e-5)
    assert mean["Qabf"] == pytest.approx(0.4879, abs=5e-5)


def test_rgb_to_gray_uses_matlab_weights_and_rounds_half_up() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [200, 100, 50]]], dtype=np.uint8)
    rgb = np.repeat(rgb, 2, axis=0)
    gray = fm.to_gray(rgb)
    # 76.229, 149.696, 29.075, 124.18 -> round half up
    assert gray[0].tolist() == [76, 150, 29, 124]
    assert gray.dtype == np.uint8


def _texture(shape: tuple[int, int] = (64, 80), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    smooth = 128 + 60 * np.sin(x / 7.0) * np.cos(y / 5.0)
    return np.clip(smooth + rng.normal(0, 12, shape), 0, 255).astype(np.uint8)


def test_entropy_sd_sf_on_hand_checkable_images() -> None:
    half = np.zeros((4, 4), np.uint8)
    half[:, 2:] = 100
    assert fm.entropy(half) == pytest.approx(1.0)
    assert fm.standard_deviation(half) == pytest.approx(50.0)
    # one horizontal step of 100 per row out of 3 differences; no vertical change
    assert fm.spatial_frequency(half) == pytest.approx(math.sqrt(100.0 ** 2 / 3))
    assert fm.entropy(np.full((5, 5), 7, np.uint8)) == 0.0


def test_average_gradient_of_a_ramp() -> None:
    ramp = np.tile(np.arange(0, 50, 5, dtype=np.uint8), (6, 1))  # 6 x 10, gx = 5 everywhere
    expected = (5 / math.sqrt(2)) * 60 / (5 * 9)
    assert fm.average_gradient(ramp) == pytest.approx(expected)


def test_identical_images_give_the_self_similarity_values() -> None:
    image = _texture()
    assert fm.mutual_information(image, image, image) == pytest.approx(2 * fm.entropy(image))
    assert fm.correlation_coefficient(image, image, image) == pytest.approx(1.0)
    assert fm.vif(image, image, image) == pytest.approx(2.0, rel=1e-9)
    assert fm.ssim(image, image, image) == pytest.approx(2.0)


def test_psnr_and_ssim_variants() -> None:
    base = _texture().astype(np.int16)
    base = np.clip(base, 20, 235)
    fused = base.astype(np.uint8)
    ir = (base + 10).astype(np.uint8)
    visible = (base - 10).astype(np.uint8)
    assert fm.psnr(fused, ir, visible) == pytest.approx(10 * math.log10(255 ** 2 / 100.0))
    noisy = np.clip(base + np.random.default_rng(1).normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    assert 0 < fm.ssim(noisy, fused, fused) < 2.0


def test_separable_vif_equals_direct_2d_convolution() -> None:
    def direct(image: np.ndarray, kernel_1d: np.ndarray) -> np.ndarray:
        return convolve2d(image, np.outer(kernel_1d, kernel_1d), mode="valid")

    f, a, b = (_texture((72, 90), seed).astype(np.float64) for seed in (1, 2, 3))
    assert fm.vif_float64(f, a, b) == pytest.approx(fm.vif_float64(f, a, b, filter_valid=direct), rel=1e-10)
    windows = fm.vif_windows()
    assert [len(w) for w in windows] == [17, 9, 5, 3]
    assert all(w.sum() == pytest.approx(1.0) for w in windows)


def test_qabf_and_nabf_rank_a_blurred_fusion_worse() -> None:
    ir, visible = _texture(seed=4), _texture(seed=5)
    good = np.maximum(ir, visible)
    blurred = convolve2d(good.astype(float), np.full((5, 5), 1 / 25), mode="same", boundary="symm")
    blurred = blurred.astype(np.uint8)
    assert fm.qabf(good, ir, visible) > fm.qabf(blurred, ir, visible)
    assert 0.0 <= fm.nabf(good, ir, visible) < 1.0


def test_constant_images_raise_a_named_undefined_error() -> None:
    flat = np.full((64, 80), 90, np.uint8)
    image = _texture()
    with pytest.raises(MetricUndefinedError, match="CC is undefined"):
        fm.correlation_coefficient(flat, image, image)
    with pytest.raises(MetricUndefinedError, match="SCD"):
        fm.scd(image, flat, image)
    with pytest.raises(MetricUndefinedError, match="VIF is undefined: the infrared image is constant"):
        fm.vif(image, flat, image)
    black = np.zeros_like(flat)
    with pytest.raises(MetricUndefinedError, match="Qabf"):
        fm.qabf(image, black, black)
    with pytest.raises(MetricUndefinedError, match="PSNR"):
        fm.psnr(image, image, image)


def test_fusion_scores_notes_undefined_metrics_instead_of_nan() -> None:
    flat = np.full((64, 80), 90, np.uint8)
    scores = fusion_scores(flat, _texture(seed=6), _texture(seed=7))
    assert set(scores.undefined) == {"CC"}  # F - B is not constant, so SCD stays defined
    assert "constant" in scores.undefined["CC"]
    assert set(scores.values) | set(scores.undefined) == set(METRIC_NAMES)
    assert all(math.isfinite(v) for v in scores.values.values())
    assert scores.values["EN"] == 0.0 and scores.values["SD"] == 0.0


@pytest.mark.parametrize(
    ("fused", "ir", "message"),
    [
        (np.zeros((64, 80), np.float32), np.zeros((64, 80), np.uint8), "fused image must be uint8"),
        (np.zeros((64, 80), np.uint8), np.zeros((64, 81), np.uint8), "image sizes differ"),
        (np.zeros((64, 80, 4), np.uint8), np.zeros((64, 80), np.uint8), "H x W gray or H x W x 3 RGB"),
        ([[1, 2], [3, 4]], np.zeros((2, 2), np.uint8), "numpy array"),
    ],
)
def test_invalid_input_is_a_clear_error(fused, ir, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fusion_scores(fused, ir, np.zeros((64, 80), np.uint8))


def test_too_small_for_vif_is_a_clear_error() -> None:
    tiny = _texture((20, 20))
    with pytest.raises(ValueError, match="too small for VIF"):
        fm.vif(tiny, tiny, tiny)


def test_unknown_metric_name_is_rejected() -> None:
    image = _texture()
    with pytest.raises(ValueError, match="unknown metric"):
        fusion_scores(image, image, image, metrics=("EN", "QABF"))
