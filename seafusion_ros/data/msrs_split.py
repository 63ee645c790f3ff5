"""The fixed train/validation split of ``msrs_dev``, by frame number so whole sequences stay together.

MSRS names are ``NNNNN`` + ``D`` (day) or ``N`` (night), sampled every few frames from continuous
drives: neighbouring frames are near-duplicates, so a random split would leak. Validation is one
contiguous day block and one contiguous night block (about a fifth of the pairs); nothing trains on it.
"""

from __future__ import annotations

import re

# Half-open frame-number ranges [start, stop) held out for validation.
VALIDATION_FRAME_RANGES: tuple[tuple[int, int], ...] = ((400, 521), (1100, 1200))

_STEM = re.compile(r"^(\d+)([DN])$")


def frame_number(stem: str) -> int:
    """The frame number of an MSRS stem such as ``00412D``; ValueError for other names."""
    match = _STEM.match(stem)
    if match is None:
        raise ValueError(f"not an MSRS stem (digits followed by D or N): {stem!r}")
    return int(match[1])


def is_validation(stem: str) -> bool:
    n = frame_number(stem)
    return any(start <= n < stop for start, stop in VALIDATION_FRAME_RANGES)


def split_stems(stems: list[str]) -> tuple[list[str], list[str]]:
    """(train, validation) stems, each sorted."""
    ordered = sorted(stems)
    return [s for s in ordered if not is_validation(s)], [s for s in ordered if is_validation(s)]
