"""The real node started as `python -m seafusion_ros.ros.node --ros-args --params-file ...`.

Two instances in different namespaces share config/seafusion.yaml (plus an override file): each
reads its parameters, pairs its own inputs only, and the first one shows that pairs are dropped
(and counted) when input outruns the worker and that outputs nobody subscribes to are not computed.
Invalid parameters end the process at start-up with a message naming the parameter; a misspelled
key is named in a warning.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from ros_graph import (
    REPO,
    NodeProcess,
    Probe,
    image_msg,
    node_command,
    rgb_frame,
    stamp_ns,
    thermal_frame,
    write_random_fusion_weights,
)

CONFIG = REPO / "config" / "seafusion.yaml"
RGB_SIZE = (240, 320)
THERMAL_SIZE = (120, 160)


@pytest.fixture(scope="module")
def cameras(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("node_params_file")
    overrides = {
        "fusion_weights": str(write_random_fusion_weights(tmp / "fusion.pt")),
        "torch_threads": 1,
        "qos": {"reliability": "reliable", "depth": 77},
        "sync": {"mode": "exact", "queue_size": 50, "slope": 0.1},  # a typo: warned about, else ignored
        "registration": {"mode": "scale"},
        "output": {"encoding": "bgr8"},
        "outputs": {"mask": False, "overlay": False},
        "diagnostics": {"period": 0.2},
    }
    override_file = tmp / "override.yaml"
    override_file.write_text(yaml.safe_dump({"/**/seafusion_node": {"ros__parameters": overrides}}))
    nodes = {
        ns: NodeProcess(
            node_command(
                "--params-file", str(CONFIG), "--params-file", str(override_file), "-r", f"__ns:=/{ns}"
            ),
            tmp / f"{ns}.log",
        )
        for ns in ("cam_a", "cam_b")
    }
    probes: dict[str, Probe] = {}
    try:
        for ns in nodes:
            probes[ns] = Probe(namespace=f"/{ns}", outputs=())
        for probe in probes.values():
            probe.wait_for_node()
        yield nodes, probes
    finally:
        for probe in probes.values():
            probe.close()
        for ns, node in nodes.items():
            node.stop()
            print(f"--- {ns} ---\n{node.log()[-3000:]}")


def _pair(stamp: int, seed: int = 0):
    return (
        image_msg(thermal_frame(*THERMAL_SIZE, seed), "mono16", stamp),
        image_msg(
            np.dstack([rgb_frame(*RGB_SIZE, seed), np.full(RGB_SIZE, 255, np.uint8)]), "bgra8", stamp, "cam"
        ),
    )


def _accounted(probe: Probe, node_name: str) -> int:
    keys = ("processed", "dropped_pairs", "skipped_no_subscribers")
    return sum(probe.counter(k, node_name) for k in keys)


def test_params_files_load_in_each_namespace(cameras):
    _, probes = cameras
    for ns, probe in probes.items():
        diag = probe.latest_diagnostics(f"/{ns}/seafusion_node")
        assert diag is not None, f"no diagnostics from /{ns}/seafusion_node"
        assert diag["input_qos"] == "reliable, keep_last depth 77"
        assert diag["sync_mode"] == "exact" and diag["segmentation"] == "off"
        assert diag["thermal_topic"] == f"/{ns}/thermal/image_raw"


def test_a_misspelled_key_is_named_with_the_closest_parameter(cameras):
    nodes, probes = cameras
    warning = "unknown parameter 'sync.slope' ignored (seafusion_node has no such parameter): did you mean 'sync.slop'?"
    probes["cam_a"].wait_for(lambda: warning in nodes["cam_a"].log(), 30, "the misspelled-key warning")
    assert probes["cam_a"].latest_diagnostics("/cam_a/seafusion_node")["state"] == "active"  # a warning only


def test_unsubscribed_outputs_are_not_computed_then_bursts_drop_pairs(cameras):
    _, probes = cameras
    probe, other = probes["cam_a"], probes["cam_b"]
    name = "/cam_a/seafusion_node"
    for k in range(3):
        probe.publish(*_pair(int((10 + k) * 1e9), k))
        probe.wait_for(
            lambda k=k: probe.counter("paired", name) == k + 1 and _accounted(probe, name) == k + 1,
            30,
            f"pair {k} accounted",
        )
    assert probe.counter("skipped_no_subscribers", name) == 3 and probe.counter("processed", name) == 0

    probe.subscribe_outputs(("fused",))
    probe.wait_for_outputs_matched(("fused",))
    burst = 20
    for k in range(burst):
        probe.publish(*_pair(int((20 + k / 30) * 1e9), k))
    probe.wait_for(
        lambda: probe.counter("paired", name) == 3 + burst and _accounted(probe, name) == 3 + burst,
        120,
        "the burst to be accounted for",
    )
    assert probe.counter("dropped_pairs", name) > 0
    processed = probe.counter("processed", name)
    assert processed >= 1
    probe.wait_for(lambda: len(probe.outputs("fused")) >= processed, 30, "fused images")
    last_stamp = int((20 + (burst - 1) / 30) * 1e9)
    assert stamp_ns(probe.outputs("fused")[-1]) == last_stamp  # the worker always takes the newest pair
    for msg in probe.outputs("fused"):
        assert (msg.encoding, msg.height, msg.width, msg.step) == ("bgr8", *RGB_SIZE, RGB_SIZE[1] * 3)
    assert other.counter("paired", "/cam_b/seafusion_node") == 0  # the other camera saw none of it


def test_second_instance_works_independently(cameras):
    nodes, probes = cameras
    probe = probes["cam_b"]
    probe.subscribe_outputs(("fused",))
    probe.wait_for_outputs_matched(("fused",))
    probe.publish(*_pair(int(50e9)))
    probe.wait_for(lambda: len(probe.outputs("fused")) == 1, 60, "a fused image from /cam_b")
    assert probe.outputs("fused")[0].header.frame_id == "cam"
    assert all(node.alive() for node in nodes.values())


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (("-p", "sync.mode:=fuzzy"), 1, "sync.mode = 'fuzzy' is not one of approximate, exact"),
        (("-p", "overlay.alpha:=2.0"), 2, "overlay.alpha"),
        (("-p", "fusion_weights:=/nonexistent/fusion.pt"), 1, "checkpoint not found: /nonexistent/fusion.pt"),
        (
            ("-p", "registration.mode:=homography", "-p", "registration.homography:=[1.0, 0.0]"),
            1,
            "registration.homography needs 9 values",
        ),
    ],
)
def test_invalid_parameters_stop_the_node_with_a_clear_error(tmp_path, args, status, message):
    weights = write_random_fusion_weights(tmp_path / "fusion.pt")
    node = NodeProcess(node_command("-p", f"fusion_weights:={weights}", *args), tmp_path / "node.log")
    try:
        assert node.wait(120) == status, node.log()
    finally:
        node.stop()
    assert message in node.log()


def test_config_file_declares_every_parameter_with_its_default():
    from seafusion_ros.ros.parameters import PARAMETERS

    def flatten(tree: dict, prefix: str = "") -> dict:
        flat = {}
        for key, value in tree.items():
            flat.update(
                flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value}
            )
        return flat

    values = flatten(yaml.safe_load(CONFIG.read_text())["/**/seafusion_node"]["ros__parameters"])
    assert values == {spec.name: spec.default for spec in PARAMETERS}
    assert all(type(values[spec.name]) is type(spec.default) for spec in PARAMETERS)
    text = CONFIG.read_text()
    assert all(f"{spec.name.split('.')[-1]}:" in text for spec in PARAMETERS)
