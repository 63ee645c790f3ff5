"""Bundled model weights (installed with the package and under share/seafusion_ros/weights)."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent
DEFAULT_FUSION_WEIGHTS = WEIGHTS_DIR / "seafusion_fusion_default.pt"


def default_fusion_weights() -> Path:
    """Path of the bundled default fusion model; a clear error if the install lacks it."""
    if not DEFAULT_FUSION_WEIGHTS.is_file():
        raise FileNotFoundError(f"bundled fusion weights missing: {DEFAULT_FUSION_WEIGHTS} (broken install?)")
    return DEFAULT_FUSION_WEIGHTS
