"""Scoring every pair of an evaluation plan, in parallel worker processes when asked."""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
from tqdm import tqdm

from seafusion_ros.evaluation.fusion_metrics import FusionScores, fusion_scores
from seafusion_ros.evaluation.pairs import EvaluationItem, EvaluationPlan, read_metric_image


@dataclass
class ItemResult:
    """Scores of one pair per method, or the reason the pair could not be scored."""

    stem: str
    scores: dict[str, FusionScores] = field(default_factory=dict)
    error: str | None = None


def score_item(item: EvaluationItem) -> ItemResult:
    """Read the pair once and score each method's fused image; bad files become ``error``."""
    try:
        ir = read_metric_image(item.ir)
        visible = read_metric_image(item.visible)
        scores = {name: fusion_scores(read_metric_image(path), ir, visible)
                  for name, path in item.fused.items()}
    except ValueError as err:
        return ItemResult(item.stem, error=str(err))
    return ItemResult(item.stem, scores)


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_large_buffers_in_heap() -> None:
    """Stop glibc from unmapping and re-faulting the metrics' multi-MB numpy temporaries.

    By default every 2.4 MB float64 temporary of a 480x640 image is a fresh mmap: page faults then
    take about half of a pair's scoring time. Raising the mmap and trim thresholds keeps them in the
    heap. Only for processes this package owns (scoring workers, the CLI); a no-op without glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 64 << 20)
    libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20)


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core: no oversubscription
    # Ctrl-C in a terminal reaches the whole process group; the parent alone handles it and ends the pool
    # (a worker would print a KeyboardInterrupt traceback).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_large_buffers_in_heap()


def _results(plan: EvaluationPlan, jobs: int) -> Iterator[ItemResult]:
    if jobs <= 1 or len(plan.items) <= 1:
        yield from map(score_item, plan.items)
        return
    # spawn: workers never inherit a parent's torch / OpenMP thread state (the --weights mode).
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(jobs, len(plan.items)), initializer=_init_worker) as pool:
        yield from pool.imap_unordered(score_item, plan.items, chunksize=4)


def score_plan(plan: EvaluationPlan, jobs: int = 1, progress: bool = True) -> list[ItemResult]:
    """Results of all items, sorted by stem, with a tqdm progress bar over pairs."""
    bar = tqdm(_results(plan, jobs), total=len(plan.items), desc="scoring", unit="pair", disable=not progress)
    return sorted(bar, key=lambda r: r.stem)
