"""VIF speed: separable Gaussian windows (the metrics module) vs a direct 2-D convolution, same definition.

Runs both on one 480x640 msrs_dev pair (the authors' released fused output), checks they agree, prints
a table and writes bench/results/vif.json. Also times all twelve metrics of one pair for context.

    .venv/bin/python bench/bench_vif.py [--repeats 7] [--stem 00004N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from scipy.signal import convolve2d

from seafusion_ros.evaluation.fusion_metrics import fusion_scores, to_gray, vif_float64
from seafusion_ros.evaluation.pairs import read_metric_image

REPO = Path(__file__).resolve().parents[1]
MSRS = REPO.parent / "shared" / "data" / "msrs_dev"
RESULTS = REPO / "bench" / "results" / "vif.json"


def direct_filter_valid(image: np.ndarray, kernel_1d: np.ndarray) -> np.ndarray:
    """The same 'valid' Gaussian window as a full 2-D kernel, convolved directly (no FFT, no separation)."""
    return convolve2d(image, np.outer(kernel_1d, kernel_1d), mode="valid")


def median_seconds(function, repeats: int) -> tuple[float, float]:
    times = []
    value = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stem", default="00004N", help="msrs_dev pair to time")
    parser.add_argument("--repeats", type=int, default=7, help="runs of the fast variants (median reported)")
    parser.add_argument("--direct-repeats", type=int, default=3, help="runs of the direct 2-D convolution")
    args = parser.parse_args()

    fused_path = MSRS / "seafusion_reference" / f"{args.stem}.png"
    if not fused_path.is_file():
        raise SystemExit(f"{fused_path} not found: ../shared/data/msrs_dev is needed")
    fused = read_metric_image(fused_path)
    ir = read_metric_image(MSRS / "ir" / f"{args.stem}.png")
    visible = read_metric_image(MSRS / "vi" / f"{args.stem}.png")
    f, a, b = (to_gray(x).astype(np.float64) for x in (fused, ir, visible))

    separable_s, separable_vif = median_seconds(lambda: vif_float64(f, a, b), args.repeats)
    direct_s, direct_vif = median_seconds(lambda: vif_float64(f, a, b, filter_valid=direct_filter_valid),
                                          args.direct_repeats)
    all_s, _ = median_seconds(lambda: fusion_scores(fused, ir, visible), args.repeats)
    relative_difference = abs(separable_vif - direct_vif) / abs(direct_vif)
    agree = relative_difference < 1e-9

    rows = [
        ("VIF separable (two 1-D passes)", separable_s, separable_vif),
        ("VIF direct 2-D convolution", direct_s, direct_vif),
        ("all 12 metrics (fusion_scores)", all_s, None),
    ]
    print(f"pair {args.stem} {f.shape[1]}x{f.shape[0]}, "
          f"median of {args.repeats} runs (direct: {args.direct_repeats})")
    print(f"{'variant':34s} {'seconds':>9s} {'VIF':>14s}")
    for name, seconds, value in rows:
        print(f"{name:34s} {seconds:9.4f} {'' if value is None else f'{value:14.10f}'}")
    print(f"speed-up {direct_s / separable_s:.1f}x; agree: {agree} "
          f"(relative difference {relative_difference:.2e})")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "pair": args.stem, "size": [int(f.shape[0]), int(f.shape[1])],
        "repeats": args.repeats, "direct_repeats": args.direct_repeats,
        "vif_separable_s": separable_s, "vif_direct_2d_s": direct_s, "all_metrics_s": all_s,
        "speedup": direct_s / separable_s, "vif_separable": separable_vif, "vif_direct_2d": direct_vif,
        "relative_difference": relative_difference, "agree": agree,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    if not agree:
        raise SystemExit("separable and direct VIF disagree")


if __name__ == "__main__":
    main()
