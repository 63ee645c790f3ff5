"""Compressed image transport and camera_info over real DDS: the node in its own process subscribes the
``.../image_raw/compressed`` topics (16-bit PNG thermal, JPEG RGB), republishes the RGB camera's
calibration as ``fused/camera_info`` scaled to its output size, and counts corrupt frames without dying.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.node import Node
from ros_graph import (
    DOMAIN_ID,
    NodeProcess,
    node_command,
    node_subscriptions,
    rgb_frame,
    sensor_qos,
    stamp_ns,
    thermal_frame,
    wait_until,
    write_random_fusion_weights,
)
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from seafusion_ros.imaging.compressed import encode_compressed
from seafusion_ros.ros.background_spinner import BackgroundSpinner

HEIGHT, WIDTH = 96, 128
OUT_HEIGHT, OUT_WIDTH = 48, 64
K = [100.0, 0.0, 64.0, 0.0, 110.0, 48.0, 0.0, 0.0, 1.0]
P = [100.0, 0.0, 64.0, 0.0, 0.0, 110.0, 48.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def compressed_msg(array: np.ndarray, encoding: str, codec: str, stamp: int) -> CompressedImage:
    msg = CompressedImage()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    msg.header.frame_id = "rgb_optical" if encoding != "mono16" else "thermal_optical"
    msg.format, data = encode_compressed(array, encoding, codec)
    msg.data = data
    return msg


class CompressedProbe:
    """Publishes compressed cameras and camera_info; records fused images, fused camera_info, diagnostics."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        self.node = Node("compressed_probe", context=self.context)
        qos = sensor_qos(True, 50)
        self.thermal = self.node.create_publisher(CompressedImage, "thermal/image_raw/compressed", qos)
        self.rgb = self.node.create_publisher(CompressedImage, "rgb/image_raw/compressed", qos)
        self.info = self.node.create_publisher(CameraInfo, "rgb/camera_info", qos)
        self.fused: list[Image] = []
        self.infos: list[CameraInfo] = []
        self.diagnostics: dict[str, str] = {}
        self._subs = [
            self.node.create_subscription(Image, "fused/image", self.fused.append, qos),
            self.node.create_subscription(CameraInfo, "fused/camera_info", self.infos.append, qos),
            self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50),
        ]
        self.spinner = BackgroundSpinner(self.node, self.context)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if "seafusion_node" in status.name:
                self.diagnostics = {kv.key: kv.value for kv in status.values}

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        wait_until(condition, timeout, what, lambda: self.diagnostics)

    def close(self) -> None:
        self.spinner.stop()
        self.node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("node_compressed")
    command = node_command(
        "-p", f"fusion_weights:={write_random_fusion_weights(tmp / 'fusion.pt')}",
        "-p", "image_transport:=compressed",
        "-p", "qos.reliability:=reliable",
        "-p", "qos.depth:=50",
        "-p", f"registration.output_width:={OUT_WIDTH}",
        "-p", f"registration.output_height:={OUT_HEIGHT}",
        "-p", "registration.mode:=scale",
        "-p", "diagnostics.period:=0.2",
        "-p", "torch_threads:=1",
    )
    node = NodeProcess(command, tmp / "node.log")
    probe = None
    try:
        probe = CompressedProbe()
        probe.wait_for(lambda: probe.thermal.get_subscription_count() > 0 and probe.rgb.get_subscription_count() > 0
                       and probe.info.get_subscription_count() > 0 and probe.diagnostics.get("state") == "active",
                       90, "the node to subscribe the compressed topics and camera_info")
        probe.wait_for(lambda: probe._subs[0].get_publisher_count() > 0 and probe._subs[1].get_publisher_count() > 0,
                       30, "fused/image and fused/camera_info publishers")
        yield node, probe
    finally:
        if probe is not None:
            probe.close()
        node.stop()
        print(node.log()[-4000:])


