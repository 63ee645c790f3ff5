"""Read a rosbag2 bag's messages in log-time order, every intact one also when the bag is damaged.

An intact bag is read with rosbags' ``Reader``. When that cannot open the bag, or fails part-way, the
storage files are read directly (:mod:`~seafusion_ros.bags.mcap_recovery`,
:mod:`~seafusion_ros.bags.sqlite3_recovery`) and ``BagReader.recovery`` says what was recovered. A
recording cut short (power loss, full disk) is the usual case: its MCAP file has no footer, its
sqlite3 file is shorter than its header says, and it often has no metadata.yaml (rosbag2 writes that
when recording ends). Without metadata.yaml the folder's ``.mcap`` and ``.db3`` files are read, in
split order; a path to one storage file works too.

Example::

    with BagReader("recording") as reader:
        for connection, log_time_ns, raw in reader.messages():
            ...
        if reader.recovery is not None:
            print(reader.recovery.summary())
"""

from __future__ import annotations

import heapq
import os
import re
from collections.abc import Collection, Iterator
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any

from rosbags.interfaces import Connection
from rosbags.rosbag2 import Reader
from ruamel.yaml import YAML

from seafusion_ros.bags.mcap_recovery import MCAP_MAGIC, McapRecovery
from seafusion_ros.bags.recovery import RecoveryReport
from seafusion_ros.bags.sqlite3_recovery import SQLITE_MAGIC, Sqlite3Recovery

METADATA = "metadata.yaml"
StorageRecovery = McapRecovery | Sqlite3Recovery
_TopicKey = tuple[str, str]  # (topic, msgtype): how a connection is known across storage files


class BagReaderError(Exception):
    """The bag cannot be read at all (not found, or no storage file in it can be read)."""


def _describe(exc: BaseException) -> str:
    return str(exc).rstrip(".") or type(exc).__name__


def _split_order(path: Path) -> list[Any]:
    """``bag_2.mcap`` before ``bag_10.mcap``, as rosbag2 numbers split files."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _read_metadata(bag: Path) -> tuple[dict[str, Any] | None, str]:
    """metadata.yaml's ``rosbag2_bagfile_information``, or None and why it is not usable."""
    if not (bag / METADATA).is_file():
        return None, ""
    try:
        info = YAML(typ="safe").load((bag / METADATA).read_text())["rosbag2_bagfile_information"]
        files, topics = info["relative_file_paths"], info["topics_with_message_count"]
        if not isinstance(files, list) or not isinstance(topics, list):
            raise ValueError("its file or topic list is not a list")
    except Exception as exc:  # a partly written file: YAML, key and type errors alike
        return None, f"{METADATA} is unreadable ({type(exc).__name__}: {_describe(exc)}), the folder's files were read"
    return info, ""


def _expected_counts(info: dict[str, Any]) -> dict[str, int] | None:
    counts: dict[str, int] = {}
    try:
        for entry in info["topics_with_message_count"]:
            topic = entry["topic_metadata"]["name"]
            counts[topic] = counts.get(topic, 0) + int(entry["message_count"])
    except (KeyError, TypeError, ValueError):
        return None
    return counts


def _open_storage(path: Path) -> StorageRecovery:
    """The recovery reader for a storage file, chosen by its magic bytes; ValueError when it is neither."""
    with path.open("rb") as file:
        magic = file.read(len(SQLITE_MAGIC))
    if magic.startswith(MCAP_MAGIC):
        return McapRecovery(path)
    if magic == SQLITE_MAGIC:
        return Sqlite3Recovery(path)
    raise ValueError(f"{path.name} is empty" if not magic else f"{path.name} is neither MCAP nor sqlite3")


