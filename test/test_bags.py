"""Recordings: folder/synthetic -> bag -> offline replay -> output bag and report; damaged bags."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from bag_files import assert_self_contained
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from seafusion_ros.bags.messages import TYPESTORE, deserialize_image, image_array
from seafusion_ros.bags.recording import Frame, StreamTiming, folder_frames, synthetic_frames, write_pair_bag
from seafusion_ros.cli.eval import main as eval_main
from seafusion_ros.cli.make_bag import main as make_bag_main
from seafusion_ros.cli.replay import main as replay_main
from seafusion_ros.imaging.compressed import decode_compressed
from seafusion_ros.imaging.stamps import stamp_to_ns
from seafusion_ros.models.checkpoint import save_checkpoint
from seafusion_ros.models.segmentation import bisenet_lite, segmentation_card_fields


@pytest.fixture
def tiny_random_segmenter(tmp_path: Path) -> Path:
    """A randomly initialised 3-class segmentation network: real outputs, meaningless classes."""
    torch.manual_seed(0)
    model = bisenet_lite(3)
    card = {**segmentation_card_fields(model), "classes": ["background", "person", "car"],
            "palette": [[0, 0, 0], [220, 20, 60], [0, 0, 142]]}
    return save_checkpoint(tmp_path / "tiny_seg.pt", model, segmentation_card_fields(model)["arch"], card)


@pytest.fixture
def small_folders(msrs_dev: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Five real MSRS pairs shrunk to 120 x 160 (fast on the CPU)."""
    ir_dir, vis_dir = tmp_path / "ir", tmp_path / "vi"
    ir_dir.mkdir()
    vis_dir.mkdir()
    for stem in ("00004N", "00119D", "00786N", "00927N", "01016N"):
        for src, dst in ((msrs_dev / "ir", ir_dir), (msrs_dev / "vi", vis_dir)):
            image = cv2.imread(str(src / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
            cv2.imwrite(str(dst / f"{stem}.png"), cv2.resize(image, (160, 120), interpolation=cv2.INTER_AREA))
    return ir_dir, vis_dir


def _messages(bag: Path) -> dict[str, list]:
    with Reader(bag) as reader:
        found: dict[str, list] = {}
        for connection, _, raw in reader.messages():
            found.setdefault(connection.topic, []).append(deserialize_image(raw, connection.msgtype))
    return found


def test_a_compressed_bag_replays_like_the_raw_one_within_the_jpeg_loss(small_folders, tmp_path):
    """Real MSRS pairs and the bundled fusion model: PNG thermal is lossless, and the fused images of the
    JPEG bag differ from the raw bag's by no more than JPEG changed the RGB input itself."""
    ir_dir, vis_dir = small_folders
    bags = {"raw": [], "compressed": ["--compressed"]}
    for name, extra in bags.items():
        assert make_bag_main([str(tmp_path / name), "--ir", str(ir_dir), "--vis", str(vis_dir), "--no-progress",
                              *extra]) == 0
        assert replay_main([str(tmp_path / name), "--out", str(tmp_path / f"{name}_replay"), "--device", "cpu",
                            "--precision", "fp32", "--no-segmentation", "--no-metrics", "--no-progress"]) == 0
    raw, packed = _messages(tmp_path / "raw"), _messages(tmp_path / "compressed")
    assert set(packed) == {"/thermal/image_raw/compressed", "/rgb/image_raw/compressed"}
    assert {m.format for m in packed["/thermal/image_raw/compressed"]} == {"16UC1; png compressed mono16"}
    assert {m.format for m in packed["/rgb/image_raw/compressed"]} == {"rgb8; jpeg compressed bgr8"}
    for a, b in zip(raw["/thermal/image_raw"], packed["/thermal/image_raw/compressed"], strict=True):
        assert np.array_equal(image_array(a), decode_compressed(b)[0])  # 16 bits kept, no loss
    rgb_loss = np.mean([np.abs(image_array(a).astype(int) - decode_compressed(b)[0][:, :, ::-1]).mean()
                        for a, b in zip(raw["/rgb/image_raw"], packed["/rgb/image_raw/compressed"], strict=True)])

    def fused(name: str) -> dict[int, np.ndarray]:
        msgs = _messages(tmp_path / f"{name}_replay" / "output_bag")["/fused/image"]
        return {stamp_to_ns(m.header.stamp): image_array(m).astype(int) for m in msgs}

    from_raw, from_packed = fused("raw"), fused("compressed")
    assert from_raw.keys() == from_packed.keys() and len(from_raw) == 5
    fused_difference = np.mean([np.abs(from_raw[s] - from_packed[s]).mean() for s in from_raw])
    assert 0 < fused_difference <= rgb_loss, (fused_difference, rgb_loss)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_folder_bag_replay_round_trip(small_folders, tmp_path, random_fusion_weights, tiny_random_segmenter,
                                      storage):
    ir_dir, vis_dir = small_folders
    bag = tmp_path / "in_bag"
    assert make_bag_main([str(bag), "--ir", str(ir_dir), "--vis", str(vis_dir), "--storage", storage,
                          "--thermal-offset", "0.004", "--jitter", "0.001", "--no-progress"]) == 0
    inputs = _messages(bag)
    assert [m.encoding for m in inputs["/thermal/image_raw"]] == ["16UC1"] * 5
    assert [m.encoding for m in inputs["/rgb/image_raw"]] == ["rgb8"] * 5
    out = tmp_path / "report"
    assert replay_main([str(bag), "--out", str(out), "--weights", str(random_fusion_weights), "--device", "cpu",
                        "--segmentation-weights", str(tiny_random_segmenter), "--no-progress"]) == 0
    outputs = _messages(out / "output_bag")
    rgb_by_stamp = {stamp_to_ns(m.header.stamp): m for m in inputs["/rgb/image_raw"]}
    assert set(outputs) == {"/fused/image", "/segmentation/mask", "/segmentation/overlay"}
    for topic, encoding in (("/fused/image", "rgb8"), ("/segmentation/mask", "mono8"),
                            ("/segmentation/overlay", "rgb8")):
        assert len(outputs[topic]) == 5, topic
        for msg in outputs[topic]:
            source = rgb_by_stamp[stamp_to_ns(msg.header.stamp)]  # every output carries an input's stamp
            assert msg.header.frame_id == source.header.frame_id == "rgb_camera"
            assert (msg.height, msg.width, msg.encoding) == (120, 160, encoding)
            assert msg.step == 160 * (3 if encoding == "rgb8" else 1)
    for msg in outputs["/segmentation/mask"]:
        assert image_array(msg).max() < 3
    report = json.loads((out / "report.json").read_text())
    assert report["pairs"] == 5 and report["unmatched"] == {"thermal": 0, "rgb": 0}
    assert 3.0 < report["stamp_offset_thermal_minus_rgb_ms"]["mean"] < 5.0
    assert set(report["latency_ms"]) >= {"decode", "prepare", "fuse", "segment", "encode_write"}
    assert report["fusion_metrics"]["EN"]["n"] == 5
    assert report["classes"] == ["background", "person", "car"]
    assert (out / "contact_sheet.png").is_file() and "contact_sheet.png" in (out / "report.md").read_text()


def test_replay_metrics_equal_seafusion_eval(msrs_dev, released_weights, tmp_path):
    ir_dir, vis_dir = tmp_path / "ir", tmp_path / "vi"
    ir_dir.mkdir()
    vis_dir.mkdir()
    for stem in ("00004N", "00119D", "01016N"):
        (ir_dir / f"{stem}.png").symlink_to(msrs_dev / "ir" / f"{stem}.png")
        (vis_dir / f"{stem}.png").symlink_to(msrs_dev / "vi" / f"{stem}.png")
    bag = tmp_path / "bag"
    assert make_bag_main([str(bag), "--ir", str(ir_dir), "--vis", str(vis_dir), "--thermal-encoding", "mono8",
                          "--no-progress"]) == 0
    assert replay_main([str(bag), "--out", str(tmp_path / "replay"), "--weights", str(released_weights),
                        "--device", "cpu", "--no-segmentation", "--no-output-bag", "--no-progress"]) == 0
    assert eval_main(["--ir", str(ir_dir), "--vis", str(vis_dir), "--weights", str(released_weights),
                      "--device", "cpu", "--out", str(tmp_path / "eval"), "--jobs", "1"]) == 0
    replay = json.loads((tmp_path / "replay" / "report.json").read_text())["fusion_metrics"]
    evaluated = json.loads((tmp_path / "eval" / "summary.json").read_text())["methods"]
    (method,) = evaluated.values()
    for name in ("EN", "SD", "SF", "AG", "MI", "SCD", "CC", "VIF", "Qabf", "Nabf"):
        assert replay[name]["mean"] == pytest.approx(method["mean"][name], rel=1e-6), name


def test_synthetic_bag_has_both_camera_rates(tmp_path):
    bag = write_pair_bag(tmp_path / "synthetic", synthetic_frames(1.0, StreamTiming(9.0), StreamTiming(30.0), 48, 64),
                         progress=False)
    msgs = _messages(bag)
    assert len(msgs["/thermal/image_raw"]) == 9 and len(msgs["/rgb/image_raw"]) == 30
    thermal = image_array(msgs["/thermal/image_raw"][0])
    assert thermal.dtype == np.uint16 and thermal.max() < 2**14


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_finished_bags_of_make_bag_and_replay_stand_on_their_own(tmp_path, random_fusion_weights, storage):
    bag = tmp_path / "bag"
    assert make_bag_main([str(bag), "--storage", storage, "--duration", "0.5", "--thermal-rate", "8",
                          "--rgb-rate", "8", "--size", "40", "32", "--no-progress"]) == 0
    assert_self_contained(bag, tmp_path / "bag_copy")
    assert replay_main([str(bag), "--out", str(tmp_path / "out"), "--weights", str(random_fusion_weights),
                        "--device", "cpu", "--no-segmentation", "--no-metrics", "--no-progress"]) == 0
    assert_self_contained(tmp_path / "out" / "output_bag", tmp_path / "output_copy")
    assert not [p.name for p in tmp_path.iterdir() if "partial" in p.name]


def test_existing_output_is_refused_and_nothing_partial_is_left(tmp_path, capsys):
    (tmp_path / "bag").mkdir()
    assert make_bag_main([str(tmp_path / "bag"), "--duration", "0.2", "--no-progress"]) == 2
    assert "already exists" in capsys.readouterr().err
    with pytest.raises(ValueError):
        total, frames = folder_frames(tmp_path, tmp_path, StreamTiming(10.0), "mono8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_replay_refuses_a_used_out_folder_and_overwrite_replaces_its_results_once_complete(
        tmp_path, random_fusion_weights, tiny_random_segmenter, capsys, monkeypatch):
    import seafusion_ros.bags.replay as replay_module

    bag = write_pair_bag(tmp_path / "bag", synthetic_frames(1.0, StreamTiming(4.0), StreamTiming(4.0), 32, 40),
                         progress=False)
    out = tmp_path / "out"
    out.mkdir()  # an empty folder is fine
    common = [str(bag), "--out", str(out), "--weights", str(random_fusion_weights), "--device", "cpu",
              "--no-metrics", "--no-progress"]
    assert replay_main([*common, "--segmentation-weights", str(tiny_random_segmenter)]) == 0
    (out / "notes.txt").write_text("mine")
    first = _files(out)
    assert {"report.json", "report.md", "contact_sheet.png", "notes.txt"} < set(first)
    assert _messages(out / "output_bag").keys() == {"/fused/image", "/segmentation/mask", "/segmentation/overlay"}

    def unchanged() -> None:
        assert _files(out) == first
        assert not [p.name for p in tmp_path.iterdir() if "partial" in p.name]

    capsys.readouterr()
    assert replay_main(common) == 2
    err = capsys.readouterr().err
    assert f"--out folder {out} is not empty" in err and "--overwrite" in err
    unchanged()

    calls = 0
    deserialize = replay_module.deserialize_image

    def interrupted_on_the_fifth_message(raw: bytes, *args):
        nonlocal calls
        calls += 1
        if calls == 5:
            raise KeyboardInterrupt
        return deserialize(raw, *args)

    monkeypatch.setattr(replay_module, "deserialize_image", interrupted_on_the_fifth_message)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C midway: the earlier results stay as they were
        replay_main([*common, "--overwrite"])
    assert calls == 5
    unchanged()
    monkeypatch.undo()

    assert replay_main([*common, "--overwrite", "--no-segmentation"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["classes"] == [] and report["output_bag"] == str(out / "output_bag")  # not the staging folder
    assert _messages(out / "output_bag").keys() == {"/fused/image"}
    assert cv2.imread(str(out / "contact_sheet.png")).shape[1] == 3 * 320  # thermal | rgb | fused, no overlay
    assert (out / "notes.txt").read_text() == "mine"

    assert replay_main([*common, "--overwrite", "--no-segmentation", "--no-output-bag", "--samples", "2"]) == 0
    assert not (out / "output_bag").exists()  # not left from the run before, beside a report without it
    assert json.loads((out / "report.json").read_text())["output_bag"] is None
    assert cv2.imread(str(out / "contact_sheet.png")).shape[:2] == (2 * 256, 3 * 320)
    assert sorted(_files(out)) == ["contact_sheet.png", "notes.txt", "report.json", "report.md"]
    assert not [p.name for p in tmp_path.iterdir() if "partial" in p.name]


def test_a_replay_whose_results_cannot_all_be_moved_in_leaves_the_earlier_ones_as_they_were(
        tmp_path, random_fusion_weights, capsys, monkeypatch):
    bag = write_pair_bag(tmp_path / "bag", synthetic_frames(1.0, StreamTiming(4.0), StreamTiming(4.0), 32, 40),
                         progress=False)
    out = tmp_path / "out"
    common = [str(bag), "--out", str(out), "--weights", str(random_fusion_weights), "--device", "cpu",
              "--no-metrics", "--no-progress", "--no-segmentation"]
    assert replay_main(common) == 0
    first = _files(out)
    rename = Path.rename

    def last_move_fails(self: Path, target):  # e.g. a full or read-only volume, after three moves went well
        if self.parent.name == ".partial" and Path(target) == out / "contact_sheet.png":
            raise OSError(28, "No space left on device")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", last_move_fails)
    capsys.readouterr()
    assert replay_main([*common, "--overwrite", "--samples", "2"]) == 1
    assert "No space left on device (it keeps the earlier results; the new ones are in" in capsys.readouterr().err
    monkeypatch.undo()
    assert {name: data for name, data in _files(out).items() if not name.startswith(".partial")} == first
    staged = out / ".partial"
    assert {p.name for p in staged.iterdir()} == {"output_bag", "report.json", "report.md", "contact_sheet.png"}
    assert json.loads((staged / "report.json").read_text())["pairs"] > 0


def test_an_interrupted_replay_into_a_new_folder_leaves_no_folder(tmp_path, random_fusion_weights, monkeypatch):
    import seafusion_ros.bags.replay as replay_module

    bag = write_pair_bag(tmp_path / "bag", synthetic_frames(1.0, StreamTiming(4.0), StreamTiming(4.0), 32, 40),
                         progress=False)

    def interrupted(raw: bytes, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(replay_module, "deserialize_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        replay_main([str(bag), "--out", str(tmp_path / "new"), "--weights", str(random_fusion_weights),
                     "--device", "cpu", "--no-metrics", "--no-progress"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag", "random_fusion.pt"]  # staged inside --out


@pytest.mark.parametrize(("option", "values"), [("--duration", ["-1"]), ("--rgb-rate", ["0"]), ("--jitter", ["-0.001"]),
                                               ("--size", ["64", "16"]), ("--seed", ["-1"]),
                                               ("--thermal-offset", ["nan"]), ("--jpeg-quality", ["0"]),
                                               ("--jpeg-quality", ["101"])])
def test_make_bag_refuses_meaningless_numbers_at_parse_time(tmp_path, capsys, option, values):
    with pytest.raises(SystemExit) as stopped:
        make_bag_main([str(tmp_path / "bag"), option, *values, "--no-progress"])
    assert stopped.value.code == 2 and f"argument {option}: expected" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("option", "value"), [("--samples", "-2"), ("--queue-size", "0"), ("--slop", "0")])
def test_replay_refuses_meaningless_numbers_at_parse_time(tmp_path, random_fusion_weights, capsys, option, value):
    bag = write_pair_bag(tmp_path / "bag", synthetic_frames(0.5, StreamTiming(4.0), StreamTiming(4.0), 32, 40),
                         progress=False)
    with pytest.raises(SystemExit) as stopped:
        replay_main([str(bag), "--out", str(tmp_path / "out"), "--weights", str(random_fusion_weights),
                     "--device", "cpu", "--no-segmentation", "--no-progress", option, value])
    assert stopped.value.code == 2 and f"argument {option}: expected" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag", "random_fusion.pt"]


def test_replay_results_get_the_umask_mode_not_0600(tmp_path, random_fusion_weights):
    bag = write_pair_bag(tmp_path / "bag", synthetic_frames(0.5, StreamTiming(4.0), StreamTiming(4.0), 32, 40),
                         progress=False)
    out = tmp_path / "out"
    previous = os.umask(0o027)
    try:
        assert replay_main([str(bag), "--out", str(out), "--weights", str(random_fusion_weights), "--device", "cpu",
                            "--no-segmentation", "--no-metrics", "--no-progress"]) == 0
    finally:
        os.umask(previous)
    modes = {str(p.relative_to(out)): stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_file()}
    assert {"report.json", "report.md", "contact_sheet.png", "output_bag/metadata.yaml"} <= modes.keys()
    assert modes == dict.fromkeys(modes, 0o640)


def _replay_cli(bag: Path, out: Path, weights: Path, capsys) -> tuple[int, str, dict]:
    code = replay_main([str(bag), "--out", str(out), "--weights", str(weights), "--device", "cpu",
                        "--no-segmentation", "--no-progress"])
    err = capsys.readouterr().err
    return code, err, json.loads((out / "report.json").read_text())


def test_missing_topic_and_unknown_topics_give_a_message_and_a_report(tmp_path, random_fusion_weights, capsys):
    bag = tmp_path / "rgb_only"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/rgb/image_raw", "sensor_msgs/msg/Image", typestore=TYPESTORE)
        other = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=TYPESTORE)
        from seafusion_ros.bags.messages import image_message, serialize_image

        writer.write(conn, 1, serialize_image(image_message(np.zeros((8, 8, 3), np.uint8), "rgb8", 1, "cam")))
        writer.write(other, 2, bytes(TYPESTORE.serialize_cdr(TYPESTORE.types["std_msgs/msg/String"](data="hi"),
                                                             "std_msgs/msg/String")))
    code, err, report = _replay_cli(bag, tmp_path / "out", random_fusion_weights, capsys)
    assert code == 1
    assert "no thermal topic matching 'thermal/image_raw'" in err and "Traceback" not in err
    assert report["topics"]["/chatter"]["type"] == "std_msgs/msg/String"
    assert report["pairs"] == 0


def test_truncated_bag_gives_a_partial_report(tmp_path, random_fusion_weights, capsys):
    bag = write_pair_bag(tmp_path / "bag", synthetic_frames(2.0, StreamTiming(9.0), StreamTiming(9.0), 48, 64),
                         progress=False)
    (mcap,) = bag.glob("*.mcap")
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) * 2 // 3])
    code, err, report = _replay_cli(bag, tmp_path / "out", random_fusion_weights, capsys)
    assert code == 1 and "Traceback" not in err
    assert report["problems"]
    assert 0 <= report["pairs"] < 18


def test_frames_too_small_for_the_metrics_are_still_replayed(tmp_path, random_fusion_weights, capsys):
    bag = _mismatched_size_bag(tmp_path / "bag", thermal=(32, 40), rgb=(32, 40))
    code = replay_main([str(bag), "--out", str(tmp_path / "out"), "--weights", str(random_fusion_weights),
                        "--device", "cpu", "--no-segmentation", "--no-progress"])
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["pairs"] == 3 and len(_messages(tmp_path / "out" / "output_bag")["/fused/image"]) == 3
    assert all("no fusion metrics: image too small for VIF" in p for p in report["problems"])
    assert len(report["problems"]) == 3 and code == 1  # reported as problems, not as a damaged bag
    capsys.readouterr()


def test_missing_bag_is_a_clear_message(tmp_path, random_fusion_weights, capsys):
    code, err, report = _replay_cli(tmp_path / "nope", tmp_path / "out", random_fusion_weights, capsys)
    assert code == 1 and "bag not found" in err


def _mismatched_size_bag(path: Path, pairs: int = 3, thermal: tuple[int, int] = (30, 40),
                         rgb: tuple[int, int] = (60, 80)) -> Path:
    """Thermal 30 x 40 (16UC1) and RGB 60 x 80, identical stamps: like a real thermal + RGB camera pair."""
    rng = np.random.default_rng(0)
    frames = []
    for k in range(pairs):
        stamp = 1_000_000_000 + k * 100_000_000
        frames.append(("thermal", Frame(rng.integers(7000, 9000, thermal).astype(np.uint16), "16UC1", stamp)))
        frames.append(("rgb", Frame(rng.integers(0, 256, (*rgb, 3), dtype=np.uint8), "rgb8", stamp)))
    return write_pair_bag(path, frames, progress=False)


def test_replay_registers_thermal_of_another_size_like_the_node(tmp_path, random_fusion_weights,
                                                                 tiny_random_segmenter, capsys):
    bag = _mismatched_size_bag(tmp_path / "bag")
    common = ["--weights", str(random_fusion_weights), "--device", "cpu", "--precision", "fp32", "--no-metrics",
              "--segmentation-weights", str(tiny_random_segmenter), "--no-progress"]

    def replay(name: str, *options: str) -> tuple[int, str, dict[str, list]]:
        code = replay_main([str(bag), "--out", str(tmp_path / name), *common, *options])
        err = capsys.readouterr().err
        out_bag = tmp_path / name / "output_bag"
        return code, err, _messages(out_bag) if out_bag.exists() else {}

    code, err, outputs = replay("none")  # the default, as the node's: sizes must match
    assert code == 1 and outputs == {}
    assert "sizes differ and registration mode is 'none'" in err and "--registration-mode" in err

    for name, options, size in (("scale", ["--registration-mode", "scale"], (60, 80)),
                                ("resized", ["--registration-mode", "scale", "--output-size", "24x32"], (24, 32)),
                                ("homography", ["--registration-mode", "homography", "--homography",
                                                "2", "0", "0", "0", "2", "0", "0", "0", "1"], (60, 80))):
        code, err, outputs = replay(name, *options)
        assert code == 0, err
        for topic in ("/fused/image", "/segmentation/mask", "/segmentation/overlay"):
            assert len(outputs[topic]) == 3, (name, topic)
            assert {(m.height, m.width) for m in outputs[topic]} == {size}, (name, topic)
        report = json.loads((tmp_path / name / "report.json").read_text())
        assert report["pairs"] == 3 and report["unmatched"] == {"thermal": 0, "rgb": 0}
    # A homography that scales by 2 is the scale registration of a half-size thermal camera: same pixels.
    scale, homography = (_messages(tmp_path / n / "output_bag")["/fused/image"] for n in ("scale", "homography"))
    for a, b in zip(scale, homography, strict=True):
        assert np.array_equal(image_array(a), image_array(b))


def test_replay_rejects_bad_registration_options_clearly(tmp_path, random_fusion_weights, capsys):
    bag = _mismatched_size_bag(tmp_path / "bag", pairs=1)
    code = replay_main([str(bag), "--out", str(tmp_path / "out"), "--weights", str(random_fusion_weights),
                        "--registration-mode", "homography", "--homography", *["0"] * 9, "--no-progress"])
    assert code == 2 and "homography is singular" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        replay_main([str(bag), "--out", str(tmp_path / "out"), "--output-size", "320", "--no-progress"])
    assert "expected HEIGHTxWIDTH" in capsys.readouterr().err


def test_replay_decodes_each_message_once_and_builds_the_palette_once(tmp_path, random_fusion_weights,
                                                                      tiny_random_segmenter, monkeypatch):
    import seafusion_ros.bags.replay as replay_module
    import seafusion_ros.imaging.overlay as overlay_module

    calls = {"deserialize": 0, "palette": 0}

    def counting(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(replay_module, "deserialize_image", counting("deserialize", replay_module.deserialize_image))
    monkeypatch.setattr(replay_module, "palette_array", counting("palette", overlay_module.palette_array))
    monkeypatch.setattr(overlay_module, "palette_array", counting("palette", overlay_module.palette_array))
    bag = write_pair_bag(tmp_path / "bag", synthetic_frames(1.0, StreamTiming(4.0), StreamTiming(4.0), 32, 40),
                         progress=False)
    assert replay_main([str(bag), "--out", str(tmp_path / "out"), "--weights", str(random_fusion_weights),
                        "--device", "cpu", "--segmentation-weights", str(tiny_random_segmenter), "--no-metrics",
                        "--no-progress"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["pairs"] == 4
    assert calls == {"deserialize": 8, "palette": 1}


def test_a_camera_recorded_only_compressed_is_found_from_its_base_topic():
    from seafusion_ros.bags.replay import resolve_image_topic

    mixed = {"/thermal/image_raw": "sensor_msgs/msg/Image",
             "/front/rgb/image_raw/compressed": "sensor_msgs/msg/CompressedImage"}
    assert resolve_image_topic("thermal/image_raw", mixed) == "/thermal/image_raw"
    assert resolve_image_topic("rgb/image_raw", mixed) == "/front/rgb/image_raw/compressed"
    both = {"/rgb/image_raw": "sensor_msgs/msg/Image", "/rgb/image_raw/compressed": "sensor_msgs/msg/CompressedImage"}
    assert resolve_image_topic("rgb/image_raw", both) == "/rgb/image_raw"  # the raw one when there are both
    assert resolve_image_topic("rgb/image_raw/compressed", both) == "/rgb/image_raw/compressed"
    assert resolve_image_topic("depth/image_raw", mixed) is None
