"""Weak pixel labels (pseudo-masks) from YOLO boxes and the infrared image.

MSRS pixel labels are not available here; ``msrs_dev/detection_yolo`` has person / bicycle / car
boxes. People, riders and running cars are warmer than their surroundings in thermal images, so
inside a box the warm pixels are taken as the object:

1. Outside every box: background (0).
2. Each box, in the full-resolution 8-bit infrared image, gets a warm threshold: the lower of
   (a) Otsu's threshold on the pixels inside the box and (b) the 90th percentile of a ``ring_px``-wide
   ring just outside the box (background, since YOLO boxes are tight) plus ``ring_margin`` grey levels.
   Otsu alone splits hot skin from clothing; (b) keeps clothed bodies that are only moderately warmer
   than their surroundings. Pixels above the threshold are the object (YOLO class + 1, see
   ``labels.BOX_CLASSES``); the rest of the box is ignore (255): background or a cool part of the
   object, we cannot tell which.
3. A box whose warm pixels are on average less than ``min_contrast`` grey levels above the ring's median
   (no clear warm region, e.g. a parked car at ambient temperature) is ignore (255) as a whole.
4. Overlapping boxes: boxes are painted from the largest to the smallest, each over its own area, so the
   smaller, more specific box decides its pixels (a rider's person box inside a bicycle box).
5. Boxes narrower or shorter than ``min_box_px`` pixels are ignore as a whole (too few pixels for a
   threshold).

The result is an H x W uint8 class-id image with 255 = ignore, the same format as real pixel labels.

These ``warm`` labels are drawn from the infrared image, so an infrared-only segmentation network can learn
the very rule that made them. The ``box`` scheme is the control that no input image shaped: each box's inner
part (a ``border`` fraction of its width and height trimmed on every side) is the object, the trimmed band is
ignore, outside every box is background; overlaps and small boxes as in 4 and 5 above.

The ``mixed`` scheme is ``warm`` for people and bicycles and ``box`` for cars: a car fills most of its box
whether its engine is warm or not, while a person's box is mostly background between the limbs. On the
``msrs_dev`` boxes outside the labelled validation recordings, ``warm`` keeps 0.42 M car pixels (parked cars
are at ambient temperature and drop out) and ``mixed`` 2.0 M.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from seafusion_ros.data.labels import IGNORE_INDEX
from seafusion_ros.imaging.image_files import read_image, write_image_atomic


@dataclass(frozen=True)
class Box:
    """One labelled box in pixel coordinates: x0, y0 inclusive, x1, y1 exclusive; ``cls`` YOLO class id."""

    cls: int
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def area(self) -> int:
        return max(0, self.x1 - self.x0) * max(0, self.y1 - self.y0)


def read_yolo_boxes(path: str | os.PathLike, height: int, width: int) -> list[Box]:
    """Parse a YOLO txt file (``class cx cy w h``, normalised) into pixel boxes clipped to the image.

    A missing file means no objects. Raises ValueError naming the file and line for malformed rows.
    """
    path = Path(path)
    if not path.is_file():
        return []
    boxes = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            cls = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: expected 'class cx cy w h', got {line!r}") from exc
        if cls < 0 or w < 0 or h < 0:
            raise ValueError(f"{path}:{number}: negative class or size in {line!r}")
        x0 = int(np.clip(round((cx - w / 2) * width), 0, width))
        x1 = int(np.clip(round((cx + w / 2) * width), 0, width))
        y0 = int(np.clip(round((cy - h / 2) * height), 0, height))
        y1 = int(np.clip(round((cy + h / 2) * height), 0, height))
        if x1 > x0 and y1 > y0:
            boxes.append(Box(cls, x0, y0, x1, y1))
    return boxes


def surrounding_ring(ir: np.ndarray, box: Box, ring_px: int) -> np.ndarray:
    """The pixels of a ``ring_px``-wide band just outside the box (clipped to the image), flattened."""
    height, width = ir.shape
    y0, y1 = max(0, box.y0 - ring_px), min(height, box.y1 + ring_px)
    x0, x1 = max(0, box.x0 - ring_px), min(width, box.x1 + ring_px)
    outside = np.ones((y1 - y0, x1 - x0), bool)
    outside[box.y0 - y0:box.y1 - y0, box.x0 - x0:box.x1 - x0] = False
    return ir[y0:y1, x0:x1][outside]


def warm_region(ir: np.ndarray, box: Box, min_contrast: float = 20.0, ring_px: int = 4,
                ring_margin: float = 10.0) -> np.ndarray | None:
    """Boolean mask (box-sized) of the box's warm pixels, or None when the box has no clear warm part."""
    patch = ir[box.y0:box.y1, box.x0:box.x1]
    threshold, _ = cv2.threshold(patch, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ring = surrounding_ring(ir, box, ring_px)
    if ring.size:
        threshold = min(threshold, float(np.percentile(ring, 90)) + ring_margin)
        reference = float(np.median(ring))
    else:  # the box covers the whole image: compare with the cool part of the box itself
        reference = float(patch[patch <= threshold].mean()) if (patch <= threshold).any() else 0.0
    warm = patch > threshold
    if not warm.any() or warm.all() or float(patch[warm].mean()) - reference < min_contrast:
        return None
    return warm


def _labelled_boxes(mask: np.ndarray, boxes: list[Box], min_box_px: int) -> Iterator[tuple[Box, np.ndarray]]:
    """Both schemes' painting order: largest box first, each set to ignore, then yielded with its view of
    ``mask`` for labelling unless narrower or shorter than ``min_box_px`` (it stays ignore)."""
    for box in sorted(boxes, key=lambda b: b.area, reverse=True):
        if box.cls + 1 >= IGNORE_INDEX:
            raise ValueError(f"box class {box.cls} does not fit an 8-bit mask")
        region = mask[box.y0:box.y1, box.x0:box.x1]
        region[...] = IGNORE_INDEX
        if min(box.x1 - box.x0, box.y1 - box.y0) >= min_box_px:
            yield box, region


def pseudo_mask(ir: np.ndarray, boxes: list[Box], min_contrast: float = 20.0,
                min_box_px: int = 4) -> np.ndarray:
    """The pseudo-mask (H x W uint8, class = YOLO class + 1, 255 ignore) for one infrared frame (uint8)."""
    if ir.ndim != 2 or ir.dtype != np.uint8:
        raise ValueError(f"pseudo masks need an 8-bit single-channel infrared image, "
                         f"got {ir.dtype} {ir.shape}")
    mask = np.zeros(ir.shape, np.uint8)
    for box, region in _labelled_boxes(mask, boxes, min_box_px):
        warm = warm_region(ir, box, min_contrast)
        if warm is not None:
            region[warm] = box.cls + 1
    return mask


def box_mask(shape: tuple[int, int], boxes: list[Box], border: float = 0.1, min_box_px: int = 4) -> np.ndarray:
    """The image-free pseudo-mask (H x W uint8): each box's inner part is the object, a band of ``border`` x
    its width (left and right) and height (top and bottom), at least one pixel, is ignore (255)."""
    if not 0.0 <= border < 0.5:
        raise ValueError(f"box border must be in [0, 0.5), got {border}")
    mask = np.zeros(shape, np.uint8)
    for box, region in _labelled_boxes(mask, boxes, min_box_px):
        dx, dy = max(1, round(border * region.shape[1])), max(1, round(border * region.shape[0]))
        region[dy:region.shape[0] - dy, dx:region.shape[1] - dx] = box.cls + 1
    return mask


CAR_BOX_CLASS = 2  # YOLO class id of car in the msrs_dev boxes (0 person, 1 bicycle)


def mixed_mask(ir: np.ndarray, boxes: list[Box], min_contrast: float = 20.0, border: float = 0.1,
               min_box_px: int = 4) -> np.ndarray:
    """``pseudo_mask`` with each car box's inner part (``box_mask``) set to car, except where the warm rule
    found a person or a bicycle (a rider in front of a car keeps its pixels)."""
    mask = pseudo_mask(ir, boxes, min_contrast, min_box_px)
    car = CAR_BOX_CLASS + 1
    inner_car = box_mask(ir.shape, boxes, border, min_box_px) == car
    mask[inner_car & ((mask == 0) | (mask == car) | (mask == IGNORE_INDEX))] = car
    return mask


LABEL_SCHEMES = ("warm", "box", "mixed")


def write_pseudo_masks(ir_dir: str | os.PathLike, boxes_dir: str | os.PathLike, out_dir: str | os.PathLike,
                       stems: list[str] | None = None, overwrite: bool = False, scheme: str = "warm",
                       class_map: np.ndarray | None = None) -> list[Path]:
    """Write one ``<stem>.png`` pseudo-mask per infrared image (cached: existing files are kept).

    ``scheme`` is ``warm`` (``pseudo_mask``), ``box`` (``box_mask``; the infrared image only gives the size)
    or ``mixed`` (``mixed_mask``). ``class_map`` (a 256-entry lookup table) rewrites the box classes into
    another label set's ids (``labels.box_class_map``); None keeps them.
    """
    if scheme not in LABEL_SCHEMES:
        raise ValueError(f"unknown label scheme {scheme!r}: expected one of {', '.join(LABEL_SCHEMES)}")
    ir_dir, boxes_dir, out_dir = Path(ir_dir), Path(boxes_dir), Path(out_dir)
    if stems is None:
        stems = sorted(p.stem for p in ir_dir.iterdir() if p.suffix.lower() == ".png")
    written = []
    for stem in stems:
        target = out_dir / f"{stem}.png"
        if overwrite or not target.exists():
            ir = read_image(ir_dir / f"{stem}.png", color=False)
            if scheme != "box" and ir.dtype != np.uint8:
                raise ValueError(f"{ir_dir / stem}.png: pseudo masks need 8-bit infrared, got {ir.dtype}")
            boxes = read_yolo_boxes(boxes_dir / f"{stem}.txt", *ir.shape)
            if scheme == "warm":
                mask = pseudo_mask(ir, boxes)
            elif scheme == "mixed":
                mask = mixed_mask(ir, boxes)
            else:
                mask = box_mask(ir.shape, boxes)
            write_image_atomic(target, mask if class_map is None else class_map[mask])
        written.append(target)
    return written
