"""Bundled model weights (installed with the package and under share/seafusion_ros/weights), and loading them.

Where a model is optional (segmentation), a missing bundled file is a note, not an error; an explicit
path that cannot be loaded is always an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from seafusion_ros.imaging.overlay import default_palette

WEIGHTS_DIR = Path(__file__).resolve().parent
DEFAULT_FUSION_WEIGHTS = WEIGHTS_DIR / "seafusion_fusion_default.pt"
DEFAULT_SEGMENTATION_WEIGHTS = WEIGHTS_DIR / "segmentation_default.pt"


def default_fusion_weights() -> Path:
    """Path of the bundled default fusion model; a clear error if the install lacks it."""
    if not DEFAULT_FUSION_WEIGHTS.is_file():
        raise FileNotFoundError(f"bundled fusion weights missing: {DEFAULT_FUSION_WEIGHTS} (broken install?)")
    return DEFAULT_FUSION_WEIGHTS


def load_segmenter(path_param: str | Path | None) -> tuple[nn.Module | None, dict[str, Any], str]:
    """(model, card, note) for a segmentation weights setting: a path, or ''/None for the bundled default.

    The model is None (with the reason in the note) when no bundled model is installed; an explicit
    path that cannot be loaded raises ValueError.
    """
    path = Path(path_param) if path_param else DEFAULT_SEGMENTATION_WEIGHTS
    if not path.is_file():
        if path_param:
            raise ValueError(f"segmentation weights file not found: {path}")
        return None, {}, f"no bundled segmentation model at {path}: fused image only"
    from seafusion_ros.models.segmentation import load_segmentation_model

    model, card = load_segmentation_model(path)
    return model, dict(card), f"segmentation model {path}"


def classes_and_palette(card: dict[str, Any], model: nn.Module) -> tuple[list[str], list[list[int]]]:
    """Class names and palette from a model card, with defaults for what it lacks."""
    classes = [str(c) for c in card.get("classes", [])]
    if not classes:
        count = int(getattr(model, "num_classes", 0)) or 2
        classes = [f"class_{i}" for i in range(count)]
    palette = [list(map(int, c)) for c in card.get("palette", [])] or default_palette(len(classes))
    return classes, palette
