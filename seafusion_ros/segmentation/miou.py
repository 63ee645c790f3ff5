"""Confusion matrices and intersection-over-union for class-id masks (255 ignored)."""

from __future__ import annotations

import numpy as np

from seafusion_ros.segmentation.labels import IGNORE_INDEX


def confusion_matrix(prediction: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """C x C counts, rows = target class, columns = predicted class; ignored target pixels left out."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {prediction.shape} and target {target.shape} differ in shape")
    valid = target != IGNORE_INDEX
    if (target[valid] >= num_classes).any():
        raise ValueError(f"target holds class ids >= {num_classes} (other than {IGNORE_INDEX})")
    index = target[valid].astype(np.int64) * num_classes + prediction[valid].astype(np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """IoU per class; NaN for a class absent from both target and prediction."""
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean over the classes that occur (NaN entries skipped)."""
    iou = iou_per_class(confusion)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")
