"""Lifecycle transitions of the node, in this process (real rclpy, real DDS between two nodes).

The segmentation network is passed to the constructor (the in-process injection path): a small
randomly initialised bisenet_lite test fixture.
"""

from __future__ import annotations

import math
import sys
import threading
import types

import numpy as np
import pytest
import torch
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from ros_graph import (
    Probe,
    RunningNode,
    image_msg,
    in_process_node,
    small_pair,
    stamp_ns,
    write_random_fusion_weights,
)

from seafusion_ros.imaging.stamps import stamp_to_ns
from seafusion_ros.imaging.time_sync import ApproximateTimeSync
from seafusion_ros.inference.engine import FusionEngine
from seafusion_ros.ros.image_conversion import image_to_numpy
from seafusion_ros.ros.parameters import ParameterError, config_from_values


def test_configure_activate_deactivate_reactivate_cleanup(context, tmp_path):
    node = in_process_node(context, write_random_fusion_weights(tmp_path / "fusion.pt"))
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
        probe.publish(*small_pair(int(1e9)))
        probe.wait_for(lambda: len(probe.outputs("overlay")) == 1, 30, "overlay after activation")
        assert len(probe.outputs("mask")) == 1 and stamp_ns(probe.outputs("fused")[0]) == int(1e9)

        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.engine is None  # models freed (GPU memory released when on CUDA)
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert node.engine is not None
        probe.publish(*small_pair(int(2e9)))
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
    node = in_process_node(context, weights, registration__mode="homography", registration__homography=[0.0] * 9)
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


def _workers() -> int:
    return sum(thread.name == "seafusion_worker" and thread.is_alive() for thread in threading.enumerate())


def test_mono8_honours_minmax_and_warm_up_runs_at_the_first_frame_size(context, tmp_path, monkeypatch):
    warmed: list[tuple[int, int]] = []
    warmup = FusionEngine.warmup
    monkeypatch.setattr(FusionEngine, "warmup",
                        lambda engine, h, w, segment=False: (warmed.append((h, w)), warmup(engine, h, w, segment)))
    run = RunningNode(context, in_process_node(context, write_random_fusion_weights(tmp_path / "fusion.pt"),
                                  output__encoding="mono8", normalize="minmax"))
    try:
        run.activate()
        assert warmed == []  # no output size configured: nothing to guess at configure time
        run.probe.publish(*small_pair(int(1e9)))
        run.probe.wait_for(lambda: len(run.probe.outputs("fused")) == 1, 30, "the fused mono8 image")
        fused = image_to_numpy(run.probe.outputs("fused")[0])
        assert fused.shape == (48, 64) and (fused.min(), fused.max()) == (0, 255)  # stretched per frame
        assert warmed == [(48, 64)]  # once, at the real frames' size
    finally:
        run.close()


def test_warm_up_runs_at_the_configured_output_size_at_configure(context, tmp_path, monkeypatch):
    warmed: list[tuple[int, int]] = []
    monkeypatch.setattr(FusionEngine, "warmup", lambda engine, h, w, segment=False: warmed.append((h, w)))
    node = in_process_node(context, write_random_fusion_weights(tmp_path / "fusion.pt"),
                 registration__output_width=32, registration__output_height=24)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert warmed == [(24, 32)]
    finally:
        node.destroy_node()


def test_reactivation_never_starts_a_second_worker_beside_a_busy_one(context, tmp_path):
    run = RunningNode(context, in_process_node(context, write_random_fusion_weights(tmp_path / "fusion.pt")))
    node = run.node
    busy, release = threading.Event(), threading.Event()
    process = node._process

    def stuck_process(thermal, rgb, formed):  # stands for an inference that hangs (a wedged GPU, say)
        busy.set()
        release.wait(60)
        process(thermal, rgb, formed)

    node._process = stuck_process
    try:
        run.activate()
        run.probe.publish(*small_pair(int(1e9)))
        assert busy.wait(30)
        node.worker_join_timeout = 0.2
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.FAILURE  # refused: the old one still runs
        assert _workers() == 1
        node._process = process
        release.set()
        node.worker_join_timeout = 30.0
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS  # waits for the old one to finish
        assert _workers() == 1
        run.probe.publish(*small_pair(int(2e9)))
        run.probe.wait_for(lambda: any(stamp_ns(m) == int(2e9) for m in run.probe.outputs("fused")), 30,
                           "output after reactivation")
    finally:
        release.set()
        run.close()


def test_a_worker_that_outlives_deactivation_does_not_publish(context, tmp_path):
    weights = write_random_fusion_weights(tmp_path / "fusion.pt")
    run = RunningNode(context, in_process_node(context, weights, warmup=False))  # the first fuse is the pair's
    node = run.node
    busy, release = threading.Event(), threading.Event()
    try:
        run.activate()
        fuse = node.engine.fuse

        def stuck_fuse(*args, **kwargs):  # an inference that hangs past the join timeout, then finishes
            busy.set()
            release.wait(60)
            return fuse(*args, **kwargs)

        node.engine.fuse = stuck_fuse
        run.probe.publish(*small_pair(int(1e9)))
        assert busy.wait(30)
        node.worker_join_timeout = 0.2
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        worker = node._worker
        assert worker is not None and worker.is_alive()
        release.set()
        worker.join(30)
        assert not worker.is_alive()
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        run.probe.publish(*small_pair(int(2e9)))
        # Outputs of one reliable publisher arrive in order: had the stale pair been published, it would be here.
        run.probe.wait_for(lambda: len(run.probe.outputs("fused")) >= 1, 30, "output after reactivation")
        assert [stamp_ns(m) for m in run.probe.outputs("fused")] == [int(2e9)]
    finally:
        release.set()
        run.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: checks that deactivation frees GPU memory")
