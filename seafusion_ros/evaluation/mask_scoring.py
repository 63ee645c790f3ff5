"""Scoring class-id masks made elsewhere against pixel labels, with the model out of the loop.

The masks may come from ``seafusion-fuse --masks``, from the node's mask topic saved to PNG, or from any
other segmenter: what is scored is what a user's pipeline produced, at the labels' own resolution. IoU per
class comes from one confusion matrix summed over the frames (the field's convention). A class with no
labelled pixel has no IoU and is left out of the mIoU, but the pixels predicted as it are counted, so false
alarms of an absent class stay visible.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from seafusion_ros.data.labels import IGNORE_INDEX
from seafusion_ros.data.segmentation_data import list_images, read_mask
from seafusion_ros.evaluation.segmentation_metrics import ConfusionAccumulator, scores_from_confusion
from seafusion_ros.evaluation.segmentation_scoring import over_present_classes

# MSRS / MFNet stems end in D (day) or N (night)
LIGHTING_OF_SUFFIX = {"D": "day", "N": "night"}


@dataclass(frozen=True)
class MaskScores:
    """IoU per class name (None: no labelled pixel), mIoU over the classes with labelled pixels, and each
    class's labelled and predicted pixel counts, over ``frames`` frames."""

    frames: int
    miou: float | None
    iou: dict[str, float | None]
    label_pixels: dict[str, int]
    predicted_pixels: dict[str, int]
    pixel_accuracy: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mask_scores_from(accumulator: ConfusionAccumulator, class_names: Sequence[str], frames: int) -> MaskScores:
    """MaskScores from a summed confusion matrix (rows: labels, columns: predictions), by the rule of
    ``seafusion-eval task``: IoU of every class, then only the labelled ones kept and averaged."""
    matrix = accumulator.matrix
    scores = scores_from_confusion(matrix)
    result = over_present_classes({
        "iou": dict(zip(class_names, scores.iou, strict=True)),
        "label_pixels": {c: int(n) for c, n in zip(class_names, matrix.sum(axis=1), strict=True)},
    })
    return MaskScores(frames=frames, miou=result["miou"], iou=result["iou"], label_pixels=result["label_pixels"],
                      predicted_pixels={c: int(n) for c, n in zip(class_names, matrix.sum(axis=0), strict=True)},
                      pixel_accuracy=scores.pixel_accuracy)


def lighting_groups(stems: Sequence[str]) -> dict[str, list[str]]:
    """Stems by lighting, day before night (those that occur), when every stem carries the MSRS suffix, else
    no groups."""
    if not stems or any(s[-1:] not in LIGHTING_OF_SUFFIX for s in stems):
        return {}
    groups = {name: [s for s in stems if LIGHTING_OF_SUFFIX[s[-1]] == name] for name in LIGHTING_OF_SUFFIX.values()}
    return {name: members for name, members in groups.items() if members}


def score_masks(mask_dir: str | os.PathLike, label_dir: str | os.PathLike, stems: Sequence[str],
                class_names: Sequence[str]) -> dict[str, MaskScores]:
    """Scores of the masks ``mask_dir/STEM.png`` against ``label_dir/STEM.*`` for every stem: ``all`` frames,
    and ``day`` / ``night`` for MSRS-style stems. Only PNG masks count: a lossy format changes class ids.

    Raises ValueError naming the frames when a mask is missing, has another size than its label, or holds a
    class id outside the label set; every stem must be scored, since a partial score would read as a
    complete one.
    """
    if not stems:
        raise ValueError("no frames to score")
    masks = {stem: path for stem, path in list_images(mask_dir).items() if path.suffix.lower() == ".png"}
    labels = list_images(label_dir)
    missing = [s for s in stems if s not in masks]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ValueError(f"{len(missing)} of {len(stems)} frames have no mask in {mask_dir}: {shown}")
    groups = {"all": list(stems), **lighting_groups(stems)}
    accumulators = {name: ConfusionAccumulator(len(class_names)) for name in groups}
    group_of = {stem: [name for name, members in groups.items() if stem in members] for stem in stems}
    for stem in stems:
        label = read_mask(labels[stem], len(class_names))
        mask = read_mask(masks[stem], len(class_names))
        # checked here, not left to the confusion matrix, so the error names the file; and 255 is refused in a
        # prediction even where the label is ignored
        if (mask == IGNORE_INDEX).any():
            raise ValueError(f"{masks[stem]}: a predicted mask holds {IGNORE_INDEX}, the labels' ignore value, "
                             f"not one of the {len(class_names)} class ids")
        if mask.shape != label.shape:
            raise ValueError(f"{masks[stem]}: mask is {mask.shape[1]}x{mask.shape[0]} but its label "
                             f"{labels[stem]} is {label.shape[1]}x{label.shape[0]}")
        for name in group_of[stem]:
            accumulators[name].update(mask, label)
    return {name: mask_scores_from(accumulators[name], class_names, len(groups[name])) for name in groups}
