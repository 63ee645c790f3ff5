"""Images + class-id masks for segmentation training, with the augmentation of reference §4.

Images are any 8-bit picture folder (fused RGB, visible RGB, or infrared, which is read as three equal
channels), matched to masks by file stem. Masks are class-id PNGs (pixel value = class, 255 = ignore):
our pseudo-masks or real pixel labels with any number of classes. Every pair is resized once to a base
size and kept in memory (216 frames at 240 x 320 are 50 MB), so epochs cost no disk reads.

Training augmentation: colour jitter (brightness, contrast, saturation), horizontal flip, random scale
0.75-2.0 of the base size, random crop (padding with ignore where the scaled image is smaller).

A labelled data folder (``ROOT/rgb``, ``ROOT/thermal``, ``ROOT/labels``, e.g. ``mfnet_labelled``) is
read through :func:`labelled_source`: its images (either camera, or a folder of fused images with the
same stems), its class-id masks, and its train / validation stems from the data set's fixed split
(:mod:`seafusion_ros.data.dataset_splits`), so validation frames are never trained on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from seafusion_ros.data.dataset_splits import SplitRule, is_labelled_layout, split_pairs
from seafusion_ros.data.labels import IGNORE_INDEX
from seafusion_ros.imaging.image_files import IMAGE_SUFFIXES, read_image


def list_images(folder: str | os.PathLike) -> dict[str, Path]:
    """Image files of a folder by stem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a directory: {folder}")
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


LABELLED_INPUTS = ("rgb", "thermal")


@dataclass(frozen=True)
class LabelledSource:
    """Images and masks of a labelled data folder, with its fixed train / validation stems."""

    image_dir: Path
    mask_dir: Path
    train: list[str]
    validation: list[str]
    rule: SplitRule


def labelled_source(root: str | os.PathLike, images: str | os.PathLike = "rgb") -> LabelledSource:
    """The frames of the labelled layout ``ROOT/rgb``, ``ROOT/thermal``, ``ROOT/labels``.

    ``images`` is ``rgb``, ``thermal`` (gray, read as three equal channels) or a folder of images with the
    same stems (fused images). The stems are the camera pairs that have a label, split by
    :func:`~seafusion_ros.data.dataset_splits.split_pairs` (whole sequences, never at random).
    Raises FileNotFoundError when ROOT is not that layout, ValueError when no pair has a label.
    """
    root = Path(root)
    if not is_labelled_layout(root):
        raise FileNotFoundError(f"{root}: not a labelled data folder (expected rgb/, thermal/ and labels/)")
    image_dir = root / images if str(images) in LABELLED_INPUTS else Path(images)
    mask_dir = root / "labels"
    labelled = set(list_images(mask_dir))
    train_pairs, rule = split_pairs(root, "train")
    validation_pairs, _ = split_pairs(root, "val")
    train = sorted(p.stem for p in train_pairs if p.stem in labelled)
    validation = sorted(p.stem for p in validation_pairs if p.stem in labelled)
    if not train and not validation:
        raise ValueError(f"{root}: no rgb/thermal pair has a label in {mask_dir}")
    return LabelledSource(image_dir, mask_dir, train, validation, rule)


def read_mask(path: str | os.PathLike, num_classes: int) -> np.ndarray:
    """A class-id mask (H x W uint8); ValueError for colour images or ids outside 0..C-1 and 255."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise ValueError(f"cannot decode mask file {path}")
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"{path}: a mask must be a single-channel 8-bit class-id image, "
                         f"got shape {mask.shape} dtype {mask.dtype} "
                         "(palette/colour masks are not class ids)")
    bad = np.unique(mask[(mask >= num_classes) & (mask != IGNORE_INDEX)])
    if bad.size:
        raise ValueError(f"{path}: class ids {bad[:8].tolist()} outside 0..{num_classes - 1} "
                         f"(and {IGNORE_INDEX})")
    return mask


def colour_jitter(image: np.ndarray, rng: np.random.Generator, strength: float = 0.4) -> np.ndarray:
    """Random brightness, contrast and saturation factors in [1 - s, 1 + s]; RGB float image in [0, 1]."""
    brightness, contrast, saturation = (float(v) for v in rng.uniform(1 - strength, 1 + strength, size=3))
    image = image * brightness
    gray = image @ np.array([0.299, 0.587, 0.114], np.float32)
    image = (image - gray.mean()) * contrast + gray.mean()
    gray = image @ np.array([0.299, 0.587, 0.114], np.float32)
    image = (image - gray[..., None]) * saturation + gray[..., None]
    return np.clip(image, 0.0, 1.0, out=image).astype(np.float32, copy=False)


def scale_and_crop(image: np.ndarray, mask: np.ndarray, crop: tuple[int, int], scale: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Resize by ``scale`` (bilinear image, nearest mask), pad to at least ``crop`` (0 / ignore), crop."""
    height, width = mask.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    ch, cw = crop
    pad_h, pad_w = max(0, ch - mask.shape[0]), max(0, cw - mask.shape[1])
    if pad_h or pad_w:
        image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        mask = cv2.copyMakeBorder(mask, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=IGNORE_INDEX)
    y = int(rng.integers(0, mask.shape[0] - ch + 1))
    x = int(rng.integers(0, mask.shape[1] - cw + 1))
    return image[y:y + ch, x:x + cw], mask[y:y + ch, x:x + cw]


