"""Class-mask visualisation, ROS-free: palette colours alpha-blended over the fused image.

A class-id image looks black in a viewer, so the node (and the offline replay) publishes this overlay
next to the raw mask. Vectorised: one palette lookup and one weighted sum per frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def palette_array(palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Palette as a 256 x 3 uint8 lookup table; ids beyond the palette map to black."""
    colours = np.asarray(palette, dtype=np.int64)
    if colours.ndim != 2 or colours.shape[1] != 3 or len(colours) == 0:
        raise ValueError(f"palette must be a non-empty list of [r, g, b], got shape {colours.shape}")
    if len(colours) > 256:
        raise ValueError(f"palette has {len(colours)} colours; a mono8 mask holds at most 256 classes")
    if colours.min() < 0 or colours.max() > 255:
        raise ValueError("palette colours must be in 0..255")
    table = np.zeros((256, 3), np.uint8)
    table[: len(colours)] = colours
    return table


def default_palette(num_classes: int) -> list[list[int]]:
    """Distinct colours for models whose card has no palette (golden-angle hues, class 0 black)."""
    if not 1 <= num_classes <= 256:
        raise ValueError(f"number of classes must be in 1..256, got {num_classes}")
    hues = ((np.arange(num_classes) * 137.508) % 360 / 2).astype(np.uint8)  # OpenCV hue is 0..179
    hsv = np.stack([hues, np.full_like(hues, 200), np.full_like(hues, 255)], axis=-1)[None]
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]
    rgb[0] = 0
    return rgb.astype(int).tolist()


def colourise(mask: np.ndarray, palette: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    """H x W class ids -> H x W x 3 RGB colours."""
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"mask must be H x W uint8 class ids, got {mask.shape} {mask.dtype}")
    table = (
        palette if isinstance(palette, np.ndarray) and palette.shape == (256, 3) else palette_array(palette)
    )
    return table[mask]


def blend_overlay(
    image: np.ndarray, mask: np.ndarray, palette: Sequence[Sequence[int]] | np.ndarray, alpha: float = 0.5
) -> np.ndarray:
    """``(1 - alpha) * image + alpha * colour(mask)`` as uint8 RGB where the mask holds an object class;
    background (class 0) pixels keep the fused image unchanged, so the overlay is not a darkened copy.

    image must be in RGB order (the palette is RGB) and the same size as the mask; a gray image is
    expanded to 3 channels.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay alpha must be in [0, 1], got {alpha}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[:2] != mask.shape[:2] or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"image {image.shape} {image.dtype} must be H x W x 3 uint8 matching mask {mask.shape}"
        )
    blended = cv2.addWeighted(image, 1.0 - alpha, colourise(mask, palette), alpha, 0.0)
    return np.where((mask == 0)[:, :, None], image, blended)
