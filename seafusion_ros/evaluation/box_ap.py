"""Box average precision from segmentation masks: the boxes are the real ground truth here.

Each connected component (8-connectivity) of a class in the predicted mask becomes one detection: its
bounding box, scored by the mean predicted probability of that class over the component (or by its
area when no probabilities are given). Detections are matched to the YOLO boxes of the same class at
IoU >= 0.5, greedily by descending score, each ground-truth box at most once (later matches are false
positives); AP is the PASCAL VOC all-point interpolated area under the precision-recall curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from seafusion_ros.data.pseudo_masks import Box


@dataclass(frozen=True)
class Detection:
    """One predicted box (pixel coords, x1/y1 exclusive) of mask class ``cls`` with a confidence score."""

    cls: int
    score: float
    box: tuple[int, int, int, int]


def mask_detections(mask: np.ndarray, classes: list[int], probabilities: np.ndarray | None = None,
                    min_area: int = 1) -> list[Detection]:
    """Detections from the connected components of each class in ``classes``.

    mask: H x W class ids. probabilities: optional C x H x W softmax output. Components smaller than
    ``min_area`` pixels are dropped.
    """
    if probabilities is not None and probabilities.shape[1:] != mask.shape:
        raise ValueError(f"probabilities {probabilities.shape} do not match the mask {mask.shape}")
    detections = []
    for cls in classes:
        binary = (mask == cls).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        for index in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[index])
            if area < min_area:
                continue
            inside = labels == index
            score = float(area) if probabilities is None else float(probabilities[cls][inside].mean())
            detections.append(Detection(cls, score, (x, y, x + w, y + h)))
    return detections


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes with exclusive x1, y1."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def voc_average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolation: area under the monotone (non-increasing) precision envelope."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def average_precision(detections: list[list[Detection]], ground_truth: list[list[Box]], mask_class: int,
                      box_class: int, iou_threshold: float = 0.5) -> float | None:
    """AP of one class over a data set (lists per image); None when the class has no ground-truth box."""
    if len(detections) != len(ground_truth):
        raise ValueError(f"{len(detections)} images of detections but {len(ground_truth)} of ground truth")
    truth = [[(b.x0, b.y0, b.x1, b.y1) for b in boxes if b.cls == box_class] for boxes in ground_truth]
    positives = sum(len(t) for t in truth)
    if positives == 0:
        return None
    ranked = sorted(((d.score, image, d.box) for image, dets in enumerate(detections)
                     for d in dets if d.cls == mask_class), key=lambda item: -item[0])
    used = [np.zeros(len(t), bool) for t in truth]
    hits = np.zeros(len(ranked))
    for rank, (_, image, box) in enumerate(ranked):
        overlaps = [box_iou(box, t) for t in truth[image]]
        if overlaps:
            best = int(np.argmax(overlaps))
            if overlaps[best] >= iou_threshold and not used[image][best]:
                used[image][best] = True
                hits[rank] = 1
    true_positives = np.cumsum(hits)
    recall = true_positives / positives
    precision = true_positives / np.arange(1, len(ranked) + 1)
    return voc_average_precision(recall, precision)
