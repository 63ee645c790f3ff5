"""Changing the node's parameters at run time, as `ros2 param set` does: real SetParameters requests
over DDS from a second node to the in-process node.

Live parameters (overlay, output encoding, thermal gain, registration warp, synchroniser) apply to
the next pair; the others are refused with a reason while the node is configured, and accepted (then
used by the next configure) once it is unconfigured. Invalid values are refused when they are set,
not at the next configure.
"""

from __future__ import annotations

import time

import numpy as np
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from ros_graph import RunningNode, in_process_node, small_pair, stamp_ns, write_random_fusion_weights
from sensor_msgs.msg import Image

from seafusion_ros.imaging.time_sync import ExactTimeSync
from seafusion_ros.ros.image_conversion import image_to_numpy
from seafusion_ros.ros.parameters import PARAMETERS, check_change, unknown_parameter_warnings


class _ParamService:
    """SetParameters over DDS from the probe's node: what `ros2 param set` sends."""

    def __init__(self, run: RunningNode) -> None:
        self.client = AsyncParameterClient(run.probe.node, run.node.get_fully_qualified_name())
        assert self.client.wait_for_services(timeout_sec=30.0), "the node's parameter services"

    def set(self, name: str, value) -> tuple[bool, str]:
        future = self.client.set_parameters([Parameter(name, value=value)])
        deadline = time.monotonic() + 30.0
        while not future.done():
            assert time.monotonic() < deadline, f"no SetParameters response for {name}"
            time.sleep(0.01)
        result = future.result().results[0]
        return result.successful, result.reason


def _output_at(run: RunningNode, output: str, stamp: int) -> Image:
    run.probe.wait_for(
        lambda: any(stamp_ns(m) == stamp for m in run.probe.outputs(output)), 30, f"{output} at {stamp}"
    )
    return next(m for m in run.probe.outputs(output) if stamp_ns(m) == stamp)


def test_live_parameters_apply_to_the_next_pair(context, tmp_path):
    run = RunningNode(context, in_process_node(context, write_random_fusion_weights(tmp_path / "fusion.pt")))
    try:
        run.activate()
        params = _ParamService(run)
        run.probe.publish(*small_pair(int(1e9)))
        first = image_to_numpy(_output_at(run, "overlay", int(1e9)))
        mask = image_to_numpy(_output_at(run, "mask", int(1e9)))
        assert (mask > 0).any(), "the test needs some object pixels to see the overlay's alpha"

        assert params.set("overlay.alpha", 0.0) == (True, "")
        assert params.set("output.encoding", "mono8") == (True, "")
        assert params.set("sync.mode", "exact") == (True, "")
        assert params.set("thermal_gain.smoothing", 0.5) == (True, "")
        assert params.set("registration.mode", "scale") == (True, "")
        assert run.node.get_parameter("overlay.alpha").value == 0.0
        assert isinstance(run.node._sync, ExactTimeSync)
        assert run.node.engine.gain.config.smoothing == 0.5 and run.node.registration.mode == "scale"

        run.probe.publish(*small_pair(int(2e9)))
        overlay = image_to_numpy(_output_at(run, "overlay", int(2e9)))
        fused = _output_at(run, "fused", int(2e9))
        assert fused.encoding == "mono8"
        assert not np.array_equal(overlay, first)  # the class colours are gone ...
        assert np.array_equal(overlay[mask == 0], first[mask == 0])  # ... where they were drawn only
        fused_rgb = image_to_numpy(_output_at(run, "fused", int(1e9)))
        assert np.array_equal(overlay, fused_rgb)  # alpha 0: the overlay is the fused image
    finally:
        run.close()


def test_invalid_or_configure_time_values_are_refused_with_the_reason(context, tmp_path):
    run = RunningNode(context, in_process_node(context, write_random_fusion_weights(tmp_path / "fusion.pt")))
    node = run.node
    try:
        run.activate()
        params = _ParamService(run)
        ok, reason = params.set("qos.depth", 7)
        assert not ok and "qos.depth is read on configure" in reason
        ok, reason = params.set("output.encoding", "yuv422")
        assert not ok and "output.encoding = 'yuv422' is not one of rgb8, bgr8, mono8" in reason
        ok, reason = params.set("thermal_gain.low_percentile", 99.5)  # above high_percentile = 99
        assert not ok and "percentile" in reason
        ok, reason = params.set("registration.mode", "homography")
        assert ok, reason  # the identity homography is a valid warp
        ok, reason = params.set("registration.homography", [0.0] * 9)
        assert not ok and "singular" in reason
        ok, reason = params.set("autostart", True)  # the test node was started with false
        assert not ok and "autostart is read at start-up only" in reason
        assert params.set("autostart", False) == (True, "")  # its own value: a dumped file loads back
        assert node.get_parameter("qos.depth").value == 5 and node.config.depth == 5
        assert node.get_parameter("output.encoding").value == "rgb8"

        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        ok, reason = params.set("qos.depth", 7)
        assert not ok, "inactive is still configured: the subscriptions exist with the old depth"
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert params.set("qos.depth", 7) == (True, "")
        assert params.set("registration.output_width", 32) == (True, "")  # its height follows: no cross check yet
        ok, reason = params.set("output.encoding", "yuv422")
        assert not ok and "output.encoding" in reason  # a value wrong on its own is still refused
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE  # width without height
        assert params.set("registration.output_height", 24) == (True, "")
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.config.depth == 7 and node.config.output_size == (24, 32)
    finally:
        run.close()


def test_a_change_is_what_differs_from_the_current_value():
    current = {spec.name: spec.default for spec in PARAMETERS}
    config, changed = check_change(current, {"overlay.alpha": 0.25, "normalize": "none"}, configured=True)
    assert config.overlay_alpha == 0.25 and changed == {"overlay.alpha"}  # normalize kept its value
    config, changed = check_change(current, {"qos.depth": 5}, configured=True)  # same value: not a change
    assert changed == set()
    config, changed = check_change(current, {"registration.homography": list(current["registration.homography"])},
                                   configured=True)
    assert changed == set()  # an array compares by value, list or tuple


def test_unknown_parameter_names_get_a_warning_with_the_closest_name():
    warnings = unknown_parameter_warnings(["sync.slope", "completely_else", "qos_overrides./x.publisher.depth"])
    assert warnings == [
        "unknown parameter 'completely_else' ignored (seafusion_node has no such parameter)",
        "unknown parameter 'sync.slope' ignored (seafusion_node has no such parameter): did you mean 'sync.slop'?",
    ]
