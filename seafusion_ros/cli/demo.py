"""seafusion-demo: the whole product on a recording, live: bag -> player -> node -> recorder -> report.

Without ``--bag`` it first writes the embedded synthetic night street scene as a bag (thermal 16UC1 at
9 Hz, RGB rgb8 at 30 Hz). It then starts the real node (its own process, bundled models unless
told otherwise, ``use_sim_time``), the recorder (node outputs, latched classes, /diagnostics) and
the player (recorded timing, /clock), waits until the node has handled the last pair, stops
everything and writes OUT: ``output_bag/``, ``report.md``, ``report.json``, ``contact_sheet.png``
and ``logs/``. OUT is built under a temporary name and replaces an older OUT only when complete.

All ROS traffic stays on this machine in one ROS domain (``--domain-id``; default ROS_DOMAIN_ID if
set, else one derived from the process id, so parallel runs do not meet). Ctrl-C or SIGTERM stops
every child process; a child that dies is reported with the end of its log.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from seafusion_ros.bags.bag_reader import BagReader, BagReaderError
from seafusion_ros.bags.messages import COMPRESSED_TYPE, IMAGE_TYPES
from seafusion_ros.bags.recording import StreamTiming, synthetic_frames, write_pair_bag
from seafusion_ros.bags.replay import resolve_image_topic
from seafusion_ros.cli.interrupts import SignalStop, exit_status, signal_name
from seafusion_ros.cli.output_checks import check_output_folder, os_error_message
from seafusion_ros.demo.report import CLASSES, DIAGNOSTICS, OUTPUT_IMAGES, DemoRun, write_demo_report
from seafusion_ros.imaging.stamps import stamp_to_ns
from seafusion_ros.ros.background_spinner import BackgroundSpinner
from seafusion_ros.ros.dds_profile import use_large_image_profile
from seafusion_ros.weights import default_fusion_weights

NODE_INPUTS = ("/thermal/image_raw", "/rgb/image_raw")
CLOCK_HZ = 100.0
CLOCK_TAIL_S = 60.0
STOP_TIMEOUT_S = 20.0


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and why."""


class Interrupted(RuntimeError):
    """Ctrl-C or SIGTERM."""


CLEAN_STOP = (0, exit_status(signal.SIGINT))  # a child that ended on its own, or on the SIGINT it was sent


# Runs ``module`` as ``python -m`` would, after asking Linux to send it SIGTERM (a clean stop for all three
# programs) if the demo dies without stopping it, even by SIGKILL: no orphan keeps the node running.
_DIE_WITH_PARENT = (
    "import ctypes, runpy, signal, sys\n"
    "if sys.platform.startswith('linux'):\n"
    "    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
    "del sys.argv[0]\n"
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
)


