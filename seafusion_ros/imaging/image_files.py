"""Matching infrared and visible image folders by file stem, and writing images atomically."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class ImagePair:
    stem: str
    ir: Path
    visible: Path


@dataclass(frozen=True)
class PairListing:
    """Pairs found in both folders, and stems found in only one (with the reason)."""

    pairs: list[ImagePair]
    skipped: list[tuple[str, str]]


def _images_by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"not a directory: {folder}")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.setdefault(path.stem, path)
    return found


def match_pairs(ir_dir: str | os.PathLike, vis_dir: str | os.PathLike) -> PairListing:
    """Pair files of two folders by stem (``00004N.png`` with ``00004N.jpg``), sorted by stem."""
    ir = _images_by_stem(Path(ir_dir))
    vis = _images_by_stem(Path(vis_dir))
    pairs = [ImagePair(stem, ir[stem], vis[stem]) for stem in sorted(ir.keys() & vis.keys())]
    skipped = [(stem, f"no visible image in {vis_dir}") for stem in sorted(ir.keys() - vis.keys())]
    skipped += [(stem, f"no infrared image in {ir_dir}") for stem in sorted(vis.keys() - ir.keys())]
    return PairListing(pairs, skipped)


def read_image(path: str | os.PathLike, color: bool) -> np.ndarray:
    """Read an image unchanged in depth (8/16-bit); colour images come back in BGR order.

    Raises ValueError when the file cannot be decoded.
    """
    flags = cv2.IMREAD_COLOR if color else cv2.IMREAD_UNCHANGED
    image = cv2.imread(str(path), flags)
    if image is None:
        raise ValueError(f"cannot decode image file {path}")
    if not color and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    return image


def read_visible(path: str | os.PathLike) -> np.ndarray:
    """Read a visible image as H x W gray or H x W x 3 BGR uint8 (alpha dropped).

    Raises ValueError for undecodable files and for bit depths other than 8.
    """
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"cannot decode image file {path}")
    if image.dtype != np.uint8:
        raise ValueError(f"{path} is a {image.dtype} image; an 8-bit gray or colour image is expected")
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def write_image_atomic(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Encode to a temporary file in the target folder, then rename: never a half-written image."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise ValueError(f"cannot encode image for {path}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # open() honours the umask, unlike mkstemp's 0600
    try:
        with open(tmp, "wb") as handle:
            handle.write(encoded.tobytes())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
