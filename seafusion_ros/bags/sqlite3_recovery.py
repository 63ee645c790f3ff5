"""The intact rows of a rosbag2 sqlite3 file that is cut short or damaged.

SQLite refuses a file shorter than the page count its header declares ("database disk image is
malformed"); ``PRAGMA writable_schema`` lets it read the pages that are there. It would also fill the
missing part of a page the file ends inside with zeros and return the rows on it (empty rows, or data
padded with zeros) as if intact, so the file is opened through an apsw VFS (apsw: rosbags' SQLite
binding) where a read past the end of the file fails. Rows are listed by id (the table's small leaf
pages), then each row's data is read on its own: a row with a missing page fails alone. The file is
opened immutable: never written, no journal or lock file.
"""

from __future__ import annotations

import functools
from array import array
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import apsw
import numpy as np
from rosbags.interfaces import Connection, ConnectionExtRosbag2, MessageDefinition, MessageDefinitionFormat
from rosbags.rosbag2.errors import ReaderError
from rosbags.rosbag2.metadata import parse_qos

from seafusion_ros.bags.recovery import FileRecovery

SQLITE_MAGIC = b"SQLite format 3\x00"
_VFS_NAME = "seafusion-no-short-reads"


def _page_size(header: bytes) -> int:
    size = int.from_bytes(header[16:18], "big")
    return 65536 if size == 1 else size


def _declared_bytes(header: bytes) -> int | None:
    """The file size the header records, when SQLite would trust it (change counter matches)."""
    pages = int.from_bytes(header[28:32], "big")
    return pages * _page_size(header) if pages and header[24:28] == header[92:96] else None


class _NoShortReadsFile(apsw.VFSFile):
    """The default VFS's file, but a read past its end fails instead of coming back short."""

    def __init__(self, name: apsw.URIFilename | str | None, flags: list[int]) -> None:
        super().__init__("", name, flags)
        self._size = super().xFileSize()

    def xRead(self, amount: int, offset: int) -> bytes:
        if offset + amount > self._size:
            raise apsw.IOError(f"read past the end of the file (byte {self._size:,})")
        return super().xRead(amount, offset)


class _NoShortReadsVFS(apsw.VFS):
    def __init__(self) -> None:
        super().__init__(_VFS_NAME, "")

    def xOpen(self, name: apsw.URIFilename | str | None, flags: list[int]) -> apsw.VFSFile:
        if flags[0] & apsw.mapping_open_flags["SQLITE_OPEN_MAIN_DB"]:
            return _NoShortReadsFile(name, flags)
        return apsw.VFSFile("", name, flags)


@functools.cache
def _no_short_reads_vfs() -> _NoShortReadsVFS:
    """Registered once per process (SQLite keeps VFSs by name)."""
    return _NoShortReadsVFS()


