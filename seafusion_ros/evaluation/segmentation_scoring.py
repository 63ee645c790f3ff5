"""Scoring a segmentation network on a labelled split: IoU against the masks and, where the YOLO boxes are
the ground truth, box AP@0.5 from the predicted masks' connected components and the objects' contrast.

Shared by task-driven evaluation and by the trainers' validation, so both report the same numbers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from seafusion_ros.data.labels import BOX_CLASSES
from seafusion_ros.data.pseudo_masks import read_yolo_boxes
from seafusion_ros.data.segmentation_data import SegmentationDataset
from seafusion_ros.evaluation.box_ap import average_precision, mask_detections
from seafusion_ros.evaluation.object_contrast import ContrastAccumulator
from seafusion_ros.evaluation.segmentation_metrics import ConfusionAccumulator
from seafusion_ros.inference.colour import rgb_to_y
from seafusion_ros.models.segmentation import SegmentationNet

# Mask class k (1 person, 2 bicycle, 3 car) is YOLO class k - 1.
BOX_CLASS_OF_MASK_CLASS = {1: 0, 2: 1, 3: 2}


@dataclass(frozen=True)
class BoxScoring:
    """How masks become boxes: a closing of ``close_px`` pixels joins the parts of one warm body (head,
    torso, legs) split by cooler clothing; components under ``min_area`` pixels are dropped."""

    close_px: int = 5
    min_area: int = 4


def close_classes(mask: np.ndarray, classes: list[int], close_px: int) -> np.ndarray:
    """Morphological closing of each class's region (lower class ids win where closings overlap)."""
    if close_px <= 1:
        return mask
    kernel = np.ones((close_px, close_px), np.uint8)
    closed = np.zeros_like(mask)
    for cls in classes:
        region = cv2.morphologyEx((mask == cls).astype(np.uint8), cv2.MORPH_CLOSE, kernel) > 0
        closed[region & (closed == 0)] = cls
    return closed


@torch.no_grad()
def evaluate_segmentation(model: SegmentationNet, dataset: SegmentationDataset,
                          boxes_dir: str | os.PathLike | None, scoring: BoxScoring = BoxScoring(),
                          device: str = "cpu", class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """mIoU / per-class IoU against the dataset's masks and, with ``boxes_dir``, box AP@0.5 per class and
    the labelled objects' contrast in the input (``object_contrast``, grey levels).

    The IoUs are keyed by ``class_names``, the model's classes in id order (its card's ``classes``); None
    means the box classes. Names that do not fit the model are refused rather than zipped short, and box
    AP needs the box classes (mask class k is YOLO class k - 1). ``label_pixels`` counts each class's
    labelled pixels, so a reader can tell a class the labels lack from one the network missed.
    """
    names = list(BOX_CLASSES.names if class_names is None else class_names)
    if len(names) != model.num_classes:
        raise ValueError(f"{len(names)} class names {names} for a {model.num_classes}-class network"
                         + (": pass its class_names" if class_names is None else ""))
    if boxes_dir is not None and names != list(BOX_CLASSES.names):
        raise ValueError(f"box AP needs a network of the box classes {list(BOX_CLASSES.names)}, not {names}")
    model.eval().to(device)
    confusion = ConfusionAccumulator(model.num_classes)
    contrast = box_class_contrast()
    detections, truth = [], []
    loader = DataLoader(dataset, batch_size=4, shuffle=False)
    stems = iter(dataset.stems)
    for images, masks in loader:
        probabilities = torch.softmax(model(images.to(device)), dim=1).cpu().numpy()
        predictions = probabilities.argmax(1).astype(np.uint8)
        confusion.update(predictions, masks.numpy())
        if boxes_dir is None:
            continue
        lumas = rgb_to_y(images)[:, 0].mul(255.0).numpy()  # grey levels, the fusion network's Y
        for prediction, probability, y, mask in zip(predictions, probabilities, lumas, masks, strict=True):
            stem = next(stems)
            classes = list(BOX_CLASS_OF_MASK_CLASS)
            closed = close_classes(prediction, classes, scoring.close_px)
            detections.append(mask_detections(closed, classes, probability, scoring.min_area))
            truth.append(read_yolo_boxes(Path(boxes_dir) / f"{stem}.txt", *prediction.shape))
            contrast.update(y, mask.numpy(), truth[-1])
    scores = confusion.scores()
    result: dict[str, Any] = {"miou": scores.miou, "iou": dict(zip(names, scores.iou, strict=True)),
                              "label_pixels": dict(zip(names, confusion.matrix.sum(axis=1).tolist(), strict=True))}
    if boxes_dir is not None:
        ap = {names[m]: average_precision(detections, truth, m, b)
              for m, b in BOX_CLASS_OF_MASK_CLASS.items()}
        present = [v for v in ap.values() if v is not None]
        result["box_ap50"] = ap
        result["box_map50"] = float(np.mean(present)) if present else None
        result["object_contrast"] = contrast.means()
    return result


def over_present_classes(result: Mapping[str, Any]) -> dict[str, Any]:
    """``result`` (of ``evaluate_segmentation``) scored over the classes its labels contain: an absent class's
    IoU is None (any prediction of it is a false positive, so it would be 0 whatever the network learnt) and
    the mIoU is the mean over the present classes, which such a 0 would only drag down."""
    present = [name for name, count in result["label_pixels"].items() if count > 0]
    iou = {name: value if name in present else None for name, value in result["iou"].items()}
    values = [iou[name] for name in present]  # a labelled class always has a union, so an IoU
    return {**result, "iou": iou, "miou": float(np.mean(values)) if values else None}


def box_class_contrast() -> ContrastAccumulator:
    names = list(BOX_CLASSES.names)
    return ContrastAccumulator({m: names[m] for m in BOX_CLASS_OF_MASK_CLASS},
                               {b: m for m, b in BOX_CLASS_OF_MASK_CLASS.items()})
