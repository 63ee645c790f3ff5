"""Counters, rates and latencies of the node, and their /diagnostics message.

The subscription callbacks, the sync callback and the worker all record here (thread-safe); a timer
turns a snapshot into one ``diagnostic_msgs/DiagnosticStatus``. Keys are snake_case with their unit
so tools (and the tests) can read them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

STAGES = ("decode", "fuse", "segment", "publish", "in_node", "end_to_end")
OFFSET_SAMPLES = 10  # recent messages whose median stamp offset is reported (one late message is no offset)
BAD_INPUT_KINDS = (
    "unknown_encoding",
    "short_data",
    "zero_size",
    "odd_width",
    "nan_thermal",
    "size_mismatch",
    "empty_payload",
    "unknown_format",
    "corrupt_compressed",
    "compressed_mismatch",
    "stamp_backwards",
    "processing_error",
)


class RateMeter:
    """Events per second over the last ``window`` seconds (monotonic clock)."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._times: deque[float] = deque()

    def tick(self, now: float) -> None:
        self._times.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()

    def rate(self, now: float) -> float:
        self._trim(now)
        return len(self._times) / self.window


@dataclass
class InputStats:
    """One input topic: what arrived, when, and at what rate."""

    label: str
    topic: str
    received: int = 0
    last_arrival: float | None = None
    rate: RateMeter = field(default_factory=RateMeter)
    stamp_offsets: deque[float] = field(default_factory=lambda: deque(maxlen=OFFSET_SAMPLES))

    def stamp_offset(self) -> float | None:
        """Median of the recent (node clock at arrival - header stamp), seconds."""
        if not self.stamp_offsets:
            return None
        ordered = sorted(self.stamp_offsets)
        return ordered[len(ordered) // 2]


class NodeStats:
    """Everything /diagnostics reports; all methods are safe from any thread."""

    def __init__(self, inputs: list[tuple[str, str]], window: float = 5.0) -> None:
        """inputs: (label, topic) per input, in synchroniser order; labels prefix the keys."""
        self._lock = threading.Lock()
        self.inputs = [InputStats(label, topic, rate=RateMeter(window)) for label, topic in inputs]
        self.paired = 0
        self.processed = 0
        self.dropped = 0
        self.skipped_no_subscribers = 0
        self.pair_rate = RateMeter(window)
        self.output_rate = RateMeter(window)
        self.latency: dict[str, deque[float]] = {stage: deque(maxlen=50) for stage in STAGES}
        self.bad_input = dict.fromkeys(BAD_INPUT_KINDS, 0)
        self.rejected_inputs = 0  # messages refused before the synchroniser (bad layout)
        self.last_bad_input = ""
        self.last_bad_time: float | None = None
        self.started = time.monotonic()

    def input_arrived(self, index: int, stamp_offset: float | None = None) -> None:
        """Count a message; ``stamp_offset``: the node's clock at arrival minus its header stamp, seconds."""
        now = time.monotonic()
        with self._lock:
            stats = self.inputs[index]
            stats.received += 1
            stats.last_arrival = now
            stats.rate.tick(now)
            if stamp_offset is not None:
                stats.stamp_offsets.append(stamp_offset)

    def pair_formed(self, replaced_unprocessed: bool) -> None:
        with self._lock:
            self.paired += 1
            self.dropped += int(replaced_unprocessed)
            self.pair_rate.tick(time.monotonic())

    def pair_skipped(self) -> None:
        with self._lock:
            self.skipped_no_subscribers += 1

    def pair_processed(self, stage_seconds: dict[str, float]) -> None:
        with self._lock:
            self.processed += 1
            self.output_rate.tick(time.monotonic())
            for stage, seconds in stage_seconds.items():
                self.latency[stage].append(seconds)

    def bad(self, kind: str, message: str, rejected_input: bool = False) -> None:
        """Count bad input of ``kind``; rejected_input: an input message that never reached the synchroniser
        (worker-side kinds concern pairs that were formed, so they are no sync misses)."""
        with self._lock:
            self.bad_input[kind] = self.bad_input.get(kind, 0) + 1
            self.rejected_inputs += int(rejected_input)
            self.last_bad_input = f"{kind}: {message}"
            self.last_bad_time = time.monotonic()

    def reset_clock(self) -> None:
        """Restart the silence timers (on activation)."""
        with self._lock:
            self.started = time.monotonic()
            for stats in self.inputs:
                stats.last_arrival = None
                stats.stamp_offsets.clear()

    def silent_inputs(self, timeout: float) -> list[tuple[str, float]]:
        """(topic, seconds silent) of inputs with nothing for ``timeout`` seconds."""
        now = time.monotonic()
        with self._lock:
            silent = []
            for stats in self.inputs:
                since = now - (stats.last_arrival if stats.last_arrival is not None else self.started)
                if since >= timeout:
                    silent.append((stats.topic, since))
            return silent

    def status(
        self,
        name: str,
        hardware_id: str,
        extra: dict[str, str],
        input_timeout: float,
        qos: str,
        period: float,
        max_stamp_offset: float = float("inf"),
    ) -> DiagnosticStatus:
        """One DiagnosticStatus: WARN for silent inputs, bad input in the last period, or input stamps more
        than ``max_stamp_offset`` seconds from the node's clock (then end-to-end latency measures the clock
        offset, not the delivery; ``latency_in_node_ms`` does not depend on stamps); else OK."""
        silent = self.silent_inputs(input_timeout)
        now = time.monotonic()
        offsets = []
        with self._lock:
            values = {}
            for stats in self.inputs:
                key = stats.label
                values[f"{key}_topic"] = stats.topic
                values[f"{key}_received"] = str(stats.received)
                values[f"{key}_rate_hz"] = f"{stats.rate.rate(now):.2f}"
                offset = stats.stamp_offset()
                values[f"{key}_stamp_offset_ms"] = f"{1000.0 * offset:.1f}" if offset is not None else "nan"
                if offset is not None and abs(offset) > max_stamp_offset:
                    offsets.append((stats.topic, offset))
            values.update(
                {
                    "paired": str(self.paired),
                    "paired_rate_hz": f"{self.pair_rate.rate(now):.2f}",
                    "processed": str(self.processed),
                    "output_rate_hz": f"{self.output_rate.rate(now):.2f}",
                    "dropped_pairs": str(self.dropped),
                    "skipped_no_subscribers": str(self.skipped_no_subscribers),
                }
            )
            for stage, samples in self.latency.items():
                mean = 1000.0 * sum(samples) / len(samples) if samples else float("nan")
                worst = 1000.0 * max(samples) if samples else float("nan")
                values[f"latency_{stage}_ms"] = f"{mean:.2f}"
                values[f"latency_{stage}_max_ms"] = f"{worst:.2f}"
            for kind, count in self.bad_input.items():
                values[f"bad_input_{kind}"] = str(count)
            values["last_bad_input"] = self.last_bad_input
            recent_bad = self.last_bad_time is not None and now - self.last_bad_time <= max(period, 1.0)
            last_bad = self.last_bad_input
        values.update(extra)
        problems = [
            f"no message on {topic} for {since:.1f} s (subscriber QoS: {qos}; a reliable subscriber "
            "gets nothing from a best-effort publisher)"
            for topic, since in silent
        ]
        problems += [
            f"{topic} stamps are {abs(offset):.2f} s {'behind' if offset > 0 else 'ahead of'} the node's clock "
            f"(limit {max_stamp_offset:g} s: a clock offset between machines, a time jump, or a bag played without "
            "--clock / use_sim_time); latency_end_to_end_ms includes it"
            for topic, offset in offsets
        ]
        if recent_bad:
            problems.append(f"bad input: {last_bad}")
        msg = DiagnosticStatus(name=name, hardware_id=hardware_id)
        msg.level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
        msg.message = "; ".join(problems) if problems else "ok"
        msg.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        return msg
