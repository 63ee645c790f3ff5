"""The inference engine: input validation, colour orders, thermal formats, normalisation."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from seafusion_ros.data.synthetic_scene import render_frame
from seafusion_ros.inference.engine import FusionEngine
from seafusion_ros.inference.thermal_gain import ThermalGainConfig


@pytest.fixture
def engine(random_fusion_weights):
    return FusionEngine(random_fusion_weights, device="cpu")


@pytest.fixture
def frame():
    return render_frame(0, 96, 128)


def test_device_auto_logs_its_choice(random_fusion_weights, caplog):
    with caplog.at_level(logging.INFO, logger="seafusion_ros"):
        engine = FusionEngine(random_fusion_weights, device="auto")
    assert engine.device.type == "cpu"  # no CUDA on the CI machine
    assert "using device cpu" in caplog.text


def test_output_shapes_and_types(engine, frame):
    out = engine.fuse(frame.thermal, frame.rgb)
    assert out.image.shape == (96, 128, 3) and out.image.dtype == np.uint8
    assert out.luminance.shape == (96, 128) and out.luminance.dtype == np.float32
    assert out.mask is None and out.mono is None
    assert set(out.timings) == {"prepare", "fuse", "finish"}


def test_mono_is_the_fused_luminance_under_the_same_normalize_rule(random_fusion_weights, frame):
    plain = FusionEngine(random_fusion_weights, device="cpu", precision="fp32").fuse(frame.thermal, frame.rgb,
                                                                                    mono=True)
    assert plain.mono.shape == (96, 128) and plain.mono.dtype == np.uint8
    np.testing.assert_array_equal(plain.mono, np.round(plain.luminance * 255.0).astype(np.uint8))
    stretched = FusionEngine(random_fusion_weights, device="cpu", precision="fp32",
                             normalize="minmax").fuse(frame.thermal, frame.rgb, mono=True)
    low, high = plain.luminance.min(), plain.luminance.max()
    expected = ((plain.luminance - low) / (high - low) * 255.0).astype(np.uint8)
    assert (stretched.mono.min(), stretched.mono.max()) == (0, 255)
    assert np.abs(stretched.mono.astype(int) - expected).max() <= 1  # float rounding at truncation edges


def test_bgr_input_and_output_orders_are_consistent(engine, frame):
    rgb_out = engine.fuse(frame.thermal, frame.rgb).image
    bgr_in = np.ascontiguousarray(frame.rgb[:, :, ::-1])
    bgr_out = engine.fuse(frame.thermal, bgr_in, visible_order="bgr", output_order="bgr").image
    np.testing.assert_array_equal(bgr_out[:, :, ::-1], rgb_out)


def test_gray_visible_gives_gray_output(engine, frame):
    gray = frame.rgb.mean(axis=2).astype(np.uint8)
    out = engine.fuse(frame.thermal, gray).image
    assert np.abs(out[:, :, 0].astype(int) - out[:, :, 2].astype(int)).max() <= 1


def test_thermal_formats_agree_after_gain(engine, frame):
    """A 14-bit frame, the same frame as float32 and its 8-bit rendering fuse to nearly the same image."""
    fixed = FusionEngine(engine.weights_path, device="cpu",
                         thermal_gain=ThermalGainConfig(mode="fixed", fixed_low=6000, fixed_high=14000))
    as_u16 = fixed.fuse(frame.thermal, frame.rgb).luminance
    as_f32 = fixed.fuse(frame.thermal.astype(np.float32), frame.rgb).luminance
    as_u8 = fixed.fuse(np.round((frame.thermal.astype(np.float32) - 6000) / 8000 * 255).astype(np.uint8),
                       frame.rgb).luminance
    np.testing.assert_allclose(as_u16, as_f32, atol=1e-6)
    assert np.abs(as_u16 - as_u8).max() < 0.02


def test_minmax_stretches_to_full_range(random_fusion_weights, frame):
    out = FusionEngine(random_fusion_weights, device="cpu", normalize="minmax").fuse(frame.thermal, frame.rgb)
    assert out.image.min() == 0 and out.image.max() == 255


@pytest.mark.parametrize("ir, vis, message", [
    (np.zeros((96, 128), np.uint16), np.zeros((90, 128, 3), np.uint8), "sizes differ"),
    (np.zeros((96, 128), np.int32), np.zeros((96, 128, 3), np.uint8), "dtype must be uint8, uint16 or float32"),
    (np.zeros((96, 128), np.uint8), np.zeros((96, 128, 3), np.float32), "visible image dtype must be uint8"),
    (np.zeros((0, 128), np.uint8), np.zeros((0, 128, 3), np.uint8), "empty"),
    (np.full((96, 128), np.nan, np.float32), np.zeros((96, 128, 3), np.uint8), "NaN or infinite"),
    (np.zeros((96, 128, 3), np.uint8), np.zeros((96, 128, 3), np.uint8), "single-channel"),
    (np.zeros((96, 128), np.uint8), np.zeros((96, 128, 4), np.uint8), "H x W x 3"),
    ([[0]], np.zeros((1, 1, 3), np.uint8), "numpy array"),
])
def test_bad_input_raises_value_error_naming_the_problem(engine, ir, vis, message):
    with pytest.raises(ValueError, match=message):
        engine.fuse(ir, vis)


def test_bad_options_are_rejected(random_fusion_weights):
    with pytest.raises(ValueError, match="normalize"):
        FusionEngine(random_fusion_weights, device="cpu", normalize="auto")
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        FusionEngine(random_fusion_weights, device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="unknown device"):
        FusionEngine(random_fusion_weights, device="tpu:banana")


def test_segment_without_model_is_refused(engine, frame):
    with pytest.raises(ValueError, match="no segmentation model"):
        engine.fuse(frame.thermal, frame.rgb, segment=True)




def test_auto_precision_uses_bf16_where_the_cpu_has_it(random_fusion_weights):
    from seafusion_ros.inference.device import cpu_has_fast_bf16

    engine = FusionEngine(random_fusion_weights, device="cpu")
    assert engine.precision == ("bf16" if cpu_has_fast_bf16() else "fp32")


def test_onnxruntime_backend_matches_torch_fp32(random_fusion_weights, frame):
    torch_fp32 = FusionEngine(random_fusion_weights, device="cpu", precision="fp32").fuse(frame.thermal, frame.rgb)
    ort = FusionEngine(random_fusion_weights, device="cpu", backend="onnxruntime").fuse(frame.thermal, frame.rgb)
    np.testing.assert_allclose(ort.luminance, torch_fp32.luminance, atol=1e-5)
    assert np.abs(ort.image.astype(int) - torch_fp32.image.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="onnxruntime runs fp32 only"):
        FusionEngine(random_fusion_weights, device="cpu", backend="onnxruntime", precision="bf16")


@pytest.mark.slow
def test_reduced_precision_stays_within_two_grey_levels_on_real_pairs(released_weights, msrs_dev):
    """bf16 autocast (the CPU default where supported) against exact fp32, on day and night pairs."""
    import cv2

    fp32 = FusionEngine(released_weights, device="cpu", precision="fp32")
    bf16 = FusionEngine(released_weights, device="cpu", precision="bf16")
    for stem in ("00004N", "00481D", "00786N", "01016N"):
        ir = cv2.imread(str(msrs_dev / "ir" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
        vis = cv2.imread(str(msrs_dev / "vi" / f"{stem}.png"), cv2.IMREAD_COLOR)
        a = fp32.fuse(ir, vis, visible_order="bgr").image.astype(int)
        b = bf16.fuse(ir, vis, visible_order="bgr").image.astype(int)
        assert np.abs(a - b).max() <= 2, stem


def test_reduced_internal_resolution_keeps_structure_of_both_cameras(released_weights, msrs_dev):
    """The degrade knob: half resolution stays close to full resolution, hot people included."""
    import cv2

    ir = cv2.imread(str(msrs_dev / "ir" / "00786N.png"), cv2.IMREAD_GRAYSCALE)
    vis = cv2.imread(str(msrs_dev / "vi" / "00786N.png"), cv2.IMREAD_COLOR)
    full = FusionEngine(released_weights, device="cpu", precision="fp32").fuse(ir, vis, "bgr").luminance
    half = FusionEngine(released_weights, device="cpu", precision="fp32", internal_scale=0.5).fuse(ir, vis, "bgr")
    assert half.luminance.shape == full.shape
    assert np.abs(half.luminance - full).mean() < 0.015
    hot = ir > np.percentile(ir, 99.5)  # thermal-only structure (people at night) survives the upsampling
    assert half.luminance[hot].mean() > 0.9 * full[hot].mean()
    with pytest.raises(ValueError, match="internal_scale"):
        FusionEngine(released_weights, device="cpu", internal_scale=0.0)


def test_exported_onnx_file_runs_in_onnxruntime_with_another_size(random_fusion_weights, tmp_path):
    import onnxruntime

    from seafusion_ros.cli.export_onnx import main as export_main
    from seafusion_ros.models.checkpoint import load_fusion_model

    assert export_main(["--weights", str(random_fusion_weights), "--out", str(tmp_path / "f.onnx")]) == 0
    session = onnxruntime.InferenceSession(str(tmp_path / "f.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    vis, ir = rng.random((1, 1, 36, 52), np.float32), rng.random((1, 1, 36, 52), np.float32)
    (fused,) = session.run(None, {"visible_y": vis, "infrared": ir})
    model, _ = load_fusion_model(random_fusion_weights)
    with torch.inference_mode():
        expected = model(torch.from_numpy(vis), torch.from_numpy(ir)).numpy()
    np.testing.assert_allclose(fused, expected, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.onnx", "random_fusion.pt"]


def test_export_onnx_names_a_folder_or_non_checkpoint_without_a_traceback(random_fusion_weights, tmp_path, capsys):
    from seafusion_ros.cli.export_onnx import main as export_main

    (tmp_path / "folder").mkdir()
    assert export_main(["--weights", str(random_fusion_weights), "--out", str(tmp_path / "folder")]) == 2
    assert "is a folder; give the path of the ONNX file" in capsys.readouterr().err
    (tmp_path / "notes.pt").write_text("not weights")
    assert export_main(["--weights", str(tmp_path / "notes.pt"), "--out", str(tmp_path / "f.onnx")]) == 2
    assert "notes.pt: not a PyTorch checkpoint file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "notes.pt", "random_fusion.pt"]
