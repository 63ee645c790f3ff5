"""Task-driven evaluation end to end on a few real frames at low resolution."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from seafusion_ros.cli.eval_task import main
from seafusion_ros.data.pseudo_masks import Box, read_yolo_boxes
from seafusion_ros.evaluation.object_contrast import box_contrasts
from seafusion_ros.evaluation.seed_summary import summarise_seeds
from seafusion_ros.evaluation.task_driven import INTENSITY_TARGET_ROW
from seafusion_ros.inference.engine import FusionEngine
from seafusion_ros.models.checkpoint import read_checkpoint

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


def expected_target_contrast(data: Path, mask_dir: Path, size: tuple[int, int]) -> dict[str, float]:
    """Mean contrast per class of max(IR, visible luma) on the validation frames, computed with OpenCV's own
    BT.601 luma and resizing: an independent reference for the report's intensity-target row."""
    found: dict[int, list[float]] = {1: [], 2: [], 3: []}
    for stem in VALIDATION:
        ir = cv2.resize(cv2.imread(str(data / "ir" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE), size[::-1],
                        interpolation=cv2.INTER_AREA)
        vi = cv2.resize(cv2.imread(str(data / "vi" / f"{stem}.png")), size[::-1], interpolation=cv2.INTER_AREA)
        luma = cv2.cvtColor(vi, cv2.COLOR_BGR2YCrCb)[..., 0]
        mask = cv2.resize(cv2.imread(str(mask_dir / f"{stem}.png"), cv2.IMREAD_UNCHANGED), size[::-1],
                          interpolation=cv2.INTER_NEAREST)
        boxes = read_yolo_boxes(data / "detection_yolo" / f"{stem}.txt", *size)
        for cls, value in box_contrasts(np.maximum(ir, luma).astype(np.float32), mask, boxes, {0: 1, 1: 2, 2: 3}):
            found[cls].append(value)
    return {name: float(np.mean(found[c])) if found[c] else None
            for c, name in ((1, "person"), (2, "bicycle"), (3, "car"))}


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
    # the pseudo-masks are the warm part of each box in infrared: people stand out there, not in visible
    contrast = {name: r["object_contrast"] for name, r in report["inputs"].items()}
    assert contrast["infrared"]["person"] > 20 > contrast["visible"]["person"]
    table = (out / "task_driven.md").read_text()
    assert table.count("\n| ") == 4 + 5 and "| released |" in table and "AP50 person" in table
    assert "Object contrast" in table and f"| {INTENSITY_TARGET_ROW} |" in table
    assert report["intensity_target_contrast"] == pytest.approx(
        expected_target_contrast(small_data, out / "pseudo_masks", (48, 64)), abs=1.0)
    chart = cv2.imread(str(out / "task_driven.png"))
    assert chart is not None and chart.shape[0] > 100
    assert {p.name for p in (out / "released").iterdir()} >= {"last.pt", "segmentation.pt", "log.jsonl"}

    finished = (out / "released" / "segmentation.pt").stat().st_mtime_ns
    assert main(argv) == 0  # finished runs are reused, not retrained
    assert (out / "released" / "segmentation.pt").stat().st_mtime_ns == finished
    assert json.loads((out / "task_driven.json").read_text())["inputs"] == report["inputs"]


def test_a_run_with_other_settings_is_not_reused(small_data, tmp_path, capsys):
    out = tmp_path / "task"

    def argv(epochs: str = "1", size: str = "48x64") -> list[str]:
        return ["task", "--data", str(small_data), "--no-single", "--fused", f"released={small_data / 'fused'}",
                "--out", str(out), "--epochs", epochs, "--batch-size", "2", "--size", size, "--threads", "1",
                "--no-progress"]

    assert main(argv()) == 0
    finished = (out / "released" / "segmentation.pt").stat().st_mtime_ns
    report = (out / "task_driven.json").read_text()
    capsys.readouterr()
    assert main(argv(epochs="2")) == 2  # into the folder of an --epochs 1 run
    err = capsys.readouterr().err
    assert "holds a run with other settings (epochs 1 there, 2 now)" in err and str(out / "released") in err
    assert main(argv(size="32x64")) == 2
    assert "size [48, 64] there, [32, 64] now" in capsys.readouterr().err
    assert main(argv() + ["--labels", "box"]) == 2
    assert "warm labels there, box now" in capsys.readouterr().err
    assert (out / "released" / "segmentation.pt").stat().st_mtime_ns == finished
    assert (out / "task_driven.json").read_text() == report  # the earlier report is left as it was

    for checkpoint in ("segmentation.pt", "last.pt"):  # as an older version wrote them: no size, relative images
        state = read_checkpoint(out / "released" / checkpoint)
        del state["model_card"]["inference_size"], state["model_card"]["label_scheme"]
        state["model_card"]["images"] = "fused"
        torch.save(state, out / "released" / checkpoint)
    assert main(argv()) == 0, capsys.readouterr().err  # what was not recorded is not held against the run


@pytest.mark.parametrize("args", [("--epochs", "0"), ("--batch-size", "-1"), ("--lr", "0"), ("--threads", "-2")])
def test_meaningless_numbers_are_refused_at_parse_time(tmp_path, capsys, args):
    with pytest.raises(SystemExit) as info:
        main(["task", "--data", str(tmp_path), "--out", str(tmp_path / "o"), *args])
    assert info.value.code == 2 and f"argument {args[0]}" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_incomplete_fused_folder_is_refused(small_data, tmp_path, capsys):
    partial = tmp_path / "partial"
    partial.mkdir()
    cv2.imwrite(str(partial / f"{TRAIN[0]}.png"), cv2.imread(str(small_data / "fused" / f"{TRAIN[0]}.png")))
    rc = main(["task", "--data", str(small_data), "--fused", f"x={partial}", "--out", str(tmp_path / "o")])
    assert rc == 2 and "lacks 6 frames" in capsys.readouterr().err


def test_several_seeds_are_summarised(small_data, tmp_path):
    out = tmp_path / "seeds"
    argv = ["task", "--data", str(small_data), "--no-single", "--fused", f"released={small_data / 'fused'}",
            "--fused", f"ir={small_data / 'ir'}", "--out", str(out), "--epochs", "2", "--batch-size", "2",
            "--size", "48x64", "--threads", "1", "--no-progress", "--seeds", "3,5"]
    assert main(argv) == 0
    per_seed = {s: json.loads((out / f"seed_{s}" / "task_driven.json").read_text()) for s in (3, 5)}
    assert {p.name for p in (out / "seed_3" / "released").iterdir()} >= {"segmentation.pt", "log.jsonl"}
    summary = json.loads((out / "task_driven.json").read_text())
    assert summary["seeds"] == [3, 5] and list(summary["inputs"]) == ["released", "ir"]
    for name in ("released", "ir"):
        mious = [per_seed[s]["inputs"][name]["miou"] for s in (3, 5)]
        assert summary["inputs"][name]["miou"]["per_seed"] == mious
        assert summary["inputs"][name]["miou"]["mean"] == pytest.approx(np.mean(mious))
        assert summary["inputs"][name]["miou"]["std"] == pytest.approx(np.std(mious, ddof=1))
    losses = [[json.loads(line)["loss"] for line in (out / f"seed_{s}" / "released" / "log.jsonl").open()]
              for s in (3, 5)]
    assert losses[0] != losses[1]  # each seed trains its own network
    table = (out / "task_driven.md").read_text()
    assert "over 2 seeds (3, 5)" in table and "| released | person |" in table and " ± " in table
    assert summary["inputs"]["ir"]["object_contrast"] == per_seed[3]["inputs"]["ir"]["object_contrast"]
    assert "Object contrast" in table
    assert summary["intensity_target_contrast"] == per_seed[3]["intensity_target_contrast"]
    assert f"| {INTENSITY_TARGET_ROW} |" in table
    assert cv2.imread(str(out / "task_driven.png")) is not None


def test_object_contrast_is_labelled_pixels_against_the_ring():
    y = np.full((40, 40), 50.0, np.float32)
    y[10:20, 10:20] = 80.0  # the box: cooler background inside it ...
    y[12:18, 13:17] = 150.0  # ... and its labelled object
    mask = np.zeros((40, 40), np.uint8)
    mask[12:18, 13:17] = 1
    boxes = [Box(0, 10, 10, 20, 20), Box(0, 25, 25, 30, 30), Box(2, 10, 10, 20, 20)]
    # the second person box has no labelled pixels, the car box's class has none either: both skipped
    assert box_contrasts(y, mask, boxes, {0: 1, 2: 3}) == [(1, pytest.approx(100.0))]
    assert box_contrasts(y, mask, boxes, {1: 2}) == []


def test_seed_summary_arithmetic_and_mismatch():
    def report(miou, person, inputs=("a",)):
        return {"inputs": {n: {"miou": miou, "iou": {"background": 0.9, "person": 0.5},
                               "box_ap50": {"person": person, "bicycle": None, "car": 0.1},
                               "box_map50": 0.2} for n in inputs},
                "validation_stems": 3, "train_stems": 4, "size": [48, 64], "epochs": 2}

    summary = summarise_seeds({0: report(0.2, 0.1), 1: report(0.4, 0.4), 2: report(0.3, 0.1)})
    a = summary["inputs"]["a"]
    assert a["miou"]["mean"] == pytest.approx(0.3) and a["miou"]["std"] == pytest.approx(0.1)
    assert a["box_ap50"]["person"]["per_seed"] == [0.1, 0.4, 0.1]
    assert a["box_ap50"]["bicycle"] == {"mean": None, "std": None, "per_seed": [None, None, None]}
    assert summarise_seeds({7: report(0.5, 0.5)})["inputs"]["a"]["miou"]["std"] == 0.0
    with pytest.raises(ValueError, match="seed 1 has inputs"):
        summarise_seeds({0: report(0.2, 0.1), 1: report(0.2, 0.1, inputs=("b",))})


@pytest.mark.parametrize("text", ["1,1", "x", "3-1", "-2", ""])
def test_bad_seed_lists_are_refused(text, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["task", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--seeds", text])
    assert exit_info.value.code == 2 and "--seeds" in capsys.readouterr().err


def test_seed_and_seeds_are_exclusive(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["task", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--seed", "1", "--seeds", "0-2"])
    assert "not allowed with" in capsys.readouterr().err


def test_box_mode_trains_the_pretrained_arch(small_data, tmp_path):
    out = tmp_path / "pretrained"
    argv = ["task", "--data", str(small_data), "--no-single", "--fused", f"released={small_data / 'fused'}",
            "--arch", "bisenet_efficientnet_lite0", "--out", str(out), "--epochs", "1", "--batch-size", "2",
            "--size", "48x64", "--threads", "1", "--no-progress"]
    assert main(argv) == 0
    state = read_checkpoint(out / "released" / "segmentation.pt")
    assert state["arch"] == "bisenet_efficientnet_lite0"
    assert state["model_card"]["train_config"]["backbone_lr_multiplier"] == 0.1  # the arch's default
    report = json.loads((out / "task_driven.json").read_text())
    assert set(report["inputs"]["released"]["box_ap50"]) == {"person", "bicycle", "car"}
    assert list(report["inputs"]["released"]["iou"]) == ["background", "person", "bicycle", "car"]


def test_box_labels_are_a_control_no_input_shaped(small_data, tmp_path):
    out = tmp_path / "box"
    argv = ["task", "--data", str(small_data), "--labels", "box", "--out", str(out), "--epochs", "1",
            "--batch-size", "2", "--size", "48x64", "--threads", "1", "--no-progress"]
    assert main(argv) == 0
    assert not (out / "pseudo_masks").exists() and len(list((out / "box_masks").glob("*.png"))) == 7
    report = json.loads((out / "task_driven.json").read_text())
    assert report["labels"] == "box" and list(report["inputs"]) == ["infrared", "visible"]
    assert "mIoU on box pseudo-masks" in (out / "task_driven.md").read_text()
    card = read_checkpoint(out / "infrared" / "segmentation.pt")["model_card"]
    assert card["label_scheme"] == "box" and card["labels"].startswith("box pseudo-masks")
