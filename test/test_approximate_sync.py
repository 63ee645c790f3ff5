"""The ROS-free synchroniser follows message_filters' rules (ros_notes.md) case by case."""

from __future__ import annotations

import numpy as np
import pytest

from seafusion_ros.imaging.time_sync import ApproximateTimeSync, ExactTimeSync, make_sync, pair_streams


def _sync(num_inputs: int = 2, queue_size: int = 10, slop: int = 10):
    matched: list[tuple] = []
    return ApproximateTimeSync(num_inputs, queue_size, slop, lambda *items: matched.append(items)), matched


def test_pair_exactly_slop_apart_does_not_match_but_closer_does():
    sync, matched = _sync(slop=10)
    sync.add(0, 100, "t100")
    sync.add(1, 110, "r110")
    assert matched == []
    sync.add(1, 109, "r109")
    assert matched == [("t100", "r109")]
    assert sync.queues == [{}, {110: "r110"}]


def test_matching_is_greedy_at_arrival():
    sync, matched = _sync(slop=50)
    sync.add(0, 100, "t100")
    sync.add(1, 130, "r130")  # 30 apart: matched now, although a better partner comes next
    sync.add(1, 101, "r101")
    assert matched == [("t100", "r130")]
    assert sync.queues[1] == {101: "r101"}


def test_nearest_candidate_wins_and_ties_keep_insertion_order():
    sync, matched = _sync(slop=20)
    sync.add(0, 90, "t90")
    sync.add(0, 108, "t108")
    sync.add(1, 100, "r100")
    assert matched == [("t108", "r100")]
    sync, matched = _sync(slop=20)
    sync.add(0, 110, "t110")
    sync.add(0, 90, "t90")
    sync.add(1, 100, "r100")
    assert matched == [("t110", "r100")]


def test_product_order_lowest_input_varies_slowest_and_range_is_strict():
    sync, matched = _sync(num_inputs=3, slop=10)
    for stamp in (3, 18):
        sync.add(0, stamp, f"a{stamp}")
    for stamp in (17, 2):
        sync.add(1, stamp, f"b{stamp}")
    assert matched == []
    sync.add(2, 10, "c10")
    # candidates a: [3, 18], b: [17, 2]; (3, 17) spans 14 -> rejected; next (3, 2) spans 8 -> emitted
    assert matched == [("a3", "b2", "c10")]
    assert sync.queues == [{18: "a18"}, {17: "b17"}, {}]


def test_no_candidate_on_some_input_keeps_the_message_queued():
    sync, matched = _sync(num_inputs=3, slop=10)
    sync.add(0, 100, "a")
    sync.add(1, 101, "b")
    assert matched == [] and sync.queued() == 2
    sync.add(2, 150, "far")
    assert matched == [] and sync.queued() == 3


def test_queue_is_bounded_oldest_stamp_evicted_and_same_stamp_replaces():
    sync, matched = _sync(queue_size=2, slop=5)
    sync.add(1, 300, "r300")
    sync.add(1, 100, "r100")
    sync.add(1, 100, "r100bis")  # same stamp replaces, no eviction
    assert sync.queues[1] == {300: "r300", 100: "r100bis"} and sync.evicted == [0, 0]
    sync.add(1, 200, "r200")  # smallest stamp evicted, not the oldest arrival
    assert sync.queues[1] == {300: "r300", 200: "r200"} and sync.evicted == [0, 1]
    sync.add(0, 101, "t101")
    assert matched == []


def test_exact_sync_emits_common_stamps_oldest_first():
    matched: list[tuple] = []
    sync = ExactTimeSync(2, 5, lambda *items: matched.append(items))
    sync.add(0, 1, "t1")
    sync.add(0, 2, "t2")
    sync.add(1, 3, "r3")
    sync.add(1, 2, "r2")
    assert matched == [("t2", "r2")]
    sync.add(1, 1, "r1")
    assert matched == [("t2", "r2"), ("t1", "r1")]
    assert sync.queues == [{}, {3: "r3"}]


def test_make_sync_and_argument_checks():
    assert isinstance(make_sync("exact", 2, 3, 0, print), ExactTimeSync)
    with pytest.raises(ValueError, match="sync mode"):
        make_sync("nearest", 2, 3, 0, print)
    with pytest.raises(ValueError, match="queue_size"):
        ApproximateTimeSync(2, 0, 1, print)
    with pytest.raises(ValueError, match="slop"):
        ApproximateTimeSync(2, 1, -1, print)


def _camera_events(seed: int, seconds: float = 20.0) -> list[tuple[int, int, int]]:
    """Thermal 9 Hz and RGB 30 Hz with +-3 ms stamp jitter, in arrival order (by stamp)."""
    rng = np.random.default_rng(seed)
    events = []
    for index, rate in ((0, 9.0), (1, 30.0)):
        for k in range(int(seconds * rate)):
            stamp = int(k * 1e9 / rate + rng.integers(-3_000_000, 3_000_001))
            events.append((index, stamp, stamp))
    events.sort(key=lambda e: e[1])
    return events


def test_camera_streams_pairs_are_within_slop_unique_and_memory_bounded():
    events = _camera_events(0)
    slop = 20_000_000
    pairs = pair_streams(events, "approximate", queue_size=5, slop_ns=slop)
    assert len(pairs) > 100
    assert all(abs(t - r) < slop for t, r in pairs)
    assert len({t for t, _ in pairs}) == len(pairs) and len({r for _, r in pairs}) == len(pairs)
    sync, _ = _sync(queue_size=5, slop=slop)
    for index, stamp, item in events:
        sync.add(index, stamp, item)
        assert all(len(q) <= 5 for q in sync.queues)


def test_same_result_as_message_filters_when_installed():
    message_filters = pytest.importorskip(
        "message_filters", reason="message_filters is not installed here (not on PyPI): comparison skipped"
    )
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    class Stamped:
        def __init__(self, stamp: int) -> None:
            self.header = Header(stamp=Time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000))
            self.stamp = stamp

    events = _camera_events(1, seconds=10.0)
    slop = 20_000_000
    inputs = [message_filters.SimpleFilter(), message_filters.SimpleFilter()]
    theirs: list[tuple[int, int]] = []
    sync = message_filters.ApproximateTimeSynchronizer(inputs, 5, slop / 1e9)
    sync.registerCallback(lambda a, b: theirs.append((a.stamp, b.stamp)))
    for index, stamp, _ in events:
        inputs[index].signalMessage(Stamped(stamp))
    ours = pair_streams(events, "approximate", queue_size=5, slop_ns=slop)
    assert theirs == ours


def test_a_message_evicted_by_its_own_arrival_is_dropped_quietly():
    """Older than everything in a full queue: stored, evicted at once, never matched (no KeyError)."""
    sync, matched = _sync(queue_size=1, slop=5)
    sync.add(0, 200, "t200")
    sync.add(1, 101, "r101")
    sync.add(0, 100, "t100")  # evicts itself: queue 0 keeps only the newer 200
    assert matched == []
    assert list(sync.queues[0]) == [200]
    sync.add(1, 198, "r198")
    assert matched == [("t200", "r198")]


def test_zero_slop_is_refused_for_approximate_sync():
    with pytest.raises(ValueError, match="slop must be > 0"):
        _sync(slop=0)
