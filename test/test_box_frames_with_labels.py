"""Box frames beside real pixel labels: the mixed pseudo-mask rule, the box -> MSRS class map, the frames left out
next to the validation sequences, and ``train_segmentation --labelled ... --boxes ...`` on the real data."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from seafusion_ros.cli.train_segmentation import main
from seafusion_ros.data.dataset_splits import near_mfnet_validation
from seafusion_ros.data.labels import BOX_CLASSES, IGNORE_INDEX, MSRS_CLASSES, LabelSet, box_class_map
from seafusion_ros.data.pseudo_masks import Box, mixed_mask
from seafusion_ros.models.checkpoint import read_checkpoint

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LABELLED = SHARED / "data" / "mfnet_labelled"
MSRS = SHARED / "data" / "msrs_dev"


def test_mixed_masks_fill_cold_cars_and_keep_only_warm_people():
    ir = np.full((60, 80), 30, np.uint8)
    ir[20:40, 30:34] = 200  # a warm, thin person
    car, person = Box(2, 50, 10, 80, 50), Box(0, 25, 15, 40, 45)  # the car is at ambient temperature
    mask = mixed_mask(ir, [car, person])
    assert (mask[14:46, 53:77] == 3).all()  # inner 80 % of the cold car box: car
    assert (mask[10:14, 50:80] == IGNORE_INDEX).all()  # its border band: ignore
    assert (mask[20:40, 30:34] == 1).all()
    assert (mask[20:40, 35:40] == IGNORE_INDEX).all()  # the cool rest of the person box
    assert (mask[:, :20] == 0).all()


def test_box_classes_map_onto_the_msrs_ids_by_name():
    table = box_class_map(MSRS_CLASSES)
    names = [MSRS_CLASSES.names[table[i]] for i in range(BOX_CLASSES.num_classes)]
    assert names == ["unlabelled", "person", "bike", "car"]
    assert table[IGNORE_INDEX] == IGNORE_INDEX
    with pytest.raises(ValueError, match="bicycle"):
        box_class_map(LabelSet(("background", "person", "car"), ((0, 0, 0),) * 3))


def test_frames_around_the_validation_sequences_are_recognised():
    assert near_mfnet_validation("00551D") and near_mfnet_validation("00500D") and near_mfnet_validation("00798N")
    assert not near_mfnet_validation("00450D") and not near_mfnet_validation("01102N")
    assert not near_mfnet_validation("FLIR_00001")


def test_boxes_option_refusals(tmp_path, capsys):
    if not (LABELLED.is_dir() and MSRS.is_dir()):
        pytest.skip(f"shared mfnet_labelled / msrs_dev data not found under {SHARED}")
    assert main(["--images", str(MSRS / "vi"), "--pseudo-from", str(MSRS), "--boxes", str(MSRS),
                 "--out", str(tmp_path / "a")]) == 2
    assert "--boxes and --boxes-images add box frames to --labelled data" in capsys.readouterr().err
    assert main(["--labelled", str(LABELLED), "--images", str(LABELLED / "rgb"), "--boxes", str(MSRS),
                 "--out", str(tmp_path / "b")]) == 2
    assert "--boxes-images" in capsys.readouterr().err
    assert main(["--labelled", str(LABELLED), "--boxes", str(tmp_path), "--out", str(tmp_path / "c")]) == 2
    assert "no folder" in capsys.readouterr().err


def test_labelled_training_with_box_frames(tmp_path):
    if not (LABELLED.is_dir() and MSRS.is_dir()):
        pytest.skip(f"shared mfnet_labelled / msrs_dev data not found under {SHARED}")
    out = tmp_path / "run"
    assert main(["--labelled", str(LABELLED), "--boxes", str(MSRS), "--size", "48x64", "--epochs", "1",
                 "--threads", "1", "--no-progress", "--out", str(out), "--export", str(tmp_path / "seg.pt")]) == 0
    masks = sorted(p.stem for p in (out / "box_masks").glob("*.png"))
    labelled = {p.stem for p in (LABELLED / "labels").glob("*.png")}
    assert masks and not set(masks) & labelled
    assert not any(stem[:3] in ("005", "007") for stem in masks)
    ids = np.unique(np.concatenate([np.unique(cv2.imread(str(out / "box_masks" / f"{s}.png"),
                                                         cv2.IMREAD_UNCHANGED)) for s in masks]))
    assert set(ids.tolist()) <= {0, 1, 2, 3, IGNORE_INDEX} and {1, 2} <= set(ids.tolist())
    card = read_checkpoint(tmp_path / "seg.pt")["model_card"]
    assert card["data"]["box_frames"] == len(masks)
    assert card["data"]["train_frames"] == 98 and card["data"]["validation_frames"] == 88
    assert card["classes"] == list(MSRS_CLASSES.names)
