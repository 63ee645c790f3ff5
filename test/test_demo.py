"""seafusion-demo end to end on a small synthetic bag: real node, player and recorder processes, the
report it writes, a bag it cannot play, and Ctrl-C leaving no process and no output behind.

The node loads randomly initialised fusion and segmentation networks (test fixtures), so the
pictures are meaningless; the report's numbers and files are the real thing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from ros_graph import DOMAIN_ID, write_random_fusion_weights, write_random_segmentation_weights
from rosbags.rosbag2 import Reader

from seafusion_ros.bags.messages import deserialize_image
from seafusion_ros.bags.recording import StreamTiming, synthetic_frames, write_pair_bag
from seafusion_ros.imaging.stamps import stamp_to_ns


def _demo(*args: str) -> list[str]:
    return [sys.executable, "-m", "seafusion_ros.cli.demo", "--domain-id", str(DOMAIN_ID), *args]


def _env(tmp_path: Path) -> dict[str, str]:
    """Temporary files (the generated input bag) under tmp_path/tmp, to check they are removed."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1",
                TMPDIR=str(tmp_path / "tmp"))


def _demo_temporaries(tmp_path: Path) -> list[Path]:
    """What is left in the demo's TMPDIR, but torch's per-user cache folder (``torchinductor_<user>``, made
    by torch itself in every process that measures tensor memory, and shared by all torch processes)."""
    return [p for p in (tmp_path / "tmp").iterdir() if not p.name.startswith("torchinductor_")]


def _children(pid: int) -> list[int]:
    """Direct child processes of pid (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.fixture
def models(tmp_path: Path) -> list[str]:
    return ["--fusion-weights", str(write_random_fusion_weights(tmp_path / "fusion.pt")),
            "--segmentation-weights", str(write_random_segmentation_weights(tmp_path / "segmentation.pt"))]


@pytest.mark.slow
def test_demo_writes_the_output_bag_and_a_report(tmp_path, models):
    out = tmp_path / "demo_output"
    done = subprocess.run(_demo("--out", str(out), "--size", "160", "120", "--duration", "1.5",
                                "--node-arg", "torch_threads:=1", *models),
                          cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if "demo" in p.name) == ["demo_output"]  # no partial folder
    assert _demo_temporaries(tmp_path) == []
    report = json.loads((out / "report.json").read_text())
    assert report["problems"] == []
    assert report["inputs"]["thermal"]["messages"] == 13 and report["inputs"]["rgb"]["messages"] == 45
    assert report["inputs"]["rgb"]["camera_rate_hz"] == pytest.approx(30.0, rel=0.05)
    node = report["node"]
    assert node["paired"] >= node["processed"] >= 1
    assert node["paired"] == node["processed"] + node["dropped_pairs"] + node["skipped_no_subscribers"]
    assert node["segmentation"] == "on" and {"decode", "fuse", "segment", "publish"} <= set(node["stage_latency_ms"])
    for topic, encoding in (("/fused/image", "rgb8"), ("/segmentation/mask", "mono8"),
                            ("/segmentation/overlay", "rgb8")):
        output = report["outputs"][topic]
        assert output["messages"] == node["processed"]
        assert output["sizes"] == ["160x120"] and output["encodings"] == [encoding]
        assert output["stamps_from_inputs"] is True
        assert output["end_to_end_ms"]["min"] > 0  # receive time (bag time) after the input stamp
    assert report["classes"]["classes"] == ["background", "person", "bicycle", "car"]

    with Reader(out / "output_bag") as reader:
        fused = [stamp_to_ns(deserialize_image(raw).header.stamp)
                 for c, _, raw in reader.messages() if c.topic == "/fused/image"]
        assert "/diagnostics" in {c.topic for c in reader.connections}
    assert len(fused) == node["processed"]

    text = (out / "report.md").read_text()
    for expected in ("## Rates", "pairs formed by the node", f"processed {node['processed']}", "## Latency",
                     "end to end, /fused/image", "node stage `fuse`", "![contact sheet](contact_sheet.png)"):
        assert expected in text, expected
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet.shape[1] == 4 * 320 and sheet.shape[0] == min(4, len(fused)) * 240  # thermal|rgb|fused|overlay
    assert sheet[:, :320].std() > 5  # the thermal column shows the scene, not a blank tile
    assert {p.name for p in (out / "logs").iterdir()} == {"node.log", "player.log", "recorder.log"}


@pytest.mark.slow
def test_demo_plays_a_compressed_bag_into_the_nodes_compressed_inputs(tmp_path, models):
    bag = write_pair_bag(tmp_path / "bag", synthetic_frames(1.5, StreamTiming(9.0), StreamTiming(30.0), 120, 160),
                         progress=False, compressed=True)
    out = tmp_path / "demo_output"
    done = subprocess.run(_demo("--bag", str(bag), "--out", str(out), "--node-arg", "torch_threads:=1", *models),
                          cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["problems"] == []
    assert report["settings"]["input_transport"] == "thermal compressed, rgb compressed"
    assert report["inputs"]["thermal"]["messages"] == 13 and report["inputs"]["rgb"]["messages"] == 45
    node = report["node"]
    assert node["paired"] == node["processed"] + node["dropped_pairs"] + node["skipped_no_subscribers"]
    assert node["processed"] >= 1
    assert report["outputs"]["/fused/image"]["sizes"] == ["160x120"]
    assert report["outputs"]["/fused/image"]["stamps_from_inputs"] is True
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet[:, :320].std() > 5 and sheet[:, 320:640].std() > 5  # thermal and RGB decoded from PNG / JPEG


def test_demo_names_a_bag_without_the_expected_topics(tmp_path, models):
    bag = write_pair_bag(tmp_path / "bag", synthetic_frames(0.5, StreamTiming(9.0), StreamTiming(30.0), 48, 64),
                         rgb_topic="/front/color", progress=False)
    done = subprocess.run(_demo("--bag", str(bag), "--out", str(tmp_path / "out"), *models), cwd=tmp_path,
                          env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "no RGB topic matching 'rgb/image_raw'" in done.stderr and "--rgb-topic" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".pt") == ["bag", "tmp"]


@pytest.mark.slow
def test_ctrl_c_stops_every_child_and_leaves_nothing(tmp_path, models):
    demo = subprocess.Popen(_demo("--out", str(tmp_path / "out"), "--size", "160", "120", "--duration", "30",
                                  *models),
                            cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        children: list[int] = []
        while len(children) < 2:  # the node and the recorder are up
            assert demo.poll() is None and time.monotonic() < deadline, demo.communicate()
            children = _children(demo.pid)
            time.sleep(0.2)
        time.sleep(2.0)
        demo.send_signal(signal.SIGINT)
        _, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []  # reaped, not orphaned
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".out", "out"))]
    assert _demo_temporaries(tmp_path) == []  # the generated input bag is gone too


@pytest.mark.slow
def test_children_stop_when_the_demo_is_killed(tmp_path, models):
    """SIGKILL gives the demo no chance to clean up: its children still stop (parent-death signal)."""
    demo = subprocess.Popen(_demo("--out", str(tmp_path / "out"), "--size", "160", "120", "--duration", "30",
                                  *models),
                            cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        children: list[int] = []
        while len(children) < 2:
            assert demo.poll() is None and time.monotonic() < deadline
            children = _children(demo.pid)
            time.sleep(0.2)
        time.sleep(2.0)
    finally:
        demo.kill()
        demo.wait(10)
    deadline = time.monotonic() + 30
    while [pid for pid in children if Path(f"/proc/{pid}").exists()] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []
