"""Speed of the fusion engine and the node on the current device, measured side by side in one run.

1. Engine at 480x640 (bundled weights unless --weights): a naive eager fp32 baseline (the authors'
   style: float images, plain forward, no channels-last or autocast) and every engine mode, each the
   full call (upload, thermal gain, colour, network, download). Median and p90 latency over --runs
   after --warmup (the runs taken round robin over the modes, so a slow spell of a shared machine
   falls on every mode alike), frames per second, speed-up over the baseline, and the output's
   difference from the exact fp32 engine output (max grey levels, relative L2) on a real MSRS pair
   when ../shared is there (else on the synthetic scene). With the bundled segmenter installed, also
   the segmentation stage alone and fusion + segmentation, for torch and OpenVINO, with the mask's
   pixel agreement with the fp32 torch mask. ``DEFAULT`` rows are what the CLIs and the node run by
   default (backend auto: OpenVINO on a CPU where it is installed, else torch; precision auto); the
   ``int8`` rows (OpenVINO + NNCF installed) quantise on 16 pairs of --int8-calibration (default: the
   shared msrs_dev, when present).
2. With --node-frames N: the real node (separate process, real DDS, bundled models, segmentation on)
   fed thermal 16UC1 + RGB bgr8 pairs at --node-rate Hz for N frames: sustained output rate,
   end-to-end latency (overlay arrival - input stamp) median/p90, pairs dropped, node memory (RSS) at
   start, at a tenth and half of the pairs, every 100 pairs and at the end.

Prints tables and writes bench/results/engine.json.
Usage: .venv/bin/python bench/bench_engine.py [--runs 10] [--node-frames 2000 --node-rate 10]
       [--node-param backend:=auto] [--segmentation-weights CKPT]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from seafusion_ros.data.synthetic_scene import render_frame
from seafusion_ros.imaging.image_files import write_bytes_atomic
from seafusion_ros.inference.colour import rgb_to_ycrcb, ycrcb_to_rgb
from seafusion_ros.inference.device import resolve_device
from seafusion_ros.inference.engine import FusionEngine
from seafusion_ros.inference.int8_quantization import nncf_available
from seafusion_ros.inference.openvino_backend import openvino_available
from seafusion_ros.models.checkpoint import load_fusion_model
from seafusion_ros.weights import default_fusion_weights, load_segmenter

REPO = Path(__file__).resolve().parents[1]
MSRS_PAIR = REPO.parent / "shared" / "data" / "msrs_dev"
RESULTS = REPO / "bench" / "results" / "engine.json"


def test_pair() -> tuple[np.ndarray, np.ndarray, str]:
    """(infrared, RGB visible, description): a real night MSRS pair if available."""
    if (MSRS_PAIR / "ir" / "00786N.png").is_file():
        ir = cv2.imread(str(MSRS_PAIR / "ir" / "00786N.png"), cv2.IMREAD_GRAYSCALE)
        vis = cv2.imread(str(MSRS_PAIR / "vi" / "00786N.png"), cv2.IMREAD_COLOR)[:, :, ::-1].copy()
        return ir, vis, "MSRS 00786N (real night pair)"
    frame = render_frame(0)
    return frame.thermal, frame.rgb, "synthetic scene (16-bit thermal)"


def naive_baseline(weights: Path, device: torch.device):
    """The authors' style: float numpy -> tensor, plain eager fp32 forward under no_grad, numpy out."""
    model, _ = load_fusion_model(weights)
    model = model.to(device)

    def run(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            rgb = torch.from_numpy(vis.astype(np.float32) / 255.0).permute(2, 0, 1)[None].to(device)
            y, cr, cb = rgb_to_ycrcb(rgb)
            infrared = torch.from_numpy(ir.astype(np.float32) / 255.0)[None, None].to(device)
            fused = ycrcb_to_rgb(model(y, infrared), cr, cb)
            return (fused[0].permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)

    return run


def timed_call(fn, device: torch.device):
    """(seconds, result) of one call, synchronised on CUDA."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


FUSION, SEGMENTATION, BOTH = "fusion", "segmentation", "both"
RSS_EVERY = 100  # node memory is sampled every this many input pairs


def engine_modes(device: torch.device, segmentation: bool,
                 int8_calibration: Path | None) -> list[tuple[str, dict, str]]:
    """(row name, engine arguments, what is timed): the whole call, or only its segmentation stage."""
    modes = [("engine fp32 contiguous", {"precision": "fp32", "channels_last": False}, FUSION),
             ("engine fp32 channels-last", {"precision": "fp32", "channels_last": True}, FUSION),
             ("engine fp32 onnxruntime", {"backend": "onnxruntime"}, FUSION)]
    if device.type == "cuda":
        modes += [("engine fp16 autocast", {"precision": "fp16"}, FUSION)]
    modes += [("engine bf16 autocast channels-last", {"precision": "bf16", "channels_last": True}, FUSION),
              ("engine torch, precision auto", {"backend": "torch"}, FUSION)]
    openvino = device.type == "cpu" and openvino_available()
    if openvino:
        modes += [("engine openvino fp32", {"backend": "openvino", "precision": "fp32"}, FUSION),
                  ("engine openvino, precision auto", {"backend": "openvino"}, FUSION)]
    int8 = {"backend": "openvino", "precision": "int8", "int8_calibration": int8_calibration}
    int8 = int8 if openvino and nncf_available() and int8_calibration is not None else None
    if int8:
        modes += [("engine openvino int8", int8, FUSION)]
    modes += [("engine DEFAULT (backend auto, precision auto)", {"backend": "auto"}, FUSION),
              ("engine backend auto, internal_scale 0.5", {"backend": "auto", "internal_scale": 0.5}, FUSION)]
    if segmentation:
        modes += [("segmentation only, torch auto", {"backend": "torch"}, SEGMENTATION),
                  ("fusion + segmentation, torch", {"backend": "torch"}, BOTH)]
        if openvino:
            modes += [("segmentation only, openvino auto", {"backend": "openvino"}, SEGMENTATION),
                      ("fusion + segmentation, openvino auto", {"backend": "openvino"}, BOTH)]
        if int8:
            modes += [("fusion + segmentation, openvino int8", int8, BOTH)]
        modes += [("fusion + segmentation, DEFAULT (backend auto)", {"backend": "auto"}, BOTH)]
    return modes


def bench_engine(weights: Path, device: torch.device, runs: int, warmup: int, int8_calibration: Path | None,
                 segmentation_weights: Path | None = None) -> dict:
    ir, vis, source = test_pair()
    segmenter = load_segmenter(segmentation_weights or "")[0]
    baseline = naive_baseline(weights, device)
    exact = FusionEngine(weights, device=str(device), precision="fp32", backend="torch", segmenter=segmenter)
    exact_out = exact.fuse(ir, vis, segment=segmenter is not None)
    reference = exact_out.image.astype(np.float64)
    rows, calls = [], []
    for name, kwargs, what in [("naive eager fp32 (baseline)", None, FUSION),
                               *engine_modes(device, segmenter is not None, int8_calibration)]:
        mask_agreement = None
        if kwargs is None:
            call = lambda: baseline(ir, vis)  # noqa: E731
            precision = "fp32"
            out = call()
        else:
            engine = FusionEngine(weights, device=str(device), segmenter=segmenter, **kwargs)
            precision = engine.precision
            result = engine.fuse(ir, vis, segment=what != FUSION)
            out = result.image
            if what != FUSION:
                mask_agreement = float((result.mask == exact_out.mask).mean())
            call = lambda e=engine, s=what != FUSION: e.fuse(ir, vis, segment=s)  # noqa: E731
        for _ in range(warmup):
            call()
        out = out.astype(np.float64)
        rows.append({"mode": name, "timed": what, "precision": precision,
                     "max_grey_diff": float(np.abs(out - reference).max()),
                     "rel_l2": float(np.linalg.norm(out - reference) / np.linalg.norm(reference)),
                     "mask_agreement": mask_agreement})
        calls.append((call, what))
    times: list[list[float]] = [[] for _ in rows]
    for _ in range(runs):  # round robin: a slow spell of a shared machine falls on every mode alike
        for (call, what), mode_times in zip(calls, times, strict=True):
            seconds, result = timed_call(call, device)
            mode_times.append(result.timings["segment"] if what == SEGMENTATION else seconds)
    for row, mode_times in zip(rows, times, strict=True):
        median = statistics.median(mode_times)
        row.update({"median_ms": 1000 * median, "p90_ms": 1000 * float(np.percentile(mode_times, 90)),
                    "fps": 1 / median})
    base = rows[0]["median_ms"]
    for row in rows:
        row["speedup"] = base / row["median_ms"] if row["timed"] == FUSION else None
    return {"input": source, "size": list(ir.shape[:2]), "runs": runs, "warmup": warmup, "results": rows}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_node(frames: int, rate: float, tmp: Path, params: list[str]) -> dict:
    """The real node fed at a fixed rate; only stamps and arrival times are kept on this side. ``params``
    are extra node parameters, NAME:=VALUE."""
    sys.path.insert(0, str(REPO / "test"))
    from ros_graph import NodeProcess, Probe, image_msg, node_command, stamp_ns
    from sensor_msgs.msg import Image

    from seafusion_ros.ros.node import RGB, THERMAL  # noqa: F401 - the node module must import here too

    extra = [arg for param in params for arg in ("-p", param)]
    node = NodeProcess(node_command("-p", "diagnostics.period:=1.0", *extra), tmp / "node.log")
    probe = Probe(outputs=())
    arrivals: list[tuple[int, int]] = []
    lock = threading.Lock()

    def on_overlay(msg: Image) -> None:
        with lock:
            arrivals.append((stamp_ns(msg), time.time_ns()))

    subs = [probe.node.create_subscription(Image, topic, on_overlay if topic.endswith("overlay") else
                                           (lambda _msg: None), 10)
            for topic in ("fused/image", "segmentation/mask", "segmentation/overlay")]
    try:
        probe.wait_for_node(180)
        probe.wait_for(lambda: node.alive() and probe.node.count_publishers("segmentation/overlay") > 0, 60,
                       "the node's outputs")
        frame = render_frame(0)
        thermal, bgr = frame.thermal, np.ascontiguousarray(frame.rgb[:, :, ::-1])
        time.sleep(2.0)
        rss_start = _rss_mb(node.proc.pid)
        started = time.time()
        rss_during = {}
        rss_trace: list[float] = []
        for k in range(frames):
            due = started + k / rate
            time.sleep(max(0.0, due - time.time()))
            now = time.time_ns()
            probe.publish(image_msg(thermal, "16UC1", now), image_msg(bgr, "bgr8", now))
            if k in (frames // 10, frames // 2):  # after warm-up: steady state vs growth
                rss_during[f"node_rss_after_{k}_frames_mb"] = _rss_mb(node.proc.pid)
            if (k + 1) % RSS_EVERY == 0:
                rss_trace.append(round(_rss_mb(node.proc.pid), 1))
        elapsed = time.time() - started
        time.sleep(3.0)
        rss_end = _rss_mb(node.proc.pid)
        diag = probe.latest_diagnostics() or {}
    finally:
        for sub in subs:
            probe.node.destroy_subscription(sub)
        probe.close()
        node.stop()
    with lock:
        latencies = [(arrived - stamp) / 1e6 for stamp, arrived in arrivals]
    return {"frames_sent": frames, "input_rate_hz": frames / elapsed, "outputs": len(latencies),
            "output_rate_hz": len(latencies) / elapsed,
            "end_to_end_median_ms": statistics.median(latencies) if latencies else None,
            "end_to_end_p90_ms": float(np.percentile(latencies, 90)) if latencies else None,
            "node_params": params, "dropped_pairs": diag.get("dropped_pairs"), "node_rss_start_mb": rss_start,
            **rss_during,
            "node_rss_end_mb": rss_end, f"node_rss_every_{RSS_EVERY}_frames_mb": rss_trace,
            "diagnostics": diag}


def print_engine_table(result: dict, runs: int, warmup: int) -> None:
    engine = result["engine"]
    print(f"fusion engine at {engine['size'][1]}x{engine['size'][0]} on {result['device']} ({result['cpu']}, "
          f"{result['threads']} threads, torch {result['torch']}); input: {engine['input']}; "
          f"{runs} runs after {warmup} warm-up")
    print(f"{'mode':40} {'prec':>5} {'median ms':>10} {'p90 ms':>8} {'fps':>6} {'speed-up':>9} "
          f"{'max diff':>9} {'rel L2':>9} {'mask agree':>11}")
    for r in engine["results"]:
        speedup = f"{r['speedup']:8.2f}x" if r["speedup"] is not None else f"{'-':>9}"
        agreement = f"{100 * r['mask_agreement']:10.2f}%" if r["mask_agreement"] is not None else f"{'-':>11}"
        print(f"{r['mode']:40} {r['precision']:>5} {r['median_ms']:10.1f} {r['p90_ms']:8.1f} {r['fps']:6.2f} "
              f"{speedup} {r['max_grey_diff']:9.0f} {r['rel_l2']:9.2e} {agreement}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=None, help="fusion weights (default: bundled model)")
    p.add_argument("--segmentation-weights", type=Path, default=None,
                   help="segmentation weights of the engine rows (default: bundled model); for the node run give "
                        "--node-param segmentation_weights:=PATH too")
    p.add_argument("--device", default="auto")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--node-frames", type=int, default=0, help="also run the node for this many input pairs")
    p.add_argument("--node-rate", type=float, default=10.0, help="input pair rate for the node run, Hz")
    p.add_argument("--node-only", action="store_true", help="skip the engine table")
    p.add_argument("--node-param", action="append", default=[], metavar="NAME:=VALUE",
                   help="node parameter for the node run, e.g. backend:=auto (repeatable)")
    p.add_argument("--int8-calibration", type=Path, default=MSRS_PAIR if MSRS_PAIR.is_dir() else None,
                   help="calibration pairs for the int8 rows (default: ../shared/data/msrs_dev when present)")
    p.add_argument("--json", type=Path, default=RESULTS)
    args = p.parse_args()
    device = resolve_device(args.device)
    weights = args.weights or default_fusion_weights()
    result = {"device": str(device), "cpu": platform.processor() or platform.machine(),
              "threads": torch.get_num_threads(), "torch": str(torch.__version__), "weights": str(weights),
              "segmentation_weights": str(args.segmentation_weights or "bundled")}
    if not args.node_only:
        result["engine"] = bench_engine(weights, device, args.runs, args.warmup, args.int8_calibration,
                                        args.segmentation_weights)
        print_engine_table(result, args.runs, args.warmup)
    if args.node_frames:
        with tempfile.TemporaryDirectory() as tmp:
            node = bench_node(args.node_frames, args.node_rate, Path(tmp), args.node_param)
        result["node"] = node
        print(f"\nnode (bundled models, segmentation on, {device}, parameters {args.node_param or 'default'}): "
              f"{node['frames_sent']} pairs at {node['input_rate_hz']:.1f} Hz")
        for key, value in node.items():
            if key != "diagnostics":
                print(f"  {key:32} {value}")
    write_bytes_atomic(args.json, json.dumps(result, indent=2).encode())
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
