"""Engine options shared by every command that fuses (seafusion-fuse, -eval --weights, -replay, ...)."""

from __future__ import annotations

import argparse
from pathlib import Path

from seafusion_ros.cli.number_arguments import int_at_least
from seafusion_ros.inference.engine import (
    BACKENDS,
    DEFAULT_MEMORY_BUDGET_MB,
    ENGINE_PRECISIONS,
    MIN_MEMORY_BUDGET_MB,
    NORMALIZATIONS,
    FusionEngine,
)
from seafusion_ros.inference.int8_quantization import DEFAULT_CALIBRATION_PAIRS
from seafusion_ros.inference.thermal_gain import GAIN_MODES, ThermalGainConfig


def add_engine_arguments(p: argparse.ArgumentParser | argparse._ArgumentGroup, weights: bool = True) -> None:
    """Add --weights (unless the caller has its own), --device, --precision, --backend, --internal-scale,
    --memory-budget, --normalize and the thermal gain options."""
    if weights:
        p.add_argument("--weights", type=Path, default=None,
                       help="fusion checkpoint: the authors' released .pth or our own format (default: bundled model)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available, else CPU), cpu, cuda, cuda:N")
    p.add_argument("--precision", default="auto", choices=ENGINE_PRECISIONS,
                   help="auto: fp16 on CUDA, bf16 on CPUs with native bf16, else fp32; fp16 needs CUDA; int8: "
                        "--backend openvino with --int8-calibration, fusion quantised (faster, lower quality)")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="auto: openvino on a CPU when installed, else torch (CUDA, or a CPU without openvino); "
                        "openvino: CPU only, bf16 where the CPU has it; onnxruntime: exact fp32")
    p.add_argument("--int8-calibration", type=Path, default=None, metavar="DATA",
                   help="with --precision int8: a data folder (ir/ + vi/) of real pairs from the camera to "
                        f"calibrate on ({DEFAULT_CALIBRATION_PAIRS} spread over it); the quantised model is cached "
                        "in ~/.cache/seafusion_ros")
    p.add_argument("--internal-scale", type=float, default=1.0,
                   help="fuse at this fraction of the resolution, then guided upsampling (CPU degrade knob)")
    p.add_argument("--memory-budget", type=int_at_least(MIN_MEMORY_BUDGET_MB), default=DEFAULT_MEMORY_BUDGET_MB,
                   metavar="MB", help="working memory of one fusion tile: larger frames are fused in overlapping "
                                      "tiles, with the same output up to float rounding; the frame's inputs and "
                                      "outputs (12-16 bytes per pixel) come on top")
    p.add_argument("--normalize", default="none", choices=NORMALIZATIONS,
                   help="none: stable across frames; minmax: the authors' per-image stretch")
    p.add_argument("--gain", default="percentile", choices=GAIN_MODES,
                   help="thermal gain for 16-bit/float infrared (8-bit is used as is)")
    p.add_argument("--gain-percentiles", type=float, nargs=2, default=(1.0, 99.0), metavar=("LOW", "HIGH"))
    p.add_argument("--gain-range", type=float, nargs=2, default=(0.0, 65535.0), metavar=("LOW", "HIGH"),
                   help="raw window for --gain fixed")


def engine_from_args(args: argparse.Namespace) -> FusionEngine:
    gain = ThermalGainConfig(mode=args.gain, low_percentile=args.gain_percentiles[0],
                             high_percentile=args.gain_percentiles[1], fixed_low=args.gain_range[0],
                             fixed_high=args.gain_range[1])
    return FusionEngine(args.weights, device=args.device, precision=args.precision, normalize=args.normalize,
                        thermal_gain=gain, backend=args.backend, internal_scale=args.internal_scale,
                        memory_budget_mb=args.memory_budget, int8_calibration=args.int8_calibration)
