"""Precision int8 (OpenVINO + NNCF): calibrated on real pairs, close to fp32, cached on disk and reloaded, and
clear errors for the settings it cannot run with."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from seafusion_ros.cli.fuse import main as fuse_main
from seafusion_ros.inference.engine import FusionEngine
from seafusion_ros.inference.int8_quantization import CACHE_ENV, calibration_pairs, nncf_available
from seafusion_ros.inference.openvino_backend import openvino_available
from seafusion_ros.weights import load_segmenter

needs_int8 = pytest.mark.skipif(not (openvino_available() and nncf_available()),
                                reason="precision int8 needs openvino and nncf (pip install openvino nncf)")
STEM = "00786N"


def _pair(msrs_dev: Path) -> tuple[np.ndarray, np.ndarray]:
    ir = cv2.imread(str(msrs_dev / "ir" / f"{STEM}.png"), cv2.IMREAD_GRAYSCALE)
    vis = cv2.imread(str(msrs_dev / "vi" / f"{STEM}.png"), cv2.IMREAD_COLOR)[:, :, ::-1].copy()
    return ir, vis


@pytest.fixture()
def calibration(msrs_dev: Path, tmp_path: Path) -> Path:
    """Four msrs_dev training pairs (not the one the tests fuse), as a data folder."""
    root = tmp_path / "calibration"
    for stem in ("00004N", "00127D", "00931N", "01053N"):
        for camera in ("ir", "vi"):
            (root / camera).mkdir(parents=True, exist_ok=True)
            shutil.copy(msrs_dev / camera / f"{stem}.png", root / camera)
    return root


@needs_int8
def test_int8_fuses_close_to_fp32_and_reloads_from_the_cache(msrs_dev, calibration, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    ir, vis = _pair(msrs_dev)
    int8 = FusionEngine(device="cpu", backend="openvino", precision="int8", int8_calibration=calibration,
                        int8_calibration_pairs=4)
    assert int8.precision == "int8"
    assert int8.int8_calibration == ["00004N", "00127D", "00931N", "01053N"]
    fused = int8.fuse(ir, vis).image
    reference = FusionEngine(device="cpu", backend="openvino", precision="fp32").fuse(ir, vis).image
    difference = np.abs(fused.astype(int) - reference.astype(int))
    assert 0 < difference.mean() < 4, difference.mean()  # quantised, so not identical, yet the same picture
    cached = sorted(p.name for p in (tmp_path / "cache" / "int8").iterdir())
    assert len(cached) == 2 and {Path(n).suffix for n in cached} == {".xml", ".bin"}
    segmenter, _, _ = load_segmenter("")
    again = FusionEngine(device="cpu", backend="openvino", precision="int8", int8_calibration=calibration,
                         int8_calibration_pairs=4, segmenter=segmenter)
    result = again.fuse(ir, vis, segment=segmenter is not None)
    assert np.array_equal(result.image, fused)
    if segmenter is not None:  # the segmenter runs beside the int8 fusion network at the CPU's float precision
        assert result.mask.shape == ir.shape and result.mask.max() < segmenter.num_classes
    assert sorted(p.name for p in (tmp_path / "cache" / "int8").iterdir()) == cached


def test_int8_needs_the_openvino_backend_and_a_calibration_folder(tmp_path):
    with pytest.raises(ValueError, match="backend openvino"):
        FusionEngine(device="cpu", backend="torch", precision="int8", int8_calibration=tmp_path)
    if openvino_available():
        with pytest.raises(ValueError, match="int8_calibration"):
            FusionEngine(device="cpu", backend="openvino", precision="int8")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        calibration_pairs(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="expected ir/ and vi/"):
        calibration_pairs(tmp_path)
    with pytest.raises(ValueError, match="at least one pair"):
        calibration_pairs(tmp_path, 0)


def test_calibration_pairs_spread_over_the_folder(msrs_dev):
    pairs = calibration_pairs(msrs_dev, 3)
    stems = sorted(p.name[:-4] for p in (msrs_dev / "ir").glob("*.png"))
    assert [p.stem for p in pairs] == [stems[0], stems[round((len(stems) - 1) / 2)], stems[-1]]


def test_fuse_cli_refuses_int8_without_calibration(msrs_dev, tmp_path, capsys):
    code = fuse_main(["--ir", str(msrs_dev / "ir"), "--vis", str(msrs_dev / "vi"), "--out", str(tmp_path / "out"),
                      "--backend", "torch", "--precision", "int8"])
    assert code == 2
    assert "precision int8 runs on backend openvino" in capsys.readouterr().err
    assert not any((tmp_path / "out").glob("*.png"))
