"""Fusion and segmentation quality metrics (ROS-free, numpy in, floats out)."""

from seafusion_ros.metrics.fusion_metrics import (
    HIGHER_IS_BETTER,
    METRIC_DESCRIPTIONS,
    METRIC_NAMES,
    FusionScores,
    MetricUndefinedError,
    fusion_scores,
    to_gray,
)
from seafusion_ros.metrics.segmentation_metrics import (
    IGNORE_LABEL,
    ConfusionAccumulator,
    SegmentationScores,
    confusion_matrix,
    scores_from_confusion,
)

__all__ = [
    "IGNORE_LABEL",
    "ConfusionAccumulator",
    "SegmentationScores",
    "confusion_matrix",
    "scores_from_confusion",
    "HIGHER_IS_BETTER",
    "METRIC_DESCRIPTIONS",
    "METRIC_NAMES",
    "FusionScores",
    "MetricUndefinedError",
    "fusion_scores",
    "to_gray",
]
