"""Time the fusion engine at 480x640 on the current device: median and p90 over repeated runs after warm-up.

Usage: python bench/bench_engine.py [--weights PATH] [--device auto] [--runs 10] [--json bench/results/engine.json]
Prints a table and writes JSON. Each mode is the full engine call (upload, gain, colour, network, download).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from seafusion_ros.engine import FusionEngine
from seafusion_ros.synthetic_scene import render_frame


def time_engine(engine: FusionEngine, thermal: np.ndarray, rgb: np.ndarray, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        engine.fuse(thermal, rgb)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        engine.fuse(thermal, rgb)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--json", type=Path, default=Path("bench/results/engine.json"))
    args = p.parse_args()

    frame = render_frame(0, 480, 640)
    modes = [("fp32 contiguous", "fp32", False), ("fp32 channels-last", "fp32", True)]
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    modes.append(("bf16 autocast channels-last", "bf16", True))
    if device.type == "cuda":
        modes.append(("fp16 autocast", "fp16", False))
    rows = []
    for name, precision, channels_last in modes:
        engine = FusionEngine(args.weights, device=str(device), precision=precision, channels_last=channels_last)
        times = time_engine(engine, frame.thermal, frame.rgb, args.runs, args.warmup)
        median = statistics.median(times)
        p90 = float(np.percentile(times, 90))
        rows.append({"mode": name, "median_ms": median * 1000, "p90_ms": p90 * 1000, "fps": 1.0 / median})
    cpu = platform.processor() or platform.machine()
    print(f"engine at 480x640 on {device} ({cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}), "
          f"{args.runs} runs after {args.warmup} warm-up")
    print(f"{'mode':32} {'median ms':>10} {'p90 ms':>10} {'fps':>7}")
    for r in rows:
        print(f"{r['mode']:32} {r['median_ms']:10.1f} {r['p90_ms']:10.1f} {r['fps']:7.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"device": str(device), "threads": torch.get_num_threads(),
                                     "torch": torch.__version__, "size": [480, 640], "runs": args.runs,
                                     "results": rows}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