class Sqlite3Recovery:
    """Reads the intact rows of one rosbag2 sqlite3 file; the first pass (at construction) finds them.

    ``connections`` maps the file's topic ids to rosbags connections (``msgcount``: intact messages).
    Raises ValueError when not even the topics table can be read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("rb") as file:
            header = file.read(100)
        size = path.stat().st_size
        page = _page_size(header) if len(header) == 100 else 0
        declared = _declared_bytes(header) if page >= 512 else None
        try:
            db = self._connect()
        except apsw.Error as exc:
            raise ValueError(f"{path.name}: SQLite cannot open it: {exc}") from exc
        with closing(db):
            self.connections = self._topics(db)
            ids, topic_ids, stamps = self._listed_rows(db)
            intact = np.array([self._data(db, int(row_id)) is not None for row_id in ids], bool)
        ids, topic_ids, stamps = (np.asarray(a, np.int64) for a in (ids, topic_ids, stamps))
        listed = self._per_topic(topic_ids)
        ids, topic_ids, stamps = ids[intact], topic_ids[intact], stamps[intact]
        order = np.lexsort((ids, stamps))  # log time, then id: the order rosbags reads a whole file in
        self._rows = np.stack([ids[order], topic_ids[order], stamps[order]], axis=1)
        messages = self._per_topic(topic_ids)
        self.connections = {tid: c._replace(msgcount=int(np.count_nonzero(topic_ids == tid)))
                            for tid, c in self.connections.items()}
        whole = page >= 512 and size % page == 0 and (declared is None or size >= declared)
        wal = path.with_name(path.name + "-wal")
        self.report = FileRecovery(path, size, whole, messages, int(stamps.min()) if stamps.size else None,
                                   int(stamps.max()) if stamps.size else None, declared_bytes=declared,
                                   listed=listed,
                                   problem=f"{wal.name} beside it was not read" if wal.exists() else "")

    def messages(self) -> Iterator[tuple[int, int, bytes]]:
        """(topic id, log time, raw CDR) of every row the first pass read, in log-time order."""
        with closing(self._connect()) as db:
            for row_id, topic_id, stamp in self._rows.tolist():
                data = self._data(db, row_id)
                if data is not None:
                    yield topic_id, stamp, data

    def _connect(self) -> apsw.Connection:
        _no_short_reads_vfs()
        db = apsw.Connection(f"file:{quote(str(self.path))}?immutable=1",
                             flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI, vfs=_VFS_NAME)
        db.execute("PRAGMA writable_schema = ON")  # lets SQLite open a file shorter than its header says
        return db

    def _per_topic(self, topic_ids: np.ndarray) -> dict[str, int]:
        counts: dict[str, int] = {}
        for tid, count in zip(*np.unique(topic_ids, return_counts=True), strict=True):
            if int(tid) in self.connections:
                topic = self.connections[int(tid)].topic
                counts[topic] = counts.get(topic, 0) + int(count)
        return counts

    def _topics(self, db: apsw.Connection) -> dict[int, Connection]:
        try:
            columns = {row[1] for row in db.execute("PRAGMA table_info(topics)")}
            qos_column = "offered_qos_profiles" if "offered_qos_profiles" in columns else "''"
            rows = db.execute(f"SELECT id, name, type, serialization_format, {qos_column} FROM topics").fetchall()
        except apsw.Error as exc:
            raise ValueError(f"{self.path.name}: cannot read its topics table: {exc}") from exc
        connections = {}
        for topic_id, name, msgtype, serialization_format, qos_yaml in rows:
            try:
                qos = parse_qos(qos_yaml)
            except ReaderError:
                qos = []
            connections[topic_id] = Connection(topic_id, name, msgtype,
                                               MessageDefinition(MessageDefinitionFormat.NONE, ""), "", 0,
                                               ConnectionExtRosbag2(serialization_format, qos), self)
        return connections

    @staticmethod
    def _listed_rows(db: apsw.Connection) -> tuple[array, array, array]:
        """(ids, topic ids, log times) of the rows the table lists, in id order, as far as it can be walked."""
        ids, topic_ids, stamps = array("q"), array("q"), array("q")
        try:
            for row_id, topic_id, stamp in db.execute("SELECT id, topic_id, timestamp FROM messages ORDER BY id"):
                if isinstance(topic_id, int) and isinstance(stamp, int):  # not a zeroed (damaged) cell
                    ids.append(row_id)
                    topic_ids.append(topic_id)
                    stamps.append(stamp)
        except apsw.Error:  # a leaf page is missing: go on one id at a time while the rows are there
            while True:
                try:
                    row = db.execute("SELECT topic_id, timestamp FROM messages WHERE id = ?",
                                     ((ids[-1] if ids else 0) + 1,)).fetchone()
                except apsw.Error:
                    row = None
                if row is None or not all(isinstance(value, int) for value in row):
                    break
                ids.append((ids[-1] if ids else 0) + 1)
                topic_ids.append(row[0])
                stamps.append(row[1])
        return ids, topic_ids, stamps

    @staticmethod
    def _data(db: apsw.Connection, row_id: int) -> bytes | None:
        """A row's data, or None when a page of it is missing or damaged."""
        try:
            row = db.execute("SELECT data FROM messages WHERE id = ?", (row_id,)).fetchone()
        except apsw.Error:
            return None
        return bytes(row[0]) if row is not None else None
