"""CPU latency of the two segmentation networks, side by side in one run.

``bisenet_lite`` (1 M weights, from scratch) and ``bisenet_efficientnet_lite0`` (ImageNet-pretrained
EfficientNet-Lite0 backbone), both with the 9 MSRS classes, at 240x320 and 480x640: the eval-mode forward
(main logits at the input size) under ``torch.inference_mode``, in eager fp32 and, where the CPU has native
bf16, bf16 autocast, each with contiguous (NCHW) and channels-last (NHWC) inputs and weights. Latency is
the median and p90 of --runs calls after --warmup; the weights are random (latency does not depend on
them), so no weights package is needed. The table also gives each network's weights and its
multiply-accumulates per frame (convolutions, counted from the layers' real output shapes).

Prints a table and writes bench/results/segmentation.json.
Usage: OMP_NUM_THREADS=1 .venv/bin/python bench/bench_segmentation.py --threads 1 [--runs 10] [--warmup 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

from seafusion_ros.data.labels import MSRS_CLASSES
from seafusion_ros.imaging.image_files import write_bytes_atomic
from seafusion_ros.inference.device import cpu_has_fast_bf16
from seafusion_ros.models.bisenet_efficientnet import bisenet_efficientnet_lite0
from seafusion_ros.models.segmentation import bisenet_lite

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "segmentation.json"
SIZES = ((240, 320), (480, 640))
NETWORKS: dict[str, Callable[[], nn.Module]] = {
    "bisenet_lite": lambda: bisenet_lite(MSRS_CLASSES.num_classes),
    "bisenet_efficientnet_lite0": lambda: bisenet_efficientnet_lite0(MSRS_CLASSES.num_classes, pretrained=False),
}


def conv_macs(model: nn.Module, size: tuple[int, int]) -> int:
    """Multiply-accumulates of every convolution for one frame of ``size`` (eval-mode forward)."""
    total = 0

    def count(module: nn.Conv2d, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output[0].numel() * (module.in_channels // module.groups) * kh * kw

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.inference_mode():
        model(torch.rand(1, 3, *size))
    for hook in hooks:
        hook.remove()
    return total


def time_forward(model: nn.Module, x: torch.Tensor, bf16: bool, runs: int, warmup: int) -> list[float]:
    """Seconds per eval-mode forward, ``runs`` of them after ``warmup``."""
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    times = []
    with torch.inference_mode(), autocast:
        for i in range(warmup + runs):
            started = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - started)
    return times


def bench(runs: int, warmup: int) -> list[dict]:
    precisions = ["fp32", "bf16"] if cpu_has_fast_bf16() else ["fp32"]
    rows = []
    for name, build in NETWORKS.items():
        torch.manual_seed(0)
        model = build().eval()
        weights = sum(p.numel() for p in model.parameters())
        for size in SIZES:
            macs = conv_macs(model, size)
            for precision in precisions:
                for layout in ("contiguous", "channels_last"):
                    memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
                    model = model.to(memory_format=memory_format)
                    x = torch.rand(1, 3, *size).contiguous(memory_format=memory_format)
                    times = time_forward(model, x, precision == "bf16", runs, warmup)
                    median = statistics.median(times)
                    rows.append({"network": name, "size": list(size), "precision": precision, "layout": layout,
                                 "weights": weights, "gmac": macs / 1e9, "median_ms": 1e3 * median,
                                 "p90_ms": 1e3 * sorted(times)[int(0.9 * (len(times) - 1))], "fps": 1 / median})
                    print(f"  {name} {size[0]}x{size[1]} {precision} {layout}: {1e3 * median:.1f} ms", flush=True)
    return rows


def print_table(rows: list[dict], threads: int, runs: int, warmup: int) -> None:
    print(f"\nsegmentation forward on CPU ({threads} torch threads), median / p90 of {runs} runs after {warmup}")
    print(f"{'network':28s} {'size':>8s} {'weights':>8s} {'GMAC':>6s} {'precision':>9s} {'layout':>14s} "
          f"{'median ms':>10s} {'p90 ms':>8s} {'fps':>6s}")
    for r in rows:
        print(f"{r['network']:28s} {r['size'][0]:>4d}x{r['size'][1]:<3d} {r['weights'] / 1e6:7.2f}M "
              f"{r['gmac']:6.2f} {r['precision']:>9s} {r['layout']:>14s} {r['median_ms']:10.1f} "
              f"{r['p90_ms']:8.1f} {r['fps']:6.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--json", type=Path, default=RESULTS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = bench(args.runs, args.warmup)
    print_table(rows, torch.get_num_threads(), args.runs, args.warmup)
    result = {"device": "cpu", "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "torch": str(torch.__version__), "bf16_native": cpu_has_fast_bf16(), "runs": args.runs,
              "warmup": args.warmup, "results": rows}
    write_bytes_atomic(args.json, json.dumps(result, indent=2).encode())
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
