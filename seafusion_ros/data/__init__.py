"""Data sets and labels: training pairs and splits, segmentation images with pixel labels or box pseudo-masks."""
