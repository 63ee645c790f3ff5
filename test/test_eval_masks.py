"""seafusion-eval masks: class-id masks scored against real pixel labels, and refused when they cannot be."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SHARED, require_shared

from seafusion_ros.cli.eval import main as eval_main
from seafusion_ros.data.labels import MSRS_CLASSES
from seafusion_ros.data.segmentation_data import labelled_source
from seafusion_ros.evaluation.mask_scoring import score_masks

CAR, GUARDRAIL = MSRS_CLASSES.names.index("car"), MSRS_CLASSES.names.index("guardrail")


@pytest.fixture
def mfnet_labelled() -> Path:
    return require_shared(SHARED / "data" / "mfnet_labelled")


def _validation_labels(root: Path) -> dict[str, np.ndarray]:
    source = labelled_source(root)
    return {stem: cv2.imread(str(source.mask_dir / f"{stem}.png"), cv2.IMREAD_UNCHANGED) for stem in source.validation}


def _write(folder: Path, masks: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, mask in masks.items():
        assert cv2.imwrite(str(folder / f"{stem}.png"), mask)
    return folder


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_the_labels_themselves_score_perfectly_by_day_and_by_night(mfnet_labelled, tmp_path, capsys):
    out = tmp_path / "scores"
    assert eval_main(["masks", "--labelled", str(mfnet_labelled), "--masks", str(mfnet_labelled / "labels"),
                      "--out", str(out)]) == 0
    scores = _summary(out)["scores"]
    assert {group: s["frames"] for group, s in scores.items()} == {"all": 88, "day": 39, "night": 49}
    assert scores["all"]["miou"] == 1.0 and scores["all"]["pixel_accuracy"] == 1.0
    assert scores["all"]["iou"]["guardrail"] is None  # no guardrail pixel in the validation sequences
    assert all(v in (1.0, None) for s in scores.values() for v in s["iou"].values())
    printed = capsys.readouterr().out
    assert "| all | 88 | 1.000 |" in printed and (out / "summary.md").read_text() in printed


def test_known_mistakes_give_the_hand_computed_ious_by_day_and_by_night(mfnet_labelled, tmp_path):
    # every car pixel predicted as background, and a 10 x 10 guardrail false alarm on background in one night frame
    labels = _validation_labels(mfnet_labelled)
    masks = {stem: np.where(label == CAR, 0, label).astype(np.uint8) for stem, label in labels.items()}
    night = next(s for s, label in labels.items() if s.endswith("N") and (label[:10, :10] == 0).all())
    masks[night][:10, :10] = GUARDRAIL
    out = tmp_path / "scores"
    assert eval_main(["masks", "--labelled", str(mfnet_labelled), "--masks", str(_write(tmp_path / "m", masks)),
                      "--out", str(out)]) == 0
    scores = _summary(out)["scores"]
    assert list(scores) == ["all", "day", "night"]
    for group, suffix, false_alarm in (("all", "", 100), ("day", "D", 0), ("night", "N", 100)):
        result = scores[group]
        every = np.concatenate([label.ravel() for stem, label in labels.items() if stem.endswith(suffix)])
        background, cars = int((every == 0).sum()), int((every == CAR).sum())
        assert cars > 0 and result["iou"]["car"] == 0.0 and result["label_pixels"]["car"] == cars
        assert result["iou"]["unlabelled"] == pytest.approx((background - false_alarm) / (background + cars))
        assert result["iou"]["guardrail"] is None and result["predicted_pixels"]["guardrail"] == false_alarm
        present = [v for v in result["iou"].values() if v is not None]
        assert result["miou"] == pytest.approx(np.mean(present))
    assert len([v for v in scores["all"]["iou"].values() if v is not None]) == 8
    assert "pixels predicted as them: guardrail 100" in (out / "summary.md").read_text()


def test_ignored_label_pixels_count_nowhere(tmp_path):
    labels = tmp_path / "labels"
    label = np.zeros((4, 6), np.uint8)
    label[:, 3:] = CAR
    label[0, :] = 255  # ignored: whatever is predicted there
    _write(labels, {"00501D": label})
    mask = np.zeros_like(label)
    mask[1:, 3:] = CAR
    mask[0, :3] = GUARDRAIL  # wrong, but on ignored pixels
    scores = score_masks(_write(tmp_path / "masks", {"00501D": mask}), labels, ["00501D"], MSRS_CLASSES.names)
    result = scores["all"]
    assert list(scores) == ["all", "day"] and result.frames == 1
    assert result.iou["car"] == 1.0 and result.iou["unlabelled"] == 1.0 and result.miou == 1.0
    assert result.pixel_accuracy == 1.0 and result.predicted_pixels["guardrail"] == 0
    assert result.label_pixels == {**{c: 0 for c in MSRS_CLASSES.names}, "unlabelled": 9, "car": 9}


def test_a_missing_or_misfitting_mask_is_refused_by_name_and_nothing_is_written(mfnet_labelled, tmp_path, capsys):
    labels = _validation_labels(mfnet_labelled)
    stems = sorted(labels)
    cases = {
        "missing": ({s: labels[s] for s in stems[1:]}, f"1 of 88 frames have no mask in {tmp_path / 'missing'}: "
                                                        f"{stems[0]}"),
        "smaller": ({**labels, stems[3]: labels[stems[3]][:240, :320]}, f"{stems[3]}.png: mask is 320x240 but its "
                                                                          "label"),
        "ignore": ({**labels, stems[2]: np.full_like(labels[stems[2]], 255)}, "holds 255, the labels' ignore value"),
        "colour": ({**labels, stems[4]: cv2.merge([labels[stems[4]]] * 3)}, "single-channel 8-bit class-id image"),
    }
    for name, (masks, message) in cases.items():
        out = tmp_path / f"out_{name}"
        code = eval_main(["masks", "--labelled", str(mfnet_labelled), "--masks", str(_write(tmp_path / name, masks)),
                          "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("seafusion-eval masks: error: ") and message in err, (name, err)
        assert not out.exists(), f"{name}: a refused run left {out}"


def test_the_training_split_and_a_folder_that_is_not_labelled(mfnet_labelled, tmp_path, capsys):
    out = tmp_path / "train"
    assert eval_main(["masks", "--labelled", str(mfnet_labelled), "--masks", str(mfnet_labelled / "labels"),
                      "--split", "train", "--out", str(out)]) == 0
    assert _summary(out)["scores"]["all"]["frames"] == 98
    plain = tmp_path / "plain"
    shutil.copytree(mfnet_labelled / "labels", plain / "labels")
    assert eval_main(["masks", "--labelled", str(plain), "--masks", str(plain / "labels"),
                      "--out", str(tmp_path / "x")]) == 2
    assert "not a labelled data folder (expected rgb/, thermal/ and labels/)" in capsys.readouterr().err
