"""Helpers for the node tests: real node processes, a probe node on real DDS, message builders, and
randomly initialised model files (test fixtures, meaningless weights, valid format).

Isolation: every test session uses its own ROS domain (from the pid) and localhost-only discovery, so
tests of other engineers running at the same time never see these topics.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String

from seafusion_ros.models.checkpoint import save_checkpoint
from seafusion_ros.models.seafusion import seafusion
from seafusion_ros.models.segmentation import ARCH, bisenet_lite, segmentation_card_fields
from seafusion_ros.ros.background_spinner import BackgroundSpinner
from seafusion_ros.ros.dds_profile import use_large_image_profile
from seafusion_ros.ros.image_conversion import numpy_to_image
from seafusion_ros.ros.node import SeaFusionNode

REPO = Path(__file__).resolve().parents[1]
DOMAIN_ID = 1 + os.getpid() % 100
use_large_image_profile()  # as the node does: this process and the node processes it starts
TEST_CLASSES = ["background", "person", "bicycle", "car"]
TEST_PALETTE = [[0, 0, 0], [220, 20, 60], [0, 128, 192], [250, 170, 30]]

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def write_random_fusion_weights(path: Path) -> Path:
    """A randomly initialised SeAFusion network in our checkpoint format (fast, valid, meaningless)."""
    torch.manual_seed(0)
    return save_checkpoint(path, seafusion(), "seafusion", {"name": "randomly initialised test fixture"})


def random_segmenter():
    """A small randomly initialised bisenet_lite (test fixture: class ids are meaningless)."""
    torch.manual_seed(0)
    return bisenet_lite(len(TEST_CLASSES), widths=(8, 8, 16, 16, 16), context=16).eval()


def write_random_segmentation_weights(path: Path) -> Path:
    """random_segmenter() saved so the node loads it through load_segmentation_model."""
    model = random_segmenter()
    card = {
        "name": "randomly initialised test fixture",
        "num_classes": len(TEST_CLASSES),
        "classes": TEST_CLASSES,
        "palette": TEST_PALETTE,
        **segmentation_card_fields(model),
    }
    return save_checkpoint(path, model, ARCH, card)


def stamp_ns(msg: Any) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def image_msg(array: np.ndarray, encoding: str, stamp: int, frame_id: str = "") -> Image:
    msg = numpy_to_image(array, encoding)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp), 1_000_000_000)
    msg.header.frame_id = frame_id
    return msg


def thermal_frame(height: int, width: int, seed: int) -> np.ndarray:
    """14-bit-like radiometric counts: a warm blob on a gradient."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    blob = 3000.0 * np.exp(-((xs - width / 2) ** 2 + (ys - height / 2) ** 2) / (0.05 * width * height))
    return (7000 + 5 * xs + blob + rng.normal(0, 20, (height, width))).astype(np.uint16)


def rgb_frame(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def node_command(*ros_args: str, module: str = "seafusion_ros.ros.node") -> list[str]:
    return [sys.executable, "-m", module, "--ros-args", *ros_args]


class NodeProcess:
    """The real node in its own process, in this session's ROS domain; logs go to a file."""

    def __init__(self, command: list[str], log_path: Path) -> None:
        env = dict(
            os.environ,
            ROS_DOMAIN_ID=str(DOMAIN_ID),
            ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
            PYTHONUNBUFFERED="1",
            RCUTILS_LOGGING_BUFFERED_STREAM="0",
        )
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.flush()

    def stop(self) -> None:
        """SIGINT (clean shutdown), then SIGKILL if it does not exit."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def wait_until(condition: Callable[[], bool], timeout: float, what: str, diagnostics: Callable[[], Any]) -> None:
    """Poll ``condition``; on timeout fail naming ``what`` and the node's last diagnostics."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last diagnostics: {diagnostics()}")


def node_subscriptions(node: Node, topics: set[str], timeout: float = 30.0) -> dict[str, list[str]]:
    """The node's subscriptions by topic, once every one of ``topics`` is visible in the ROS graph.

    The graph is filled by DDS discovery, even for a node's own subscriptions, so it is polled.
    """

    def subscribed() -> dict[str, list[str]]:
        return dict(node.get_subscriber_names_and_types_by_node(node.get_name(), node.get_namespace()))

    wait_until(lambda: topics <= subscribed().keys(), timeout, f"subscriptions {sorted(topics)} in the graph",
               subscribed)
    return subscribed()


def sensor_qos(reliable: bool, depth: int) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
    )


