"""How much the labelled objects stand out in each input: why one input is easier to segment than another.

For every box that has labelled object pixels (its class in the mask), the contrast is the mean luma of
those pixels minus the median luma of a 4-pixel ring just outside the box, in grey levels (0-255). With
pseudo-masks the object pixels are the warm part of the box in the infrared image, so the infrared contrast
is high by construction; what the table shows is how much of it a fused image keeps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from seafusion_ros.data.pseudo_masks import Box, surrounding_ring

RING_PX = 4


def box_contrasts(y: np.ndarray, mask: np.ndarray, boxes: Sequence[Box],
                  mask_class_of_box: Mapping[int, int]) -> list[tuple[int, float]]:
    """(mask class, contrast) on luma ``y`` (grey levels) of every box whose class is in ``mask_class_of_box``
    and that has a pixel of that class inside it; boxes without labelled pixels (ignored, overruled) are
    skipped."""
    found = []
    for box in boxes:
        cls = mask_class_of_box.get(box.cls)
        if cls is None:
            continue
        inside = mask[box.y0:box.y1, box.x0:box.x1] == cls
        ring = surrounding_ring(y, box, RING_PX)
        if not inside.any() or not ring.size:
            continue
        found.append((cls, float(y[box.y0:box.y1, box.x0:box.x1][inside].mean() - np.median(ring))))
    return found


class ContrastAccumulator:
    """Mean contrast per class over many frames; ``names`` maps mask class -> name, and
    ``mask_class_of_box`` box class -> mask class."""

    def __init__(self, names: Mapping[int, str], mask_class_of_box: Mapping[int, int]) -> None:
        self.names = dict(names)
        self.mask_class_of_box = dict(mask_class_of_box)
        self._values: dict[int, list[float]] = {cls: [] for cls in self.names}

    def update(self, y: np.ndarray, mask: np.ndarray, boxes: Sequence[Box]) -> None:
        for cls, contrast in box_contrasts(y, mask, boxes, self.mask_class_of_box):
            self._values[cls].append(contrast)

    def means(self) -> dict[str, float | None]:
        """Class name -> mean contrast in grey levels, None for a class without labelled boxes."""
        return {self.names[c]: (float(np.mean(v)) if v else None) for c, v in self._values.items()}
