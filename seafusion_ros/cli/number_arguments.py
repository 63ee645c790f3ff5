"""Bounded number arguments of the command-line tools: a bad count is refused at parse time, with the
option named, instead of training zero epochs or writing an empty bag with exit status 0."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _bounded(kind: type, ok: Callable[[float], bool], rule: str) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {rule}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value) or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {rule}, got {text!r}")
        return value

    parse.__name__ = "int" if kind is int else "number"  # argparse names the type in its error message
    return parse


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= minimum."""
    return _bounded(int, lambda v: v >= minimum, f"an integer >= {minimum}")


def int_in_range(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer in [low, high]."""
    return _bounded(int, lambda v: low <= v <= high, f"an integer in [{low}, {high}]")


def float_above(bound: float) -> Callable[[str], float]:
    """An argparse ``type``: a finite number > bound."""
    return _bounded(float, lambda v: v > bound, f"a number > {bound:g}")


def float_at_least(minimum: float) -> Callable[[str], float]:
    """An argparse ``type``: a finite number >= minimum."""
    return _bounded(float, lambda v: v >= minimum, f"a number >= {minimum:g}")


finite_float = _bounded(float, lambda v: True, "a finite number")  # nan or inf would poison every use
fraction = _bounded(float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")
positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
positive_float = float_above(0.0)
non_negative_float = float_at_least(0.0)
