"""The live path of the recordings round trip: bag -> seafusion-play -> real node -> seafusion-record -> bag.

Every process is real (own ROS domain, localhost discovery). The node loads randomly initialised
fusion and segmentation networks, so pixel values are meaningless; stamps, sizes, encodings, the
latched classes, /clock and sim-time receive stamps are the real thing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_graph import (
    DOMAIN_ID,
    REPO,
    TEST_CLASSES,
    NodeProcess,
    node_command,
    write_random_fusion_weights,
    write_random_segmentation_weights,
)
from rosbags.rosbag2 import Reader
from rosgraph_msgs.msg import Clock

from seafusion_ros.bags.messages import TYPESTORE, deserialize_image, image_array
from seafusion_ros.bags.recording import StreamTiming, synthetic_frames, write_pair_bag
from seafusion_ros.imaging.stamps import stamp_to_ns
from seafusion_ros.ros.background_spinner import BackgroundSpinner

HEIGHT, WIDTH = 120, 160
SLOP_NS = 50_000_000
CLOCK_TAIL_S = 3.0
OUTPUTS = {"/fused/image": "rgb8", "/segmentation/mask": "mono8", "/segmentation/overlay": "rgb8"}


def _env() -> dict[str, str]:
    return dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                PYTHONUNBUFFERED="1")


def _cli(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


class GraphWatch:
    """A test-side node: graph queries and the /clock messages it sees."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        self.node = Node("live_playback_watch", context=self.context)
        self.clock_ns: list[int] = []
        self.node.create_subscription(Clock, "/clock", self._on_clock,
                                      QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT))
        self.spinner = BackgroundSpinner(self.node, self.context)

    def _on_clock(self, msg: Clock) -> None:
        self.clock_ns.append(msg.clock.sec * 1_000_000_000 + msg.clock.nanosec)

    def wait_for(self, condition, timeout: float, what: str, processes: list[NodeProcess]) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for process in processes:
                assert process.alive(), f"{process.log_path.name} died:\n{process.log()[-3000:]}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    def close(self) -> None:
        self.spinner.stop()
        self.node.destroy_node()
        self.context.try_shutdown()


def _bag_messages(bag: Path) -> list[tuple[str, int, bytes]]:
    with Reader(bag) as reader:
        return [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]


@pytest.fixture(scope="module")
def input_bag(tmp_path_factory) -> Path:
    """1.5 s of the synthetic scene at 160 x 120: thermal 16UC1 9 Hz, RGB rgb8 30 Hz."""
    bag = tmp_path_factory.mktemp("live_bag") / "input_bag"
    return write_pair_bag(bag, synthetic_frames(1.5, StreamTiming(9.0, 0.0, 0.002), StreamTiming(30.0, 0.0, 0.002),
                                                HEIGHT, WIDTH), progress=False)


