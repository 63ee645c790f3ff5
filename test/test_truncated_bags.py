"""Recordings cut short: replay and playback read every intact message of a truncated MCAP or sqlite3 bag.

Which messages survive a cut is worked out from the complete bag, without the code under test: in an
MCAP file (uncompressed chunks) a message is intact when its CDR bytes lie wholly before the cut; in
an sqlite3 file when every byte SQLite reads to fetch its row (traced through a VFS) does.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import apsw
import cv2
import numpy as np
import pytest
from mcap.records import Chunk
from mcap.stream_reader import StreamReader
from rosbags.rosbag2 import CompressionFormat, CompressionMode, Reader, ReaderError, StoragePlugin, Writer

from seafusion_ros.bags.bag_reader import BagReader, BagReaderError
from seafusion_ros.bags.messages import TYPESTORE, deserialize_image
from seafusion_ros.bags.recording import StreamTiming, folder_frames, write_pair_bag
from seafusion_ros.cli.replay import main as replay_main
from seafusion_ros.imaging.stamps import stamp_to_ns
from seafusion_ros.imaging.time_sync import pair_streams

PAIRS = 12
CUT = 0.6
THERMAL, RGB = "/thermal/image_raw", "/rgb/image_raw"
Message = tuple[str, int, bytes]  # topic, log time, raw CDR


@pytest.fixture
def small_msrs(msrs_dev: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The first 12 real MSRS pairs shrunk to 120 x 160 (fast on the CPU; several images per MCAP chunk)."""
    ir_dir, vis_dir = tmp_path / "ir", tmp_path / "vi"
    ir_dir.mkdir()
    vis_dir.mkdir()
    for path in sorted((msrs_dev / "ir").glob("*.png"))[:PAIRS]:
        for src, dst in ((msrs_dev / "ir", ir_dir), (msrs_dev / "vi", vis_dir)):
            image = cv2.imread(str(src / path.name), cv2.IMREAD_UNCHANGED)
            cv2.imwrite(str(dst / path.name), cv2.resize(image, (160, 120), interpolation=cv2.INTER_AREA))
    return ir_dir, vis_dir


def _pair_bag(folders: tuple[Path, Path], out: Path, storage: str) -> Path:
    count, frames = folder_frames(*folders, StreamTiming(10.0, 0.004, 0.002))
    assert count == 2 * PAIRS
    return write_pair_bag(out, frames, storage=storage, total=count, progress=False)


def _storage_file(bag: Path) -> Path:
    (path,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    return path


def _cut_copy(bag: Path, out: Path, fraction: float = CUT, *, size: int | None = None,
              metadata: bool = True) -> Path:
    """A copy of ``bag`` whose storage file keeps its first ``fraction`` (or ``size``) bytes, optionally
    without metadata.yaml: a recording that lost power."""
    shutil.copytree(bag, out)
    storage = out / _storage_file(bag).name
    data = storage.read_bytes()
    storage.write_bytes(data[: int(len(data) * fraction) if size is None else size])
    if not metadata:
        (out / "metadata.yaml").unlink()
    return out


def _messages(bag: Path) -> list[Message]:
    with Reader(bag) as reader:
        return [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]


def _read_extents(bag: Path) -> list[tuple[Message, int]]:
    """The complete bag's messages in log-time order, each with the byte of its storage file where reading
    it ends: a cut at or after that byte leaves the message intact."""
    path = _storage_file(bag)
    if path.suffix == ".db3":
        return _sqlite3_read_extents(path)
    data = path.read_bytes()
    extents = []
    for message in _messages(bag):
        start = data.find(message[2])
        assert start > 0, "the chunks must be uncompressed for this check"
        extents.append((message, start + len(message[2])))
    return extents


def _intact(extents: list[tuple[Message, int]], cut: int) -> list[Message]:
    return [message for message, end in extents if end <= cut]


_TRACE_VFS = "truncated-bags-trace"


class _TracedFile(apsw.VFSFile):
    def __init__(self, read_ends: list[int], name: apsw.URIFilename | str | None, flags: list[int]) -> None:
        self.read_ends = read_ends
        super().__init__("", name, flags)

    def xRead(self, amount: int, offset: int) -> bytes:
        self.read_ends.append(offset + amount)
        return super().xRead(amount, offset)


class _ReadTracer(apsw.VFS):
    """The default VFS, noting where each read SQLite makes ends."""

    def __init__(self) -> None:
        self.read_ends: list[int] = []
        super().__init__(_TRACE_VFS, "")

    def xOpen(self, name: apsw.URIFilename | str | None, flags: list[int]) -> apsw.VFSFile:
        return _TracedFile(self.read_ends, name, flags)


def _sqlite3_read_extents(path: Path) -> list[tuple[Message, int]]:
    """Each message with the end of the furthest read SQLite makes to fetch its row (no page cached)."""
    tracer = _ReadTracer()
    try:
        db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        rows = db.execute("SELECT topics.name, timestamp, data, messages.id FROM messages "
                          "JOIN topics ON topics.id = topic_id ORDER BY timestamp, messages.id").fetchall()
        db.close()
        extents = []
        for topic, stamp, data, row_id in rows:
            tracer.read_ends.clear()
            db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY, vfs=_TRACE_VFS)
            db.execute("SELECT data FROM messages WHERE id = ?", (row_id,)).fetchall()
            db.close()
            extents.append(((topic, stamp, bytes(data)), max(tracer.read_ends)))
    finally:
        tracer.unregister()
    return extents


