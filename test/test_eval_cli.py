"""seafusion-eval end to end on a few real TNO / MSRS pairs copied into a temporary folder."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from seafusion_ros.cli.eval import main
from seafusion_ros.evaluation.fusion_metrics import METRIC_NAMES

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TNO = SHARED / "data" / "tno_golden"
MSRS = SHARED / "data" / "msrs_dev"
STEMS = ["03", "17", "30"]


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found: ../shared data is absent beside the checkout")
    return path


def _strict_json(path: Path) -> dict:
    def reject(constant: str) -> None:
        raise AssertionError(f"{path} contains {constant}")

    return json.loads(path.read_text(), parse_constant=reject)


def _tno_copy(root: Path) -> dict[str, Path]:
    """IR, visible and both methods' folders for STEMS, plus an IR image without visible partner."""
    _require(TNO / "golden_metrics.json")
    folders = {}
    for sub in ("ir", "vi", "fused_seafusion", "fused_ifcnn"):
        folders[sub] = root / sub
        folders[sub].mkdir(parents=True)
        for stem in STEMS:
            shutil.copy(TNO / sub / f"{stem}.png", folders[sub] / f"{stem}.png")
    shutil.copy(TNO / "ir" / "05.png", folders["ir"] / "05.png")
    return folders


def test_two_methods_are_compared_with_csv_json_markdown_and_plots(tmp_path: Path) -> None:
    folders = _tno_copy(tmp_path / "data")
    for sub in ("ir", "vi", "fused_seafusion"):
        shutil.copy(TNO / sub / "09.png", folders[sub] / "09.png")
    (folders["fused_ifcnn"] / "09.png").write_bytes(b"not a png")  # undecodable: pair skipped
    shutil.copy(TNO / "fused_seafusion" / "40.png", folders["fused_seafusion"] / "40.png")  # no sources
    out = tmp_path / "report"
    code = main(["--ir", str(folders["ir"]), "--vis", str(folders["vi"]),
                 "--method", f"seafusion={folders['fused_seafusion']}",
                 "--method", f"ifcnn={folders['fused_ifcnn']}",
                 "--out", str(out), "--jobs", "2", "--examples", "2", "--quiet"])
    assert code == 1  # reported, but ifcnn's 09.png cannot be read: a script must not take that for success

    summary = _strict_json(out / "summary.json")
    golden = json.loads((TNO / "golden_metrics.json").read_text())["methods"]
    assert list(summary["methods"]) == ["seafusion", "ifcnn"]
    for name, source in (("seafusion", "fused_seafusion"), ("ifcnn", "fused_ifcnn")):
        stats = summary["methods"][name]
        assert set(stats) == {"n", "mean", "std", "median"}
        assert stats["n"] == len(STEMS)
        for key in ("mean", "std", "median"):
            assert list(stats[key]) == list(METRIC_NAMES)
        for metric in ("EN", "MI", "VIF", "Qabf", "Nabf"):
            values = [golden[source]["per_image"][f"{s}.png"][metric] for s in STEMS]
            assert stats["mean"][metric] == pytest.approx(np.mean(values), rel=1e-4)
            assert stats["median"][metric] == pytest.approx(np.median(values), rel=1e-4)
            assert stats["std"][metric] == pytest.approx(np.std(values), rel=1e-3)
    reasons = {entry["stem"]: entry["reason"] for entry in summary["skipped"]}
    assert "no visible image" in reasons["05"]
    assert "cannot decode" in reasons["09"]
    assert set(reasons) == {"05", "09"}
    assert summary["unused_fused"] == {"seafusion": ["40"]}

    with open(out / "per_image.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["method"], r["stem"]) for r in rows] == [(m, s) for m in ("seafusion", "ifcnn") for s in STEMS]
    first = rows[0]
    expected_sd = golden["fused_seafusion"]["per_image"]["03.png"]["SD"]
    assert float(first["SD"]) == pytest.approx(expected_sd, rel=1e-9)
    assert float(first["PSNR"]) > 0 and float(first["SSIM"]) > 0

    markdown = (out / "summary.md").read_text()
    assert "| seafusion | 3 |" in markdown and "| ifcnn | 3 |" in markdown
    assert "Nabf ↓" in markdown and "VIF ↑" in markdown and "**" in markdown

    for plot in ("cdf.png", "examples.png"):
        image = cv2.imread(str(out / plot))
        assert image is not None and image.shape[0] > 300 and image.std() > 10
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"

    assert main(["--ir", str(folders["ir"]), "--vis", str(folders["vi"]),
                 "--method", f"seafusion={folders['fused_seafusion']}", "--out", str(out), "--jobs", "1",
                 "--examples", "0", "--quiet"]) == 0  # missing counterparts (05, 40) alone are not failures
    assert list(_strict_json(out / "summary.json")["methods"]) == ["seafusion"]
    assert not (out / "examples.png").exists(), "the earlier report's examples would pass for this one's"


def test_undefined_metric_is_an_empty_cell_with_a_note_and_no_nan(tmp_path: Path) -> None:
    folders = _tno_copy(tmp_path / "data")
    flat = tmp_path / "flat"
    flat.mkdir()
    for stem in STEMS:
        ir = cv2.imread(str(folders["ir"] / f"{stem}.png"))
        cv2.imwrite(str(flat / f"{stem}.png"), np.full(ir.shape[:2], 128, np.uint8))
    out = tmp_path / "report"
    assert main(["--ir", str(folders["ir"]), "--vis", str(folders["vi"]), "--method", f"flat={flat}",
                 "--out", str(out), "--jobs", "1", "--examples", "0", "--quiet"]) == 0
    summary = _strict_json(out / "summary.json")
    assert summary["methods"]["flat"]["mean"]["CC"] is None
    assert summary["methods"]["flat"]["mean"]["EN"] == 0.0
    assert summary["undefined"]["flat"]["CC"]["count"] == len(STEMS)
    with open(out / "per_image.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert all(r["CC"] == "" and "CC undefined" in r["notes"] for r in rows)
    assert all(math.isfinite(float(r["VIF"])) for r in rows)
    assert "CC undefined on 3 pair(s)" in (out / "summary.md").read_text()
    assert not (out / "examples.png").exists()


def test_weights_mode_fuses_on_the_fly_then_scores(tmp_path: Path, random_fusion_weights: Path) -> None:
    _require(MSRS)
    ir_dir, vis_dir = tmp_path / "ir", tmp_path / "vi"
    ir_dir.mkdir()
    vis_dir.mkdir()
    stems = ["00004N", "00119D"]
    crop = (slice(200, 264), slice(300, 380))  # 64 x 80 keeps CPU fusion cheap
    for stem in stems:
        cv2.imwrite(str(ir_dir / f"{stem}.png"), cv2.imread(str(MSRS / "ir" / f"{stem}.png"), 0)[crop])
        cv2.imwrite(str(vis_dir / f"{stem}.png"), cv2.imread(str(MSRS / "vi" / f"{stem}.png"))[crop])
    out = tmp_path / "report"
    assert main(["--ir", str(ir_dir), "--vis", str(vis_dir), "--weights", str(random_fusion_weights),
                 "--device", "cpu", "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    fused = sorted((out / "fused" / "random_fusion").glob("*.png"))
    assert [p.stem for p in fused] == stems
    assert cv2.imread(str(fused[0])).shape == (64, 80, 3)
    summary = _strict_json(out / "summary.json")
    assert summary["methods"]["random_fusion"]["n"] == 2

    renamed = tmp_path / "renamed"
    assert main(["--ir", str(ir_dir), "--vis", str(vis_dir), "--weights", str(random_fusion_weights),
                 "--name", "ours", "--method", f"again={out / 'fused' / 'random_fusion'}",
                 "--device", "cpu", "--out", str(renamed), "--jobs", "1", "--examples", "0", "--quiet"]) == 0
    methods = _strict_json(renamed / "summary.json")["methods"]
    assert list(methods) == ["again", "ours"]
    assert methods["ours"]["mean"] == methods["again"]["mean"]  # same weights, same pixels


def test_bad_invocations_fail_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--ir", str(tmp_path), "--vis", str(tmp_path), "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert "at least one --method" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--ir", str(tmp_path), "--vis", str(tmp_path), "--method", "nodir", "--out", str(tmp_path)])
    assert "expected NAME=DIR" in capsys.readouterr().err
    assert main(["--ir", str(tmp_path / "missing"), "--vis", str(tmp_path), "--method", f"a={tmp_path}",
                 "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "not a directory" in capsys.readouterr().err
    for option, value in (("--examples", "-3"), ("--jobs", "0")):
        with pytest.raises(SystemExit) as exit_info:
            main(["--ir", str(tmp_path), "--vis", str(tmp_path), "--method", f"a={tmp_path}", "--out",
                  str(tmp_path / "o"), option, value])
        assert exit_info.value.code == 2 and f"argument {option}" in capsys.readouterr().err


def test_module_entry_point_prints_help() -> None:
    result = subprocess.run([sys.executable, "-m", "seafusion_ros.cli.eval", "--help"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "--method NAME=DIR" in result.stdout and "--weights" in result.stdout
