"""Aligned infrared/visible pairs held in memory, served as random crops with flips.

``msrs_dev`` is small (265 pairs, about 300 MB decoded), so decoding once and cropping in memory
keeps the CPU on the network rather than on PNG decoding. Sampling uses a torch Generator seeded per
epoch, so an interrupted run resumes onto exactly the crops it would have seen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from seafusion_ros.data.hot_crops import hot_pixels, window_around
from seafusion_ros.data.msrs_split import split_stems
from seafusion_ros.imaging.image_files import ImagePair, match_pairs, read_image
from seafusion_ros.inference.thermal_gain import ThermalGain


@dataclass(frozen=True)
class PairBatch:
    """visible: N x 3 x h x w RGB in [0, 1]; infrared: N x 1 x h x w in [0, 1]."""

    visible: Tensor
    infrared: Tensor


def _to_unit_ir(ir: np.ndarray) -> np.ndarray:
    """8-bit infrared as is; 16-bit through the engine's default thermal gain, as inference sees it."""
    if ir.dtype == np.uint8:
        return ir
    if ir.dtype == np.uint16:
        scale, offset = ThermalGain().scale_and_offset(ir)
        return np.round(np.clip(ir.astype(np.float32) * scale + offset, 0, 1) * 255).astype(np.uint8)
    raise ValueError(f"unsupported infrared dtype {ir.dtype}")


def select_pairs(data_root: str | os.PathLike, subset: str = "train") -> list[ImagePair]:
    """Pairs of ``data_root/ir`` and ``data_root/vi``; subset train, val or all (MSRS split by frame)."""
    root = Path(data_root)
    listing = match_pairs(root / "ir", root / "vi")
    if not listing.pairs:
        raise ValueError(f"no infrared/visible pairs found under {root}/ir and {root}/vi")
    if subset == "all":
        return listing.pairs
    train, val = split_stems([p.stem for p in listing.pairs])
    keep = set(train if subset == "train" else val)
    if subset not in ("train", "val"):
        raise ValueError(f"subset must be train, val or all, got {subset!r}")
    return [p for p in listing.pairs if p.stem in keep]


class PairCropDataset:
    """In-memory pairs; ``batches(epoch)`` yields random crops (with horizontal/vertical flips).

    ``drop_last`` drops the final partial batch (training); validation keeps it so every pair counts.
    ``hot_crop_fraction`` centres that fraction of the crops on one of the warmest 1 % infrared pixels
    (:mod:`seafusion_ros.data.hot_crops`): a short run on uniform crops learns the edges of hot objects
    but not their brightness.
    """

    def __init__(self, pairs: Sequence[ImagePair], crop: int, batch_size: int, crops_per_image: int = 1,
                 seed: int = 0, drop_last: bool = True, hot_crop_fraction: float = 0.0) -> None:
        if not 0.0 <= hot_crop_fraction <= 1.0:
            raise ValueError(f"hot_crop_fraction must be in [0, 1], got {hot_crop_fraction}")
        if not pairs:
            raise ValueError("the dataset has no pairs")
        self.stems = [p.stem for p in pairs]
        self.visible = [torch.from_numpy(read_image(p.visible, color=True)[:, :, ::-1].copy()) for p in pairs]
        self.infrared = [torch.from_numpy(_to_unit_ir(read_image(p.ir, color=False))) for p in pairs]
        for stem, v, i in zip(self.stems, self.visible, self.infrared, strict=True):
            if v.shape[:2] != i.shape[:2]:
                raise ValueError(f"pair {stem}: infrared {tuple(i.shape)} and visible {tuple(v.shape[:2])} differ")
            if min(i.shape) < crop:
                raise ValueError(f"pair {stem}: image {tuple(i.shape)} smaller than crop {crop}")
        self.crop, self.batch_size, self.crops_per_image, self.seed = crop, batch_size, crops_per_image, seed
        self.drop_last = drop_last
        self.hot_crop_fraction = hot_crop_fraction
        self.hot_pixels = [hot_pixels(i.numpy()) for i in self.infrared] if hot_crop_fraction > 0 else []

    @property
    def samples_per_epoch(self) -> int:
        return len(self.stems) * self.crops_per_image

    def __len__(self) -> int:
        """Batches per epoch."""
        full, rest = divmod(self.samples_per_epoch, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def batches(self, epoch: int) -> Iterator[PairBatch]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.samples_per_epoch, generator=g) % len(self.stems)
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