def _expected_rgb_stamps(messages: list[Message]) -> list[int]:
    """The RGB stamps of the pairs the node's synchroniser forms from ``messages`` (log-time order)."""
    events = [(0 if topic == THERMAL else 1, stamp_to_ns(deserialize_image(raw).header.stamp), raw)
              for topic, _, raw in messages]
    return [stamp_to_ns(deserialize_image(rgb).header.stamp) for _, rgb in pair_streams(events)]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_replay_of_a_bag_cut_to_60_percent_fuses_every_intact_pair(small_msrs, tmp_path, random_fusion_weights,
                                                                   capsys, storage):
    bag = _pair_bag(small_msrs, tmp_path / "complete", storage)
    cut_bag = _cut_copy(bag, tmp_path / "cut")
    with pytest.raises(ReaderError, match="File end magic is invalid|database disk image is malformed"):
        Reader(cut_bag).open()  # the premise: rosbags cannot open the truncated bag
    intact = _intact(_read_extents(bag), _storage_file(cut_bag).stat().st_size)
    expected = _expected_rgb_stamps(intact)
    assert 0 < len(expected) < PAIRS

    code = replay_main([str(cut_bag), "--out", str(tmp_path / "out"), "--weights", str(random_fusion_weights),
                        "--device", "cpu", "--no-segmentation", "--no-metrics", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["pairs"] == len(expected)
    fused = _messages(tmp_path / "out" / "output_bag")
    assert [stamp_to_ns(deserialize_image(raw).header.stamp) for _, _, raw in fused] == expected
    counts = {topic: sum(m[0] == topic for m in intact) for topic in (THERMAL, RGB)}
    assert report["topics"] == {t: {"type": "sensor_msgs/msg/Image", "messages": n} for t, n in counts.items()}
    (recovery,) = [p for p in report["problems"] if "recovered" in p]
    assert f"recovered {len(intact)} of the {2 * PAIRS} messages metadata.yaml lists" in recovery
    assert f"{RGB} {counts[RGB]} of {PAIRS}, {THERMAL} {counts[THERMAL]} of {PAIRS}" in recovery
    assert f"{_storage_file(cut_bag).name} " in recovery and recovery in err
    last = max(t for _, t, _ in intact)
    assert f"last intact message logged at {last // 10**9}.{last % 10**9:09d} s" in recovery


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_truncated_bag_without_metadata_is_read_from_its_storage_file(small_msrs, tmp_path, storage):
    """No metadata.yaml, a path to the storage file itself, or a half-written metadata.yaml: the same messages."""
    bag = _pair_bag(small_msrs, tmp_path / "complete", storage)
    with_metadata = _cut_copy(bag, tmp_path / "cut")
    without = _cut_copy(bag, tmp_path / "cut_no_metadata", metadata=False)
    with BagReader(with_metadata) as reader:
        expected = [(c.topic, t, raw) for c, t, raw in reader.messages()]
    assert 0 < len(expected) < 2 * PAIRS and expected == _messages(bag)[: len(expected)]
    half_written = _cut_copy(bag, tmp_path / "cut_half_metadata")
    metadata = (half_written / "metadata.yaml").read_text()
    (half_written / "metadata.yaml").write_text(metadata[: len(metadata) // 2])
    for path, reason in ((without, "no metadata.yaml"), (_storage_file(without), "a single storage file"),
                         (half_written, "Could not load YAML")):
        with BagReader(path) as reader:
            assert [(c.topic, t, raw) for c, t, raw in reader.messages()] == expected
            assert {c.topic: c.msgcount for c in reader.connections} == {
                t: sum(m[0] == t for m in expected) for t in (THERMAL, RGB)}
            assert (reader.start_time, reader.end_time) == (expected[0][1], max(m[1] for m in expected) + 1)
            assert reader.recovery.reason.startswith(reason)
            summary = reader.recovery.summary()
        assert f"recovered {len(expected)} intact messages" in summary and "metadata.yaml lists" not in summary
    assert "metadata.yaml is unreadable" in summary  # the half-written one


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_cut_anywhere_gives_exactly_the_intact_messages(small_msrs, tmp_path, storage):
    """Cuts inside a chunk or page, its header, a message, the MCAP summary; 100 bytes before the last byte read
    for messages 5 to 8 (an sqlite3 page the file ends inside must not pass for a whole one) and 12 after it."""
    bag = _pair_bag(small_msrs, tmp_path / "complete", storage)
    size = _storage_file(bag).stat().st_size
    extents = _read_extents(bag)
    cuts = [int(size * f) for f in (0.03, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95, 0.999)]
    cuts += [end + offset for _, end in extents[4:8] for offset in (-100, 12)]  # 12: in the next record's header
    for k, cut in enumerate(cuts):
        with BagReader(_cut_copy(bag, tmp_path / f"cut{k}", size=cut)) as reader:
            got = [(c.topic, t, raw) for c, t, raw in reader.messages()]
            (file,) = reader.recovery.files
        assert got == _intact(extents, cut), cut
        assert not file.complete and file.size == cut
        assert file.intact_bytes <= cut if storage == "mcap" else file.declared_bytes == size
    start_only = _cut_copy(bag, tmp_path / "first_200_bytes", size=200)  # not even the topics are there
    if storage == "sqlite3":
        with pytest.raises(BagReaderError, match="nothing readable: .*cannot read its topics table"):
            BagReader(start_only).open()
    else:
        with BagReader(start_only) as reader:
            assert list(reader.messages()) == [] and reader.recovery.recovered == {}


def _text_bag(bag: Path, storage: StoragePlugin, count: int, zstd: bool = False) -> Path:
    """``count`` std_msgs/String messages of varied text, a few hundred bytes to a few kB each."""
    text = TYPESTORE.types["std_msgs/msg/String"]
    rng = np.random.default_rng(0)
    writer = Writer(bag, version=9, storage_plugin=storage)
    if zstd:
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    with writer:
        connection = writer.add_connection("/log", "std_msgs/msg/String", typestore=TYPESTORE)
        for i in range(count):
            words = rng.choice(["thermal", "rgb", "fused", "stamp", "frame", "pair"], int(rng.integers(40, 2000)))
            writer.write(connection, 1000 + i, bytes(TYPESTORE.serialize_cdr(text(data=f"{i} {' '.join(words)}"),
                                                                             "std_msgs/msg/String")))
    return bag


def test_an_sqlite3_bag_of_small_messages_cut_inside_a_page_gives_exactly_the_intact_rows(tmp_path):
    """Several rows share a page here: the page the file ends inside must count as missing, not as zeros."""
    bag = _text_bag(tmp_path / "text", StoragePlugin.SQLITE3, 300)
    extents = _read_extents(bag)
    size = _storage_file(bag).stat().st_size
    for k, fraction in enumerate((0.13, 0.31, 0.52, 0.77, 0.93)):
        cut = int(size * fraction) // 4096 * 4096 + 2000  # half a page
        with BagReader(_cut_copy(bag, tmp_path / f"cut{k}", size=cut)) as reader:
            assert [(c.topic, t, raw) for c, t, raw in reader.messages()] == _intact(extents, cut), fraction


def test_a_compressed_chunk_the_file_ends_inside_still_gives_its_first_messages(tmp_path):
    """zstd-compressed chunks: the messages in the whole zstd blocks of the chunk the file ends inside are read."""
    bag = _text_bag(tmp_path / "zstd", StoragePlugin.MCAP, 600, zstd=True)
    complete = _messages(bag)
    with _storage_file(bag).open("rb") as file:  # where each chunk record ends, from mcap's reader
        chunk_ends = [file.tell() for record in StreamReader(file, emit_chunks=True).records
                      if isinstance(record, Chunk) and record.compression == "zstd"]
    assert len(chunk_ends) >= 3
    cut_bag = _cut_copy(bag, tmp_path / "cut", size=(chunk_ends[0] + chunk_ends[1]) // 2)  # inside chunk 2
    with BagReader(cut_bag) as reader:
        got = [(c.topic, t, raw) for c, t, raw in reader.messages()]
    assert got == complete[: len(got)]
    with BagReader(_cut_copy(bag, tmp_path / "after_chunk_1", size=chunk_ends[0] + 1)) as reader:
        whole_chunks_only = sum(1 for _ in reader.messages())
    assert whole_chunks_only < len(got) < len(complete)


def test_a_bag_damaged_part_way_loses_only_the_damaged_message(small_msrs, tmp_path):
    """rosbags opens this sqlite3 bag and fails on its 7th message: the reader goes on with the rest."""
    bag = _pair_bag(small_msrs, tmp_path / "complete", "sqlite3")
    damaged = tmp_path / "damaged"
    shutil.copytree(bag, damaged)
    complete = _messages(bag)
    data = bytearray(_storage_file(damaged).read_bytes())
    middle = len(complete[6][2]) // 2
    at = data.find(complete[6][2][middle: middle + 64])  # in an overflow page of message 7's data
    assert at > 0
    page = at // 4096
    data[page * 4096: page * 4096 + 4] = (0xFFFFFFF0).to_bytes(4, "big")  # its link to the next page, broken
    _storage_file(damaged).write_bytes(bytes(data))
    with Reader(damaged) as reader, pytest.raises(apsw.CorruptError):
        list(reader.messages())  # the premise: rosbags opens it and fails part-way
    with BagReader(damaged) as reader:
        got = [(c.topic, t, raw) for c, t, raw in reader.messages()]
        assert reader.recovery is not None
        summary = reader.recovery.summary()
    assert got == complete[:6] + complete[7:]
    assert "reading stopped after 6 messages" in summary and "1 of the 24 rows it lists could not be read" in summary


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_player_publishes_every_intact_message_of_a_truncated_bag(small_msrs, tmp_path, context, storage):
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from seafusion_ros.ros.background_spinner import BackgroundSpinner
    from seafusion_ros.ros.bag_player import BagPlayer, PlaybackOptions

    bag = _pair_bag(small_msrs, tmp_path / "complete", storage)
    cut_bag = _cut_copy(bag, tmp_path / "cut")
    intact = _intact(_read_extents(bag), _storage_file(cut_bag).stat().st_size)
    received: dict[str, list[bytes]] = {THERMAL: [], RGB: []}
    lock = threading.Lock()
    watch = Node("truncated_bag_watch", context=context)

    def keep(topic: str):
        def on_message(raw: bytes) -> None:
            with lock:
                received[topic].append(raw)
        return on_message

    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    for topic in received:
        watch.create_subscription(Image, topic, keep(topic), reliable, raw=True)
    spinner = BackgroundSpinner(watch, context)
    node = Node("truncated_bag_player", context=context)
    try:
        player = BagPlayer(node, cut_bag, PlaybackOptions(rate=4.0, reliability="reliable", depth=100,
                                                          wait_for_subscribers_s=20.0, ack_timeout_s=10.0))
        try:
            stats = player.play()
        finally:
            player.close()
        expected = {topic: [raw for t, _, raw in intact if t == topic] for topic in received}
        deadline = time.monotonic() + 20.0  # acknowledged is not yet handed to the callbacks
        while time.monotonic() < deadline and any(len(received[t]) < len(expected[t]) for t in received):
            time.sleep(0.05)
    finally:
        spinner.stop()
        node.destroy_node()
        watch.destroy_node()
    assert stats.published == {topic: len(raws) for topic, raws in expected.items()}
    assert received == expected
    assert f"recovered {len(intact)} of the {2 * PAIRS} messages" in stats.recovery