def test_deactivation_moves_both_models_off_the_gpu(context, tmp_path):
    node = in_process_node(context, write_random_fusion_weights(tmp_path / "fusion.pt"), device="cuda")
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert torch.cuda.memory_allocated() > 0
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert {p.device.type for p in node._segmenter.parameters()} == {"cpu"}
        assert torch.cuda.memory_allocated() == 0
    finally:
        node.stop()
        node.destroy_node()


class _SimpleFilter:
    def __init__(self) -> None:
        self.callbacks: list = []

    def registerCallback(self, callback) -> None:
        self.callbacks.append(callback)

    def signalMessage(self, msg) -> None:
        for callback in self.callbacks:
            callback(msg)


class _ApproximateTimeSynchronizer:
    """message_filters' interface (inputs, queue_size, slop in s; ``queues``) over the built-in synchroniser,
    which follows its rules exactly: message_filters itself is not installable here."""

    def __init__(self, inputs: list[_SimpleFilter], queue_size: int, slop: float) -> None:
        self._callbacks: list = []
        self._sync = ApproximateTimeSync(len(inputs), queue_size, round(slop * 1e9), self._emit)
        self.queues = self._sync.queues
        for index, source in enumerate(inputs):
            source.registerCallback(lambda msg, i=index: self._sync.add(i, stamp_to_ns(msg.header.stamp), msg))

    def registerCallback(self, callback) -> None:
        self._callbacks.append(callback)

    def _emit(self, *msgs) -> None:
        for callback in self._callbacks:
            callback(*msgs)


def test_message_filters_sync_misses_ignore_bad_pairs(context, tmp_path, monkeypatch):
    fake = types.ModuleType("message_filters")
    fake.SimpleFilter, fake.ApproximateTimeSynchronizer = _SimpleFilter, _ApproximateTimeSynchronizer
    monkeypatch.setitem(sys.modules, "message_filters", fake)
    run = RunningNode(context, in_process_node(context, write_random_fusion_weights(tmp_path / "fusion.pt"),
                                  sync__queue_size=1, sync__slop=0.01))
    probe = run.probe
    try:
        run.activate()
        assert run.node.synchroniser == "message_filters"
        nan = image_msg(np.full((48, 64), np.nan, np.float32), "32FC1", int(1e9))
        probe.publish(nan, small_pair(int(1e9))[1])  # paired, then refused by the worker: not a sync miss
        probe.wait_for(lambda: probe.counter("bad_input_nan_thermal") == 1, 30, "the NaN pair")
        probe.publish(small_pair(int(2e9))[0], None)
        probe.wait_for(lambda: probe.counter("thermal_received") == 2, 30, "the lone thermal image")
        probe.publish(small_pair(int(3e9))[0], None)  # evicts the lone one from the queue of 1: one real miss
        probe.wait_for(lambda: probe.counter("thermal_received") == 3, 30, "the third thermal image")
        probe.publish(None, small_pair(int(3e9))[1])
        probe.wait_for(lambda: probe.counter("processed") == 1 and probe.counter("sync_misses") == 1, 30,
                       "one processed pair and exactly one sync miss")
    finally:
        run.close()


def test_stamps_far_from_the_node_clock_are_a_named_warning_not_a_latency(context, tmp_path):
    run = RunningNode(context, in_process_node(context, write_random_fusion_weights(tmp_path / "fusion.pt")))
    probe = run.probe
    try:
        run.activate()
        clock = run.node.get_clock()
        for k in range(3):  # a camera whose clock is 10 s behind (or a time jump back)
            probe.publish(*small_pair(clock.now().nanoseconds - 10_000_000_000 + k))
            probe.wait_for(lambda k=k: len(probe.outputs("fused")) == k + 1, 30, f"output {k + 1}")
        def warned_with_latencies() -> bool:  # a status from after the pairs (an earlier one has no latency yet)
            diag = probe.latest_diagnostics() or {}
            return "stamps are" in diag.get("_message", "") and math.isfinite(
                float(diag.get("latency_end_to_end_ms", "nan")))

        probe.wait_for(warned_with_latencies, 30, "the stamp-offset warning with the pairs' latencies")
        diag = probe.latest_diagnostics()
        assert diag["_level"] == "1"
        assert "/thermal/image_raw stamps are 10.0" in diag["_message"]
        assert "behind the node's clock" in diag["_message"]
        assert 9_900 < float(diag["thermal_stamp_offset_ms"]) < 60_000
        assert float(diag["latency_end_to_end_ms"]) > 9_900  # measures the offset ...
        assert float(diag["latency_in_node_ms"]) < float(diag["latency_end_to_end_ms"]) - 9_000  # ... this does not

        start = len(probe.outputs("fused"))
        for k in range(12):  # the clocks agree again: the median of the recent offsets follows
            probe.publish(*small_pair(clock.now().nanoseconds + k))
            probe.wait_for(lambda k=k: len(probe.outputs("fused")) == start + k + 1, 30, "output")
        probe.wait_for(lambda: "stamps are" not in (probe.latest_diagnostics() or {}).get("_message", "stamps are"),
                       30, "the warning to clear")
        assert abs(float(probe.latest_diagnostics()["rgb_stamp_offset_ms"])) < 9_000
    finally:
        run.close()
