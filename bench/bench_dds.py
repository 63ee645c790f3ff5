"""4K images over DDS into the node: how many arrive, per Fast DDS shared-memory segment size.

A publisher process sends 3840 x 2160 pairs (16UC1 thermal + rgb8 RGB, 16.6 + 24.9 MB, one stamp) at
--rate Hz, best effort like a camera, to the real node in its own process (fused output only, one torch
thread); both processes use the profile under test. The node's /diagnostics give what it received and
each input's stamp offset (arrival minus stamp, one clock: the delivery time). Prints a table and writes
bench/results/dds.json.

    .venv/bin/python bench/bench_dds.py [--count 50] [--rate 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "dds.json"
HEIGHT, WIDTH = 2160, 3840
DOMAIN = str(90 + os.getpid() % 10)


def publish(count: int, rate: float) -> None:
    """The camera side: wait for the node's subscriptions, send ``count`` pairs at ``rate``, print SENT."""
    import numpy as np
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = Node("bench_dds_camera")
    pubs = [node.create_publisher(Image, topic, qos_profile_sensor_data)
            for topic in ("thermal/image_raw", "rgb/image_raw")]
    while min(p.get_subscription_count() for p in pubs) == 0:
        time.sleep(0.1)
    time.sleep(1.0)
    rng = np.random.default_rng(0)
    thermal = Image(height=HEIGHT, width=WIDTH, encoding="16UC1", step=2 * WIDTH)
    thermal.data = (rng.integers(3000, 9000, HEIGHT * WIDTH, dtype=np.uint16)).tobytes()
    rgb = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=3 * WIDTH)
    rgb.data = rng.integers(0, 256, HEIGHT * WIDTH * 3, dtype=np.uint8).tobytes()
    start = time.monotonic()
    for i in range(count):
        now = time.time_ns()
        for msg in (thermal, rgb):
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
        pubs[0].publish(thermal)
        pubs[1].publish(rgb)
        time.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
    time.sleep(1.0)
    print(f"SENT {count}", flush=True)
    node.destroy_node()
    rclpy.shutdown()


class DiagnosticsListener:
    """The node's latest /diagnostics values, read from this process (default transport: small messages)."""

    def __init__(self) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        self.context = Context()
        rclpy.init(context=self.context, domain_id=int(DOMAIN))
        self.node = Node("bench_dds_listener", context=self.context)
        self.values: dict[str, str] = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def _on(self, msg) -> None:
        for status in msg.status:
            if status.name.endswith("seafusion_node"):
                self.values = {kv.key: kv.value for kv in status.values}

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.context.try_shutdown()


def run(profile: Path, count: int, rate: float, listener: DiagnosticsListener, logs: Path) -> dict:
    env = dict(os.environ, FASTDDS_DEFAULT_PROFILES_FILE=str(profile), FASTRTPS_DEFAULT_PROFILES_FILE=str(profile),
               ROS_DOMAIN_ID=DOMAIN, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    with open(logs / f"node_{profile.stem}.log", "wb") as log:
        node = subprocess.Popen([sys.executable, "-m", "seafusion_ros.ros.node", "--ros-args", "-p",
                                 "outputs.mask:=false", "-p", "outputs.overlay:=false", "-p", "torch_threads:=1",
                                 "-p", "diagnostics.period:=0.5", "-p", "diagnostics.input_timeout:=60.0"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            camera = subprocess.run([sys.executable, __file__, "--publish", "--count", str(count), "--rate", str(rate)],
                                    env=env, capture_output=True, text=True, timeout=count / rate + 300)
            if "SENT" not in camera.stdout:
                raise SystemExit(f"the publisher failed: {camera.stderr[-2000:]}")
            time.sleep(2.0)
            values = dict(listener.values)
        finally:
            node.terminate()
            node.wait(30)
    return {"thermal_received": int(values.get("thermal_received", 0)),
            "rgb_received": int(values.get("rgb_received", 0)),
            "paired": int(values.get("paired", 0)),
            "thermal_delivery_ms": float(values.get("thermal_stamp_offset_ms", "nan")),
            "rgb_delivery_ms": float(values.get("rgb_stamp_offset_ms", "nan"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=50, help="pairs to send")
    parser.add_argument("--rate", type=float, default=5.0, help="pairs per second")
    parser.add_argument("--publish", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish:
        publish(args.count, args.rate)
        return
    from seafusion_ros.ros import dds_profile

    rows = []
    listener = DiagnosticsListener()
    with tempfile.TemporaryDirectory(prefix="bench_dds_") as tmp:
        small = Path(tmp) / "segment_16mib.xml"
        small.write_text(dds_profile.profile_text(16 << 20))
        for label, profile in (("16 MiB segment", small), ("packaged profile", dds_profile.PROFILE)):
            result = run(profile, args.count, args.rate, listener, Path(tmp))
            rows.append({"profile": label, "segment_mib": dds_profile.segment_bytes(profile) / 2**20,
                         "sent": args.count, **result})
    listener.close()
    print(f"3840x2160 pairs (16UC1 + rgb8) at {args.rate:g} Hz into the node, best effort, {args.count} sent")
    print(f"{'profile':18s} {'segment MiB':>11s} {'thermal rx':>10s} {'rgb rx':>7s} {'paired':>6s} "
          f"{'delivery ms (thermal / rgb)':>28s}")
    for r in rows:
        print(f"{r['profile']:18s} {r['segment_mib']:11.0f} {r['thermal_received']:10d} {r['rgb_received']:7d} "
              f"{r['paired']:6d} {r['thermal_delivery_ms']:13.0f} / {r['rgb_delivery_ms']:.0f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp_json = RESULTS.with_suffix(".json.tmp")
    tmp_json.write_text(json.dumps({"rows": rows, "rate_hz": args.rate, "size": [HEIGHT, WIDTH],
                                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}},
                                   indent=2) + "\n")
    os.replace(tmp_json, RESULTS)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
