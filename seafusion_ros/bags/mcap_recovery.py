"""The intact messages of an MCAP file whose end is missing or damaged, read front to back.

rosbags' MCAP reader starts from the footer and summary at the end of the file, which a recording
cut short (power loss, full disk) never got. Here mcap's ``StreamReader`` reads the records in file
order; it raises ``EndOfFile`` at the record the file ends inside. When that record is a chunk, its
records are still read as far as they are whole (uncompressed, zstd or lz4 chunks).

Messages come out in log-time order with bounded memory: a first pass notes the earliest log time of
each chunk (or top-level message), so the second pass holds back only the messages that a later
chunk could still precede.
"""

from __future__ import annotations

import heapq
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from itertools import islice
from pathlib import Path
from typing import BinaryIO

import lz4.frame
import zstandard
from mcap.data_stream import ReadDataStream
from mcap.exceptions import EndOfFile, InvalidMagic, McapError
from mcap.opcode import Opcode
from mcap.records import Channel, Chunk, Footer, Message, Schema
from mcap.stream_reader import StreamReader
from rosbags.interfaces import Connection, ConnectionExtRosbag2, MessageDefinition, MessageDefinitionFormat
from rosbags.rosbag2.errors import ReaderError
from rosbags.rosbag2.metadata import parse_qos

from seafusion_ros.bags.recovery import FileRecovery

MCAP_MAGIC = b"\x89MCAP0\r\n"
_DEFINITION_FORMATS = {"ros2msg": MessageDefinitionFormat.MSG, "ros2idl": MessageDefinitionFormat.IDL}
_RECORD_ERRORS = (McapError, struct.error, UnicodeDecodeError, ValueError, zstandard.ZstdError, RuntimeError)


def _decompress(compression: str, data: bytes) -> bytes:
    """As much of a chunk's records as ``data`` (the whole compressed chunk or its start) decodes to."""
    if compression == "":
        return data
    if compression == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if compression == "lz4":
        return lz4.frame.LZ4FrameDecompressor().decompress(data)
    raise ValueError(f"unsupported chunk compression {compression!r}")


def _later_starts(starts: list[int]) -> list[int | None]:
    """For each group, the earliest log time of the groups after it (None for the last)."""
    later: list[int | None] = [None] * len(starts)
    for g in range(len(starts) - 2, -1, -1):
        later[g] = starts[g + 1] if later[g + 1] is None else min(starts[g + 1], later[g + 1])
    return later


@dataclass
class _Ending:
    """How a pass over the file ended: where the last whole record ends, whether the file is whole."""

    intact_bytes: int = 0
    complete: bool = False
    problem: str = ""


