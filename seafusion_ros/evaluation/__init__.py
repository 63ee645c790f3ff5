"""Evaluation: fusion metrics and reports, segmentation metrics and scoring, task-driven evaluation."""