def test_png16_thermal_and_jpeg_rgb_fuse_with_scaled_camera_info(graph) -> None:
    node, probe = graph
    info = CameraInfo(height=HEIGHT, width=WIDTH, k=K, p=P, distortion_model="plumb_bob", d=[0.1, 0, 0, 0, 0])
    probe.info.publish(info)
    stamps = []
    for k in range(5):
        stamp = 1_000_000_000 * (100 + k)
        stamps.append(stamp)
        probe.info.publish(info)
        probe.thermal.publish(compressed_msg(thermal_frame(HEIGHT, WIDTH, k), "mono16", "png", stamp))
        probe.rgb.publish(compressed_msg(rgb_frame(HEIGHT, WIDTH, k), "rgb8", "jpeg", stamp))
        probe.wait_for(lambda n=k + 1: len(probe.fused) >= n and len(probe.infos) >= n, 30, f"fused output {k}")
    assert [stamp_ns(m) for m in probe.fused] == stamps
    assert all(m.header.frame_id == "rgb_optical" for m in probe.fused)
    assert all((m.height, m.width, m.encoding) == (OUT_HEIGHT, OUT_WIDTH, "rgb8") for m in probe.fused)
    assert [stamp_ns(m) for m in probe.infos] == stamps
    fused_info = probe.infos[-1]
    assert (fused_info.height, fused_info.width) == (OUT_HEIGHT, OUT_WIDTH)
    assert fused_info.header.frame_id == "rgb_optical"
    np.testing.assert_allclose(fused_info.k, [50.0, 0.0, 32.0, 0.0, 55.0, 24.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(fused_info.p[:7], [50.0, 0.0, 32.0, 0.0, 0.0, 55.0, 24.0])
    assert fused_info.distortion_model == "plumb_bob" and fused_info.d[0] == pytest.approx(0.1)
    assert float(probe.diagnostics.get("latency_decode_ms", "nan")) > 0
    assert node.alive()


def test_corrupt_compressed_frames_are_counted_and_survived(graph) -> None:
    node, probe = graph
    good_rgb = compressed_msg(rgb_frame(HEIGHT, WIDTH, 9), "bgr8", "jpeg", 0)
    bad = {
        "empty_payload": (b"", good_rgb.format),
        "unknown_format": (bytes(good_rgb.data), "bgr8; webp compressed bgr8"),
        "corrupt_compressed": (bytes(good_rgb.data)[: len(good_rgb.data) // 3], good_rgb.format),
    }
    for n, (data, fmt) in enumerate(bad.values()):
        stamp = 1_000_000_000 * (200 + n)
        msg = compressed_msg(rgb_frame(HEIGHT, WIDTH, n), "bgr8", "jpeg", stamp)
        msg.data, msg.format = data, fmt
        probe.thermal.publish(compressed_msg(thermal_frame(HEIGHT, WIDTH, n), "mono16", "png", stamp))
        probe.rgb.publish(msg)
    for kind in bad:
        probe.wait_for(lambda kind=kind: int(probe.diagnostics.get(f"bad_input_{kind}", 0)) >= 1, 30,
                       f"{kind} counted")
    before = len(probe.fused)
    stamp = 1_000_000_000 * 300
    probe.thermal.publish(compressed_msg(thermal_frame(HEIGHT, WIDTH, 3), "mono16", "png", stamp))
    probe.rgb.publish(compressed_msg(rgb_frame(HEIGHT, WIDTH, 3), "bgr8", "jpeg", stamp))
    probe.wait_for(lambda: len(probe.fused) > before, 30, "a good pair fused after the corrupt ones")
    assert stamp_ns(probe.fused[-1]) == stamp
    assert node.alive()


def test_per_input_transport_override_subscribes_the_right_types(context, tmp_path) -> None:
    from rclpy.lifecycle import TransitionCallbackReturn
    from ros_graph import in_process_node

    node = in_process_node(context, write_random_fusion_weights(tmp_path / "fusion.pt"),
                           node_name="transport_override_probe", rgb_image_transport="compressed")
    try:
        assert node.get_name() == "transport_override_probe"
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        subscribed = node_subscriptions(node, {"/thermal/image_raw", "/rgb/image_raw/compressed", "/rgb/camera_info"})
        assert subscribed["/thermal/image_raw"] == ["sensor_msgs/msg/Image"]
        assert subscribed["/rgb/image_raw/compressed"] == ["sensor_msgs/msg/CompressedImage"]
        assert subscribed["/rgb/camera_info"] == ["sensor_msgs/msg/CameraInfo"]
        assert "/rgb/image_raw" not in subscribed and "/thermal/image_raw/compressed" not in subscribed
    finally:
        node.destroy_node()


def test_an_unknown_transport_is_refused_naming_the_parameter(context, tmp_path) -> None:
    from rclpy.lifecycle import TransitionCallbackReturn
    from ros_graph import in_process_node

    node = in_process_node(context, write_random_fusion_weights(tmp_path / "fusion.pt"), image_transport="theora")
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    finally:
        node.destroy_node()


def test_a_remapped_compressed_topic_keeps_its_message_type(context, tmp_path) -> None:
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from seafusion_ros.ros.node import SeaFusionNode

    overrides = [Parameter("autostart", value=False), Parameter("image_transport", value="compressed"),
                 Parameter("fusion_weights", value=str(write_random_fusion_weights(tmp_path / "fusion.pt")))]
    node = SeaFusionNode(context=context, parameter_overrides=overrides,
                         cli_args=["--ros-args", "-r", "__node:=remapped_compressed_probe",
                                   "-r", "rgb/image_raw/compressed:=/front/jpeg"])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        subscribed = node_subscriptions(node, {"/front/jpeg", "/thermal/image_raw/compressed"})
        assert subscribed["/front/jpeg"] == ["sensor_msgs/msg/CompressedImage"]
        assert subscribed["/thermal/image_raw/compressed"] == ["sensor_msgs/msg/CompressedImage"]
    finally:
        node.destroy_node()
