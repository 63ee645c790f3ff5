"""Failures that end in one clear line, not a traceback: an unwritable or full output folder, a write error
part-way, a damaged checkpoint, Ctrl-C / SIGTERM, and the leftovers of a run that was killed.

A full disk and a read-only filesystem are real ones where the kernel lets an ordinary user have them: a
small tmpfs or a read-only bind mount in a user + mount namespace (``unshare -rm``); /dev/full gives a real
ENOSPC for single files everywhere. Tests may run as root, whom chmod does not stop, so a permission
problem is made as a path under a regular file instead.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from seafusion_ros.bags.recording import StreamTiming, synthetic_frames, write_pair_bag
from seafusion_ros.cli.eval import main as eval_main
from seafusion_ros.cli.export_onnx import main as export_main
from seafusion_ros.cli.fuse import main as fuse_main
from seafusion_ros.cli.make_bag import main as make_bag_main
from seafusion_ros.cli.replay import main as replay_main
from seafusion_ros.cli.train import main as train_main
from seafusion_ros.cli.train_segmentation import main as train_segmentation_main
from seafusion_ros.evaluation.fusion_report import save_figure_atomic, write_text_atomic
from seafusion_ros.evaluation.task_driven import atomic_write
from seafusion_ros.imaging.image_files import WriteError, temporary_path, write_bytes_atomic, write_image_atomic
from seafusion_ros.models.checkpoint import CheckpointError, load_fusion_model, save_checkpoint
from seafusion_ros.models.seafusion import seafusion
from seafusion_ros.models.segmentation import ARCH, bisenet_lite, load_segmentation_model, segmentation_card_fields

REPO = Path(__file__).resolve().parents[1]
SIGNAL_WAIT_S = 120  # generous: the test asserts the outcome, the timings are measured and reported elsewhere


def _pairs(msrs_dev: Path, root: Path, count: int) -> tuple[Path, Path]:
    """Folders with the first ``count`` real 480 x 640 msrs_dev pairs (symlinks)."""
    ir_dir, vis_dir = root / "ir", root / "vi"
    ir_dir.mkdir(parents=True)
    vis_dir.mkdir()
    for path in sorted((msrs_dev / "ir").glob("*.png"))[:count]:
        (ir_dir / path.name).symlink_to(path)
        (vis_dir / path.name).symlink_to(msrs_dev / "vi" / path.name)
    return ir_dir, vis_dir


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.exists() else []


def _namespace() -> list[str]:
    """``unshare -rm``: a user + mount namespace in which this user may mount (skip where the kernel forbids)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed: no way to mount a small or read-only filesystem")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"user namespaces are not available here ({probe.stderr.strip()}): no way to mount a small "
                    "or read-only filesystem without root")
    return ["unshare", "-rm"]


def _in_namespace(setup: str, argv: list[str]) -> subprocess.CompletedProcess:
    """Run ``setup`` (mounts) and then ``python argv...`` in a fresh namespace; stdout and stderr as text."""
    script = f"set -e; {setup}; cd {shlex.quote(str(REPO))}; {shlex.join([sys.executable, *argv])}"
    return subprocess.run([*_namespace(), "sh", "-c", script], capture_output=True, text=True, timeout=600)


# 1. The output folder is checked before the model loads, in every command that writes outputs.

