"""Network definitions and checkpoint handling (one file per model, torchvision style)."""

from seafusion_ros.models.seafusion import FusionNet, seafusion

__all__ = ["FusionNet", "seafusion"]