class Probe:
    """A test-side node: publishes the camera streams, records outputs and /diagnostics.

    Runs in its own rclpy context (this session's domain) with a background executor thread.
    """

    OUTPUTS = {"fused": "fused/image", "mask": "segmentation/mask", "overlay": "segmentation/overlay"}

    def __init__(
        self,
        namespace: str = "",
        reliable: bool = True,
        depth: int = 100,
        outputs: tuple[str, ...] = ("fused", "mask", "overlay"),
        context: Context | None = None,
    ) -> None:
        self.own_context = context is None
        self.context = context or Context()
        if self.own_context:
            rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        self.node = Node("seafusion_test_probe", namespace=namespace or "/", context=self.context)
        self.node_name = f"{namespace.rstrip('/')}/seafusion_node"  # the node under test, same namespace
        qos = sensor_qos(reliable, depth)
        self.thermal_pub = self.node.create_publisher(Image, "thermal/image_raw", qos)
        self.rgb_pub = self.node.create_publisher(Image, "rgb/image_raw", qos)
        self._lock = threading.Lock()
        self.received: dict[str, list[Image]] = {name: [] for name in self.OUTPUTS}
        self.diagnostics: list[dict[str, str]] = []
        self.classes: list[dict[str, Any]] = []
        self.output_subs: dict[str, Any] = {}
        self.subscribe_outputs(outputs)
        self._subs: list[Any] = []
        latched = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self._subs.append(
            self.node.create_subscription(String, "segmentation/classes", self._on_classes, latched)
        )
        self._subs.append(self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50))
        self.spinner = BackgroundSpinner(self.node, self.context)

    def subscribe_outputs(self, outputs: tuple[str, ...]) -> None:
        """Subscribe (reliable) to these outputs; the node computes only what has subscribers."""
        for name in outputs:
            self.output_subs[name] = self.node.create_subscription(
                Image, self.OUTPUTS[name], self._recorder(name), sensor_qos(True, 100)
            )

    def _recorder(self, name: str) -> Callable[[Image], None]:
        def record(msg: Image) -> None:
            with self._lock:
                self.received[name].append(msg)

        return record

    def _on_classes(self, msg: String) -> None:
        with self._lock:
            self.classes.append(json.loads(msg.data))

    def _on_diag(self, msg: DiagnosticArray) -> None:
        with self._lock:
            for status in msg.status:
                if "seafusion_node" in status.name:
                    values = {kv.key: kv.value for kv in status.values}
                    values.update(_name=status.name, _level=str(ord(status.level)), _message=status.message)
                    self.diagnostics.append(values)

    def outputs(self, name: str) -> list[Image]:
        with self._lock:
            return list(self.received[name])

    def latest_diagnostics(self, node_name: str | None = None) -> dict[str, str] | None:
        with self._lock:
            for values in reversed(self.diagnostics):
                if values["_name"] == (node_name or self.node_name):
                    return values
        return None

    def counter(self, key: str, node_name: str | None = None) -> int:
        diag = self.latest_diagnostics(node_name)
        return int(diag[key]) if diag is not None and key in diag else -1

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        wait_until(condition, timeout, what, self.latest_diagnostics)

    def wait_for_node(self, timeout: float = 90.0) -> None:
        """Until the node's inputs are matched and it reports diagnostics (it is active)."""
        self.wait_for(
            lambda: (
                self.thermal_pub.get_subscription_count() > 0
                and self.rgb_pub.get_subscription_count() > 0
                and (self.latest_diagnostics() or {}).get("state") == "active"
            ),
            timeout,
            "the node to be discovered and active",
        )

    def wait_for_outputs_matched(self, outputs: tuple[str, ...], timeout: float = 30.0) -> None:
        """Until every output subscription sees the node's publisher (so the node sees us)."""
        subs = [self.output_subs[name] for name in outputs]
        self.wait_for(
            lambda: all(sub.get_publisher_count() > 0 for sub in subs),
            timeout,
            f"output publishers {outputs}",
        )

    def publish(self, thermal: Image | None, rgb: Image | None) -> None:
        if thermal is not None:
            self.thermal_pub.publish(thermal)
        if rgb is not None:
            self.rgb_pub.publish(rgb)

    def close(self) -> None:
        self.spinner.stop()
        self.node.destroy_node()
        if self.own_context:
            self.context.try_shutdown()


def in_process_node(context: Context, weights: Path, node_name: str | None = None, **params: Any) -> SeaFusionNode:
    """The node in this process, unconfigured, with the small random test segmenter; params a__b = a.b.

    ``node_name``: a name of its own, for tests that read the graph by node name (a node of the default name
    destroyed by an earlier test can stay visible there until DDS discovery drops it).
    """
    overrides = [
        Parameter(k.replace("__", "."), value=v)
        for k, v in {
            "autostart": False,
            "fusion_weights": str(weights),
            "torch_threads": 1,
            "qos.reliability": "reliable",
            "diagnostics.period": 0.2,
            "diagnostics.input_timeout": 0.5,
            **params,
        }.items()
    ]
    card = {"classes": TEST_CLASSES, "palette": TEST_PALETTE}
    cli_args = ["--ros-args", "-r", f"__node:={node_name}"] if node_name else None
    return SeaFusionNode(
        context=context, parameter_overrides=overrides, segmenter=random_segmenter(), segmenter_card=card,
        cli_args=cli_args,
    )


def small_pair(stamp: int) -> tuple[Image, Image]:
    """A 48 x 64 16UC1 thermal + rgb8 pair with this stamp (ns)."""
    return (
        image_msg(thermal_frame(48, 64, 0), "16UC1", stamp),
        image_msg(rgb_frame(48, 64, 0), "rgb8", stamp, "cam"),
    )


class RunningNode:
    """A node spun on a thread with a probe beside it (the in-process lifecycle setting)."""

    def __init__(self, context: Context, node: SeaFusionNode) -> None:
        self.node = node
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(node)
        threading.Thread(target=self.executor.spin, daemon=True).start()
        self.probe = Probe(context=context)

    def activate(self) -> None:
        assert self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        self.probe.wait_for_node(30)
        self.probe.wait_for_outputs_matched(("fused", "mask", "overlay"))

    def close(self) -> None:
        self.probe.close()
        self.node.stop()
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
