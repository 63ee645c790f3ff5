"""Lifecycle transitions of the node, in this process (real rclpy, real DDS between two nodes).

The segmentation network is passed to the constructor (the in-process injection path): a small
randomly initialised bisenet_lite test fixture.
"""

from __future__ import annotations

import threading

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from ros_graph import (
    DOMAIN_ID,
    TEST_CLASSES,
    TEST_PALETTE,
    Probe,
    image_msg,
    random_segmenter,
    rgb_frame,
    stamp_ns,
    thermal_frame,
    write_random_fusion_weights,
)

from seafusion_ros.ros.node import SeaFusionNode
from seafusion_ros.ros.parameters import ParameterError, config_from_values


@pytest.fixture
def context():
    ctx = Context()
    rclpy.init(context=ctx, domain_id=DOMAIN_ID)
    yield ctx
    ctx.try_shutdown()


def _node(context: Context, weights, **params) -> SeaFusionNode:
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
    return SeaFusionNode(
        context=context, parameter_overrides=overrides, segmenter=random_segmenter(), segmenter_card=card
    )


def _pair(stamp: int):
    return (
        image_msg(thermal_frame(48, 64, 0), "16UC1", stamp),
        image_msg(rgb_frame(48, 64, 0), "rgb8", stamp, "cam"),
    )


def test_configure_activate_deactivate_reactivate_cleanup(context, tmp_path):
    node = _node(context, write_random_fusion_weights(tmp_path / "fusion.pt"))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    probe = Probe(context=context)
    try:
        assert node.engine is None
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.engine is not None and node.engine.segmenter is not None
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        probe.wait_for(
            lambda: "no message on /thermal/image_raw" in (probe.latest_diagnostics() or {}).get("_message", ""),
            30,
            "the silent-input warning",
        )
        diag = probe.latest_diagnostics()
        assert diag["_level"] == "1" and "subscriber QoS: reliable, keep_last depth 5" in diag["_message"]
        probe.wait_for_node(30)
        probe.wait_for_outputs_matched(("fused", "mask", "overlay"))
        probe.publish(*_pair(int(1e9)))
        probe.wait_for(lambda: len(probe.outputs("overlay")) == 1, 30, "overlay after activation")
        assert len(probe.outputs("mask")) == 1 and stamp_ns(probe.outputs("fused")[0]) == int(1e9)

        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.engine is None  # models freed (GPU memory released when on CUDA)
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert node.engine is not None
        probe.publish(*_pair(int(2e9)))
        probe.wait_for(lambda: len(probe.outputs("fused")) == 2, 30, "output after reactivation")

        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node.config is None
    finally:
        probe.close()
        node.stop()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()


def test_configure_fails_cleanly_on_invalid_values(context, tmp_path):
    weights = write_random_fusion_weights(tmp_path / "fusion.pt")
    node = _node(context, weights, **{"registration__mode": "homography", "registration__homography": [0.0] * 9})
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.engine is None
    finally:
        node.destroy_node()


def test_config_validation_lists_every_problem():
    with pytest.raises(ParameterError) as info:
        config_from_values(
            {
                "sync.mode": "nearest",
                "precision": "fp8",
                "registration.output_width": 320,
                "thermal_gain.low_percentile": 99.5,
                "bogus": 1,
            }
        )
    text = str(info.value)
    for part in (
        "sync.mode",
        "precision",
        "output_width and output_height",
        "percentiles",
        "unknown parameter",
    ):
        assert part in text
    cfg = config_from_values({"sync.slop": 0.02, "registration.output_width": 320, "registration.output_height": 240})
    assert cfg.slop_ns == 20_000_000 and cfg.output_size == (240, 320)
