"""Record chosen topics of the live ROS graph into a new rosbag2 (MCAP or sqlite3) with rosbags.

Subscriptions take the serialised CDR bytes (``raw=True``), which are written as they are: no
decoding per message. A topic is subscribed once it appears in the graph with a type, so the
recorder may start before the nodes it records. QoS ``auto`` follows the publishers, like ``ros2 bag
record``: best effort if any publisher is best effort (a reliable subscription gets nothing from
one), else reliable; transient local when every publisher is, so a latched topic's message arrives too.

Each message is logged at its receive time on the node's clock (``use_sim_time`` makes that the
``/clock`` time, so ``log time - header stamp`` is the end-to-end latency in bag time; messages that
arrive before the first ``/clock``, like a latched one, are logged at that first clock time), or at its
header stamp; with header stamps a message that cannot be deserialised is skipped and counted
(``RecordingStats.undecodable``), and recording goes on. The bag is written under a hidden temporary
parent folder and moved into place when finished; a run that fails leaves nothing behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

from seafusion_ros.bags.messages import TYPESTORE
from seafusion_ros.bags.staging import StagedBag
from seafusion_ros.imaging.stamps import stamp_to_ns
from seafusion_ros.ros.bag_player import RELIABILITIES, message_class

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
LOG_TIMES = ("receive", "header")
GRAPH_INFRASTRUCTURE = ("/rosout", "/parameter_events")


@dataclass
class RecordingStats:
    """Messages written per topic, topics that could not be recorded (with the reason), and messages skipped
    per topic because their header stamp could not be read (``log_time="header"``)."""

    recorded: dict[str, int] = field(default_factory=dict)
    skipped_topics: dict[str, str] = field(default_factory=dict)
    undecodable: dict[str, int] = field(default_factory=dict)


def _bag_qos(qos: QoSProfile) -> Qos:
    """The rosbags metadata form of an rclpy QoS (enum values are the rmw ones in both)."""
    zero = QosTime(sec=0, nsec=0)
    return Qos(history=QosHistory(int(qos.history)), depth=int(qos.depth),
               reliability=QosReliability(int(qos.reliability)), durability=QosDurability(int(qos.durability)),
               deadline=zero, lifespan=zero, liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=zero,
               avoid_ros_namespace_conventions=False)


class BagRecorder:
    """Writes the chosen topics of ``node``'s graph to ``out``; call ``discover`` periodically, then ``finish``.

    topics: names (relative ones resolve in the node's namespace); empty = every topic in the graph
    except ``/rosout`` and ``/parameter_events``. Callbacks and ``finish`` must run on one thread
    (a single-threaded executor), since the bag writer is not thread-safe.
    """

    def __init__(self, node: Node, out: str | os.PathLike, topics: list[str] | tuple[str, ...] = (),
                 storage: str = "mcap", reliability: str = "auto", depth: int = 100,
                 log_time: str = "receive") -> None:
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {tuple(STORAGES)}, got {storage!r}")
        if reliability not in RELIABILITIES:
            raise ValueError(f"reliability must be one of {RELIABILITIES}, got {reliability!r}")
        if log_time not in LOG_TIMES:
            raise ValueError(f"log time must be one of {LOG_TIMES}, got {log_time!r}")
        if depth < 1:
            raise ValueError(f"QoS depth must be >= 1, got {depth}")
        self.node, self.out = node, Path(out)
        self._staged = StagedBag(self.out)
        self.topics = [node.resolve_topic_name(t) for t in topics]
        self.reliability, self.depth, self.log_time = reliability, depth, log_time
        self.stats = RecordingStats()
        self._writer = Writer(self._staged.path, version=9, storage_plugin=STORAGES[storage])
        self._writer.open()
        self._subscriptions: dict[str, Any] = {}
        self._connections: dict[str, Any] = {}
        self._msgtypes: dict[str, str] = {}
        self._headerless_warned: set[str] = set()
        self._before_clock: list[tuple[str, bytes]] = []

    @property
    def subscribed(self) -> list[str]:
        return list(self._subscriptions)

    def pending(self) -> list[str]:
        """Chosen topics never subscribed (not in the graph yet, or skipped)."""
        return [t for t in self.topics if t not in self.stats.recorded]

    def discover(self) -> None:
        """Subscribe every wanted topic that is now in the graph."""
        for topic, types in self.node.get_topic_names_and_types():
            wanted = topic in self.topics if self.topics else topic not in GRAPH_INFRASTRUCTURE
            if not wanted or topic in self._subscriptions or topic in self.stats.skipped_topics:
                continue
            if len(types) != 1:
                self._skip(topic, f"published with several types {types}")
                continue
            msgtype = types[0]
            if msgtype not in TYPESTORE.types:
                self._skip(topic, f"type {msgtype} is unknown to the rosbags type store")
                continue
            try:
                cls = message_class(msgtype)
            except ImportError as exc:
                self._skip(topic, str(exc))
                continue
            qos = self._qos_for(topic)
            if qos is None:  # listed by a subscriber only: wait for a publisher to learn its QoS
                continue
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=TYPESTORE, offered_qos_profiles=[_bag_qos(qos)])
            self._msgtypes[topic] = msgtype
            self.stats.recorded[topic] = 0
            self._subscriptions[topic] = self.node.create_subscription(
                cls, topic, lambda data, t=topic: self._on_message(t, data), qos, raw=True)
            self.node.get_logger().info(
                f"recording {topic} ({msgtype}, {qos.reliability.name.lower()}, {qos.durability.name.lower()})")

    def _qos_for(self, topic: str) -> QoSProfile | None:
        publishers = self.node.get_publishers_info_by_topic(topic)
        if not publishers and self.reliability == "auto":
            return None
        if self.reliability == "auto":
            best_effort = any(p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for p in publishers)
        else:
            best_effort = self.reliability == "best_effort"
        latched = bool(publishers) and all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                                           for p in publishers)
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.depth,
                          reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL if latched and not best_effort
                          else DurabilityPolicy.VOLATILE)

    def _skip(self, topic: str, reason: str) -> None:
        self.stats.skipped_topics[topic] = reason
        self.node.get_logger().warning(f"not recording {topic}: {reason}")

    def _on_message(self, topic: str, data: bytes) -> None:
        if self._writer is None:
            return
        log_ns = self.node.get_clock().now().nanoseconds
        if self.log_time == "header":
            log_ns = self._header_stamp(topic, data, log_ns)
            if log_ns is None:
                return
        elif log_ns == 0:  # use_sim_time and no /clock yet (a latched message, say): log at the first clock time
            self._before_clock.append((topic, data))
            return
        self._write_before_clock(log_ns)
        self._write(topic, log_ns, data)

    def _write(self, topic: str, log_ns: int, data: bytes) -> None:
        self._writer.write(self._connections[topic], log_ns, data)
        self.stats.recorded[topic] += 1

    def _write_before_clock(self, log_ns: int) -> None:
        for topic, data in self._before_clock:
            self._write(topic, log_ns, data)
        self._before_clock = []

    def _header_stamp(self, topic: str, data: bytes, fallback_ns: int) -> int | None:
        """The message's header stamp; fallback_ns without a header; None (counted, logged) if undecodable."""
        try:
            msg = TYPESTORE.deserialize_cdr(data, self._msgtypes[topic])
        except Exception as exc:  # rosbags raises several types for a malformed CDR payload
            count = self.stats.undecodable.get(topic, 0) + 1
            self.stats.undecodable[topic] = count
            self.node.get_logger().warning(
                f"skipping an undecodable message on {topic} ({count} so far): {type(exc).__name__}: {exc}",
                throttle_duration_sec=5.0)
            return None
        header = getattr(msg, "header", None)
        if header is None:
            if topic not in self._headerless_warned:
                self._headerless_warned.add(topic)
                self.node.get_logger().warning(f"{topic} has no header: logged at receive time")
            return fallback_ns
        return stamp_to_ns(header.stamp)

    def finish(self) -> Path:
        """Stop receiving, close the bag and move it to its final name; returns that path."""
        for subscription in self._subscriptions.values():
            self.node.destroy_subscription(subscription)
        self._subscriptions = {}
        if self._before_clock:
            self.node.get_logger().warning(f"{len(self._before_clock)} messages arrived but no /clock message "
                                           "(use_sim_time): logged at time 0")
            self._write_before_clock(0)
        writer, self._writer = self._writer, None
        try:
            writer.close()
            return self._staged.commit()
        except BaseException:
            self._staged.discard()
            raise

    def abort(self) -> None:
        """Discard the recording (nothing is left on disk)."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.close()
            finally:
                self._staged.discard()
