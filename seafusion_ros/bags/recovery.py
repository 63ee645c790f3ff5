"""What reading a damaged bag recovered: per storage file and for the whole bag, with a one-line summary.

A bag cut short (power loss, full disk) keeps most of its messages; these records say how many were
read, whether each file was complete, where its readable part ends and the log time of the last
intact message, so a user can judge what the recording still covers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


def format_log_time(ns: int) -> str:
    """A log time as seconds since the epoch with every nanosecond, e.g. ``1700000000.703003000 s``."""
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d} s"


@dataclass(frozen=True)
class FileRecovery:
    """How much of one storage file (``.mcap`` or ``.db3``) could be read.

    ``intact_bytes`` is where the last whole MCAP record ends (for a compressed chunk the file ends
    inside: where that chunk starts; None for sqlite3, whose pages are not in time order);
    ``declared_bytes`` is the size an sqlite3 file's header says it has (None for MCAP, which does not
    record it); ``listed`` counts the rows an sqlite3 file lists per topic, readable or not (None for
    MCAP).
    """

    path: Path
    size: int
    complete: bool
    messages: dict[str, int]
    first_log_time_ns: int | None
    last_log_time_ns: int | None
    intact_bytes: int | None = None
    declared_bytes: int | None = None
    listed: dict[str, int] | None = None
    problem: str = ""

    @property
    def unreadable(self) -> int:
        """Rows the file lists whose data could not be read (sqlite3; 0 for MCAP)."""
        return sum(self.listed.values()) - sum(self.messages.values()) if self.listed is not None else 0

    def summary(self) -> str:
        if self.complete:
            state = f"{self.path.name} is complete"
        elif self.declared_bytes:
            state = (f"{self.path.name} holds {self.size:,} of the {self.declared_bytes:,} bytes its header declares "
                     f"({100.0 * self.size / self.declared_bytes:.1f} %)")
        elif self.intact_bytes is not None:
            state = (f"{self.path.name} has whole records up to byte {self.intact_bytes:,} of its {self.size:,} "
                     f"({100.0 * self.intact_bytes / max(self.size, 1):.1f} %)")
        else:
            state = f"{self.path.name} ({self.size:,} bytes) is incomplete"
        if self.problem:
            state += f" ({self.problem})"
        if self.unreadable:
            state += f"; {self.unreadable} of the {sum(self.listed.values())} rows it lists could not be read"
        if self.last_log_time_ns is None:
            return state + "; no intact message"
        return (f"{state}; last intact message logged at {format_log_time(self.last_log_time_ns)}, "
                f"{(self.last_log_time_ns - self.first_log_time_ns) / 1e9:.3f} s after its first")


@dataclass(frozen=True)
class RecoveryReport:
    """Why the bag could not be read normally and what reading its storage files directly recovered.

    ``expected`` holds the message counts metadata.yaml lists per topic (None when it is missing or
    unreadable); ``notes`` other findings, e.g. a storage file metadata.yaml names that is missing.
    """

    reason: str
    files: tuple[FileRecovery, ...]
    expected: dict[str, int] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def recovered(self) -> dict[str, int]:
        """Intact messages read per topic, over every file."""
        counts: dict[str, int] = {}
        for file in self.files:
            for topic, count in file.messages.items():
                counts[topic] = counts.get(topic, 0) + count
        return counts

    def summary(self) -> str:
        recovered = self.recovered
        total = sum(recovered.values())
        if self.expected is not None:
            per_topic = ", ".join(f"{t} {recovered.get(t, 0)} of {n}" for t, n in sorted(self.expected.items()))
            counts = f"{total} of the {sum(self.expected.values())} messages metadata.yaml lists ({per_topic})"
        else:
            per_topic = ", ".join(f"{t} {n}" for t, n in sorted(recovered.items()))
            counts = f"{total} intact messages" + (f" ({per_topic})" if per_topic else "")
        parts = [f"incomplete or damaged bag ({self.reason}): recovered {counts} by reading its storage files "
                 "directly", *(f.summary() for f in self.files), *self.notes]
        return "; ".join(parts)