def _commands(msrs_dev: Path, tmp_path: Path, out: Path, junk: Path) -> dict[str, tuple]:
    """Each writing command with an --out it cannot use and a weights file it would fail to load."""
    ir_dir, vis_dir = _pairs(msrs_dev, tmp_path / "data", 2)
    return {
        "seafusion-fuse": (fuse_main, ["--ir", str(ir_dir), "--vis", str(vis_dir), "--out", str(out),
                                       "--weights", str(junk), "--no-progress"]),
        "seafusion-eval": (eval_main, ["--ir", str(ir_dir), "--vis", str(vis_dir), "--weights", str(junk),
                                       "--out", str(out), "--quiet"]),
        "seafusion-eval task": (eval_main, ["task", "--data", str(msrs_dev), "--out", str(out), "--no-progress"]),
        "seafusion-replay": (replay_main, [str(tmp_path / "bag"), "--out", str(out), "--weights", str(junk),
                                           "--no-progress"]),
        "seafusion-make-bag": (make_bag_main, [str(out), "--duration", "0.2", "--no-progress"]),
        "seafusion-export-onnx": (export_main, ["--weights", str(junk), "--out", str(out / "fusion.onnx")]),
        "seafusion-train": (train_main, ["--data", str(msrs_dev), "--out", str(out), "--init-weights", str(junk),
                                         "--no-progress"]),
        "seafusion-train --joint": (train_main, ["--joint", "--data", str(msrs_dev), "--out", str(out),
                                                 "--init-fusion", str(junk), "--no-progress"]),
        "train_segmentation": (train_segmentation_main, ["--images", str(msrs_dev / "vi"), "--pseudo-from",
                                                         str(msrs_dev), "--out", str(out), "--no-progress"]),
    }


@pytest.mark.parametrize("prog", ["seafusion-fuse", "seafusion-eval", "seafusion-eval task", "seafusion-replay",
                                  "seafusion-make-bag", "seafusion-export-onnx", "seafusion-train",
                                  "seafusion-train --joint", "train_segmentation"])
def test_an_output_folder_that_cannot_be_created_is_refused_before_the_model_loads(prog, msrs_dev, tmp_path,
                                                                                     capsys):
    blocker = tmp_path / "results.txt"  # a regular file where a folder is needed: refused even for root
    blocker.write_text("not a folder")
    junk = tmp_path / "weights.pt"
    junk.write_bytes(b"not a checkpoint")  # loading it would be an error too: the output check must come first
    main, argv = _commands(msrs_dev, tmp_path, blocker / "out", junk)[prog]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{prog}: error: cannot create {blocker / 'out'}: {blocker} is not a folder"), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "checkpoint" not in err
    assert blocker.read_text() == "not a folder"


def test_a_read_only_or_full_output_filesystem_is_refused_before_the_model_loads(msrs_dev, random_fusion_weights,
                                                                                tmp_path):
    ir_dir, vis_dir = _pairs(msrs_dev, tmp_path, 2)
    mount = tmp_path / "mount"
    mount.mkdir()
    junk = tmp_path / "weights.pt"
    junk.write_bytes(b"not a checkpoint")
    fuse = ["-m", "seafusion_ros.cli.fuse", "--ir", str(ir_dir), "--vis", str(vis_dir), "--weights", str(junk),
            "--no-progress", "--out"]
    m = shlex.quote(str(mount))
    read_only = _in_namespace(f"mount --bind {m} {m}; mount -o remount,bind,ro {m}", [*fuse, str(mount / "out")])
    assert read_only.returncode == 2, read_only.stderr
    assert read_only.stderr == f"seafusion-fuse: error: cannot create {mount / 'out'}: read-only filesystem " \
                               f"in {mount}\n"
    full = _in_namespace(f"mount -t tmpfs -o size=64k tmpfs {m}; mkdir {m}/out; "
                         f"dd if=/dev/zero of={m}/filler bs=4k 2>/dev/null || true", [*fuse, str(mount / "out")])
    assert full.returncode == 2, full.stderr
    assert full.stderr == f"seafusion-fuse: error: cannot write into {mount / 'out'}: no space left on device\n"
    assert not (mount / "out").exists()  # the namespace's mounts are gone; nothing was written here


# 2. A write error part-way names the file and the reason; the run goes on where that makes sense.

