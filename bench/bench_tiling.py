"""Peak memory and time of seafusion-fuse per frame size, with the engine's tiled inference.

For each size a real MSRS night pair is upscaled (bicubic) and written as PNGs; the real seafusion-fuse
command fuses it in a fresh process. Peak memory is that process's peak RSS (``os.wait4``'s rusage,
this child only); seconds is the command's wall time (start-up, PNG decode, fusion, PNG encode). Tiles
is the engine's plan for the size at the same budget, device and precision. Sizes up to --compare-max-mp
are fused a second time with --compare-budget (small: many tiles), and the two fused PNGs are compared
(max grey-level difference; where the first run is one tile, that is tiled against whole-frame output).
Prints a table and writes bench/results/tiling.json.

    .venv/bin/python bench/bench_tiling.py [--sizes 640x480 1920x1080 3840x2160 8000x6000]
        [--memory-budget 2048] [--precision auto] [--compare-budget 256] [--compare-max-mp 2.1] [--stem 00786N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from seafusion_ros.inference.engine import DEFAULT_MEMORY_BUDGET_MB, FusionEngine

REPO = Path(__file__).resolve().parents[1]
MSRS = REPO.parent / "shared" / "data" / "msrs_dev"
RESULTS = REPO / "bench" / "results" / "tiling.json"

def parse_size(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT -> (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return width, height


def write_pair(stem: str, width: int, height: int, folder: Path) -> None:
    """The MSRS pair upscaled to width x height as folder/ir/STEM.png and folder/vi/STEM.png."""
    for kind, flags in (("ir", cv2.IMREAD_GRAYSCALE), ("vi", cv2.IMREAD_COLOR)):
        image = cv2.imread(str(MSRS / kind / f"{stem}.png"), flags)
        (folder / kind).mkdir(parents=True, exist_ok=True)
        resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / kind / f"{stem}.png"), resized)


def run_fuse(pair: Path, out: Path, budget_mb: int, precision: str, log: Path) -> tuple[int, float, float]:
    """(exit status, peak RSS MB, seconds) of one seafusion-fuse process on the pair folder."""
    command = [sys.executable, "-m", "seafusion_ros.cli.fuse", "--ir", str(pair / "ir"), "--vis", str(pair / "vi"),
               "--out", str(out), "--device", "cpu", "--precision", precision, "--memory-budget", str(budget_mb),
               "--no-progress"]
    with open(log, "wb") as sink:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss / 1024.0, seconds  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=parse_size, nargs="+",
                        default=[(640, 480), (1920, 1080), (3840, 2160), (8000, 6000)], metavar="WxH")
    parser.add_argument("--memory-budget", type=int, default=DEFAULT_MEMORY_BUDGET_MB, metavar="MB")
    parser.add_argument("--precision", default="auto", help="as seafusion-fuse --precision (auto: bf16 on CPUs "
                                                           "with native bf16, else fp32)")
    parser.add_argument("--compare-budget", type=int, default=256, metavar="MB",
                        help="budget of the second run that the first is compared with")
    parser.add_argument("--compare-max-mp", type=float, default=2.1,
                        help="run the comparison for sizes up to this many megapixels")
    parser.add_argument("--stem", default="00786N", help="msrs_dev pair to upscale")
    args = parser.parse_args()
    if not (MSRS / "ir" / f"{args.stem}.png").is_file():
        raise SystemExit(f"{MSRS / 'ir' / args.stem}.png not found: ../shared/data/msrs_dev is needed")

    engine = FusionEngine(device="cpu", precision=args.precision, memory_budget_mb=args.memory_budget)
    small = FusionEngine(device="cpu", precision=args.precision, memory_budget_mb=args.compare_budget)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_tiling_") as tmp:
        work = Path(tmp)
        for width, height in args.sizes:
            pair = work / f"{width}x{height}"
            write_pair(args.stem, width, height, pair)
            status, peak_mb, seconds = run_fuse(pair, pair / "main", args.memory_budget, args.precision,
                                                pair / "main.log")
            row = {"size": f"{width}x{height}", "megapixels": width * height / 1e6,
                   "tiles": len(engine.tile_plan(height, width)), "peak_rss_mb": peak_mb, "seconds": seconds,
                   "exit_status": status}
            if status != 0:
                print((pair / "main.log").read_text(errors="replace")[-2000:], file=sys.stderr)
            if width * height / 1e6 <= args.compare_max_mp:
                small_status, small_peak, small_seconds = run_fuse(pair, pair / "small", args.compare_budget,
                                                                   args.precision, pair / "small.log")
                main_png = cv2.imread(str(pair / "main" / f"{args.stem}.png"), cv2.IMREAD_COLOR)
                small_png = cv2.imread(str(pair / "small" / f"{args.stem}.png"), cv2.IMREAD_COLOR)
                row.update(small_budget_tiles=len(small.tile_plan(height, width)), small_budget_peak_rss_mb=small_peak,
                           small_budget_seconds=small_seconds, small_budget_exit_status=small_status,
                           max_grey_level_difference=int(np.abs(main_png.astype(np.int16) - small_png).max()),
                           differing_pixel_fraction=float((main_png != small_png).any(axis=2).mean()))
            rows.append(row)
            print(f"{row['size']}: {row['tiles']} tiles, peak {peak_mb:.0f} MB, {seconds:.1f} s, exit {status}",
                  flush=True)

    print(f"\nseafusion-fuse on CPU ({torch.get_num_threads()} threads), precision {engine.precision}, "
          f"memory budget {args.memory_budget} MB ({engine.tile_bytes_per_pixel:.0f} bytes per tile pixel, "
          f"tiles up to {engine.tile_pixels / 1e6:.2f} MP read)")
    print(f"{'':36s} | at --compare-budget {args.compare_budget} MB")
    print(f"{'size (WxH)':>11s} {'MP':>6s} {'tiles':>5s} {'peak MB':>8s} {'seconds':>8s} {'exit':>4s} | "
          f"{'tiles':>5s} {'peak MB':>8s} {'seconds':>8s} {'max diff':>8s} {'pixels differing':>16s}")
    for row in rows:
        small_columns = (f"{row['small_budget_tiles']:5d} {row['small_budget_peak_rss_mb']:8.0f} "
                         f"{row['small_budget_seconds']:8.1f} {row['max_grey_level_difference']:8d} "
                         f"{row['differing_pixel_fraction']:16.2e}") if "small_budget_tiles" in row else ""
        print(f"{row['size']:>11s} {row['megapixels']:6.2f} {row['tiles']:5d} {row['peak_rss_mb']:8.0f} "
              f"{row['seconds']:8.1f} {row['exit_status']:4d} | {small_columns}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp_json = RESULTS.with_suffix(".json.tmp")
    tmp_json.write_text(json.dumps({
        "command": f"seafusion-fuse --device cpu --precision {args.precision} --memory-budget {args.memory_budget}",
        "precision": engine.precision, "memory_budget_mb": args.memory_budget, "compare_budget_mb": args.compare_budget,
        "tile_bytes_per_pixel": engine.tile_bytes_per_pixel, "tile_pixels": engine.tile_pixels,
        "halo": engine.halo, "pair": args.stem, "rows": rows,
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "processor": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "torch": torch.__version__},
    }, indent=2) + "\n")
    os.replace(tmp_json, RESULTS)
    print(f"wrote {RESULTS}")
    failed = [row["size"] for row in rows if row["exit_status"] != 0 or row.get("small_budget_exit_status", 0) != 0]
    if failed:
        raise SystemExit(f"seafusion-fuse failed at {', '.join(failed)}")


if __name__ == "__main__":
    main()
