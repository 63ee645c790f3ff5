"""Node overhead and end-to-end latency at 640 x 480.

1. Overhead per pair excluding inference, in this process: decode both inputs (16UC1 thermal, bgr8 RGB),
   registration (none / homography), overlay blend, encode the three outputs, and publish them over
   DDS to a subscriber in a second ROS context.
2. End-to-end over DDS: the real node in its own process (randomly initialised fusion and
   segmentation networks of the real sizes) gets pairs stamped with the current time, one at a time;
   latency = arrival of the overlay here - stamp (median over all but the first pair). The node's own
   per-stage latencies come from /diagnostics.

Prints a table and writes bench/results/node.json. Usage: .venv/bin/python bench/bench_node.py [--pairs N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
import torch
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test"))

from ros_graph import (  # noqa: E402 - the test helpers live in test/
    DOMAIN_ID,
    NodeProcess,
    Probe,
    image_msg,
    node_command,
    rgb_frame,
    sensor_qos,
    stamp_ns,
    thermal_frame,
    write_random_fusion_weights,
)

from seafusion_ros.imaging.overlay import blend_overlay, default_palette, palette_array  # noqa: E402
from seafusion_ros.imaging.registration import Registration  # noqa: E402
from seafusion_ros.models.checkpoint import save_checkpoint  # noqa: E402
from seafusion_ros.models.segmentation import ARCH, bisenet_lite, segmentation_card_fields  # noqa: E402
from seafusion_ros.ros.image_conversion import image_to_numpy, numpy_to_image  # noqa: E402

HEIGHT, WIDTH = 480, 640
RESULTS = REPO / "bench" / "results" / "node.json"


def _median_ms(samples: list[float]) -> float:
    return 1000.0 * statistics.median(samples)


def overhead(repeats: int) -> dict[str, float]:
    """Median milliseconds per pair for each step the node adds around the engine."""
    thermal_msg = image_msg(thermal_frame(HEIGHT, WIDTH, 0), "16UC1", 1)
    rgb_msg = image_msg(rgb_frame(HEIGHT, WIDTH, 0), "bgr8", 1)
    fused = rgb_frame(HEIGHT, WIDTH, 1)
    mask = np.random.default_rng(0).integers(0, 9, (HEIGHT, WIDTH), dtype=np.uint8)
    palette = palette_array(default_palette(9))
    homography = Registration("homography", [1.02, 0.01, -5, -0.01, 1.02, 3, 0, 0, 1])
    homography.warp_thermal(image_to_numpy(thermal_msg), (HEIGHT, WIDTH))  # maps computed once, not timed

    context = Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    pub_node = Node("bench_publisher", context=context)
    sub_context = Context()
    rclpy.init(context=sub_context, domain_id=DOMAIN_ID)
    sub_node = Node("bench_subscriber", context=sub_context)
    received = [0]
    for topic in ("fused", "mask", "overlay"):
        sub_node.create_subscription(
            Image, topic, lambda _m: received.__setitem__(0, received[0] + 1), sensor_qos(True, 10)
        )
    pubs = {t: pub_node.create_publisher(Image, t, sensor_qos(True, 10)) for t in ("fused", "mask", "overlay")}
    executor = SingleThreadedExecutor(context=sub_context)
    executor.add_node(sub_node)
    running = True

    def spin() -> None:
        while running:
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    deadline = time.monotonic() + 30
    while any(p.get_subscription_count() == 0 for p in pubs.values()) and time.monotonic() < deadline:
        time.sleep(0.05)

    steps = {k: [] for k in ("decode", "register_homography", "overlay", "encode", "publish")}
    for _ in range(repeats):
        t0 = time.perf_counter()
        thermal = image_to_numpy(thermal_msg)
        image_to_numpy(rgb_msg)
        t1 = time.perf_counter()
        homography.warp_thermal(thermal, (HEIGHT, WIDTH))
        t2 = time.perf_counter()
        overlay = blend_overlay(fused, mask, palette, 0.5)
        t3 = time.perf_counter()
        msgs = {
            "fused": numpy_to_image(fused, "rgb8", rgb_msg.header),
            "mask": numpy_to_image(mask, "mono8", rgb_msg.header),
            "overlay": numpy_to_image(overlay, "rgb8", rgb_msg.header),
        }
        t4 = time.perf_counter()
        for topic, msg in msgs.items():
            pubs[topic].publish(msg)
        t5 = time.perf_counter()
        for key, seconds in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            steps[key].append(seconds)
        time.sleep(0.02)
    running = False
    spinner.join()
    executor.shutdown()
    for node, ctx in ((pub_node, context), (sub_node, sub_context)):
        node.destroy_node()
        ctx.try_shutdown()
    result = {key: _median_ms(values) for key, values in steps.items()}
    result["total_excluding_registration"] = sum(v for k, v in result.items() if k != "register_homography")
    result["total_with_homography"] = sum(result[k] for k in steps)
    return result


def end_to_end(pairs: int, tmp: Path) -> dict[str, float]:
    """The real node over DDS, one pair at a time (no queueing): latency from stamp to overlay arrival."""
    torch.manual_seed(0)
    fusion = write_random_fusion_weights(tmp / "fusion.pt")
    seg = bisenet_lite(9)
    palette = default_palette(9)
    card = {
        "num_classes": 9,
        "classes": [f"c{i}" for i in range(9)],
        "palette": palette,
        **segmentation_card_fields(seg),
    }
    segmentation = save_checkpoint(tmp / "segmentation.pt", seg, ARCH, card)
    node = NodeProcess(
        node_command(
            "-p",
            f"fusion_weights:={fusion}",
            "-p",
            f"segmentation_weights:={segmentation}",
            "-p",
            "qos.reliability:=reliable",
            "-p",
            "diagnostics.period:=0.5",
        ),
        tmp / "node.log",
    )
    probe = Probe()
    latencies = []
    try:
        probe.wait_for_node(120)
        probe.wait_for_outputs_matched(("fused", "mask", "overlay"))
        thermal = thermal_frame(HEIGHT, WIDTH, 0)
        rgb = rgb_frame(HEIGHT, WIDTH, 0)
        for k in range(pairs + 1):
            now = time.time_ns()
            probe.publish(image_msg(thermal, "16UC1", now), image_msg(rgb, "bgr8", now))
            probe.wait_for(lambda n=k: len(probe.outputs("overlay")) > n, 120, "the overlay")
            latencies.append((time.time_ns() - stamp_ns(probe.outputs("overlay")[-1])) / 1e9)
        time.sleep(1.2)
        diag = probe.latest_diagnostics()
    finally:
        probe.close()
        node.stop()
    steady = latencies[1:]  # the first pair pays for lazy initialisation
    result = {"end_to_end_median_ms": _median_ms(steady), "end_to_end_max_ms": 1000 * max(steady)}
    for stage in ("decode", "fuse", "segment", "publish", "end_to_end"):
        result[f"node_{stage}_mean_ms"] = float(diag[f"latency_{stage}_ms"])
    # The node's end-to-end (publish time - stamp) covers the same pairs, first included: the difference
    # is the overlay's DDS delivery to this process.
    result["dds_delivery_mean_ms"] = 1000 * statistics.mean(latencies) - result["node_end_to_end_mean_ms"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=8, help="pairs sent to the node for end-to-end latency")
    parser.add_argument("--repeats", type=int, default=50, help="repetitions of the overhead measurement")
    args = parser.parse_args()
    over = overhead(args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        e2e = end_to_end(args.pairs, Path(tmp))
    print(
        f"seafusion node at {WIDTH}x{HEIGHT}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} on CPU"
    )
    print(f"{'node overhead per pair (no inference)':<44}{'median ms':>10}")
    for key, value in over.items():
        print(f"  {key:<42}{value:>10.2f}")
    print(f"{'end-to-end over DDS (real node process)':<44}{'ms':>10}")
    for key, value in e2e.items():
        print(f"  {key:<42}{value:>10.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "size": [HEIGHT, WIDTH],
        "device": "cpu",
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "pairs": args.pairs,
        "overhead_ms": over,
        "end_to_end_ms": e2e,
    }
    tmp_path = RESULTS.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(payload, indent=2))
    os.replace(tmp_path, RESULTS)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
