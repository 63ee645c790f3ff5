"""seafusion-fuse: reproduction of the authors' outputs, pairing, failures, atomic output."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from seafusion_ros.cli.fuse import main as fuse_main


@pytest.mark.slow
def test_released_weights_with_minmax_reproduce_the_authors_outputs(released_weights, msrs_dev, tmp_path):
    reference = msrs_dev / "seafusion_reference"
    stems = sorted(p.stem for p in reference.glob("*.png"))
    assert len(stems) == 24
    ir_dir, vis_dir = tmp_path / "ir", tmp_path / "vi"
    ir_dir.mkdir()
    vis_dir.mkdir()
    for stem in stems:
        (ir_dir / f"{stem}.png").symlink_to(msrs_dev / "ir" / f"{stem}.png")
        (vis_dir / f"{stem}.png").symlink_to(msrs_dev / "vi" / f"{stem}.png")
    out = tmp_path / "out"
    assert fuse_main(["--ir", str(ir_dir), "--vis", str(vis_dir), "--out", str(out), "--weights",
                      str(released_weights), "--normalize", "minmax", "--precision", "fp32", "--device", "cpu",
                      "--no-progress"]) == 0
    for stem in stems:
        ours = cv2.imread(str(out / f"{stem}.png"), cv2.IMREAD_COLOR).astype(int)
        theirs = cv2.imread(str(reference / f"{stem}.png"), cv2.IMREAD_COLOR).astype(int)
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() <= 1, stem


def _write_pair_folders(root: Path) -> tuple[Path, Path]:
    ir_dir, vis_dir = root / "ir", root / "vi"
    ir_dir.mkdir()
    vis_dir.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(ir_dir / "a.png"), rng.integers(0, 2**14, (40, 56), dtype=np.uint16))
    cv2.imwrite(str(vis_dir / "a.jpg"), rng.integers(0, 255, (40, 56, 3), dtype=np.uint8))
    cv2.imwrite(str(ir_dir / "gray.png"), rng.integers(0, 255, (40, 56), dtype=np.uint8))
    cv2.imwrite(str(vis_dir / "gray.png"), rng.integers(0, 255, (40, 56), dtype=np.uint8))
    cv2.imwrite(str(ir_dir / "small.png"), rng.integers(0, 255, (20, 56), dtype=np.uint8))
    cv2.imwrite(str(vis_dir / "small.png"), rng.integers(0, 255, (40, 56, 3), dtype=np.uint8))
    (ir_dir / "broken.png").write_bytes(b"not a png")
    shutil.copy(vis_dir / "gray.png", vis_dir / "broken.png")
    cv2.imwrite(str(ir_dir / "only_ir.png"), np.zeros((8, 8), np.uint8))
    return ir_dir, vis_dir


def test_cli_fuses_matched_pairs_and_reports_the_rest(random_fusion_weights, tmp_path, capsys):
    ir_dir, vis_dir = _write_pair_folders(tmp_path)
    out = tmp_path / "out"
    code = fuse_main(["--ir", str(ir_dir), "--vis", str(vis_dir), "--out", str(out),
                      "--weights", str(random_fusion_weights), "--device", "cpu", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1  # two pairs could not be fused
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "gray.png"]  # nothing partial or temporary
    assert cv2.imread(str(out / "a.png"), cv2.IMREAD_UNCHANGED).shape == (40, 56, 3)
    assert cv2.imread(str(out / "gray.png"), cv2.IMREAD_UNCHANGED).shape == (40, 56)
    assert "failed small: infrared (20, 56) and visible (40, 56) sizes differ" in captured.err
    assert "failed broken: cannot decode image file" in captured.err
    assert "skipped only_ir: no visible image" in captured.err


def test_cli_bad_weights_is_a_clear_error(tmp_path, capsys):
    ir_dir, vis_dir = _write_pair_folders(tmp_path)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    code = fuse_main(["--ir", str(ir_dir), "--vis", str(vis_dir), "--out", str(tmp_path / "o"),
                      "--weights", str(bad), "--no-progress"])
    assert code == 2
    assert "bad.pt: not a PyTorch checkpoint file (neither a zip archive nor a pickle)" in capsys.readouterr().err


def test_nothing_to_fuse_or_a_file_as_out_is_an_error(random_fusion_weights, tmp_path, capsys):
    ir_dir, vis_dir = tmp_path / "ir", tmp_path / "vi"
    ir_dir.mkdir()
    vis_dir.mkdir()
    cv2.imwrite(str(ir_dir / "a.png"), np.zeros((40, 56), np.uint8))
    cv2.imwrite(str(vis_dir / "b.png"), np.zeros((40, 56, 3), np.uint8))
    common = ["--ir", str(ir_dir), "--vis", str(vis_dir), "--weights", str(random_fusion_weights), "--no-progress"]
    assert fuse_main([*common, "--out", str(tmp_path / "o")]) == 2
    assert "no infrared/visible pairs with the same file stem" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    cv2.imwrite(str(vis_dir / "a.png"), np.zeros((40, 56, 3), np.uint8))
    (tmp_path / "file").write_text("results")
    assert fuse_main([*common, "--out", str(tmp_path / "file")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "results"


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "seafusion_ros.cli.fuse", "--help"], capture_output=True,
                            text=True, check=True)
    assert "--normalize {none,minmax}" in result.stdout
    assert shutil.which("seafusion-fuse", path=str(Path(sys.executable).parent)) is not None