class Child:
    """One child process (``python -m module args``) with its log file; stopped with SIGINT, then SIGKILL."""

    def __init__(self, name: str, module: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.log_path = name, log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-c", _DIE_WITH_PARENT, module, *args], env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


class Watcher:
    """A small node of the demo's own: the graph (who subscribes) and the seafusion node's /diagnostics."""

    def __init__(self, domain_id: int) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id,
                   signal_handler_options=SignalHandlerOptions.NO)
        self.node = Node("seafusion_demo", context=self.context)
        self.diagnostics: dict[str, str] = {}
        self.diagnostics_stamp_ns = 0
        self._lock = threading.Lock()
        self.node.create_subscription(DiagnosticArray, DIAGNOSTICS, self._on_diagnostics, 10)
        self.spinner = BackgroundSpinner(self.node, self.context)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith("seafusion_node"):
                with self._lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}
                    self.diagnostics_stamp_ns = stamp_to_ns(msg.header.stamp)

    def latest(self) -> tuple[dict[str, str], int]:
        with self._lock:
            return dict(self.diagnostics), self.diagnostics_stamp_ns

    def subscribers(self, topic: str) -> int:
        return self.node.count_subscribers(topic)

    def publishers(self, topic: str) -> int:
        return self.node.count_publishers(topic)

    def close(self) -> None:
        self.spinner.stop()
        self.node.destroy_node()
        self.context.try_shutdown()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seafusion-demo", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--bag", type=Path, help="play this bag instead of the synthetic scene")
    p.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder (replaced when complete)")
    p.add_argument("--thermal-topic", default="thermal/image_raw", help="bag topic: exact name or unique suffix")
    p.add_argument("--rgb-topic", default="rgb/image_raw", help="bag topic: exact name or unique suffix")
    p.add_argument("--fusion-weights", default="", help="fusion checkpoint ('' = bundled default)")
    p.add_argument("--segmentation-weights", default="", help="segmentation checkpoint ('' = bundled, if any)")
    p.add_argument("--device", default="auto", help="torch device of the node: auto, cpu, cuda, cuda:N")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    p.add_argument("--reliable", action="store_true",
                   help="reliable playback and node inputs (default: best effort, like a camera)")
    p.add_argument("--duration", type=float, default=8.0, help="synthetic bag: seconds")
    p.add_argument("--size", type=int, nargs=2, default=(640, 480), metavar=("WIDTH", "HEIGHT"),
                   help="synthetic bag: image size")
    p.add_argument("--keep-input-bag", action="store_true", help="keep the generated bag as OUT/input_bag")
    p.add_argument("--domain-id", type=int, help="ROS domain of the demo's processes")
    p.add_argument("--startup-timeout", type=float, default=300.0, help="seconds for the node to load its models")
    p.add_argument("--node-arg", action="append", default=[], metavar="NAME:=VALUE",
                   help="extra node parameter (repeatable), e.g. --node-arg torch_threads:=2")
    return p


def _check_bag(bag: Path, thermal_wanted: str, rgb_wanted: str) -> tuple[str, str, dict[str, str], float]:
    """(thermal topic, RGB topic, their types, duration in seconds) of a playable bag, or DemoError naming
    the problem. A camera recorded only as ``TOPIC/compressed`` is found from ``TOPIC``."""
    if not bag.exists():
        raise DemoError(f"bag not found: {bag}")
    try:
        with BagReader(bag) as reader:
            types = {c.topic: c.msgtype for c in reader.connections}
            duration = (reader.end_time - reader.start_time) / 1e9
    except BagReaderError as exc:  # nothing readable; a truncated bag plays what is intact
        raise DemoError(f"cannot open bag {bag}: {exc}") from exc
    found = []
    for role, wanted in (("thermal", thermal_wanted), ("RGB", rgb_wanted)):
        try:
            topic = resolve_image_topic(wanted, types)
        except ValueError as exc:
            raise DemoError(str(exc)) from exc
        if topic is None:
            raise DemoError(f"the bag has no {role} topic matching {wanted!r} (topics: {sorted(types)}); "
                            "name it with --thermal-topic / --rgb-topic")
        if types[topic] not in IMAGE_TYPES:
            raise DemoError(f"{role} topic {topic} has type {types[topic]}, expected {' or '.join(IMAGE_TYPES)}")
        found.append(topic)
    return found[0], found[1], {t: types[t] for t in found}, duration


