"""Task-driven evaluation on real pixel labels (``seafusion-eval task --labelled``), on a few mfnet_labelled
frames at low resolution, and the class naming of segmentation scores."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from seafusion_ros.cli.eval_task import main
from seafusion_ros.data.labels import BOX_CLASSES, MSRS_CLASSES
from seafusion_ros.data.segmentation_data import SegmentationDataset
from seafusion_ros.evaluation.segmentation_scoring import evaluate_segmentation, over_present_classes
from seafusion_ros.inference.engine import FusionEngine
from seafusion_ros.models.bisenet_efficientnet import ARCH as EFFICIENTNET_ARCH
from seafusion_ros.models.checkpoint import read_checkpoint
from seafusion_ros.models.segmentation import bisenet_lite

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LABELLED = SHARED / "data" / "mfnet_labelled"
RELEASED = SHARED / "weights" / "seafusion_official_fusion.pth"
TRAIN = ["00105D", "00121D", "00129D", "01105N", "01129N", "01149N"]  # sequences 001xx and 011xx train
VALIDATION = ["00503D", "00515D", "00749N"]  # sequences 005xx and 007xx validate; none has guardrail
NAMES = list(MSRS_CLASSES.names)
SIZE = (48, 64)


@pytest.fixture(scope="module")
def labelled_data(tmp_path_factory) -> tuple[Path, Path]:
    """A labelled-layout folder of 9 real frames at 120 x 160, and the released fusion weights' fusions of
    them (real fused images, made here because the shared data holds none)."""
    if not (LABELLED.is_dir() and RELEASED.is_file()):
        pytest.skip(f"shared mfnet_labelled data or released weights not found under {SHARED}")
    root = tmp_path_factory.mktemp("mfnet_small")
    fused = root / "fused"
    data = root / "data"
    for folder in (fused, data / "rgb", data / "thermal", data / "labels"):
        folder.mkdir(parents=True)
    engine = FusionEngine(weights=RELEASED, device="cpu")
    for stem in TRAIN + VALIDATION:
        rgb = cv2.resize(cv2.imread(str(LABELLED / "rgb" / f"{stem}.png")), (160, 120), interpolation=cv2.INTER_AREA)
        thermal = cv2.resize(cv2.imread(str(LABELLED / "thermal" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE), (160, 120),
                             interpolation=cv2.INTER_AREA)
        label = cv2.resize(cv2.imread(str(LABELLED / "labels" / f"{stem}.png"), cv2.IMREAD_UNCHANGED), (160, 120),
                           interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(data / "rgb" / f"{stem}.png"), rgb)
        cv2.imwrite(str(data / "thermal" / f"{stem}.png"), thermal)
        cv2.imwrite(str(data / "labels" / f"{stem}.png"), label)
        cv2.imwrite(str(fused / f"{stem}.png"),
                    engine.fuse(thermal, rgb, visible_order="bgr", output_order="bgr").image)
    return data, fused


def absent_classes(data: Path) -> list[str]:
    """Classes without a pixel in the validation labels at the working size, read with OpenCV alone."""
    counts = np.zeros(len(NAMES), np.int64)
    for stem in VALIDATION:
        label = cv2.resize(cv2.imread(str(data / "labels" / f"{stem}.png"), cv2.IMREAD_UNCHANGED), SIZE[::-1],
                           interpolation=cv2.INTER_NEAREST)
        counts += np.bincount(label.ravel(), minlength=len(NAMES))[:len(NAMES)]
    return [name for name, count in zip(NAMES, counts, strict=True) if count == 0]


def labelled_argv(data: Path, out: Path, *extra: str) -> list[str]:
    return ["task", "--labelled", str(data), "--out", str(out), "--epochs", "1", "--batch-size", "3",
            "--size", f"{SIZE[0]}x{SIZE[1]}", "--threads", "1", "--no-progress", *extra]


def test_labelled_table_chart_over_seeds_and_resume(labelled_data, tmp_path, capsys):
    data, fused = labelled_data
    out = tmp_path / "task"
    argv = labelled_argv(data, out, "--fused", f"released={fused}", "--seeds", "0,1")
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["inputs"]) == ["infrared", "visible", "released"]
    assert summary["classes"] == NAMES and summary["arch"] == EFFICIENTNET_ARCH and summary["seeds"] == [0, 1]
    assert summary["train_stems"] == len(TRAIN) and summary["validation_stems"] == len(VALIDATION)
    absent = absent_classes(data)
    assert "guardrail" in absent and summary["absent_classes"] == absent
    for result in summary["inputs"].values():
        assert list(result["iou"]) == NAMES
        for name in absent:
            assert result["iou"][name] == {"mean": None, "std": None, "per_seed": [None, None]}
        present = [n for n in NAMES if n not in absent]
        assert all(0.0 <= v <= 1.0 for n in present for v in result["iou"][n]["per_seed"])
        mious = [float(np.mean([result["iou"][n]["per_seed"][i] for n in present])) for i in range(2)]
        assert result["miou"]["per_seed"] == pytest.approx(mious)
        assert result["miou"]["mean"] == pytest.approx(np.mean(mious))
        assert result["miou"]["std"] == pytest.approx(np.std(mious, ddof=1))

    table = (out / "summary.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| input |"))
    assert header == "| input | mIoU | " + " | ".join(f"{n} (absent)" if n in absent else n for n in NAMES) + " |"
    rows = [line for line in table.splitlines() if line.startswith("| ") and line != header]
    assert [row.split(" | ")[0] for row in rows] == ["| infrared", "| visible", "| released"]
    assert all(row.count(" | ") == 1 + len(NAMES) and row.count("absent") == len(absent) for row in rows)
    assert " ± " in table
    assert f"over the {len(NAMES) - len(absent)} classes present" in table and "over 2 seeds (0, 1)" in table
    chart = cv2.imread(str(out / "summary.png"))
    assert chart is not None and chart.shape[0] > 100 and chart.shape[1] > 500
    assert not (out / "task_driven.md").exists()

    card = read_checkpoint(out / "seed_1" / "released" / "segmentation.pt")["model_card"]
    assert card["classes"] == NAMES and card["arch"] == EFFICIENTNET_ARCH and card["train_frames"] == len(TRAIN)
    assert card["train_config"]["backbone_lr_multiplier"] == 0.1
    losses = [[json.loads(line)["loss"] for line in (out / f"seed_{s}" / "visible" / "log.jsonl").open()]
              for s in (0, 1)]
    assert losses[0] != losses[1]  # each seed trains its own network

    finished = {p: p.stat().st_mtime_ns for p in out.glob("seed_*/*/segmentation.pt")}
    assert len(finished) == 6
    capsys.readouterr()
    assert main(argv) == 0  # finished runs are reused, not retrained, and score the same
    assert {p: p.stat().st_mtime_ns for p in out.glob("seed_*/*/segmentation.pt")} == finished
    assert json.loads((out / "summary.json").read_text())["inputs"] == summary["inputs"]
    for path in (out / "seed_1" / "released").iterdir():  # one (input, seed) run lost: only it trains again
        path.unlink()
    assert main(argv) == 0
    retrained = {p: p.stat().st_mtime_ns for p in out.glob("seed_*/*/segmentation.pt")}
    assert [p for p in finished if retrained[p] != finished[p]] == [out / "seed_1" / "released" / "segmentation.pt"]
    assert main(argv + ["--arch", "bisenet_lite"]) == 2
    assert f"(arch {EFFICIENTNET_ARCH} there, bisenet_lite now" in capsys.readouterr().err


def test_labelled_single_seed(labelled_data, tmp_path):
    data, fused = labelled_data
    out = tmp_path / "one"
    assert main(labelled_argv(data, out, "--no-single", "--fused", f"released={fused}", "--seed", "4")) == 0
    assert {p.name for p in (out / "released").iterdir()} >= {"segmentation.pt", "log.jsonl"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [4] and list(summary["inputs"]) == ["released"]
    assert summary["inputs"]["released"]["miou"]["std"] == 0.0
    table = (out / "summary.md").read_text()
    assert "seed 4" in table and " ± " not in table
    assert cv2.imread(str(out / "summary.png")) is not None


def test_labelled_mode_refusals(labelled_data, tmp_path, capsys):
    data, fused = labelled_data
    partial = tmp_path / "partial"
    partial.mkdir()
    for stem in TRAIN:  # the training frames only
        (partial / f"{stem}.png").symlink_to(fused / f"{stem}.png")
    assert main(labelled_argv(data, tmp_path / "a", "--fused", f"x={partial}")) == 2
    assert "lacks 3 frames" in capsys.readouterr().err
    assert main(labelled_argv(data, tmp_path / "b", "--labels", "box")) == 2
    assert "box-mode options" in capsys.readouterr().err
    assert main(labelled_argv(tmp_path, tmp_path / "c")) == 2  # not the labelled layout
    assert "not a labelled data folder" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in "abc")
    with pytest.raises(SystemExit):
        main(["task", "--labelled", str(data), "--data", str(data), "--out", str(tmp_path / "d")])
    assert "not allowed with" in capsys.readouterr().err


@pytest.fixture
def frames(tmp_path) -> Path:
    """Four random 32 x 32 frames with 9-class masks (every MSRS class but guardrail, 6) and 4-class masks."""
    for name in ("images", "masks9", "masks4"):
        (tmp_path / name).mkdir()
    rng = np.random.default_rng(0)
    for index in range(4):
        mask = rng.choice([0, 1, 2, 3, 4, 5, 7, 8], size=(32, 32)).astype(np.uint8)
        cv2.imwrite(str(tmp_path / "images" / f"{index:05d}D.png"), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        cv2.imwrite(str(tmp_path / "masks9" / f"{index:05d}D.png"), mask)
        cv2.imwrite(str(tmp_path / "masks4" / f"{index:05d}D.png"), mask % 4)
    return tmp_path


def test_scores_are_named_by_the_models_classes(frames):
    torch.manual_seed(0)
    dataset = SegmentationDataset(frames / "images", frames / "masks9", MSRS_CLASSES.num_classes, base_size=None)
    model = bisenet_lite(MSRS_CLASSES.num_classes)
    result = evaluate_segmentation(model, dataset, None, class_names=MSRS_CLASSES.names)
    assert list(result["iou"]) == NAMES and list(result["label_pixels"]) == NAMES
    expected = np.bincount(np.concatenate([m.ravel() for m in dataset.masks]), minlength=len(NAMES))
    assert list(result["label_pixels"].values()) == expected.tolist() and result["label_pixels"]["guardrail"] == 0
    with pytest.raises(ValueError, match="4 class names .* for a 9-class network"):
        evaluate_segmentation(model, dataset, None)  # the box classes' names would misname its IoUs
    with pytest.raises(ValueError, match="box AP needs a network of the box classes"):
        evaluate_segmentation(model, dataset, frames, class_names=MSRS_CLASSES.names)

    box_set = SegmentationDataset(frames / "images", frames / "masks4", BOX_CLASSES.num_classes, base_size=None)
    box_result = evaluate_segmentation(bisenet_lite(BOX_CLASSES.num_classes), box_set, None)
    assert list(box_result["iou"]) == list(BOX_CLASSES.names)  # the box classes stay the default


def test_scores_over_present_classes():
    result = {"miou": 0.4, "iou": {"a": 0.9, "b": 0.5, "c": 0.0, "d": None},
              "label_pixels": {"a": 100, "b": 10, "c": 0, "d": 0}}
    scored = over_present_classes(result)
    assert scored["iou"] == {"a": 0.9, "b": 0.5, "c": None, "d": None}  # c: only false positives
    assert scored["miou"] == pytest.approx(0.7) and scored["label_pixels"] == result["label_pixels"]
