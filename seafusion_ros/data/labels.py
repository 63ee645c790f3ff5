"""Label sets: class names and palette in one place, so checkpoints, masks and plots agree.

``BOX_CLASSES`` is what this project trains on (pseudo-masks from the ``msrs_dev`` YOLO boxes):
0 background, 1 person, 2 bicycle, 3 car, i.e. YOLO class id + 1. The colours of person, bicycle
(MSRS "bike") and car are the MSRS palette colours, so masks of either label set look alike.
``MSRS_CLASSES`` is the full 9-class MSRS set for users who have the real pixel labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = 255


@dataclass(frozen=True)
class LabelSet:
    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.palette):
            raise ValueError(f"{len(self.names)} class names but {len(self.palette)} palette colours")
        if not 2 <= len(self.names) <= IGNORE_INDEX:
            raise ValueError(f"a label set needs 2..{IGNORE_INDEX} classes, got {len(self.names)}")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def card(self) -> dict:
        """The model-card fields that describe the classes."""
        return {"num_classes": self.num_classes, "classes": list(self.names),
                "palette": [list(c) for c in self.palette]}


BOX_CLASSES = LabelSet(
    names=("background", "person", "bicycle", "car"),
    palette=((0, 0, 0), (64, 64, 0), (0, 128, 192), (64, 0, 128)),
)

MSRS_CLASSES = LabelSet(
    names=("unlabelled", "car", "person", "bike", "curve", "car_stop", "guardrail", "color_cone", "bump"),
    palette=((0, 0, 0), (64, 0, 128), (64, 64, 0), (0, 128, 192), (0, 0, 192), (128, 128, 0),
             (64, 64, 128), (192, 128, 128), (192, 64, 0)),
)

PRESETS = {"boxes": BOX_CLASSES, "msrs": MSRS_CLASSES}
# box class name -> the same class's name in the MSRS set
BOX_TO_MSRS_NAMES = {"background": "unlabelled", "person": "person", "bicycle": "bike", "car": "car"}


def box_class_map(target: LabelSet) -> np.ndarray:
    """A 256-entry lookup table from box-class masks to ``target``'s ids (ignore stays ignore), so box
    pseudo-masks can train beside real labels. ValueError when ``target`` lacks one of the box classes."""
    table = np.full(256, IGNORE_INDEX, np.uint8)
    for box_id, name in enumerate(BOX_CLASSES.names):
        for candidate in (name, BOX_TO_MSRS_NAMES[name]):
            if candidate in target.names:
                table[box_id] = target.names.index(candidate)
                break
        else:
            raise ValueError(f"the label set {', '.join(target.names)} has no class for the box class {name!r}")
    return table


def generic_label_set(num_classes: int) -> LabelSet:
    """Names ``class_0..`` and a deterministic, well-spread palette for labels without a preset."""
    palette = []
    for i in range(num_classes):
        r = g = b = 0
        code = i
        for bit in range(8):  # the bit-interleaving colour map used by VOC-style label images
            r |= ((code >> 0) & 1) << (7 - bit)
            g |= ((code >> 1) & 1) << (7 - bit)
            b |= ((code >> 2) & 1) << (7 - bit)
            code >>= 3
        palette.append((r, g, b))
    return LabelSet(tuple(f"class_{i}" for i in range(num_classes)), tuple(palette))


def label_set_from_card(card: dict) -> LabelSet:
    return LabelSet(tuple(card["classes"]), tuple(tuple(int(v) for v in c) for c in card["palette"]))