def _wait(condition, timeout: float, what: str, stop: threading.Event, children: list[Child]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if stop.is_set():
            raise Interrupted()
        for child in children:
            if not child.alive():
                raise DemoError(f"{child.name} exited with status {child.proc.returncode} while waiting for "
                                f"{what}; end of its log:\n{child.log_tail()}")
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _settled(diagnostics: dict[str, str]) -> bool:
    """Every pair the node formed is accounted for: published, dropped for a newer one, or skipped."""
    try:
        done = sum(int(diagnostics[k]) for k in ("processed", "dropped_pairs", "skipped_no_subscribers"))
        return done == int(diagnostics["paired"])
    except (KeyError, ValueError):
        return False


def run_demo(args: argparse.Namespace, work: Path, stop: threading.Event) -> tuple[DemoRun, Path | None]:
    """Everything up to the bags: what the report needs, and the temporary folder of a generated bag (or None).

    Children are always stopped; the temporary bag is removed here on failure, by the caller otherwise.
    """
    for name, path in (("fusion", args.fusion_weights), ("segmentation", args.segmentation_weights)):
        if path and not Path(path).is_file():
            raise DemoError(f"{name} weights file not found: {path}")
    if not args.fusion_weights:
        try:
            default_fusion_weights()
        except FileNotFoundError as exc:
            raise DemoError(f"{exc}; give a checkpoint with --fusion-weights") from exc
    logs = work / "logs"
    logs.mkdir(parents=True)
    settings = {"fusion_weights": args.fusion_weights or "bundled default",
                "segmentation_weights": args.segmentation_weights or "bundled default (if installed)",
                "device": args.device, "rate": args.rate, "input_qos": "reliable" if args.reliable else "best effort"}
    if args.bag is None:
        bag_dir = work if args.keep_input_bag else Path(tempfile.mkdtemp(prefix="seafusion_demo_"))
        bag = bag_dir / "input_bag"
        width, height = args.size
        print(f"writing the synthetic scene: {args.duration:g} s, {width}x{height}, thermal 9 Hz + RGB 30 Hz")
        write_pair_bag(bag, synthetic_frames(args.duration, StreamTiming(9.0, 0.0, 0.002),
                                             StreamTiming(30.0, 0.0, 0.002), height, width), progress=False)
        settings["bag"] = f"synthetic scene, {args.duration:g} s, {width}x{height}"
    else:
        bag, bag_dir = args.bag.resolve(), None
        settings["bag"] = str(bag)
    try:
        thermal_topic, rgb_topic, types, duration = _check_bag(bag, args.thermal_topic, args.rgb_topic)
        run = DemoRun(bag, work / "output_bag", thermal_topic, rgb_topic, settings)
        compressed = tuple(types[t] == COMPRESSED_TYPE for t in (thermal_topic, rgb_topic))
        _run_graph(args, run, bag, duration, compressed, logs, stop)
    except BaseException:
        if bag_dir is not None and not args.keep_input_bag:
            shutil.rmtree(bag_dir, ignore_errors=True)
        raise
    return run, bag_dir if bag_dir is not None and not args.keep_input_bag else None


def _run_graph(args: argparse.Namespace, run: DemoRun, bag: Path, duration: float, compressed: tuple[bool, bool],
               logs: Path, stop: threading.Event) -> None:
    domain = args.domain_id if args.domain_id is not None else int(os.environ.get("ROS_DOMAIN_ID",
                                                                                  1 + os.getpid() % 100))
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    run.settings["ros_domain_id"] = domain
    weights = {"fusion_weights": args.fusion_weights, "segmentation_weights": args.segmentation_weights}
    node_params = [f"{name}:={os.path.abspath(path)}" for name, path in weights.items() if path]  # '' = default
    node_params += [f"device:={args.device}", "use_sim_time:=true", *args.node_arg]
    if args.bag is None:  # the synthetic frames' size is known: the node warms up for it before playback starts
        node_params += [f"registration.output_width:={args.size[0]}", f"registration.output_height:={args.size[1]}"]
    if args.reliable:
        node_params.append("qos.reliability:=reliable")
    node_inputs = tuple(topic + "/compressed" if packed else topic for topic, packed in zip(NODE_INPUTS, compressed,
                                                                                           strict=True))
    for role, packed in zip(("thermal", "rgb"), compressed, strict=True):
        node_params.append(f"{role}_image_transport:={'compressed' if packed else 'raw'}")
    run.settings["input_transport"] = ", ".join(f"{role} {'compressed' if packed else 'raw'}"
                                                for role, packed in zip(("thermal", "rgb"), compressed, strict=True))
    children: list[Child] = []
    watcher = Watcher(domain)
    try:
        print(f"starting seafusion_node (ROS domain {domain}; loading models) ...", flush=True)
        node_args = ["--ros-args"] + [a for p in node_params for a in ("-p", p)]
        node = Child("node", "seafusion_ros.ros.node", node_args, env, logs)
        children.append(node)
        recorder = Child("recorder", "seafusion_ros.cli.record",
                         [str(run.output_bag), *OUTPUT_IMAGES, CLASSES, DIAGNOSTICS,
                          "--ros-args", "-p", "use_sim_time:=true"], env, logs)
        children.append(recorder)
        _wait(lambda: all(watcher.subscribers(t) for t in node_inputs), args.startup_timeout,
              "the node to subscribe to its inputs", stop, children)
        outputs = [t for t in OUTPUT_IMAGES if watcher.publishers(t)]
        _wait(lambda: all(watcher.subscribers(t) for t in outputs), 30.0, "the recorder to subscribe", stop, children)
        print(f"node ready ({', '.join(outputs)}); playing {bag} ({duration:.1f} s at rate {args.rate:g})")
        player = Child("player", "seafusion_ros.cli.play",
                       [str(bag), "--topics", run.thermal_topic, run.rgb_topic,
                        "--remap", f"{run.thermal_topic}={node_inputs[0]}", f"{run.rgb_topic}={node_inputs[1]}",
                        "--rate", str(args.rate), "--clock", str(CLOCK_HZ), "--clock-tail", str(CLOCK_TAIL_S),
                        "--wait-for-subscribers", "20", "--clock-subscribers", "2", "--delay", "0.5",
                        "--qos-reliability", "reliable" if args.reliable else "auto"], env, logs)
        children.append(player)
        with BagReader(bag) as reader:
            bag_end_ns = reader.end_time

        def finished() -> bool:
            values, stamp = watcher.latest()
            return not player.alive() or (stamp > bag_end_ns + 200_000_000 and _settled(values))

        _wait(finished, duration / args.rate + CLOCK_TAIL_S + 30.0, "the playback to end", stop,
              [c for c in children if c is not player])
        if player.stop() not in CLEAN_STOP:
            raise DemoError(f"the player failed; end of its log:\n{player.log_tail()}")
        time.sleep(1.0)  # the last outputs reach the recorder
        values, _ = watcher.latest()
        print(f"playback done: node paired {values.get('paired', '?')}, processed {values.get('processed', '?')}, "
              f"dropped {values.get('dropped_pairs', '?')}; stopping")
        if recorder.stop() not in CLEAN_STOP or not run.output_bag.exists():
            raise DemoError(f"the recorder failed; end of its log:\n{recorder.log_tail()}")
        node_status = node.stop()
        if node_status not in CLEAN_STOP:
            run.problems.append(f"the node exited with status {node_status} (see logs/node.log)")
    finally:
        for child in reversed(children):
            child.stop()
        watcher.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    use_large_image_profile()  # before any participant here or in the child processes (they inherit it)
    if args.rate <= 0 or args.duration <= 0:
        print("seafusion-demo: error: --rate and --duration must be positive", file=sys.stderr)
        return 2
    out = args.out.resolve()
    try:
        check_output_folder(out.parent)
    except ValueError as exc:
        print(f"seafusion-demo: error: {exc}", file=sys.stderr)
        return 2
    work = out.with_name(f".{out.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    started = time.monotonic()
    temporary = None
    with SignalStop() as stop:
        try:
            run, temporary = run_demo(args, work, stop)
            summary = write_demo_report(run, work)
            if out.exists():
                shutil.rmtree(out)
            work.rename(out)
        except DemoError as exc:
            print(f"seafusion-demo: error: {exc}", file=sys.stderr)
            return 1
        except Interrupted:
            print(f"seafusion-demo: interrupted by {signal_name(stop.signum)}; every process stopped, nothing "
                  "written", file=sys.stderr)
            return stop.exit_status(1)
        except OSError as exc:  # a full disk while writing the report
            print(f"seafusion-demo: error: {os_error_message(exc)}; nothing written", file=sys.stderr)
            return 1
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if temporary is not None:
                shutil.rmtree(temporary, ignore_errors=True)
    for problem in summary["problems"]:
        print(f"seafusion-demo: {problem}", file=sys.stderr)
    node = summary["node"]
    print(f"done in {time.monotonic() - started:.0f} s: node processed {node.get('processed', 0)} of "
          f"{node.get('paired', 0)} pairs; report {out / 'report.md'}")
    return 1 if summary["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
