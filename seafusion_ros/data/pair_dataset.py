"""Aligned infrared/visible pairs held in memory, served as random crops with flips.

The training sets are small (``msrs_dev`` 265 pairs, about 300 MB decoded; all shared sets together
about 1 GB), so decoding once and cropping in memory keeps the CPU on the network rather than on
image decoding. Pairs may come from several data sets of any size: crops are taken at native
resolution (resizing would change the texture statistics the loss learns from) and per-pair sampling
weights set the mix. Sampling uses a torch Generator seeded per epoch, so an interrupted run resumes
onto exactly the crops it would have seen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from seafusion_ros.data.dataset_splits import split_pairs
from seafusion_ros.data.hot_crops import hot_pixels, window_around
from seafusion_ros.imaging.image_files import ImagePair, read_image
from seafusion_ros.inference.thermal_gain import ThermalGain


@dataclass(frozen=True)
class PairBatch:
    """visible: N x 3 x h x w RGB in [0, 1]; infrared: N x 1 x h x w in [0, 1]."""

    visible: Tensor
    infrared: Tensor


def to_unit_ir(ir: np.ndarray) -> np.ndarray:
    """8-bit infrared as is; 16-bit through the engine's default thermal gain, as inference sees it."""
    if ir.dtype == np.uint8:
        return ir
    if ir.dtype == np.uint16:
        scale, offset = ThermalGain().scale_and_offset(ir)
        return np.round(np.clip(ir.astype(np.float32) * scale + offset, 0, 1) * 255).astype(np.uint8)
    raise ValueError(f"unsupported infrared dtype {ir.dtype}")


def select_pairs(data_root: str | os.PathLike, subset: str = "train") -> list[ImagePair]:
    """Pairs of a data folder's subset (train, val or all), split by its data set's fixed rule."""
    return split_pairs(data_root, subset)[0]


def _pad_to(image: np.ndarray, size: int) -> np.ndarray:
    """Mirror-pad an image whose shorter side is below ``size``: a small pair still yields full crops."""
    pad_h, pad_w = max(0, size - image.shape[0]), max(0, size - image.shape[1])
    if not pad_h and not pad_w:
        return image
    return cv2.copyMakeBorder(image, pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2,
                              cv2.BORDER_REFLECT_101)


class PairCropDataset:
    """In-memory pairs; ``batches(epoch)`` yields random crops (with horizontal/vertical flips).

    ``drop_last`` drops the final partial batch (training); validation keeps it so every pair counts.
    ``weights`` (one per pair, default all 1) is how often a pair is drawn relative to the others; an
    epoch draws ``round(sum(weights) x crops_per_image)`` crops. Images smaller than the crop are
    mirror-padded to it.
    ``hot_crop_fraction`` centres that fraction of the crops on one of the warmest 1 % infrared pixels
    (:mod:`seafusion_ros.data.hot_crops`): a short run on uniform crops learns the edges of hot objects
    but not their brightness.
    """

    def __init__(self, pairs: Sequence[ImagePair], crop: int, batch_size: int, crops_per_image: int = 1,
                 seed: int = 0, drop_last: bool = True, hot_crop_fraction: float = 0.0,
                 weights: Sequence[float] | None = None) -> None:
        if not 0.0 <= hot_crop_fraction <= 1.0:
            raise ValueError(f"hot_crop_fraction must be in [0, 1], got {hot_crop_fraction}")
        if not pairs:
            raise ValueError("the dataset has no pairs")
        if weights is not None and (len(weights) != len(pairs) or min(weights) < 0 or sum(weights) <= 0):
            raise ValueError(f"weights must be {len(pairs)} non-negative numbers with a positive sum")
        self.stems = [p.stem for p in pairs]
        self.visible, self.infrared = [], []
        for pair in pairs:
            visible = read_image(pair.visible, color=True)[:, :, ::-1]
            infrared = to_unit_ir(read_image(pair.ir, color=False))
            if visible.shape[:2] != infrared.shape:
                raise ValueError(f"pair {pair.stem}: infrared {infrared.shape} and visible {visible.shape[:2]} "
                                 "differ")
            self.visible.append(torch.from_numpy(np.ascontiguousarray(_pad_to(visible, crop))))
            self.infrared.append(torch.from_numpy(_pad_to(infrared, crop)))
        self.weights = torch.tensor(weights, dtype=torch.float64) if weights is not None else None
        self.crop, self.batch_size, self.crops_per_image, self.seed = crop, batch_size, crops_per_image, seed
        self.drop_last = drop_last
        self.hot_crop_fraction = hot_crop_fraction
        self.hot_pixels = [hot_pixels(i.numpy()) for i in self.infrared] if hot_crop_fraction > 0 else []

    @property
    def samples_per_epoch(self) -> int:
        if self.weights is None:
            return len(self.stems) * self.crops_per_image
        return max(1, round(float(self.weights.sum()) * self.crops_per_image))

    def _order(self, g: torch.Generator) -> Tensor:
        """Pair index of every crop of an epoch."""
        if self.weights is None:
            return torch.randperm(self.samples_per_epoch, generator=g) % len(self.stems)
        return torch.multinomial(self.weights, self.samples_per_epoch, replacement=True, generator=g)

    def __len__(self) -> int:
        """Batches per epoch."""
        full, rest = divmod(self.samples_per_epoch, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def batches(self, epoch: int) -> Iterator[PairBatch]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = self._order(g)
        c = self.crop
        for start in range(0, min(len(self) * self.batch_size, self.samples_per_epoch), self.batch_size):
            vis, ir = [], []
            for idx in order[start:start + self.batch_size].tolist():
                h, w = self.infrared[idx].shape
                y = int(torch.randint(0, h - c + 1, (1,), generator=g))
                x = int(torch.randint(0, w - c + 1, (1,), generator=g))
                if self.hot_crop_fraction > 0 and float(torch.rand(1, generator=g)) < self.hot_crop_fraction:
                    hot = self.hot_pixels[idx]
                    cy, cx = hot[int(torch.randint(0, len(hot), (1,), generator=g))].tolist()
                    y, x = window_around(cy, cx, c, h, w)
                v = self.visible[idx][y:y + c, x:x + c].permute(2, 0, 1)
                i = self.infrared[idx][y:y + c, x:x + c][None]
                flips = torch.rand(2, generator=g)
                if flips[0] < 0.5:
                    v, i = v.flip(-1), i.flip(-1)
                if flips[1] < 0.5:
                    v, i = v.flip(-2), i.flip(-2)
                vis.append(v)
                ir.append(i)
            yield PairBatch(torch.stack(vis).float().div_(255.0), torch.stack(ir).float().div_(255.0))
