"""Semantic segmentation quality: confusion matrix, per-class IoU and mIoU with an ignore label.

IoU_c = TP / (TP + FP + FN) from a confusion matrix accumulated over a whole data set (the field's
convention: not a mean of per-image IoUs). A class that appears neither in the labels nor in the
predictions has no IoU: it is reported as None and left out of the mean, never as NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_LABEL = 255


def confusion_matrix(prediction: np.ndarray, target: np.ndarray, num_classes: int,
                     ignore_label: int | None = IGNORE_LABEL) -> np.ndarray:
    """num_classes x num_classes int64 counts, rows = true class, columns = predicted class.

    Pixels whose target is ``ignore_label`` are skipped. Raises ValueError for mismatched shapes,
    non-integer arrays, or ids outside 0..num_classes-1 (other than the ignored ones).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    prediction = np.asarray(prediction)
    target = np.asarray(target)
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {prediction.shape} and target {target.shape} shapes differ")
    for name, array in (("prediction", prediction), ("target", target)):
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name} must hold integer class ids, got dtype {array.dtype}")
    target = target.ravel().astype(np.int64)
    prediction = prediction.ravel().astype(np.int64)
    if ignore_label is not None:
        keep = target != ignore_label
        target, prediction = target[keep], prediction[keep]
    for name, array in (("target", target), ("prediction", prediction)):
        if array.size and (array.min() < 0 or array.max() >= num_classes):
            bad = array[(array < 0) | (array >= num_classes)][0]
            raise ValueError(f"{name} holds class id {bad} outside 0..{num_classes - 1}"
                             + (f" (ignore label is {ignore_label})" if ignore_label is not None else ""))
    counts = np.bincount(target * num_classes + prediction, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


@dataclass(frozen=True)
class SegmentationScores:
    """Per-class IoU (None where the class is absent from labels and predictions), their mean, and
    pixel accuracy (None when every pixel was ignored)."""

    iou: list[float | None]
    miou: float | None
    pixel_accuracy: float | None


def scores_from_confusion(matrix: np.ndarray) -> SegmentationScores:
    """IoU per class, mIoU over the classes that have one, and pixel accuracy."""
    matrix = np.asarray(matrix, dtype=np.int64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {matrix.shape}")
    true_positive = np.diag(matrix)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - true_positive
    iou = [float(tp / u) if u > 0 else None for tp, u in zip(true_positive, union, strict=True)]
    present = [v for v in iou if v is not None]
    total = matrix.sum()
    return SegmentationScores(
        iou=iou,
        miou=float(np.mean(present)) if present else None,
        pixel_accuracy=float(true_positive.sum() / total) if total > 0 else None,
    )


class ConfusionAccumulator:
    """Sums confusion matrices over many images, for data-set level IoU."""

    def __init__(self, num_classes: int, ignore_label: int | None = IGNORE_LABEL) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, prediction: np.ndarray, target: np.ndarray) -> None:
        self.matrix += confusion_matrix(prediction, target, self.num_classes, self.ignore_label)

    def scores(self) -> SegmentationScores:
        return scores_from_confusion(self.matrix)
