"""Publish a rosbag2 recording into the live ROS graph at its recorded timing (no ``ros2 bag`` needed).

Messages go out in log-time order, each when ``(log_time - start) / rate`` has elapsed on the wall
clock; they are published as the bag's CDR bytes, unchanged (headers and stamps as recorded), so any
type whose Python message package is installed can be played. Topics of other types are skipped with
a warning naming them.

QoS per topic: ``auto`` uses the QoS recorded in the bag's metadata when there is one (so a latched
topic stays latched), else best effort for ``sensor_msgs`` types (like a camera driver; a best-effort
publisher reaches both best-effort and reliable subscribers only if they are best effort, which the
node's inputs are by default) and reliable for everything else.

``/clock`` (rosgraph_msgs/Clock, reliable) carries the bag time, for nodes run with ``use_sim_time``:
held at the first message's time while waiting to start, advanced with playback, and optionally kept
running for a tail after the last message so those nodes can finish the last frames in time order.

At the end of the bag (not when stopped), reliable topics get up to ``ack_timeout_s`` for every
subscriber to acknowledge what was sent:
the process exits right after playback, and a sample still in flight then would be lost (the last image
of a bag, typically, on a loaded machine).

A truncated or damaged bag plays every intact message (:class:`~seafusion_ros.bags.bag_reader.BagReader`);
what was recovered and where the file ends is logged as a warning and kept in ``PlaybackStats.recovery``.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import QosDurability, QosReliability
from rosgraph_msgs.msg import Clock

from seafusion_ros.bags.bag_reader import BagReader, BagReaderError
from seafusion_ros.imaging.stamps import ns_to_sec_nanosec

RELIABILITIES = ("auto", "best_effort", "reliable")


@dataclass(frozen=True)
class PlaybackOptions:
    """How to play: speed, looping, /clock, which topics, names and QoS."""

    rate: float = 1.0
    loop: bool = False
    clock_hz: float = 0.0
    clock_tail_s: float = 0.0
    topics: tuple[str, ...] = ()
    remap: dict[str, str] = field(default_factory=dict)
    reliability: str = "auto"
    depth: int = 10
    wait_for_subscribers_s: float = 0.0
    clock_subscribers: int = 0
    start_delay_s: float = 0.0
    ack_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"playback rate must be positive, got {self.rate}")
        if min(self.clock_hz, self.clock_tail_s, self.wait_for_subscribers_s, self.start_delay_s,
               self.ack_timeout_s) < 0:
            raise ValueError("clock rate, clock tail, subscriber wait, start delay and ack timeout must be >= 0")
        if self.reliability not in RELIABILITIES:
            raise ValueError(f"reliability must be one of {RELIABILITIES}, got {self.reliability!r}")
        if self.depth < 1:
            raise ValueError(f"QoS depth must be >= 1, got {self.depth}")


@dataclass
class PlaybackStats:
    """What a playback did: messages per output topic, passes, and how late the worst message went out;
    ``recovery`` summarises what a truncated or damaged bag still held ("" for an intact bag)."""

    published: dict[str, int] = field(default_factory=dict)
    skipped_topics: dict[str, str] = field(default_factory=dict)
    passes: int = 0
    max_late_s: float = 0.0
    bag_duration_s: float = 0.0
    unacknowledged: list[str] = field(default_factory=list)
    stopped: bool = False
    recovery: str = ""


def message_class(msgtype: str) -> Any:
    """The rclpy message class for ``pkg/msg/Type``; ImportError when its package is not installed."""
    package, kind, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ModuleNotFoundError, AttributeError) as exc:
        raise ImportError(f"{msgtype} is not available in this Python environment") from exc


def _recorded_qos(profiles: list[Any]) -> tuple[ReliabilityPolicy, DurabilityPolicy] | None:
    if not profiles:
        return None
    best_effort = any(p.reliability == QosReliability.BEST_EFFORT for p in profiles)
    latched = all(p.durability == QosDurability.TRANSIENT_LOCAL for p in profiles)
    return (ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
            DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def publisher_qos(msgtype: str, recorded: list[Any], reliability: str, depth: int) -> QoSProfile:
    """The QoS to publish a topic with (see the module docstring for ``auto``)."""
    durability = DurabilityPolicy.VOLATILE
    if reliability == "auto":
        chosen = _recorded_qos(recorded)
        if chosen is not None:
            policy, durability = chosen
        else:
            policy = ReliabilityPolicy.BEST_EFFORT if msgtype.startswith("sensor_msgs/") else ReliabilityPolicy.RELIABLE
    else:
        policy = ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policy, durability=durability)


class BagPlayer:
    """Plays one bag through publishers of ``node``; the caller owns the node and rclpy's context."""

    def __init__(self, node: Node, bag: str | os.PathLike, options: PlaybackOptions = PlaybackOptions(),
                 log: Callable[[str], None] | None = None) -> None:
        self.node, self.bag, self.options = node, Path(bag), options
        self.log = log or node.get_logger().info
        if not self.bag.exists():
            raise FileNotFoundError(f"bag not found: {self.bag}")
        self.reader = BagReader(self.bag)
        try:
            self.reader.open()
        except BagReaderError as exc:
            raise ValueError(f"cannot open bag {self.bag}: {exc}") from exc
        self.stats = PlaybackStats()
        self._publishers: dict[str, Any] = {}
        self._connections = []
        self._clock_pub = node.create_publisher(
            Clock, "/clock", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)) if options.clock_hz else None
        self._select_topics()
        self._note_recovery()

    def _note_recovery(self) -> None:
        """Warn once that the bag is damaged and what of it is played."""
        if self.reader.recovery is not None and not self.stats.recovery:
            self.stats.recovery = self.reader.recovery.summary()
            self.node.get_logger().warning(f"playing what is left of {self.bag}: {self.stats.recovery}")

    def _select_topics(self) -> None:
        available = {c.topic for c in self.reader.connections}
        missing = [t for t in self.options.topics if t not in available]
        if missing:
            raise ValueError(f"topics not in the bag: {missing} (it has {sorted(available)})")
        for connection in self.reader.connections:
            if self.options.topics and connection.topic not in self.options.topics:
                continue
            if connection.topic in self.stats.skipped_topics:
                continue
            if connection.ext.serialization_format != "cdr":
                self._skip(connection.topic, f"serialisation {connection.ext.serialization_format!r} is not cdr")
                continue
            try:
                cls = message_class(connection.msgtype)
            except (ImportError, ValueError) as exc:
                self._skip(connection.topic, str(exc))
                continue
            out_topic = self.options.remap.get(connection.topic, connection.topic)
            if out_topic not in self._publishers:
                qos = publisher_qos(connection.msgtype, list(connection.ext.offered_qos_profiles),
                                    self.options.reliability, self.options.depth)
                self._publishers[out_topic] = self.node.create_publisher(cls, out_topic, qos)
                self.stats.published[out_topic] = 0
            self._connections.append(connection)
        if self.reader.recovery is not None and not any(c.msgcount for c in self._connections):
            raise ValueError(f"nothing to play in {self.bag}: no intact message ({self.reader.recovery.summary()})")
        if not self._connections:
            raise ValueError(f"nothing to play in {self.bag}: no playable topic "
                             f"(skipped: {self.stats.skipped_topics or 'none'})")

    def _skip(self, topic: str, reason: str) -> None:
        self.stats.skipped_topics[topic] = reason
        self.node.get_logger().warning(f"skipping {topic}: {reason}")

    @property
    def output_topics(self) -> list[str]:
        return list(self._publishers)

    def close(self) -> None:
        for publisher in self._publishers.values():
            self.node.destroy_publisher(publisher)
        if self._clock_pub is not None:
            self.node.destroy_publisher(self._clock_pub)
        self._publishers, self._clock_pub = {}, None
        self.reader.close()

    # ----- timing ------------------------------------------------------------------------------

    def _publish_clock(self, bag_ns: int) -> None:
        if self._clock_pub is not None:
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = ns_to_sec_nanosec(bag_ns)
            self._clock_pub.publish(msg)

    def _wait(self, until: float, clock_ns: Callable[[], int], stop: threading.Event) -> bool:
        """Sleep until monotonic time ``until``, publishing /clock meanwhile; False when stopped."""
        period = 1.0 / self.options.clock_hz if self._clock_pub is not None else None
        while not stop.is_set():
            now = time.monotonic()
            if now >= until:
                return True
            if period is not None:
                self._publish_clock(clock_ns())
            stop.wait(min(until - now, period) if period is not None else until - now)
        return False

    def _unmatched(self) -> list[str]:
        """Topics whose publisher is not yet matched with every subscriber the graph shows (and at least one;
        for /clock at least ``clock_subscribers``): until then the first messages could be lost."""
        wanted = [(t, p, 1) for t, p in self._publishers.items()]
        if self._clock_pub is not None:
            wanted.append(("/clock", self._clock_pub, self.options.clock_subscribers))
        return [t for t, p, least in wanted
                if p.get_subscription_count() < max(least, self.node.count_subscribers(t))]

    def _wait_for_subscribers(self, start_ns: int, stop: threading.Event) -> None:
        deadline = time.monotonic() + self.options.wait_for_subscribers_s
        while time.monotonic() < deadline and not stop.is_set():
            if not self._unmatched():
                return
            self._wait(min(time.monotonic() + 0.1, deadline), lambda: start_ns, stop)
        unmatched = self._unmatched()
        if unmatched and not stop.is_set():
            self.node.get_logger().warning(f"playing before every subscriber of {', '.join(unmatched)} is matched")

    def play(self, stop: threading.Event | None = None) -> PlaybackStats:
        """Play until the bag ends (every pass when looping) or ``stop`` is set; returns the stats."""
        stop = stop or threading.Event()
        start_ns = self.reader.start_time
        self.stats.bag_duration_s = (self.reader.end_time - start_ns) / 1e9
        if self.options.wait_for_subscribers_s:
            self._wait_for_subscribers(start_ns, stop)
        self._wait(time.monotonic() + self.options.start_delay_s, lambda: start_ns, stop)
        rate = self.options.rate
        while not stop.is_set():
            wall0 = time.monotonic()

            def bag_now(wall0: float = wall0) -> int:
                return start_ns + int((time.monotonic() - wall0) * rate * 1e9)

            for connection, log_ns, raw in self.reader.messages(connections=self._connections):
                due = wall0 + (log_ns - start_ns) / 1e9 / rate
                if not self._wait(due, bag_now, stop):
                    break
                self.stats.max_late_s = max(self.stats.max_late_s, time.monotonic() - due)
                self._publish_clock(bag_now())
                topic = self.options.remap.get(connection.topic, connection.topic)
                self._publishers[topic].publish(bytes(raw))
                self.stats.published[topic] += 1
            else:
                self.stats.passes += 1
                if self.options.loop:
                    continue
                self._wait(time.monotonic() + self.options.clock_tail_s, bag_now, stop)
                break
        self.stats.stopped = stop.is_set()
        self._note_recovery()  # a bag that fails part-way is recovered during playback
        if not self.stats.stopped:  # stopped by a signal: end at once rather than wait for acknowledgements
            self._wait_for_acks()
        return self.stats

    def _wait_for_acks(self) -> None:
        """Give reliable subscribers up to ``ack_timeout_s`` in all to acknowledge every published message."""
        deadline = time.monotonic() + self.options.ack_timeout_s
        for topic, publisher in self._publishers.items():
            left = Duration(nanoseconds=int(max(0.0, deadline - time.monotonic()) * 1e9))
            if not publisher.wait_for_all_acked(left):
                self.stats.unacknowledged.append(topic)
                self.node.get_logger().warning(
                    f"{topic}: not every subscriber acknowledged the last messages within "
                    f"{self.options.ack_timeout_s} s; they may not have arrived")
