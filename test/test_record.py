"""seafusion-record's recorder over real DDS: with header log times an undecodable message is skipped and
counted, and recording goes on."""

from __future__ import annotations

import time

import numpy as np
import pytest
import rclpy
from bag_files import assert_self_contained
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from ros_graph import DOMAIN_ID, image_msg
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import Image

from seafusion_ros.bags.messages import deserialize_image
from seafusion_ros.imaging.stamps import stamp_to_ns
from seafusion_ros.ros.bag_recorder import BagRecorder

GARBAGE = b"\x00\x01\x00\x00\xff\xff\xff\x7f"  # a CDR header, then a length no buffer can hold


def test_header_log_time_skips_and_counts_an_undecodable_message_and_keeps_recording(tmp_path):
    context = Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    try:
        node = Node("record_test", context=context)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
        publisher = node.create_publisher(Image, "/record_test/image", qos)
        recorder = BagRecorder(node, tmp_path / "bag", ["/record_test/image"], log_time="header")
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)

        def spin_until(condition, what: str) -> None:
            deadline = time.monotonic() + 30.0
            while not condition():
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                recorder.discover()
                executor.spin_once(timeout_sec=0.05)

        spin_until(lambda: publisher.get_subscription_count() > 0, "the recorder's subscription")
        frame = np.zeros((4, 6), np.uint8)
        publisher.publish(image_msg(frame, "mono8", 5_000_000_000))
        publisher.publish(GARBAGE)
        publisher.publish(image_msg(frame, "mono8", 6_000_000_000))
        spin_until(lambda: recorder.stats.recorded["/record_test/image"] == 2, "the second valid message")
        assert recorder.stats.undecodable == {"/record_test/image": 1}
        out = recorder.finish()
        executor.shutdown()
        node.destroy_node()
    finally:
        context.try_shutdown()
    with Reader(out) as reader:
        logged = [(t, stamp_to_ns(deserialize_image(raw).header.stamp)) for _, t, raw in reader.messages()]
    assert logged == [(5_000_000_000, 5_000_000_000), (6_000_000_000, 6_000_000_000)]


def test_finished_recording_stands_on_its_own(tmp_path, context):
    node = Node("record_files_test", context=context)
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
    publisher = node.create_publisher(Image, "/record_files_test/image", qos)
    recorder = BagRecorder(node, tmp_path / "recording", ["/record_files_test/image"])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    deadline = time.monotonic() + 30.0
    while recorder.stats.recorded.get("/record_files_test/image", 0) < 1:
        assert time.monotonic() < deadline, "timed out waiting for the recorder to receive a message"
        recorder.discover()
        if publisher.get_subscription_count() > 0:
            publisher.publish(image_msg(np.zeros((4, 6), np.uint8), "mono8", 5_000_000_000))
        executor.spin_once(timeout_sec=0.05)
    out = recorder.finish()
    executor.shutdown()
    node.destroy_node()
    assert out == tmp_path / "recording"
    assert_self_contained(out, tmp_path / "copy")
    assert not [p.name for p in tmp_path.iterdir() if "partial" in p.name]


def test_meaningless_settings_are_refused_before_anything_is_written(tmp_path, context):
    node = Node("record_refuse_test", context=context)
    for settings, problem in (({"depth": 0}, "QoS depth must be >= 1, got 0"),
                              ({"log_time": "later"}, "log time must be one of")):
        with pytest.raises(ValueError, match=problem):
            BagRecorder(node, tmp_path / "bag", ["/record_refuse_test/image"], **settings)
    assert list(tmp_path.iterdir()) == []
    node.destroy_node()
