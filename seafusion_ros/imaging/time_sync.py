"""Pairing of time-stamped streams, ROS-free: message_filters' synchronisers on (stamp_ns, item).

The node uses the real ``message_filters.ApproximateTimeSynchronizer`` when it is importable; this
module is the fallback and the reference the offline bag replay reuses, so it follows the Python
message_filters behaviour exactly (see docs/ros_notes.md of the project):

Approximate: per input an insertion-ordered map stamp -> item. On arrival on input i the item is stored
(same stamp replaces), the smallest stamps are evicted beyond ``queue_size``, then for every other input
the stamps within ``slop`` (``|s - stamp| <= slop``) are candidates, sorted by distance (stable). If an
input has none, nothing happens. Otherwise the Cartesian product is walked in order (lowest input index
varies slowest) and the first tuple whose ``max - min < slop`` (strict) is emitted and removed.

Exact: an item is emitted when every input holds the same stamp (all such stamps, oldest first).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Any

SYNC_MODES = ("approximate", "exact")

MatchCallback = Callable[..., None]


class TimeSync:
    """Common state: one queue per input, a lock, the callback and counters.

    ``evicted`` counts items that left a queue unpaired because it was full (sync misses).
    """

    def __init__(self, num_inputs: int, queue_size: int, callback: MatchCallback) -> None:
        if num_inputs < 2:
            raise ValueError(f"a synchroniser needs at least two inputs, got {num_inputs}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.queue_size = queue_size
        self.queues: list[dict[int, Any]] = [{} for _ in range(num_inputs)]
        self.callback = callback
        self.lock = threading.Lock()
        self.evicted = [0] * num_inputs
        self.matched = 0

    def _store(self, index: int, stamp_ns: int, item: Any) -> None:
        queue = self.queues[index]
        queue[stamp_ns] = item
        while len(queue) > self.queue_size:
            del queue[min(queue)]
            self.evicted[index] += 1

    def queued(self) -> int:
        """Items waiting for a partner, over all inputs."""
        with self.lock:
            return sum(len(q) for q in self.queues)

    def clear(self) -> None:
        with self.lock:
            for queue in self.queues:
                queue.clear()

    def add(self, index: int, stamp_ns: int, item: Any) -> None:
        raise NotImplementedError


class ApproximateTimeSync(TimeSync):
    """message_filters.ApproximateTimeSynchronizer on integer nanosecond stamps."""

    def __init__(self, num_inputs: int, queue_size: int, slop_ns: int, callback: MatchCallback) -> None:
        super().__init__(num_inputs, queue_size, callback)
        if slop_ns <= 0:
            raise ValueError(f"slop must be > 0 for approximate sync (pairs must be strictly closer than slop), "
                             f"got {slop_ns} ns; use exact sync for identical stamps")
        self.slop_ns = slop_ns

    def add(self, index: int, stamp_ns: int, item: Any) -> None:
        with self.lock:
            self._store(index, stamp_ns, item)
            if stamp_ns not in self.queues[index]:  # older than everything in a full queue: evicted at once
                return
            candidates: list[list[int]] = []
            for j, queue in enumerate(self.queues):
                if j == index:
                    continue
                near = [(s, abs(s - stamp_ns)) for s in queue if abs(s - stamp_ns) <= self.slop_ns]
                if not near:
                    return
                near.sort(key=lambda pair: pair[1])
                candidates.append([s for s, _ in near])
            for combo in itertools.product(*candidates):
                stamps = list(combo)
                stamps.insert(index, stamp_ns)
                if max(stamps) - min(stamps) < self.slop_ns:
                    items = [q[s] for q, s in zip(self.queues, stamps, strict=True)]
                    self.matched += 1
                    self.callback(*items)
                    for q, s in zip(self.queues, stamps, strict=True):
                        del q[s]
                    return


class ExactTimeSync(TimeSync):
    """message_filters.TimeSynchronizer on integer nanosecond stamps."""

    def add(self, index: int, stamp_ns: int, item: Any) -> None:
        with self.lock:
            self._store(index, stamp_ns, item)
            common = set.intersection(*(set(q) for q in self.queues))
            for stamp in sorted(common):
                items = [q[stamp] for q in self.queues]
                self.matched += 1
                self.callback(*items)
                for q in self.queues:
                    del q[stamp]


def make_sync(mode: str, num_inputs: int, queue_size: int, slop_ns: int, callback: MatchCallback) -> TimeSync:
    """The synchroniser for a mode name (``approximate`` or ``exact``; exact ignores slop)."""
    if mode == "approximate":
        return ApproximateTimeSync(num_inputs, queue_size, slop_ns, callback)
    if mode == "exact":
        return ExactTimeSync(num_inputs, queue_size, callback)
    raise ValueError(f"sync mode must be one of {SYNC_MODES}, got {mode!r}")


def pair_streams(
    events: Sequence[tuple[int, int, Any]], mode: str = "approximate", queue_size: int = 10,
    slop_ns: int = 50_000_000,
) -> list[tuple[Any, ...]]:
    """Feed (input index, stamp_ns, item) events in arrival order; return the matched tuples in order."""
    matched: list[tuple[Any, ...]] = []
    num_inputs = max(index for index, _, _ in events) + 1 if events else 2
    sync = make_sync(mode, max(num_inputs, 2), queue_size, slop_ns, lambda *items: matched.append(items))
    for index, stamp, item in events:
        sync.add(index, stamp, item)
    return matched