class BagReader:
    """Reads one bag (a rosbag2 folder, or one ``.mcap`` / ``.db3`` file); open with ``open()`` or ``with``.

    ``connections``, ``start_time`` and ``end_time`` (after the last message) are rosbags'; for a
    recovered bag they count the intact messages, and ``recovery`` is set. A failure part-way through
    an intact-looking bag sets ``recovery`` during ``messages()``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.connections: list[Connection] = []
        self.start_time = 0
        self.end_time = 0
        self.recovery: RecoveryReport | None = None
        self._reader: Reader | None = None
        self._files: list[StorageRecovery] = []
        self._by_key: dict[_TopicKey, Connection] = {}

    def __enter__(self) -> BagReader:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def open(self) -> None:
        """Open the bag; BagReaderError names why nothing can be read."""
        if not self.path.exists():
            raise BagReaderError(f"bag not found: {self.path}")
        if not (self.path / METADATA).is_file():
            self._recover(f"no {METADATA}; rosbag2 writes it when a recording ends"
                          if self.path.is_dir() else "a single storage file, not a bag folder")
            return
        reader = Reader(self.path)
        try:
            reader.open()
        except Exception as exc:  # rosbags raises several types for damaged metadata or storage
            self._recover(_describe(exc))
            return
        self._reader = reader
        self.connections = list(reader.connections)
        self.start_time, self.end_time = reader.start_time, reader.end_time

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def messages(self, connections: Collection[Connection] | None = None) -> Iterator[tuple[Connection, int, bytes]]:
        """(connection, log time in ns, raw CDR) of every intact message on ``connections`` (default: all), in
        log-time order; BagReaderError if the bag fails part-way and its storage files cannot be read either."""
        wanted = {(c.topic, c.msgtype) for c in (self.connections if connections is None else connections)}
        if self._reader is None:
            yield from self._recovered_messages(wanted)
            return
        read, last, at_last = 0, None, 0
        try:
            for connection, log_time, raw in self._reader.messages(
                    connections=[c for c in self.connections if (c.topic, c.msgtype) in wanted]):
                read += 1
                at_last = at_last + 1 if log_time == last else 1
                last = log_time
                yield connection, log_time, raw
            return
        except Exception as exc:  # rosbags raises several types for damaged storage
            reason = f"reading stopped after {read} messages: {_describe(exc)}"
        self._reader.close()
        self._reader = None
        self._recover(reason)
        for item in self._recovered_messages(wanted):  # skip what rosbags already gave, in the same order
            if last is not None and (item[1] < last or (item[1] == last and at_last > 0)):
                if item[1] == last:
                    at_last -= 1
                continue
            yield item

    def _recovered_messages(self, wanted: set[_TopicKey]) -> Iterator[tuple[Connection, int, bytes]]:
        yield from heapq.merge(*(self._file_messages(file, wanted) for file in self._files), key=lambda item: item[1])

    def _file_messages(self, file: StorageRecovery, wanted: set[_TopicKey]) -> Iterator[tuple[Connection, int, bytes]]:
        keys = {local_id: (c.topic, c.msgtype) for local_id, c in file.connections.items()}
        for local_id, log_time, raw in file.messages():
            if keys.get(local_id) in wanted:
                yield self._by_key[keys[local_id]], log_time, raw

    def _recover(self, reason: str) -> None:
        """Read the storage files directly; BagReaderError when none can be read."""
        info, note = _read_metadata(self.path) if self.path.is_dir() else (None, "")
        notes = [note] if note else []
        if info is not None:
            mode = str(info.get("compression_mode", "") or "").lower()
            if mode not in ("", "none"):
                raise BagReaderError(f"{reason}; the bag is {mode}-compressed, and only uncompressed storage files "
                                     "can be recovered")
            paths = [self.path / PurePath(str(name)).name for name in info["relative_file_paths"]]
            notes += [f"{METADATA} names {p.name}, which is missing" for p in paths if not p.is_file()]
            paths = [p for p in paths if p.is_file()]
        elif self.path.is_dir():
            paths = sorted((p for p in self.path.iterdir() if p.suffix in (".mcap", ".db3") and p.is_file()),
                           key=_split_order)
        else:
            paths = [self.path]
        self._files = []
        for path in paths:
            try:
                self._files.append(_open_storage(path))
            except (ValueError, OSError) as exc:
                notes.append(f"{path.name} skipped: {_describe(exc)}")
        if not self._files:
            found = "; ".join(notes) or f"no .mcap or .db3 file in {self.path}"
            raise BagReaderError(f"{reason}; nothing readable: {found}")
        recovered = self._merged_connections()
        if self.connections:  # recovering part-way: keep the connections the caller holds
            self._by_key = {**recovered, **{(c.topic, c.msgtype): c for c in self.connections}}
        else:
            self.connections, self._by_key = list(recovered.values()), recovered
            times = [(f.report.first_log_time_ns, f.report.last_log_time_ns) for f in self._files
                     if f.report.last_log_time_ns is not None]
            if times:
                self.start_time = min(first for first, _ in times)
                self.end_time = max(last for _, last in times) + 1
        self.recovery = RecoveryReport(reason, tuple(f.report for f in self._files),
                                       _expected_counts(info) if info is not None else None, tuple(notes))

    def _merged_connections(self) -> dict[_TopicKey, Connection]:
        """One connection per (topic, type) over every storage file, numbered from 1, counting intact messages."""
        merged: dict[_TopicKey, Connection] = {}
        for file in self._files:
            for connection in file.connections.values():
                key = (connection.topic, connection.msgtype)
                known = merged.get(key)
                merged[key] = (connection._replace(id=len(merged) + 1, owner=self) if known is None
                               else known._replace(msgcount=known.msgcount + connection.msgcount))
        return merged
