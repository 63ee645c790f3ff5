"""The ``HxW`` image-size argument of the command-line tools."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def size_type(minimum: int) -> Callable[[str], tuple[int, int]]:
    """An argparse ``type`` turning 'HxW' into (height, width), both at least ``minimum``."""

    def parse(text: str) -> tuple[int, int]:
        height, sep, width = text.lower().partition("x")
        if not sep or not height.isdigit() or not width.isdigit() or min(int(height), int(width)) < minimum:
            raise argparse.ArgumentTypeError(
                f"expected HEIGHTxWIDTH with both at least {minimum}, e.g. 240x320, got {text!r}")
        return int(height), int(width)

    parse.__name__ = "size"  # argparse names the type in its error message
    return parse


parse_size = size_type(32)  # working sizes of the segmentation network (five stride-2 stages)
