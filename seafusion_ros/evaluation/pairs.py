"""Which images to evaluate: IR / visible pairs matched by stem with each method's fused image.

Every method is scored on the same pairs, so their means compare like with like: a stem missing from
any folder is left out for all methods and listed with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seafusion_ros.imaging.image_files import IMAGE_SUFFIXES, ImagePair, match_pairs, read_visible


@dataclass(frozen=True)
class EvaluationItem:
    """One IR / visible pair and the fused image of every method (method name -> path)."""

    stem: str
    ir: Path
    visible: Path
    fused: dict[str, Path]


@dataclass
class EvaluationPlan:
    """Pairs to score; ``skipped`` (stem, reason) pairs left out; ``unused_fused`` method -> stems of
    fused images that have no IR / visible pair (e.g. a fused folder covering a larger set)."""

    methods: list[str]
    items: list[EvaluationItem]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    unused_fused: dict[str, list[str]] = field(default_factory=dict)


def _images_by_stem(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            found.setdefault(path.stem, path)
    return found


def plan_evaluation(ir_dir: str | os.PathLike, vis_dir: str | os.PathLike,
                    method_dirs: dict[str, str | os.PathLike]) -> EvaluationPlan:
    """Match the folders by file stem. Raises FileNotFoundError for a missing folder, ValueError
    when no method is given; missing counterparts are not fatal but end up in ``skipped``."""
    listing = match_pairs(ir_dir, vis_dir)
    return plan_pairs(listing.pairs, method_dirs, skipped=listing.skipped)


def plan_pairs(pairs: Sequence[ImagePair], method_dirs: dict[str, str | os.PathLike],
               skipped: Sequence[tuple[str, str]] = (), other_stems: Collection[str] = ()) -> EvaluationPlan:
    """Match already chosen pairs (a data set's split, say) with each method's fused images by stem.

    ``other_stems`` are pairs deliberately left out (the other split): a method folder that covers the
    whole data set has fused images for them, which are then not reported as unused.
    """
    if not method_dirs:
        raise ValueError("give at least one method (a fused-image folder)")
    fused_by_method: dict[str, dict[str, Path]] = {}
    for name, folder in method_dirs.items():
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"fused folder of method {name!r} is not a directory: {folder}")
        fused_by_method[name] = _images_by_stem(folder)
    skipped = list(skipped)
    items = []
    for pair in pairs:
        missing = [name for name, images in fused_by_method.items() if pair.stem not in images]
        if missing:
            skipped.append((pair.stem, "no fused image for method(s) " + ", ".join(missing)))
            continue
        fused = {name: images[pair.stem] for name, images in fused_by_method.items()}
        items.append(EvaluationItem(pair.stem, pair.ir, pair.visible, fused))
    known = {p.stem for p in pairs} | set(other_stems)
    unused = {name: sorted(images.keys() - known) for name, images in fused_by_method.items()}
    return EvaluationPlan(list(method_dirs), items, skipped, {k: v for k, v in unused.items() if v})


def read_metric_image(path: str | os.PathLike) -> np.ndarray:
    """An 8-bit image as the metrics take it: H x W gray, or H x W x 3 in RGB order (alpha dropped).

    Raises ValueError for undecodable files and for 16-bit or float images (the metric definitions
    are on the 0..255 scale).
    """
    image = read_visible(path)
    return np.ascontiguousarray(image[:, :, ::-1]) if image.ndim == 3 else image
