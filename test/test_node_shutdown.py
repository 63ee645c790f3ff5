"""The node's own process stopped by SIGINT or SIGTERM: a clean exit (status 0, no traceback, no abort),
also while a pair is in the engine and when a second signal arrives during the shutdown."""

from __future__ import annotations

import signal
import time

import pytest
from ros_graph import NodeProcess, Probe, image_msg, node_command, rgb_frame, thermal_frame, write_random_fusion_weights

# Large enough that one pair keeps a 1-thread CPU worker busy for seconds (tiled), small enough to send.
BUSY_HEIGHT, BUSY_WIDTH = 2160, 3840


@pytest.mark.parametrize("signals", [(signal.SIGINT,), (signal.SIGTERM,), (signal.SIGINT, signal.SIGINT)],
                         ids=["sigint", "sigterm", "double-sigint"])
def test_a_signal_while_a_pair_is_in_the_engine_ends_the_node_cleanly(tmp_path, signals):
    node = NodeProcess(node_command("-p", f"fusion_weights:={write_random_fusion_weights(tmp_path / 'fusion.pt')}",
                                    "-p", "outputs.mask:=false", "-p", "outputs.overlay:=false",
                                    "-p", "qos.reliability:=reliable", "-p", "torch_threads:=1",
                                    "-p", "diagnostics.period:=0.2", "-p", "memory_budget_mb:=64"),
                       tmp_path / "node.log")
    probe = Probe()
    try:
        probe.wait_for_node()
        probe.wait_for_outputs_matched(("fused",))
        stamp = time.time_ns()
        probe.thermal_pub.publish(image_msg(thermal_frame(BUSY_HEIGHT, BUSY_WIDTH, 0), "16UC1", stamp))
        probe.rgb_pub.publish(image_msg(rgb_frame(BUSY_HEIGHT, BUSY_WIDTH, 0), "rgb8", stamp))
        probe.wait_for(lambda: probe.counter("paired") == 1, 60, "the pair to form")
        time.sleep(0.5)  # the worker is inside the engine now
        assert probe.counter("processed") == 0, "the pair finished before the signal: make it larger"
        for signum in signals:
            node.proc.send_signal(signum)
            time.sleep(0.05)
        status = node.wait(30)
    finally:
        probe.close()
        node.stop()
    log = node.log()
    assert status == 0, log[-3000:]
    assert "Traceback" not in log and "terminate called" not in log, log[-3000:]
    assert f"{signal.Signals(signals[0]).name}: shutting down" in log
