"""Confusion matrix, per-class IoU and mIoU with the ignore label."""

from __future__ import annotations

import numpy as np
import pytest

from seafusion_ros.evaluation.segmentation_metrics import (
    IGNORE_LABEL,
    ConfusionAccumulator,
    confusion_matrix,
    scores_from_confusion,
)


def test_confusion_matrix_counts_rows_true_columns_predicted() -> None:
    target = np.array([[0, 0, 1], [1, 2, 2]], np.uint8)
    prediction = np.array([[0, 1, 1], [1, 2, 0]], np.uint8)
    matrix = confusion_matrix(prediction, target, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    scores = scores_from_confusion(matrix)
    # class 0: tp 1, fp 1, fn 1 -> 1/3; class 1: tp 2, fp 1 -> 2/3; class 2: tp 1, fn 1 -> 1/2
    assert scores.iou == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert scores.miou == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert scores.pixel_accuracy == pytest.approx(4 / 6)


def test_ignore_label_pixels_are_not_counted_whatever_the_prediction() -> None:
    target = np.array([0, IGNORE_LABEL, 1, IGNORE_LABEL])
    prediction = np.array([0, 1, 1, 7])  # 7 is out of range but sits on an ignored pixel
    matrix = confusion_matrix(prediction, target, 2)
    assert matrix.sum() == 2
    assert scores_from_confusion(matrix).miou == 1.0


def test_absent_class_has_no_iou_and_is_left_out_of_the_mean() -> None:
    target = np.array([0, 0, 1, 1])
    prediction = np.array([0, 0, 1, 0])
    scores = scores_from_confusion(confusion_matrix(prediction, target, 4))
    assert scores.iou[2] is None and scores.iou[3] is None
    assert scores.miou == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_all_ignored_gives_none_not_nan() -> None:
    target = np.full((3, 3), IGNORE_LABEL, np.uint8)
    scores = scores_from_confusion(confusion_matrix(np.zeros((3, 3), np.uint8), target, 2))
    assert scores.iou == [None, None]
    assert scores.miou is None and scores.pixel_accuracy is None


def test_accumulator_sums_images_before_dividing() -> None:
    accumulator = ConfusionAccumulator(2)
    accumulator.update(np.array([0, 0, 0, 0]), np.array([0, 0, 0, 0]))
    accumulator.update(np.array([1, 0]), np.array([1, 1]))
    # data-set IoU of class 1: tp 1, fn 1 -> 0.5 (a mean of per-image IoUs would give something else)
    assert accumulator.scores().iou == pytest.approx([4 / 5, 1 / 2])
    assert accumulator.matrix.tolist() == [[4, 0], [1, 1]]


@pytest.mark.parametrize(
    ("prediction", "target", "message"),
    [
        (np.zeros(3, np.int64), np.zeros(4, np.int64), "shapes differ"),
        (np.zeros(3, np.float32), np.zeros(3, np.int64), "integer class ids"),
        (np.array([0, 5, 1]), np.array([0, 1, 1]), "prediction holds class id 5"),
        (np.array([0, 1, 1]), np.array([0, 9, 1]), "target holds class id 9"),
        (np.array([0, -1, 1]), np.array([0, 1, 1]), "class id -1"),
    ],
)
def test_invalid_input_is_a_clear_error(prediction, target, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        confusion_matrix(prediction, target, 3)


def test_no_ignore_label_counts_255_as_out_of_range() -> None:
    with pytest.raises(ValueError, match="class id 255"):
        confusion_matrix(np.array([0]), np.array([255]), 3, ignore_label=None)
