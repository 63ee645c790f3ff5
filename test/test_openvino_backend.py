"""The openvino backend: agreement with torch fp32 on real pairs, per-size compilation, tiles, segmentation,
``auto`` resolution and the CLI."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from seafusion_ros.cli.fuse import main as fuse_main
from seafusion_ros.inference import openvino_backend
from seafusion_ros.inference.engine import FusionEngine, resolve_backend
from seafusion_ros.inference.openvino_backend import CACHE_SIZE, openvino_available
from seafusion_ros.weights import load_segmenter

needs_openvino = pytest.mark.skipif(not openvino_available(), reason="openvino is not installed (pip install openvino)")
PAIRS = ("00786N", "00004N")


def _pair(msrs_dev: Path, stem: str) -> tuple[np.ndarray, np.ndarray]:
    ir = cv2.imread(str(msrs_dev / "ir" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
    vis = cv2.imread(str(msrs_dev / "vi" / f"{stem}.png"), cv2.IMREAD_COLOR)[:, :, ::-1].copy()
    return ir, vis


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.fixture(scope="module")
def segmenter() -> torch.nn.Module:
    model, _, note = load_segmenter("")
    if model is None:
        pytest.skip(note)
    return model


@pytest.fixture(scope="module")
def torch_fp32(segmenter) -> FusionEngine:
    return FusionEngine(device="cpu", precision="fp32", backend="torch", segmenter=segmenter)


@pytest.fixture(scope="module")
def openvino_auto(segmenter) -> FusionEngine:
    return FusionEngine(device="cpu", precision="auto", backend="openvino", segmenter=segmenter)


@pytest.mark.parametrize("available", [True, False])
def test_auto_picks_openvino_on_cpu_when_installed_and_torch_on_cuda(monkeypatch, available):
    monkeypatch.setattr(openvino_backend, "openvino_available", lambda: available)
    assert resolve_backend("auto", torch.device("cpu")) == ("openvino" if available else "torch")
    assert resolve_backend("auto", torch.device("cuda")) == "torch"
    assert resolve_backend("auto", torch.device("cuda", 1)) == "torch"
    for explicit in ("torch", "onnxruntime", "openvino"):
        assert resolve_backend(explicit, torch.device("cpu")) == explicit
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("tensorrt", torch.device("cpu"))


@needs_openvino
@pytest.mark.parametrize("stem", PAIRS)
def test_fusion_within_two_grey_levels_of_torch_fp32_on_real_pairs(msrs_dev, torch_fp32, openvino_auto, stem):
    ir, vis = _pair(msrs_dev, stem)
    reference = torch_fp32.fuse(ir, vis, mono=True)
    out = openvino_auto.fuse(ir, vis, mono=True)
    assert out.image.dtype == np.uint8 and out.image.shape == vis.shape
    assert _max_diff(out.image, reference.image) <= 2
    assert _max_diff(out.mono, reference.mono) <= 2


@needs_openvino
def test_fp32_is_exact_up_to_rounding(msrs_dev, torch_fp32):
    ir, vis = _pair(msrs_dev, PAIRS[0])
    engine = FusionEngine(device="cpu", precision="fp32", backend="openvino")
    assert engine.precision == "fp32"
    out, reference = engine.fuse(ir, vis), torch_fp32.fuse(ir, vis)
    assert _max_diff(out.image, reference.image) <= 1
    assert np.abs(out.luminance - reference.luminance).max() < 1e-3


@needs_openvino
def test_a_second_size_compiles_once_and_the_cache_is_bounded(msrs_dev, torch_fp32, openvino_auto):
    ir, vis = _pair(msrs_dev, PAIRS[0])
    runner = openvino_auto._network
    openvino_auto.fuse(ir, vis)
    small_ir, small_vis = ir[:200, :328].copy(), vis[:200, :328].copy()
    out = openvino_auto.fuse(small_ir, small_vis)
    assert _max_diff(out.image, torch_fp32.fuse(small_ir, small_vis).image) <= 2
    shapes = runner.compiled_shapes
    assert ((1, 1, 480, 640), (1, 1, 480, 640)) in shapes and ((1, 1, 200, 328), (1, 1, 200, 328)) in shapes
    openvino_auto.fuse(ir, vis)
    assert len(runner.compiled_shapes) == len(shapes)  # reused, not compiled again
    for side in range(32, 32 + 8 * (CACHE_SIZE + 2), 8):
        runner(torch.rand(1, 1, side, side), torch.rand(1, 1, side, side))
    assert len(runner.compiled_shapes) == CACHE_SIZE


@needs_openvino
def test_the_engine_is_ready_before_its_first_frame(msrs_dev, segmenter):
    """Conversion happens while the engine is built (the node's configure), not on the first frame: the fusion
    network is converted and the segmenter compiled at its inference size, the only size it ever runs at."""
    engine = FusionEngine(device="cpu", backend="openvino", segmenter=segmenter)
    inference_shape = ((1, 3, *segmenter.inference_size),)
    assert engine._network.converted and engine._network.compiled_shapes == []
    assert engine._segment_network.compiled_shapes == [inference_shape]
    ir, vis = _pair(msrs_dev, PAIRS[0])
    for frame in ((ir, vis), (ir[:200, :328].copy(), vis[:200, :328].copy())):
        assert engine.fuse(*frame, segment=True).mask.shape == frame[0].shape
    assert engine._segment_network.compiled_shapes == [inference_shape]


@needs_openvino
def test_tiled_and_reduced_scale_frames_match_torch(msrs_dev, torch_fp32):
    ir, vis = _pair(msrs_dev, PAIRS[0])
    ir, vis = ir[:240, :320].copy(), vis[:240, :320].copy()
    reference = torch_fp32.fuse(ir, vis).image
    tiled = FusionEngine(device="cpu", backend="openvino", memory_budget_mb=64)
    assert len(tiled.tile_plan(*ir.shape)) > 1
    assert _max_diff(tiled.fuse(ir, vis).image, reference) <= 2
    reduced_reference = FusionEngine(device="cpu", precision="fp32", internal_scale=0.5).fuse(ir, vis).image
    reduced = FusionEngine(device="cpu", backend="openvino", internal_scale=0.5).fuse(ir, vis).image
    assert _max_diff(reduced, reduced_reference) <= 2


@needs_openvino
@pytest.mark.parametrize("stem", PAIRS)
def test_segmentation_mask_agrees_with_torch_on_real_pairs(msrs_dev, torch_fp32, openvino_auto, stem):
    ir, vis = _pair(msrs_dev, stem)
    reference = torch_fp32.fuse(ir, vis, segment=True).mask
    mask = openvino_auto.fuse(ir, vis, segment=True).mask
    assert mask.dtype == np.uint8 and mask.shape == ir.shape
    assert (mask == reference).mean() >= 0.98


def test_the_engine_mask_is_the_segmenters_own_forward(msrs_dev, torch_fp32, segmenter):
    """The engine resizes to the segmenter's inference size and back itself (and picks classes with max):
    the mask must be the one the segmenter's own forward gives on the fused image."""
    ir, vis = _pair(msrs_dev, PAIRS[0])
    out = torch_fp32.fuse(ir, vis, segment=True)
    assert tuple(segmenter.inference_size) != ir.shape  # the resizing path is the one under test
    fused = torch.from_numpy(out.image).permute(2, 0, 1)[None].float() / 255.0
    with torch.inference_mode():
        reference = segmenter(fused).argmax(1)[0].numpy()
    assert out.mask.shape == reference.shape
    assert (out.mask == reference).mean() >= 0.999  # the engine segments the unquantised fused image


@needs_openvino
def test_openvino_refuses_fp16():
    with pytest.raises(ValueError, match="fp16"):
        FusionEngine(device="cpu", backend="openvino", precision="fp16")


@needs_openvino
def test_cli_backend_openvino_fuses_real_pairs(msrs_dev, torch_fp32, tmp_path):
    ir_dir, vis_dir, out = tmp_path / "ir", tmp_path / "vi", tmp_path / "out"
    ir_dir.mkdir()
    vis_dir.mkdir()
    for stem in PAIRS:
        (ir_dir / f"{stem}.png").symlink_to(msrs_dev / "ir" / f"{stem}.png")
        (vis_dir / f"{stem}.png").symlink_to(msrs_dev / "vi" / f"{stem}.png")
    assert fuse_main(["--ir", str(ir_dir), "--vis", str(vis_dir), "--out", str(out), "--backend", "openvino",
                      "--device", "cpu", "--no-progress"]) == 0
    for stem in PAIRS:
        fused = cv2.imread(str(out / f"{stem}.png"), cv2.IMREAD_COLOR)[:, :, ::-1]
        assert _max_diff(fused, torch_fp32.fuse(*_pair(msrs_dev, stem)).image) <= 2
