"""Writing thermal + RGB rosbag2 recordings: from an image-folder pair set or the synthetic scene.

Stamps are ``start + i / rate`` plus a constant thermal offset and Gaussian jitter per message, the way
two free-running cameras look; each message is logged a few milliseconds after its stamp (transport).
The bag is written under a temporary parent folder and moved into place when complete (see
:class:`~seafusion_ros.bags.staging.StagedBag`), so a failed run leaves nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from tqdm import tqdm

from seafusion_ros.bags.messages import (
    COMPRESSED_TYPE,
    IMAGE_TYPE,
    TYPESTORE,
    compressed_message,
    image_message,
    serialize_image,
)
from seafusion_ros.bags.staging import StagedBag
from seafusion_ros.data.synthetic_scene import render_frame
from seafusion_ros.imaging.image_files import match_pairs, read_image, read_visible

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
THERMAL_ENCODINGS_OUT = ("16UC1", "mono16", "mono8")
DEFAULT_THERMAL_TOPIC = "/thermal/image_raw"
DEFAULT_RGB_TOPIC = "/rgb/image_raw"
_TRANSPORT_DELAY_NS = 3_000_000


@dataclass(frozen=True)
class StreamTiming:
    """Timing of one camera stream: rate, constant offset and jitter (std) in seconds."""

    rate_hz: float
    offset_s: float = 0.0
    jitter_s: float = 0.0

    def __post_init__(self) -> None:
        if self.rate_hz <= 0:
            raise ValueError(f"rate must be positive, got {self.rate_hz}")
        if self.jitter_s < 0:
            raise ValueError(f"jitter must be >= 0, got {self.jitter_s}")

    def stamps_ns(self, count: int, start_ns: int, rng: np.random.Generator) -> np.ndarray:
        t = np.arange(count) / self.rate_hz + self.offset_s + rng.normal(0.0, self.jitter_s, count)
        return start_ns + np.round(t * 1e9).astype(np.int64)


@dataclass(frozen=True)
class Frame:
    """One camera image to record: array, encoding, stamp."""

    array: np.ndarray
    encoding: str
    stamp_ns: int


def to_thermal_encoding(ir: np.ndarray, encoding: str) -> np.ndarray:
    """Store an 8-bit or 16-bit thermal image in the requested encoding (8-bit data scaled by 257 to 16 bits)."""
    if encoding not in THERMAL_ENCODINGS_OUT:
        raise ValueError(f"thermal encoding must be one of {THERMAL_ENCODINGS_OUT}, got {encoding!r}")
    if encoding == "mono8":
        if ir.dtype != np.uint8:
            raise ValueError("thermal mono8 needs 8-bit infrared images")
        return ir
    return ir.astype(np.uint16) * 257 if ir.dtype == np.uint8 else ir.astype(np.uint16)


def folder_frames(ir_dir: str | os.PathLike, vis_dir: str | os.PathLike, thermal: StreamTiming,
                  thermal_encoding: str = "16UC1", start_ns: int = 1_700_000_000_000_000_000,
                  seed: int = 0) -> tuple[int, Iterator[tuple[str, Frame]]]:
    """(message count, frames in stamp order) for a folder pair set, decoding lazily.

    Pair i is stamped at i / rate: the RGB image exactly, the thermal image with the offset and jitter.
    Colour visible images are recorded as rgb8, gray ones as mono8.
    """
    listing = match_pairs(ir_dir, vis_dir)
    if not listing.pairs:
        raise ValueError(f"no infrared/visible pairs matched by stem in {ir_dir} and {vis_dir}")
    to_thermal_encoding(np.zeros((1, 1), np.uint8), thermal_encoding)  # fail early on a bad encoding
    rng = np.random.default_rng(seed)
    n = len(listing.pairs)
    rgb_stamps = StreamTiming(thermal.rate_hz).stamps_ns(n, start_ns, rng)
    events = sorted([(int(t), "rgb", i) for i, t in enumerate(rgb_stamps)]
                    + [(int(t), "thermal", i) for i, t in enumerate(thermal.stamps_ns(n, start_ns, rng))])

    def frames() -> Iterator[tuple[str, Frame]]:
        for stamp, role, i in events:
            pair = listing.pairs[i]
            if role == "thermal":
                yield role, Frame(to_thermal_encoding(read_image(pair.ir, color=False), thermal_encoding),
                                  thermal_encoding, stamp)
                continue
            vis = read_visible(pair.visible)
            yield role, (Frame(np.ascontiguousarray(vis[:, :, ::-1]), "rgb8", stamp) if vis.ndim == 3
                         else Frame(vis, "mono8", stamp))

    return len(events), frames()


def synthetic_frames(duration_s: float, thermal: StreamTiming, rgb: StreamTiming, height: int = 480,
                     width: int = 640, start_ns: int = 1_700_000_000_000_000_000,
                     seed: int = 0) -> Iterator[tuple[str, Frame]]:
    """The synthetic scene seen by a thermal and an RGB camera running at their own rates (scene at 30 fps)."""
    rng = np.random.default_rng(seed)
    streams = []
    for role, timing in (("thermal", thermal), ("rgb", rgb)):
        count = max(int(duration_s * timing.rate_hz), 1)
        stamps = timing.stamps_ns(count, start_ns, rng)
        base = np.arange(count) / timing.rate_hz
        streams += [(int(s), role, int(round(t * 30))) for s, t in zip(stamps, base, strict=True)]
    for stamp, role, scene_index in sorted(streams):
        scene = render_frame(scene_index, height, width, seed)
        yield (role, Frame(scene.thermal, "16UC1", stamp) if role == "thermal" else Frame(scene.rgb, "rgb8", stamp))


def write_pair_bag(out: str | os.PathLike, frames: Iterable[tuple[str, Frame]], storage: str = "mcap",
                   thermal_topic: str = DEFAULT_THERMAL_TOPIC, rgb_topic: str = DEFAULT_RGB_TOPIC,
                   frame_ids: tuple[str, str] = ("thermal_camera", "rgb_camera"), total: int | None = None,
                   progress: bool = True, compressed: bool = False, jpeg_quality: int = 90) -> Path:
    """Write (role, Frame) items into a new bag folder ``out`` (which must not exist).

    ``compressed`` records CompressedImage on ``TOPIC/compressed``, as image_transport's compressed plugin
    publishes it: thermal as lossless PNG (16-bit stays 16-bit), RGB as JPEG at ``jpeg_quality``.
    """
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {tuple(STORAGES)}, got {storage!r}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {jpeg_quality}")
    msgtype = COMPRESSED_TYPE if compressed else IMAGE_TYPE
    suffix = "/compressed" if compressed else ""
    codec = {"thermal": "png", "rgb": "jpeg"}
    staged = StagedBag(out)
    try:
        with Writer(staged.path, version=9, storage_plugin=STORAGES[storage]) as writer:
            connections = {role: writer.add_connection(topic + suffix, msgtype, typestore=TYPESTORE)
                           for role, topic in (("thermal", thermal_topic), ("rgb", rgb_topic))}
            frame_id = {"thermal": frame_ids[0], "rgb": frame_ids[1]}
            for role, frame in tqdm(frames, total=total, desc="writing bag", unit="msg", disable=not progress):
                if compressed:
                    msg = compressed_message(frame.array, frame.encoding, frame.stamp_ns, frame_id[role],
                                             codec[role], jpeg_quality)
                else:
                    msg = image_message(frame.array, frame.encoding, frame.stamp_ns, frame_id[role])
                writer.write(connections[role], frame.stamp_ns + _TRANSPORT_DELAY_NS, serialize_image(msg, msgtype))
        return staged.commit()
    except BaseException:
        staged.discard()
        raise