@pytest.mark.slow
def test_play_node_record_round_trip(input_bag, tmp_path):
    out_bag = tmp_path / "outputs"
    node = NodeProcess(node_command(
        "-p", f"fusion_weights:={write_random_fusion_weights(tmp_path / 'fusion.pt')}",
        "-p", f"segmentation_weights:={write_random_segmentation_weights(tmp_path / 'segmentation.pt')}",
        "-p", "use_sim_time:=true", "-p", "qos.reliability:=reliable", "-p", "qos.depth:=100",
        "-p", "torch_threads:=1"), tmp_path / "node.log")
    recorder = NodeProcess(_cli("seafusion_ros.cli.record", str(out_bag), *OUTPUTS, "/segmentation/classes", "/clock",
                                "--ros-args", "-p", "use_sim_time:=true"), tmp_path / "recorder.log")
    watch = GraphWatch()
    try:
        watch.wait_for(lambda: watch.node.count_subscribers("/thermal/image_raw") > 0
                       and watch.node.count_subscribers("/rgb/image_raw") > 0, 120, "the node's inputs", [node])
        watch.wait_for(lambda: all(watch.node.count_subscribers(t) > 0 for t in OUTPUTS), 30,
                       "the recorder's subscriptions", [node, recorder])
        played = subprocess.run(_cli("seafusion_ros.cli.play", str(input_bag), "--clock", "50",
                                     "--clock-tail", str(CLOCK_TAIL_S), "--qos-reliability", "reliable",
                                     "--wait-for-subscribers", "30", "--clock-subscribers", "2"),
                                cwd=REPO, env=_env(), capture_output=True, text=True, timeout=90)
        assert played.returncode == 0, played.stderr
        assert "published /thermal/image_raw 13, /rgb/image_raw 45" in played.stdout
        time.sleep(1.0)
        recorder.stop()
        assert recorder.proc.returncode == 130, recorder.log()  # stopped by the SIGINT it was sent
    finally:
        watch.close()
        recorder.stop()
        node.stop()
    assert not (tmp_path / ".outputs.partial").exists()

    inputs = _bag_messages(input_bag)
    with Reader(input_bag) as reader:
        bag_start, bag_end = reader.start_time, reader.end_time
    rgb = {stamp_to_ns(deserialize_image(raw).header.stamp): deserialize_image(raw)
           for topic, _, raw in inputs if topic == "/rgb/image_raw"}
    thermal = np.array([stamp_to_ns(deserialize_image(raw).header.stamp)
                        for topic, _, raw in inputs if topic == "/thermal/image_raw"])
    recorded = _bag_messages(out_bag)
    by_topic: dict[str, list[tuple[int, object]]] = {}
    for topic, log_ns, raw in recorded:
        msgtype = "rosgraph_msgs/msg/Clock" if topic == "/clock" else "std_msgs/msg/String" if "classes" in topic \
            else "sensor_msgs/msg/Image"
        by_topic.setdefault(topic, []).append((log_ns, TYPESTORE.deserialize_cdr(raw, msgtype)))

    stamps = {}
    for topic, encoding in OUTPUTS.items():
        assert by_topic.get(topic), f"nothing recorded on {topic}; node log:\n{node.log()[-3000:]}"
        stamps[topic] = []
        for log_ns, msg in by_topic[topic]:
            stamp = stamp_to_ns(msg.header.stamp)
            source = rgb[stamp]  # every output carries the stamp of an input RGB image ...
            assert np.abs(thermal - stamp).min() < SLOP_NS  # ... that had a thermal partner within the slop
            assert msg.header.frame_id == source.header.frame_id == "rgb_camera"
            assert (msg.height, msg.width, msg.encoding) == (HEIGHT, WIDTH, encoding)
            assert msg.step == WIDTH * (3 if encoding == "rgb8" else 1) and len(msg.data) == msg.step * HEIGHT
            # received after the input was stamped, in bag time (/clock), not the wall clock
            assert stamp <= log_ns <= bag_end + int((CLOCK_TAIL_S + 2.0) * 1e9)
            stamps[topic].append(stamp)
    assert stamps["/fused/image"] == stamps["/segmentation/mask"] == stamps["/segmentation/overlay"]
    assert stamps["/fused/image"] == sorted(stamps["/fused/image"])
    for _, msg in by_topic["/segmentation/mask"]:
        assert image_array(msg).max() < len(TEST_CLASSES)

    (classes,) = by_topic["/segmentation/classes"]  # latched: recorded although published before we subscribed
    assert json.loads(classes[1].data)["classes"] == TEST_CLASSES
    assert bag_start <= classes[0]  # received before any /clock, logged at the first clock time, not at 0

    clock = watch.clock_ns
    assert clock and clock == sorted(clock)
    assert bag_start <= clock[0] and clock[-1] <= bag_end + int((CLOCK_TAIL_S + 2.0) * 1e9)
    assert clock[-1] >= bag_end  # the clock ran through the whole bag (and its tail)
    assert by_topic["/clock"]


def test_play_into_recorder_keeps_every_byte_and_publishes_no_clock_unless_asked(input_bag, tmp_path):
    """Player -> recorder alone, reliable, twice as fast, one topic renamed: the same messages, in order."""
    out_bag = tmp_path / "copy"
    recorder = NodeProcess(_cli("seafusion_ros.cli.record", str(out_bag), "/cam/thermal", "/rgb/image_raw",
                                "--storage", "sqlite3"), tmp_path / "recorder.log")
    watch = GraphWatch()
    try:
        played = subprocess.run(_cli("seafusion_ros.cli.play", str(input_bag), "--rate", "2", "--qos-reliability",
                                     "reliable", "--remap", "/thermal/image_raw=/cam/thermal",
                                     "--wait-for-subscribers", "30"),
                                cwd=REPO, env=_env(), capture_output=True, text=True, timeout=90)
        assert played.returncode == 0, played.stderr
        assert not watch.clock_ns  # the watch node would have seen any /clock message
        time.sleep(1.0)
        recorder.stop()
        assert recorder.proc.returncode == 130, recorder.log()  # stopped by the SIGINT it was sent
    finally:
        watch.close()
        recorder.stop()
    original = _bag_messages(input_bag)
    copied = _bag_messages(out_bag)
    for source, target in (("/thermal/image_raw", "/cam/thermal"), ("/rgb/image_raw", "/rgb/image_raw")):
        assert [raw for t, _, raw in copied if t == target] == [raw for t, _, raw in original if t == source]


def test_player_names_a_missing_bag_and_a_bad_remap(tmp_path, input_bag):
    missing = subprocess.run(_cli("seafusion_ros.cli.play", str(tmp_path / "nope")), cwd=REPO, env=_env(),
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "bag not found" in missing.stderr and "Traceback" not in missing.stderr
    unknown = subprocess.run(_cli("seafusion_ros.cli.play", str(input_bag), "--topics", "/lidar"), cwd=REPO,
                             env=_env(), capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "topics not in the bag: ['/lidar']" in unknown.stderr


@pytest.mark.parametrize(("program", "option", "value"), [
    ("record", "--duration", "-1"), ("record", "--qos-depth", "0"),
    ("play", "--qos-depth", "0"), ("play", "--clock", "0"), ("play", "--ack-timeout", "-1")])
def test_record_and_play_refuse_meaningless_numbers_at_parse_time(input_bag, tmp_path, program, option, value):
    args = [str(tmp_path / "recording"), "/chatter"] if program == "record" else [str(input_bag)]
    done = subprocess.run(_cli(f"seafusion_ros.cli.{program}", *args, option, value), cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and f"argument {option}: expected" in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []  # no recording, not even an empty one