class McapRecovery:
    """Reads the intact part of one MCAP file; the first pass (at construction) finds what it holds.

    ``connections`` maps the file's channel ids to rosbags connections (``msgcount``: intact messages).
    Raises ValueError when the file is not MCAP.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._schemas: dict[int, Schema] = {}
        self.connections: dict[int, Connection] = {}
        self._group_starts: list[int] = []
        counts: dict[int, int] = {}
        last: int | None = None
        ending = _Ending()
        for group in self._groups(ending):
            self._group_starts.append(group[0].log_time)
            last = group[-1].log_time if last is None else max(last, group[-1].log_time)
            for message in group:
                counts[message.channel_id] = counts.get(message.channel_id, 0) + 1
        self.connections = {cid: c._replace(msgcount=counts.get(cid, 0)) for cid, c in self.connections.items()}
        messages: dict[str, int] = {}
        for connection in self.connections.values():
            messages[connection.topic] = messages.get(connection.topic, 0) + connection.msgcount
        self.report = FileRecovery(path, path.stat().st_size, ending.complete, messages,
                                   min(self._group_starts, default=None), last, intact_bytes=ending.intact_bytes,
                                   problem=ending.problem)

    def messages(self) -> Iterator[tuple[int, int, bytes]]:
        """(channel id, log time, raw CDR) of every message the first pass found, in log-time order."""
        later_starts = _later_starts(self._group_starts)
        pending: list[tuple[int, int, int, Message]] = []
        for g, group in enumerate(islice(self._groups(_Ending()), len(self._group_starts))):
            for i, message in enumerate(group):
                heapq.heappush(pending, (message.log_time, g, i, message))
            while pending and (later_starts[g] is None or pending[0][0] < later_starts[g]):
                message = heapq.heappop(pending)[3]
                yield message.channel_id, message.log_time, message.data

    def _groups(self, ending: _Ending) -> Iterator[list[Message]]:
        """The messages of each chunk (sorted by log time) or top-level message record, in file order."""
        with self.path.open("rb") as file:
            reader = StreamReader(file, emit_chunks=True)
            try:
                for record in reader.records:
                    group = self._take(record, whole=True)
                    ending.intact_bytes = file.tell()
                    ending.complete = isinstance(record, Footer)
                    if group:
                        yield group
            except InvalidMagic as exc:
                if not ending.intact_bytes:
                    raise ValueError(f"{self.path.name} is not an MCAP file") from exc
                ending.complete, ending.problem = False, "damaged end magic"
            except _RECORD_ERRORS as exc:
                ending.complete = False
                if file.tell() < os.fstat(file.fileno()).st_size:
                    ending.problem = f"damaged record after byte {ending.intact_bytes:,}: {type(exc).__name__}: {exc}"
                    return
                file.seek(ending.intact_bytes)  # the file ends inside this record: a chunk's first records may be whole
                group, whole_bytes = self._cut_chunk(file)
                ending.intact_bytes += whole_bytes
                if group:
                    yield group

    def _cut_chunk(self, file: BinaryIO) -> tuple[list[Message], int]:
        """The whole messages at the start of a chunk record the file ends inside, and the bytes they end
        at counted from the chunk record's start (0 when compressed: their place in the file is unknown)."""
        head = file.read(9)
        if len(head) < 9 or head[0] != Opcode.CHUNK:
            return [], 0
        try:
            chunk = Chunk.read(ReadDataStream(BytesIO(file.read())))  # keeps the data the file has
            group, records_bytes = self._chunk_messages(chunk, whole=False)
        except _RECORD_ERRORS:
            return [], 0
        header_bytes = 9 + 40 + len(chunk.compression.encode())
        return group, (header_bytes + records_bytes if group and not chunk.compression else 0)

    def _take(self, record: object, whole: bool) -> list[Message]:
        """Note a schema or channel; the messages of a chunk or message record."""
        if isinstance(record, Schema):
            self._schemas[record.id] = record
        elif isinstance(record, Channel):
            self._add_channel(record)
        elif isinstance(record, Message):
            return [record]
        elif isinstance(record, Chunk):
            return self._chunk_messages(record, whole)[0]
        return []

    def _chunk_messages(self, chunk: Chunk, whole: bool) -> tuple[list[Message], int]:
        """A chunk's messages sorted by log time and how many bytes of its records were whole."""
        data = _decompress(chunk.compression, chunk.data)
        if whole and chunk.uncompressed_crc and zlib.crc32(data) != chunk.uncompressed_crc:
            raise ValueError("chunk checksum mismatch")
        stream = BytesIO(data)
        messages: list[Message] = []
        whole_bytes = 0
        try:
            for record in StreamReader(stream, skip_magic=True).records:
                messages += self._take(record, whole)
                whole_bytes = stream.tell()
        except (EndOfFile, struct.error):  # the end of the chunk's records, or of the part the file has
            pass
        if whole and whole_bytes != len(data):
            raise ValueError(f"chunk records damaged after byte {whole_bytes:,} of {len(data):,}")
        return sorted(messages, key=lambda m: m.log_time), whole_bytes

    def _add_channel(self, channel: Channel) -> None:
        if channel.id in self.connections:
            return
        schema = self._schemas.get(channel.schema_id)
        msgdef = MessageDefinition(_DEFINITION_FORMATS.get(schema.encoding, MessageDefinitionFormat.NONE),
                                   schema.data.decode(errors="replace")) if schema is not None \
            else MessageDefinition(MessageDefinitionFormat.NONE, "")
        try:
            qos = parse_qos(channel.metadata.get("offered_qos_profiles", ""))
        except ReaderError:
            qos = []
        self.connections[channel.id] = Connection(
            channel.id, channel.topic, schema.name if schema is not None else "", msgdef, "", 0,
            ConnectionExtRosbag2(channel.message_encoding, qos), self)
