"""seafusion-play: publish a rosbag2's messages into the live ROS graph at recorded timing.

For machines without the ``ros2 bag`` CLI: ``seafusion-play BAG --clock`` plays like
``ros2 bag play BAG --clock`` (nodes under test run with ``use_sim_time:=true``). Options for speed,
looping, topic selection and renaming, QoS, and waiting for subscribers before starting.
ROS arguments go after ``--ros-args`` as usual. Ctrl-C (or SIGTERM) stops cleanly, with exit status 130
(143); a playback that ran to its end exits with 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from rclpy.utilities import remove_ros_args

from seafusion_ros.cli.interrupts import SignalStop, signal_name
from seafusion_ros.cli.number_arguments import non_negative_float, non_negative_int, positive_float, positive_int
from seafusion_ros.ros.bag_player import RELIABILITIES, BagPlayer, PlaybackOptions
from seafusion_ros.ros.dds_profile import use_large_image_profile


def init_ros(program: str, argv: list[str]) -> tuple[Context, list[str]]:
    """An rclpy context with the ``--ros-args`` part of argv (no rclpy signal handlers); the rest of argv."""
    use_large_image_profile()
    context = Context()
    rclpy.init(args=[program, *argv], context=context, signal_handler_options=SignalHandlerOptions.NO)
    return context, remove_ros_args([program, *argv])[1:]


def _remap(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        source, sep, target = item.partition("=")
        if not sep or not source or not target:
            raise ValueError(f"--remap takes FROM=TO, got {item!r}")
        pairs[source] = target
    return pairs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seafusion-play", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("bag", type=Path, help="rosbag2 folder (MCAP or sqlite3)")
    p.add_argument("--rate", type=positive_float, default=1.0, help="speed factor (2 = twice as fast)")
    p.add_argument("--loop", action="store_true", help="start again at the end, until stopped")
    p.add_argument("--clock", type=positive_float, nargs="?", const=100.0, default=0.0, metavar="HZ",
                   help="publish /clock with the bag time at HZ > 0 (100 when given without a value; without "
                        "--clock, none)")
    p.add_argument("--clock-tail", type=non_negative_float, default=0.0, metavar="S",
                   help="keep /clock running S seconds (bag time / rate) after the last message")
    p.add_argument("--topics", nargs="+", default=[], help="play only these bag topics (default: all)")
    p.add_argument("--remap", nargs="+", default=[], metavar="FROM=TO",
                   help="publish bag topic FROM as TO (not :=, which rcl takes for itself)")
    p.add_argument("--qos-reliability", choices=RELIABILITIES, default="auto",
                   help="auto: recorded QoS, else best effort for sensor_msgs and reliable for the rest")
    p.add_argument("--qos-depth", type=positive_int, default=10)
    p.add_argument("--wait-for-subscribers", type=non_negative_float, default=0.0, metavar="S",
                   help="wait up to S seconds until every played topic has a subscriber, all matched")
    p.add_argument("--clock-subscribers", type=non_negative_int, default=0, metavar="N",
                   help="with --wait-for-subscribers: also wait for N /clock subscribers (the sim-time nodes)")
    p.add_argument("--delay", type=non_negative_float, default=0.0, metavar="S", help="wait S seconds before playing")
    p.add_argument("--ack-timeout", type=non_negative_float, default=5.0, metavar="S",
                   help="at the end, wait up to S seconds for reliable subscribers to acknowledge every message "
                        "(0: exit at once)")
    return p


def main(argv: list[str] | None = None) -> int:
    context, rest = init_ros("seafusion-play", list(sys.argv[1:] if argv is None else argv))
    with SignalStop() as stop:
        try:
            args = build_parser().parse_args(rest)
            node = Node("seafusion_player", context=context)
            try:
                options = PlaybackOptions(args.rate, args.loop, args.clock, args.clock_tail, tuple(args.topics),
                                          _remap(args.remap), args.qos_reliability, args.qos_depth,
                                          args.wait_for_subscribers, args.clock_subscribers, args.delay,
                                          args.ack_timeout)
                player = BagPlayer(node, args.bag, options)
            except (ValueError, FileNotFoundError) as exc:
                print(f"seafusion-play: error: {exc}", file=sys.stderr)
                return 2
            try:
                stats = player.play(stop)
            finally:
                player.close()
                node.destroy_node()
        finally:
            context.try_shutdown()
    counts = ", ".join(f"{topic} {count}" for topic, count in stats.published.items())
    state = f"{stats.passes} pass(es)" if stop.signum is None else f"stopped by {signal_name(stop.signum)}"
    print(f"seafusion-play: {state}; published {counts}; worst lateness {stats.max_late_s * 1000:.1f} ms")
    if stats.unacknowledged:
        print(f"seafusion-play: not acknowledged within --ack-timeout: {', '.join(stats.unacknowledged)}",
              file=sys.stderr)
    return stop.exit_status(0)


if __name__ == "__main__":
    sys.exit(main())
