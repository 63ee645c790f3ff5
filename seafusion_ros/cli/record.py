"""seafusion-record: write chosen topics of the live ROS graph to a new rosbag2 (MCAP by default).

Topics are subscribed as they appear, with the publishers' QoS (best effort, reliable, latched).
Messages are logged at their receive time (``--ros-args -p use_sim_time:=true`` makes that the
``/clock`` time) or their header stamp (messages that cannot be decoded then are skipped, counted and
reported at the end). Runs until Ctrl-C / SIGTERM (exit status 130 / 143) or ``--duration`` (0), then
closes the bag and renames it into place (never a half-written bag under OUT).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from seafusion_ros.cli.interrupts import SignalStop
from seafusion_ros.cli.number_arguments import non_negative_float, positive_int
from seafusion_ros.cli.output_checks import BAG_WRITE_ERRORS, bag_write_failure, check_output_folder
from seafusion_ros.cli.play import init_ros
from seafusion_ros.ros.bag_player import RELIABILITIES
from seafusion_ros.ros.bag_recorder import LOG_TIMES, STORAGES, BagRecorder

DISCOVERY_PERIOD_S = 0.2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seafusion-record", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("out", type=Path, help="bag folder to create (must not exist)")
    p.add_argument("topics", nargs="*", help="topics to record (relative names resolve in the node's namespace)")
    p.add_argument("--all", action="store_true", help="record every topic (except /rosout, /parameter_events)")
    p.add_argument("--storage", choices=tuple(STORAGES), default="mcap")
    p.add_argument("--qos-reliability", choices=RELIABILITIES, default="auto",
                   help="auto: best effort if a publisher is, else reliable (latched topics stay latched)")
    p.add_argument("--qos-depth", type=positive_int, default=100)
    p.add_argument("--log-time", choices=LOG_TIMES, default="receive",
                   help="log each message at its receive time (node clock) or its header stamp (header: messages "
                        "that cannot be decoded are skipped and counted)")
    p.add_argument("--duration", type=non_negative_float, default=0.0, metavar="S",
                   help="stop after S seconds (0 = until signal)")
    return p


def main(argv: list[str] | None = None) -> int:
    context, rest = init_ros("seafusion-record", list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    with SignalStop() as stop:
        try:
            args = parser.parse_args(rest)
            if bool(args.topics) == args.all:
                parser.error("give the topics to record, or --all")
            node = Node("seafusion_recorder", context=context)
            try:
                check_output_folder(args.out)
                recorder = BagRecorder(node, args.out, args.topics, args.storage, args.qos_reliability,
                                       args.qos_depth, args.log_time)
            except (ValueError, FileExistsError) as exc:  # OutputError is a ValueError
                print(f"seafusion-record: error: {exc}", file=sys.stderr)
                return 2
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(node)
            started = time.monotonic()
            next_discovery = started
            try:
                while not stop.is_set() and not (args.duration and time.monotonic() - started >= args.duration):
                    if time.monotonic() >= next_discovery:
                        recorder.discover()
                        next_discovery = time.monotonic() + DISCOVERY_PERIOD_S
                    executor.spin_once(timeout_sec=DISCOVERY_PERIOD_S / 2)
                out = recorder.finish()
            except BAG_WRITE_ERRORS as exc:  # a full disk: no bag rather than a half-written one
                with contextlib.suppress(*BAG_WRITE_ERRORS):  # closing the bag may fail the same way
                    recorder.abort()
                print(f"seafusion-record: error: {bag_write_failure(args.out, exc)}; nothing was left behind",
                      file=sys.stderr)
                return 1
            except BaseException:
                recorder.abort()
                raise
            executor.shutdown()
            node.destroy_node()
        finally:
            context.try_shutdown()
    counts = ", ".join(f"{topic} {count}" for topic, count in recorder.stats.recorded.items()) or "nothing"
    print(f"seafusion-record: wrote {out}: {counts}")
    for topic, count in recorder.stats.undecodable.items():
        print(f"seafusion-record: skipped {count} undecodable message(s) on {topic} (no header stamp to log them at)",
              file=sys.stderr)
    for topic in recorder.pending():
        if topic not in recorder.stats.skipped_topics:
            print(f"seafusion-record: {topic} never appeared in the graph", file=sys.stderr)
    return stop.exit_status(0)


if __name__ == "__main__":
    sys.exit(main())
