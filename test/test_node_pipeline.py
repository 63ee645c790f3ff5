"""The real node in its own process over real DDS: pairing of 9 Hz thermal with 30 Hz RGB, outputs,
class mask, and bad input that must be reported without killing the node.

The node loads a randomly initialised fusion network and a randomly initialised bisenet_lite
segmentation network (test fixtures) through its normal parameters, so the mask's values are
meaningless but its encoding, size, stamps and id range are the real thing.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from ros_graph import (
    TEST_CLASSES,
    TEST_PALETTE,
    NodeProcess,
    Probe,
    image_msg,
    node_command,
    rgb_frame,
    stamp_ns,
    thermal_frame,
    write_random_fusion_weights,
    write_random_segmentation_weights,
)
from sensor_msgs.msg import Image

from seafusion_ros.imaging.time_sync import pair_streams

HEIGHT, WIDTH = 120, 160
SLOP_S = 0.012
QUEUE = 30
SECONDS = 3.0


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("node_pipeline")
    command = node_command(
        "-p",
        f"fusion_weights:={write_random_fusion_weights(tmp / 'fusion.pt')}",
        "-p",
        f"segmentation_weights:={write_random_segmentation_weights(tmp / 'segmentation.pt')}",
        "-p",
        "qos.reliability:=reliable",
        "-p",
        "qos.depth:=100",
        "-p",
        f"sync.slop:={SLOP_S}",
        "-p",
        f"sync.queue_size:={QUEUE}",
        "-p",
        "diagnostics.period:=0.2",
        "-p",
        "torch_threads:=1",
    )
    node = NodeProcess(command, tmp / "node.log")
    probe = None
    try:
        probe = Probe()
        probe.wait_for_node()
        probe.wait_for_outputs_matched(("fused", "mask", "overlay"))
        yield node, probe
    finally:
        if probe is not None:
            probe.close()
        node.stop()
        print(node.log()[-4000:])


def _camera_streams(seed: int, start_s: float) -> list[tuple[int, int, Image]]:
    """(input, stamp, message): thermal 16UC1 at 9 Hz, RGB bgr8 at 30 Hz, +-2 ms jitter, by stamp."""
    rng = np.random.default_rng(seed)
    events = []
    for index, rate, encoding in ((0, 9.0, "16UC1"), (1, 30.0, "bgr8")):
        for k in range(int(SECONDS * rate)):
            stamp = int((start_s + k / rate) * 1e9) + int(rng.integers(-2_000_000, 2_000_001))
            frame = thermal_frame(HEIGHT, WIDTH, k) if index == 0 else rgb_frame(HEIGHT, WIDTH, k)
            events.append(
                (index, stamp, image_msg(frame, encoding, stamp, "thermal" if index == 0 else "rgb_cam"))
            )
    events.sort(key=lambda e: e[1])
    return events


def _settled(probe: Probe, paired: int) -> bool:
    """All pairs accounted for: each one published, dropped or skipped."""
    accounted = sum(probe.counter(k) for k in ("processed", "dropped_pairs", "skipped_no_subscribers"))
    return probe.counter("paired") == paired and accounted == paired


def test_streams_pair_as_the_sync_rules_say_and_outputs_carry_the_rgb_header(graph):
    node, probe = graph
    events = _camera_streams(seed=0, start_s=100.0)
    expected = pair_streams([(i, s, s) for i, s, _ in events], "approximate", QUEUE, round(SLOP_S * 1e9))
    assert 0 < len(expected) < int(SECONDS * 9)  # jitter makes some thermal frames miss the slop
    before = probe.counter("paired")
    for index, _, msg in events:
        probe.publish(msg if index == 0 else None, msg if index == 1 else None)
        time.sleep(0.004)
    total = before + len(expected)
    probe.wait_for(lambda: _settled(probe, total), 60, f"{len(expected)} pairs accounted for")

    processed = probe.counter("processed")
    for name in ("fused", "mask", "overlay"):
        probe.wait_for(lambda n=name: len(probe.outputs(n)) >= processed, 30, f"{processed} {name} messages")
    paired_rgb_stamps = {rgb for _, rgb in expected}
    fused = probe.outputs("fused")
    assert fused, "no fused image received"
    for name, encoding, channels in (("fused", "rgb8", 3), ("mask", "mono8", 1), ("overlay", "rgb8", 3)):
        outputs = probe.outputs(name)
        assert len(outputs) == processed, name
        for msg in outputs:
            assert stamp_ns(msg) in paired_rgb_stamps
            assert msg.header.frame_id == "rgb_cam"
            assert (msg.encoding, msg.height, msg.width, msg.step) == (
                encoding,
                HEIGHT,
                WIDTH,
                WIDTH * channels,
            )
            assert len(msg.data) == HEIGHT * WIDTH * channels
    fused_stamps = [stamp_ns(m) for m in probe.outputs("fused")]
    assert fused_stamps == [stamp_ns(m) for m in probe.outputs("mask")]
    assert fused_stamps == sorted(fused_stamps)
    for msg in probe.outputs("mask"):
        assert np.frombuffer(msg.data, np.uint8).max() < len(TEST_CLASSES)
    assert probe.classes == [{"classes": TEST_CLASSES, "palette": TEST_PALETTE}]
    # Unpaired messages after the last pair may reach a later diagnostics message than the pairs did.
    probe.wait_for(lambda: probe.counter("thermal_received") >= 27 and probe.counter("rgb_received") >= 90, 30,
                   "every input message counted")
    diag = probe.latest_diagnostics()
    assert diag["synchroniser"] == "seafusion_ros.imaging.time_sync" and diag["segmentation"] == "on"
    for stage in ("decode", "fuse", "segment", "publish", "end_to_end"):
        assert float(diag[f"latency_{stage}_ms"]) > 0.0
    assert node.alive()


def _send_until_counted(probe: Probe, kind: str, thermal: Image | None, rgb: Image | None) -> None:
    before = probe.counter(f"bad_input_{kind}")
    probe.publish(thermal, rgb)
    probe.wait_for(lambda: probe.counter(f"bad_input_{kind}") > before, 30, f"bad input {kind} to be counted")


def _good_pair(stamp: int) -> tuple[Image, Image]:
    return (
        image_msg(thermal_frame(HEIGHT, WIDTH, 1), "16UC1", stamp),
        image_msg(rgb_frame(HEIGHT, WIDTH, 1), "bgr8", stamp, "rgb_cam"),
    )


def test_each_bad_input_is_reported_and_the_node_keeps_working(graph):
    node, probe = graph
    stamp = int(500e9)
    unknown = image_msg(thermal_frame(HEIGHT, WIDTH, 0), "16UC1", stamp)
    unknown.encoding = "yuv422_weird"
    _send_until_counted(probe, "unknown_encoding", unknown, None)

    short = image_msg(thermal_frame(HEIGHT, WIDTH, 0), "16UC1", stamp)
    short.data = bytes(short.data)[: len(short.data) // 2]
    _send_until_counted(probe, "short_data", short, None)

    empty = Image(height=0, width=0, encoding="bgr8", step=0)
    empty.header.stamp.sec = 500
    _send_until_counted(probe, "zero_size", None, empty)

    odd = Image(height=HEIGHT, width=7, encoding="yuv422", step=14, data=bytes(14 * HEIGHT))
    odd.header.stamp.sec = 500
    _send_until_counted(probe, "odd_width", None, odd)

    nan = thermal_frame(HEIGHT, WIDTH, 0).astype(np.float32)
    nan[10:20, 30:40] = np.nan
    _send_until_counted(probe, "nan_thermal", image_msg(nan, "32FC1", stamp), _good_pair(stamp)[1])

    stamp += int(1e9)
    small = image_msg(thermal_frame(HEIGHT // 2, WIDTH // 2, 0), "16UC1", stamp)
    _send_until_counted(probe, "size_mismatch", small, _good_pair(stamp)[1])

    _send_until_counted(probe, "stamp_backwards", None, _good_pair(stamp - int(10e9))[1])
    diag = probe.latest_diagnostics()
    assert "stamp_backwards" in diag["last_bad_input"]

    stamp += int(1e9)
    count = len(probe.outputs("fused"))
    thermal, rgb = _good_pair(stamp)
    rgb.encoding = "8UC3"  # cv_bridge passthrough of the same BGR bytes
    probe.publish(thermal, rgb)
    probe.wait_for(lambda: len(probe.outputs("fused")) > count, 30, "a fused image after the bad input")
    assert stamp_ns(probe.outputs("fused")[-1]) == stamp
    assert node.alive()
    log = node.log()
    for kind in (
        "unknown_encoding",
        "short_data",
        "zero_size",
        "odd_width",
        "nan_thermal",
        "size_mismatch",
        "stamp_backwards",
    ):
        assert f"bad input ({kind})" in log
