"""The ``--data DATA[:WEIGHT]`` argument of the training tools: a data folder and its share of the mix."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataSource:
    """One ``--data`` argument: a data folder and how often its pairs are drawn relative to others'."""

    root: Path
    weight: float = 1.0


def data_source(text: str) -> DataSource:
    """``PATH`` or ``PATH:WEIGHT`` (a folder whose own name ends in ``:NUMBER`` is taken as a path)."""
    path, sep, weight = text.rpartition(":")
    if sep and not Path(text).exists():
        try:
            value = float(weight)
        except ValueError:
            value = None
        if value is not None:
            if not value > 0 or value != value or value == float("inf"):
                raise argparse.ArgumentTypeError(f"weight of {path!r} must be a positive number, got {weight!r}")
            return DataSource(Path(path), value)
    return DataSource(Path(text))
