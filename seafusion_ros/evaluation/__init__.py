"""Evaluating fused images against their sources: pairing folders, scoring, reports and plots."""
