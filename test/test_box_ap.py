"""Box AP from mask components: detections, IoU, VOC all-point AP."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from seafusion_ros.data.pseudo_masks import Box, pseudo_mask, read_yolo_boxes
from seafusion_ros.evaluation.box_ap import (
    Detection,
    average_precision,
    box_iou,
    mask_detections,
    voc_average_precision,
)

MSRS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "msrs_dev"


def test_components_become_scored_boxes():
    mask = np.zeros((40, 50), np.uint8)
    mask[5:15, 10:20] = 1
    mask[20:30, 30:45] = 1
    mask[30:35, 0:5] = 3
    probs = np.zeros((4, 40, 50), np.float32)
    probs[1, 5:15, 10:20] = 0.9
    probs[1, 20:30, 30:45] = 0.6
    dets = mask_detections(mask, [1, 2, 3], probs)
    assert sorted((d.cls, d.box, round(d.score, 3)) for d in dets) == [
        (1, (10, 5, 20, 15), 0.9), (1, (30, 20, 45, 30), 0.6), (3, (0, 30, 5, 35), 0.0)]
    by_area = mask_detections(mask, [1], min_area=120)
    assert [(d.box, d.score) for d in by_area] == [((30, 20, 45, 30), 150.0)]


def test_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0


def test_voc_all_point_interpolation():
    # two positives; ranks: TP, FP, TP -> precision 1, 0.5, 0.667; recall 0.5, 0.5, 1
    ap = voc_average_precision(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3]))
    assert ap == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)


def test_average_precision_matches_each_box_once_and_ranks_by_score():
    truth = [[Box(0, 0, 0, 10, 10)], [Box(0, 20, 20, 30, 30), Box(2, 0, 0, 5, 5)]]
    dets = [[Detection(1, 0.9, (0, 0, 10, 10)), Detection(1, 0.8, (0, 0, 10, 9))],  # 2nd: duplicate, FP
            [Detection(1, 0.7, (21, 20, 30, 30))]]
    assert average_precision(dets, truth, mask_class=1, box_class=0) == pytest.approx(0.5 + 0.5 * 2 / 3)
    perfect = [[Detection(1, 0.9, (0, 0, 10, 10))], [Detection(1, 0.95, (20, 20, 30, 30))]]
    assert average_precision(perfect, truth, 1, 0) == pytest.approx(1.0)
    assert average_precision(perfect, truth, 3, 2) == 0.0  # a car box, never detected
    assert average_precision(perfect, truth, 2, 1) is None  # no bicycle in the ground truth
    with pytest.raises(ValueError, match="images"):
        average_precision(perfect[:1], truth, 1, 0)


def test_pseudo_masks_of_real_people_give_high_person_ap():
    """The weak labels themselves, used as predictions, find most people: an upper bound for the network."""
    if not MSRS.is_dir():
        pytest.skip("shared msrs_dev data not found next to the repository")
    stems = ["00004N", "00095D", "00404D", "00024N", "00186D", "01066N"]
    dets, truth = [], []
    for stem in stems:
        ir = cv2.imread(str(MSRS / "ir" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
        boxes = read_yolo_boxes(MSRS / "detection_yolo" / f"{stem}.txt", *ir.shape)
        mask = pseudo_mask(ir, boxes)
        closed = cv2.morphologyEx((mask == 1).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))
        dets.append(mask_detections(np.where(closed > 0, 1, 0).astype(np.uint8), [1], min_area=20))
        truth.append(boxes)
    assert sum(b.cls == 0 for t in truth for b in t) >= 5
    assert average_precision(dets, truth, 1, 0) > 0.4