def test_a_full_disk_part_way_names_the_file_stops_the_run_and_prints_the_summary(msrs_dev, random_fusion_weights,
                                                                                 tmp_path, capsys):
    """/dev/full behind the second image's temporary name: the kernel's own ENOSPC on that write."""
    ir_dir, vis_dir = _pairs(msrs_dev, tmp_path, 5)
    stems = sorted(p.stem for p in ir_dir.iterdir())
    out = tmp_path / "out"
    out.mkdir()
    temporary_path(out / f"{stems[1]}.png").symlink_to("/dev/full")
    code = fuse_main(["--ir", str(ir_dir), "--vis", str(vis_dir), "--out", str(out), "--weights",
                      str(random_fusion_weights), "--device", "cpu", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert f"failed {stems[1]}: cannot write {out / stems[1]}.png: No space left on device" in captured.err
    assert "stopped: " in captured.err and "so 3 pair(s) were not tried" in captured.err
    assert captured.out == f"fused 1 pair(s) into {out}; 0 unmatched, 1 failed, 3 not tried\n"
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in out.iterdir()) == [f"{stems[0]}.png"]  # the temporary file went with the error


def test_a_small_filesystem_filling_up_part_way_leaves_only_whole_images(msrs_dev, random_fusion_weights, tmp_path):
    ir_dir, vis_dir = _pairs(msrs_dev, tmp_path, 6)
    common = ["--ir", str(ir_dir), "--vis", str(vis_dir), "--weights", str(random_fusion_weights), "--device", "cpu",
              "--no-progress"]
    assert fuse_main([*common, "--out", str(tmp_path / "sizes")]) == 0
    largest = max(p.stat().st_size for p in (tmp_path / "sizes").iterdir())
    mount = shlex.quote(str(tmp_path / "mount"))
    (tmp_path / "mount").mkdir()
    listing = textwrap.dedent("""
        import cv2, json, os, sys
        out = sys.argv[1]
        print(json.dumps({n: cv2.imread(os.path.join(out, n)) is not None for n in sorted(os.listdir(out))}))
    """)
    done = _in_namespace(
        f"mount -t tmpfs -o size={int(2.5 * largest) // 4096 * 4096 + 4096} tmpfs {mount}",
        ["-c", f"import subprocess, sys; rc = subprocess.call([sys.executable, '-m', 'seafusion_ros.cli.fuse', "
               f"*{[*common, '--out', str(tmp_path / 'mount' / 'out')]!r}]); "
               f"subprocess.call([sys.executable, '-c', {listing!r}, {str(tmp_path / 'mount' / 'out')!r}]); "
               f"sys.exit(rc)"])
    assert done.returncode == 1, done.stderr
    files = json.loads(done.stdout.strip().splitlines()[-1])
    written = done.stdout.strip().splitlines()[0]
    assert files and all(files.values()) and not [n for n in files if n.startswith(".")]  # whole images only
    assert "No space left on device" in done.stderr and "not tried" in done.stderr and "Traceback" not in done.stderr
    assert written.startswith(f"fused {len(files)} pair(s) into ") and " 1 failed, " in written


def test_a_full_disk_while_replaying_is_a_write_error_not_a_damaged_input_bag(random_fusion_weights, tmp_path):
    bag = write_pair_bag(tmp_path / "bag", synthetic_frames(2.0, StreamTiming(8.0), StreamTiming(8.0), 120, 160),
                         progress=False)  # 16 pairs: about 1.3 MB of outputs
    mount = tmp_path / "mount"
    mount.mkdir()
    out = mount / "out"
    done = _in_namespace(f"mount -t tmpfs -o size=262144 tmpfs {shlex.quote(str(mount))}",
                         ["-m", "seafusion_ros.cli.replay", str(bag), "--out", str(out), "--weights",
                          str(random_fusion_weights), "--device", "cpu", "--no-segmentation", "--no-metrics",
                          "--no-progress"])
    assert done.returncode == 1, done.stderr
    assert "writing the results failed (" in done.stderr and "output_bag: No space left on device)" in done.stderr, \
        done.stderr
    assert "truncated or damaged" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_an_error_writing_one_image_is_listed_and_the_other_pairs_are_fused(msrs_dev, random_fusion_weights,
                                                                           tmp_path, capsys):
    ir_dir, vis_dir = _pairs(msrs_dev, tmp_path, 3)
    stems = sorted(p.stem for p in ir_dir.iterdir())
    out = tmp_path / "out"
    (out / f"{stems[0]}.png" / "notes").mkdir(parents=True)  # a folder holds the first image's name
    code = fuse_main(["--ir", str(ir_dir), "--vis", str(vis_dir), "--out", str(out), "--weights",
                      str(random_fusion_weights), "--device", "cpu", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert f"failed {stems[0]}: cannot write {out / stems[0]}.png: Is a directory" in captured.err
    assert captured.out == f"fused 2 pair(s) into {out}; 0 unmatched, 1 failed\n"
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{stem}.png" for stem in stems)
    assert all(cv2.imread(str(out / f"{stem}.png")) is not None for stem in stems[1:])


def test_atomic_writers_remove_their_temporary_file_when_the_write_fails(tmp_path):
    figure = plt.figure()
    writers = {
        "bytes.bin": lambda path: write_bytes_atomic(path, b"x" * 100_000),
        "image.png": lambda path: write_image_atomic(path, np.full((64, 64), 7, np.uint8)),
        "report.md": lambda path: write_text_atomic(path, "# report\n"),
        "plot.png": lambda path: save_figure_atomic(figure, path),
        "task_driven.json": lambda path: atomic_write(path, b"{}"),
        "model.pt": lambda path: save_checkpoint(path, seafusion(), "seafusion", {}),
    }
    for name, write in writers.items():
        target = tmp_path / name
        temporary_path(target).symlink_to("/dev/full")
        with pytest.raises(WriteError) as caught:
            write(target)
        assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target), name
        assert str(caught.value) == f"[Errno {errno.ENOSPC}] No space left on device: '{target}'"
    assert list(tmp_path.iterdir()) == []


# 3. Non-finite weights are refused at load, naming the tensor.

def _poisoned(model: torch.nn.Module, key: str, value: float) -> torch.nn.Module:
    with torch.no_grad():
        model.state_dict()[key].view(-1)[3] = value
    return model


def test_a_fusion_checkpoint_with_nan_weights_is_refused_naming_the_tensor(msrs_dev, tmp_path, capsys):
    path = save_checkpoint(tmp_path / "nan.pt", _poisoned(seafusion(), "decoder.1.weight", float("nan")),
                           "seafusion", {"name": "diverged"})
    with pytest.raises(CheckpointError, match=r"nan.pt: tensor decoder.1.weight has 1 NaN or infinite value"):
        load_fusion_model(path)
    ir_dir, vis_dir = _pairs(msrs_dev, tmp_path, 2)
    code = fuse_main(["--ir", str(ir_dir), "--vis", str(vis_dir), "--out", str(tmp_path / "out"), "--weights",
                      str(path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (f"seafusion-fuse: error: {path}: tensor decoder.1.weight has 1 NaN or infinite value(s) of 18432; "
                   "the checkpoint is damaged or its training diverged\n")
    assert not (tmp_path / "out").exists()


def test_the_released_format_with_an_infinite_weight_is_refused_naming_its_key(released_weights, tmp_path):
    state = torch.load(released_weights, map_location="cpu", weights_only=True)
    state["inf_rgbd1.dense.conv2.conv.weight"].view(-1)[0] = float("inf")
    torch.save(state, tmp_path / "released.pth")
    with pytest.raises(CheckpointError, match=r"tensor inf_rgbd1.dense.conv2.conv.weight has 1 NaN or infinite"):
        load_fusion_model(tmp_path / "released.pth")


def test_a_segmentation_checkpoint_with_nan_weights_is_refused_naming_the_tensor(tmp_path):
    model = _poisoned(bisenet_lite(4, widths=(8, 8, 16, 16, 16), context=16), "head.1.weight", float("nan"))
    card = {"classes": ["background", "person", "bicycle", "car"], "palette": [[0, 0, 0]] * 4,
            **segmentation_card_fields(model)}
    path = save_checkpoint(tmp_path / "seg.pt", model, ARCH, card)
    with pytest.raises(CheckpointError, match=r"seg.pt: tensor head.1.weight has 1 NaN or infinite"):
        load_segmentation_model(path)


# 4. SIGINT / SIGTERM: exit status 130 / 143, one line, nothing half-written.

def _start_and_signal(argv: list[str], started: Callable[[int], bool], signum: int,
                      env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str, str, float]:
    """Start ``python argv``, wait until ``started(pid)``, send ``signum``; (process, stdout, stderr, seconds
    from the signal to the exit)."""
    process = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + SIGNAL_WAIT_S
        while not started(process.pid):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the command never started working"
            time.sleep(0.05)
        sent = time.monotonic()
        process.send_signal(signum)
        out, err = process.communicate(timeout=SIGNAL_WAIT_S)
        return process, out, err, time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_seafusion_fuse_cleanly(signum, msrs_dev, random_fusion_weights, tmp_path):
    ir_dir, vis_dir = _pairs(msrs_dev, tmp_path, 40)
    out = tmp_path / "out"
    process, _, err, seconds = _start_and_signal(
        ["-m", "seafusion_ros.cli.fuse", "--ir", str(ir_dir), "--vis", str(vis_dir), "--out", str(out),
         "--weights", str(random_fusion_weights), "--device", "cpu", "--no-progress"],
        lambda pid: out.is_dir() and any(out.glob("*.png")), signum)
    print(f"seafusion-fuse, {signal.Signals(signum).name}: exited {seconds:.2f} s after the signal")
    assert process.returncode == 128 + signum
    assert err.endswith(f"seafusion-fuse: interrupted by {signal.Signals(signum).name}\n") and "Traceback" not in err
    assert _hidden(out) == []
    written = sorted(out.iterdir())
    assert 0 < len(written) < 40 and all(cv2.imread(str(p)) is not None for p in written)


def test_sigterm_ends_seafusion_replay_cleanly_and_leaves_no_results_folder(random_fusion_weights, tmp_path):
    bag = write_pair_bag(tmp_path / "bag", synthetic_frames(4.0, StreamTiming(9.0), StreamTiming(9.0), 480, 640),
                         progress=False)
    out = tmp_path / "out"
    process, _, err, seconds = _start_and_signal(
        ["-m", "seafusion_ros.cli.replay", str(bag), "--out", str(out), "--weights", str(random_fusion_weights),
         "--device", "cpu", "--no-segmentation", "--no-progress"],
        lambda pid: (out / ".partial" / ".output_bag.partial").exists(), signal.SIGTERM)
    print(f"seafusion-replay, SIGTERM: exited {seconds:.2f} s after the signal")
    assert process.returncode == 143
    assert err.endswith("seafusion-replay: interrupted by SIGTERM\n") and "Traceback" not in err
    assert not out.exists()  # created by this run, so removed with the staged results


def test_a_command_stuck_in_one_long_native_operation_is_still_ended_by_a_signal(tmp_path):
    """The main thread never gets to run the handler, as in a torch operation on a 4K frame: the watchdog ends
    the process, after its clean-ups, with the signal's exit status."""
    script = tmp_path / "stuck.py"
    script.write_text(textwrap.dedent("""
        import os, signal, sys, time
        from seafusion_ros.cli import interrupts

        @interrupts.command("stuck")
        def main(argv=None):
            interrupts.on_forced_exit(lambda: os.write(2, b"clean-up ran\\n"))
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT, signal.SIGTERM])  # delivered to another thread
            print("working", flush=True)
            time.sleep(600)
            return 0

        sys.exit(main())
    """))
    ready = tmp_path / "ready"
    process = subprocess.Popen([sys.executable, str(script)], cwd=REPO, stdout=ready.open("w"), stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + SIGNAL_WAIT_S
    while "working" not in ready.read_text() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=SIGNAL_WAIT_S)
    assert process.returncode == 143
    assert err == "clean-up ran\nstuck: interrupted by SIGTERM\n"


# 5. What a killed run left is removed by the next run.

def test_temporary_files_of_a_killed_run_are_removed_by_the_next_run(msrs_dev, random_fusion_weights, tmp_path,
                                                                   capsys):
    ir_dir, vis_dir = _pairs(msrs_dev, tmp_path, 2)
    killed = subprocess.Popen(["true"])
    killed.wait()  # its process id now belongs to no process
    out = tmp_path / "out"
    out.mkdir()
    stem = sorted(p.stem for p in ir_dir.iterdir())[0]
    leftovers = [out / f".{stem}.png.{killed.pid}.tmp", out / f".summary.json.{killed.pid}.0123abcd.tmp"]
    kept = [out / f".other.png.{os.getpid()}.tmp", out / ".other.png.1.tmp",  # writers still running
            out / f".notes.{killed.pid}.txt"]  # not a temporary name of ours
    for path in leftovers + kept:
        path.write_bytes(b"half an image")
    assert fuse_main(["--ir", str(ir_dir), "--vis", str(vis_dir), "--out", str(out), "--weights",
                      str(random_fusion_weights), "--device", "cpu", "--no-progress"]) == 0
    assert f"removed 2 temporary file(s) left in {out} by a run that was killed" in capsys.readouterr().err
    assert not any(path.exists() for path in leftovers) and all(path.exists() for path in kept)


def test_staging_folders_of_a_killed_run_are_removed_by_the_next_run(random_fusion_weights, tmp_path):
    staging = tmp_path / ".bag.partial" / "bag"
    staging.mkdir(parents=True)
    (staging / "bag.mcap").write_bytes(b"half a bag")
    assert make_bag_main([str(tmp_path / "bag"), "--duration", "0.5", "--thermal-rate", "4", "--rgb-rate", "4",
                          "--size", "40", "32", "--no-progress"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag", "random_fusion.pt"]
    out = tmp_path / "out"
    (out / ".partial" / "output_bag").mkdir(parents=True)
    assert replay_main([str(tmp_path / "bag"), "--out", str(out), "--weights", str(random_fusion_weights),
                        "--device", "cpu", "--no-segmentation", "--no-metrics", "--no-progress"]) == 0
    assert _hidden(out) == [] and (out / "report.json").is_file()


# 6. The tools that stop on their own terms (a stop event) give the same exit statuses.

def _has_open(suffix: str) -> Callable[[int], bool]:
    """Whether process ``pid`` holds a file ending in ``suffix`` open (it has opened its bag)."""

    def check(pid: int) -> bool:
        with contextlib.suppress(OSError):
            return any(os.readlink(f"/proc/{pid}/fd/{fd}").endswith(suffix) for fd in os.listdir(f"/proc/{pid}/fd"))
        return False

    return check


def test_sigterm_ends_seafusion_play_and_record_with_143(tmp_path):
    pytest.importorskip("rclpy")
    from ros_graph import DOMAIN_ID

    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    bag = write_pair_bag(tmp_path / "bag", synthetic_frames(2.0, StreamTiming(4.0), StreamTiming(4.0), 32, 40),
                         progress=False)
    process, out, err, _ = _start_and_signal(["-m", "seafusion_ros.cli.play", str(bag), "--loop"],
                                             _has_open(".mcap"), signal.SIGTERM, env)
    assert process.returncode == 143, err
    assert out.startswith("seafusion-play: stopped by SIGTERM; published ") and "Traceback" not in err

    recorded = tmp_path / "recorded"
    process, out, err, _ = _start_and_signal(["-m", "seafusion_ros.cli.record", str(recorded), "--all"],
                                             _has_open(".mcap"), signal.SIGTERM, env)
    assert process.returncode == 143, err
    assert out.startswith(f"seafusion-record: wrote {recorded}") and "Traceback" not in err
    assert (recorded / "metadata.yaml").is_file() and not (tmp_path / ".recorded.partial").exists()