def to_tensor(image: np.ndarray) -> Tensor:
    """H x W x 3 RGB (uint8 or float in [0, 1]) -> 3 x H x W float32 in [0, 1]."""
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class SegmentationDataset(Dataset):
    """(image 3 x H x W float in [0, 1], mask H x W int64) pairs.

    Args:
        image_dir: 8-bit images (RGB or gray; gray becomes three equal channels).
        mask_dir: class-id PNG masks with the same stems.
        stems: which stems to use (e.g. one side of the fixed split); None = all stems in both folders.
        num_classes: for checking mask values.
        base_size: (H, W) every pair is resized to once; None keeps each image's own size.
        train: apply the random augmentation; otherwise return the base-size pair unchanged.
        crop: training crop (H, W); defaults to base_size.
        scale_range: random scale range for training.
        seed: augmentation seed; ``set_epoch`` re-seeds per epoch so a resumed run draws the same numbers.
    """

    def __init__(self, image_dir: str | os.PathLike, mask_dir: str | os.PathLike, num_classes: int,
                 stems: list[str] | None = None, base_size: tuple[int, int] | None = (240, 320),
                 train: bool = False, crop: tuple[int, int] | None = None,
                 scale_range: tuple[float, float] = (0.75, 2.0), seed: int = 0) -> None:
        images, masks = list_images(image_dir), list_images(mask_dir)
        if stems is None:
            stems = sorted(images.keys() & masks.keys())
        missing = [s for s in stems if s not in images or s not in masks]
        if missing:
            raise ValueError(f"no image or mask for stems {missing[:8]} in {image_dir} / {mask_dir}")
        if not stems:
            raise ValueError(f"no image/mask pairs found in {image_dir} and {mask_dir}")
        self.stems = list(stems)
        self.base_size = base_size
        self.train = train
        self.scale_range = scale_range
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.images: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        for stem in self.stems:
            image = cv2.cvtColor(read_image(images[stem], color=True), cv2.COLOR_BGR2RGB)
            mask = read_mask(masks[stem], num_classes)
            if base_size is not None:
                image = cv2.resize(image, base_size[::-1], interpolation=cv2.INTER_AREA)
                mask = cv2.resize(mask, base_size[::-1], interpolation=cv2.INTER_NEAREST)
            elif image.shape[:2] != mask.shape:
                raise ValueError(f"{stem}: image {image.shape[:2]} and mask {mask.shape} sizes differ")
            self.images.append(image)
            self.masks.append(mask)
        self.crop = crop or self.masks[0].shape

    def extend(self, other: SegmentationDataset) -> None:
        """Append ``other``'s frames (e.g. box pseudo-masks beside pixel labels); ValueError unless both were
        built with the same base size and their stems differ."""
        if other.base_size != self.base_size:
            raise ValueError(f"base sizes differ: {self.base_size} and {other.base_size}")
        shared = set(self.stems) & set(other.stems)
        if shared:
            raise ValueError(f"frames {sorted(shared)[:4]} are in both data sets")
        self.stems += other.stems
        self.images += other.images
        self.masks += other.masks

    def set_epoch(self, epoch: int) -> None:
        self.rng = np.random.default_rng((self.seed, epoch))

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image, mask = self.images[index], self.masks[index]
        if self.train:
            rgb = colour_jitter(image.astype(np.float32) / 255.0, self.rng)
            if self.rng.random() < 0.5:
                rgb, mask = rgb[:, ::-1], mask[:, ::-1]
            rgb, mask = scale_and_crop(np.ascontiguousarray(rgb), np.ascontiguousarray(mask), self.crop,
                                       float(self.rng.uniform(*self.scale_range)), self.rng)
            return to_tensor(rgb), torch.from_numpy(np.ascontiguousarray(mask)).long()
        return to_tensor(image), torch.from_numpy(mask).long()
