"""Task-driven evaluation end to end on a few real frames at low resolution."""

import json
from pathlib import Path

import cv2
import pytest

from seafusion_ros.cli.eval_task import main
from seafusion_ros.engine import FusionEngine

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MSRS = SHARED / "data" / "msrs_dev"
RELEASED = SHARED / "weights" / "seafusion_official_fusion.pth"
TRAIN = ["00004N", "00024N", "00095D", "00186D"]
VALIDATION = ["00404D", "00412D", "00416D"]  # inside the fixed validation frame range


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    if not (MSRS.is_dir() and RELEASED.is_file()):
        pytest.skip("shared msrs_dev data or released weights not found next to the repository")
    root = tmp_path_factory.mktemp("msrs_small")
    engine = FusionEngine(weights=RELEASED, device="cpu")
    for sub in ("ir", "vi", "detection_yolo", "fused"):
        (root / sub).mkdir()
    for stem in TRAIN + VALIDATION:
        ir = cv2.resize(cv2.imread(str(MSRS / "ir" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE), (96, 72),
                        interpolation=cv2.INTER_AREA)
        vi = cv2.resize(cv2.imread(str(MSRS / "vi" / f"{stem}.png")), (96, 72), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(root / "ir" / f"{stem}.png"), ir)
        cv2.imwrite(str(root / "vi" / f"{stem}.png"), vi)
        cv2.imwrite(str(root / "fused" / f"{stem}.png"),
                    engine.fuse(ir, vi, visible_order="bgr", output_order="bgr").image)
        (root / "detection_yolo" / f"{stem}.txt").write_text((MSRS / "detection_yolo" / f"{stem}.txt").read_text())
    return root


def test_table_chart_and_resume(small_data, tmp_path):
    out = tmp_path / "task"
    argv = ["task", "--data", str(small_data), "--fused", f"released={small_data / 'fused'}", "--out", str(out),
            "--epochs", "2", "--batch-size", "2", "--size", "48x64", "--threads", "1", "--no-progress"]
    assert main(argv) == 0
    report = json.loads((out / "task_driven.json").read_text())
    assert list(report["inputs"]) == ["infrared", "visible", "released"]
    assert report["validation_stems"] == len(VALIDATION) and report["train_stems"] == len(TRAIN)
    for result in report["inputs"].values():
        assert 0.0 <= result["miou"] <= 1.0
        assert set(result["box_ap50"]) == {"person", "bicycle", "car"}
        assert all(v is None or 0.0 <= v <= 1.0 for v in result["box_ap50"].values())
    table = (out / "task_driven.md").read_text()
    assert table.count("\n| ") == 4 and "| released |" in table and "AP50 person" in table
    chart = cv2.imread(str(out / "task_driven.png"))
    assert chart is not None and chart.shape[0] > 100
    assert {p.name for p in (out / "released").iterdir()} >= {"last.pt", "segmentation.pt", "log.jsonl"}

    finished = (out / "released" / "segmentation.pt").stat().st_mtime_ns
    assert main(argv) == 0  # finished runs are reused, not retrained
    assert (out / "released" / "segmentation.pt").stat().st_mtime_ns == finished
    assert json.loads((out / "task_driven.json").read_text())["inputs"] == report["inputs"]


def test_incomplete_fused_folder_is_refused(small_data, tmp_path, capsys):
    partial = tmp_path / "partial"
    partial.mkdir()
    cv2.imwrite(str(partial / f"{TRAIN[0]}.png"), cv2.imread(str(small_data / "fused" / f"{TRAIN[0]}.png")))
    rc = main(["task", "--data", str(small_data), "--fused", f"x={partial}", "--out", str(tmp_path / "o")])
    assert rc == 2 and "lacks 6 frames" in capsys.readouterr().err
