"""Offline replay: pair a bag's thermal and RGB images with the node's sync rules, fuse, segment, record.

Streams the bag once in log-time order (memory bounded by the sync queues), so an hour-long
recording replays like a short one; each message is deserialised once. Pairs go through the node's own
decode and registration code (:mod:`seafusion_ros.imaging.pair_input`), so thermal and RGB of different sizes
are handled with the same registration choices. Output messages carry the RGB input's header, exactly
as the node publishes them. Inputs may be raw ``Image`` or image_transport ``CompressedImage`` topics
(JPEG or PNG), each decoded only when its pair is fused. Problems with the bag (missing, truncated,
lacking a topic, undecodable images) are collected in ``ReplayResult.problems`` instead of raising, so a
partial report is always possible; a truncated or damaged bag replays every intact message
(:class:`~seafusion_ros.bags.bag_reader.BagReader`), with what was recovered listed as a problem.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from seafusion_ros.bags.bag_reader import BagReader, BagReaderError
from seafusion_ros.bags.messages import (
    IMAGE_TYPE,
    IMAGE_TYPES,
    TYPESTORE,
    deserialize_image,
    image_message,
    serialize_image,
)
from seafusion_ros.bags.staging import StagedBag
from seafusion_ros.evaluation.fusion_metrics import fusion_scores
from seafusion_ros.imaging.overlay import blend_overlay, palette_array
from seafusion_ros.imaging.pair_input import prepare_pair
from seafusion_ros.imaging.registration import Registration
from seafusion_ros.imaging.stamps import stamp_to_ns
from seafusion_ros.imaging.time_sync import make_sync
from seafusion_ros.inference.engine import FusionEngine

OUTPUT_TOPICS = ("/fused/image", "/segmentation/mask", "/segmentation/overlay")


@dataclass(frozen=True)
class ReplayOptions:
    """Replay settings; ``registration`` warps thermal onto the (optionally resized) RGB grid, as the node's
    ``registration.*`` parameters do (default: sizes must match)."""

    thermal_topic: str = "thermal/image_raw"
    rgb_topic: str = "rgb/image_raw"
    sync_mode: str = "approximate"
    queue_size: int = 10
    slop_s: float = 0.05
    segment: bool = True
    metrics: bool = True
    overlay_alpha: float = 0.5
    sample_frames: int = 6
    registration: Registration = field(default_factory=Registration)


@dataclass
class PairRecord:
    rgb_stamp_ns: int
    thermal_stamp_ns: int
    timings: dict[str, float]
    metrics: dict[str, float]


@dataclass
class ReplayResult:
    bag: str
    topics: dict[str, dict[str, Any]] = field(default_factory=dict)
    ignored_topics: list[str] = field(default_factory=list)
    pairs: list[PairRecord] = field(default_factory=list)
    received: dict[str, int] = field(default_factory=lambda: {"thermal": 0, "rgb": 0})
    rejected: dict[str, int] = field(default_factory=lambda: {"thermal": 0, "rgb": 0})
    problems: list[str] = field(default_factory=list)
    skipped_pairs: int = 0
    samples: list[dict[str, np.ndarray]] = field(default_factory=list)
    output_bag: str | None = None
    classes: list[str] = field(default_factory=list)

    @property
    def unmatched(self) -> dict[str, int]:
        formed = len(self.pairs) + self.skipped_pairs
        return {role: self.received[role] - self.rejected[role] - formed for role in self.received}


class OutputWriteError(OSError):
    """Writing the output bag (``filename``) failed, e.g. on a full disk: the replay stops, and the input bag
    is not reported as damaged."""


def resolve_topic(wanted: str, available: list[str]) -> str | None:
    """The bag topic for a node-relative name: exact match, or the unique topic ending in ``/wanted``."""
    if wanted in available:
        return wanted
    candidates = [t for t in available if t == "/" + wanted.lstrip("/") or t.endswith("/" + wanted.lstrip("/"))]
    if len(candidates) > 1:
        raise ValueError(f"topic {wanted!r} is ambiguous in this bag: {candidates}; pass the full name")
    return candidates[0] if candidates else None


def resolve_image_topic(wanted: str, types: dict[str, str]) -> str | None:
    """The bag topic of a camera input: ``wanted`` as :func:`resolve_topic` finds it or, when the bag has
    no such topic, its image_transport compressed topic ``wanted/compressed``."""
    available = sorted(types)
    topic = resolve_topic(wanted, available)
    if topic is None and not wanted.rstrip("/").endswith("/compressed"):
        topic = resolve_topic(wanted.rstrip("/") + "/compressed", available)
    return topic


class _Replayer:
    def __init__(self, engine: FusionEngine, options: ReplayOptions, writer: Writer | None, result: ReplayResult,
                 palette: list[list[int]] | None) -> None:
        self.engine, self.options, self.writer, self.result = engine, options, writer, result
        self.palette = palette_array(palette) if palette is not None else None  # the lookup table, once
        self.segment = options.segment and engine.segmenter is not None and palette is not None
        self.connections = {}
        if writer is not None:
            topics = OUTPUT_TOPICS if self.segment else OUTPUT_TOPICS[:1]
            self.connections = {t: writer.add_connection(t, IMAGE_TYPE, typestore=TYPESTORE) for t in topics}

    def on_pair(self, thermal_msg: Any, rgb_msg: Any) -> None:
        """Fuse one synchronised pair of (deserialised) Image or CompressedImage messages and record the outputs."""
        t0 = time.perf_counter()
        try:
            pair = prepare_pair(thermal_msg, rgb_msg, self.options.registration)  # exactly as the node does
            ir, vis, order = pair.thermal, pair.visible, pair.visible_order
            decode = time.perf_counter() - t0
            out = self.engine.fuse(ir, vis, visible_order=order, output_order="rgb", segment=self.segment)
        except Exception as exc:  # one bad pair (or a failing device) must not end the replay
            self.result.skipped_pairs += 1
            self.result.problems.append(f"pair at RGB stamp {stamp_to_ns(rgb_msg.header.stamp)} ns skipped: "
                                        f"{type(exc).__name__}: {exc}")
            return
        t1 = time.perf_counter()
        stamp = stamp_to_ns(rgb_msg.header.stamp)
        overlay = blend_overlay(out.image, out.mask, self.palette, self.options.overlay_alpha) if self.segment else None
        if self.writer is not None:
            outputs = [(OUTPUT_TOPICS[0], out.image, "rgb8")]
            if self.segment:
                outputs += [(OUTPUT_TOPICS[1], out.mask, "mono8"), (OUTPUT_TOPICS[2], overlay, "rgb8")]
            for topic, array, encoding in outputs:
                msg = image_message(array, encoding, 0, "", msg_header=rgb_msg.header)
                try:
                    self.writer.write(self.connections[topic], stamp, serialize_image(msg))
                except OSError as exc:  # a full disk: the output, not the input bag, is the problem
                    raise OutputWriteError(exc.errno, exc.strerror or str(exc)) from exc
        encode = time.perf_counter() - t1
        ir8 = ir if ir.dtype == np.uint8 else self._thermal_as_8bit(ir)
        vis_rgb = vis if vis.ndim == 2 or order == "rgb" else np.ascontiguousarray(vis[:, :, ::-1])
        metrics = {}
        if self.options.metrics:
            try:
                metrics = fusion_scores(out.image, ir8, vis_rgb).values
            except ValueError as exc:  # e.g. too small for VIF's windows: the pair is still fused and written
                self.result.problems.append(f"pair at RGB stamp {stamp} ns: no fusion metrics: {exc}")
        timings = {"decode": decode, **out.timings, "encode_write": encode}
        self.result.pairs.append(PairRecord(stamp, stamp_to_ns(thermal_msg.header.stamp), timings, metrics))
        self.result.samples.append({"thermal": ir8, "rgb": vis_rgb, "fused": out.image,
                                    **({"overlay": overlay} if overlay is not None else {})})
        if len(self.result.samples) > 2 * self.options.sample_frames:  # keep an even spread, bounded memory
            self.result.samples = self.result.samples[::2]

    def _thermal_as_8bit(self, ir: np.ndarray) -> np.ndarray:
        low, high = self.engine.gain.window
        return np.clip((ir.astype(np.float32) - low) * (255.0 / max(high - low, 1e-6)) + 0.5, 0, 255).astype(np.uint8)


def replay_bag(bag: str | os.PathLike, out_bag: str | os.PathLike | None, engine: FusionEngine,
               options: ReplayOptions = ReplayOptions(), palette: list[list[int]] | None = None,
               classes: list[str] | None = None,
               progress: Callable[[int, int], None] | None = None) -> ReplayResult:
    """Replay ``bag`` through ``engine``; write outputs to ``out_bag`` (MCAP; a new folder, created only if
    there are pairs) unless None."""
    staged = StagedBag(out_bag) if out_bag is not None else None  # refuses an existing out_bag before any work
    result = ReplayResult(bag=str(bag), classes=list(classes or []))
    bag = Path(bag)
    if not bag.exists():
        result.problems.append(f"bag not found: {bag}")
        return result
    reader = BagReader(bag)
    try:
        reader.open()
    except BagReaderError as exc:
        result.problems.append(f"cannot open bag {bag}: {exc}")
        return result
    try:
        _replay_open_bag(reader, staged, engine, options, palette, result, progress)
    finally:
        reader.close()
    if reader.recovery is not None:
        result.problems.append(reader.recovery.summary())
    return result


def _replay_open_bag(reader: BagReader, staged: StagedBag | None, engine: FusionEngine,
                     options: ReplayOptions, palette: list[list[int]] | None, result: ReplayResult,
                     progress: Callable[[int, int], None] | None) -> None:
    available = sorted({c.topic for c in reader.connections})
    types = {c.topic: c.msgtype for c in reader.connections}
    try:
        roles = {"thermal": resolve_image_topic(options.thermal_topic, types),
                 "rgb": resolve_image_topic(options.rgb_topic, types)}
    except ValueError as exc:
        result.problems.append(str(exc))
        return
    for role, topic in roles.items():
        if topic is None:
            result.problems.append(f"the bag has no {role} topic matching {getattr(options, role + '_topic')!r} "
                                   f"(topics: {available})")
        elif types[topic] not in IMAGE_TYPES:
            result.problems.append(f"{role} topic {topic} has type {types[topic]}, expected "
                                   f"{' or '.join(IMAGE_TYPES)}")
            roles[role] = None
    result.topics = {c.topic: {"type": c.msgtype, "messages": c.msgcount} for c in reader.connections}
    result.ignored_topics = [t for t in available if t not in roles.values()]
    if None in roles.values():
        return
    index = {roles["thermal"]: 0, roles["rgb"]: 1}
    role_of = {0: "thermal", 1: "rgb"}
    writer = None
    if staged is not None:
        writer = Writer(staged.path, version=9, storage_plugin=StoragePlugin.MCAP)
        writer.open()
    replayer = _Replayer(engine, options, writer, result, palette)
    sync = make_sync(options.sync_mode, 2, options.queue_size, int(round(options.slop_s * 1e9)), replayer.on_pair)
    wanted = [c for c in reader.connections if c.topic in index]
    total = sum(c.msgcount for c in wanted)
    seen = 0
    try:
        for connection, _, raw in reader.messages(connections=wanted):
            seen += 1
            i = index[connection.topic]
            result.received[role_of[i]] += 1
            try:
                msg = deserialize_image(raw, connection.msgtype)
            except Exception as exc:  # a corrupt CDR payload: count it and carry on
                result.rejected[role_of[i]] += 1
                result.problems.append(f"undecodable message on {connection.topic}: {exc}")
                continue
            sync.add(i, stamp_to_ns(msg.header.stamp), msg)
            if progress is not None:
                progress(seen, total)
    except OutputWriteError as exc:  # only raised while writing, so the writer exists
        with contextlib.suppress(OSError):  # closing a bag on a full disk fails too
            writer.close()
        staged.discard()
        raise OutputWriteError(exc.errno, exc.strerror, str(staged.out)) from exc
    except Exception as exc:  # e.g. an I/O error part-way: keep what was read
        result.problems.append(f"bag ended early after {seen} of {total} messages (truncated or damaged?): {exc}")
    except BaseException:  # Ctrl-C: no output bag rather than a half-written one under the final name
        if writer is not None:
            writer.close()
            staged.discard()
        raise
    if writer is not None:
        try:
            writer.close()  # the storage writes its last chunk and index here
        except OSError as exc:
            staged.discard()
            raise OutputWriteError(exc.errno, exc.strerror or str(exc), str(staged.out)) from exc
        if result.pairs:
            result.output_bag = str(staged.commit())
        else:
            staged.discard()

