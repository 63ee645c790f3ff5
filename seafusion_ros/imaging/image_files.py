"""Matching infrared and visible image folders by file stem, and writing files atomically.

An atomic write goes to ``.NAME.PID.tmp`` beside ``NAME`` and is renamed into place, so a reader never sees
half a file. The writer's process id in the temporary name lets a later run tell the leftovers of a killed
writer (its process is gone) from the files another running writer is still writing.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class ImagePair:
    stem: str
    ir: Path
    visible: Path


@dataclass(frozen=True)
class PairListing:
    """Pairs found in both folders, and stems found in only one (with the reason)."""

    pairs: list[ImagePair]
    skipped: list[tuple[str, str]]


def _images_by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"not a directory: {folder}")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.setdefault(path.stem, path)
    return found


def match_pairs(ir_dir: str | os.PathLike, vis_dir: str | os.PathLike) -> PairListing:
    """Pair files of two folders by stem (``00004N.png`` with ``00004N.jpg``), sorted by stem."""
    ir = _images_by_stem(Path(ir_dir))
    vis = _images_by_stem(Path(vis_dir))
    pairs = [ImagePair(stem, ir[stem], vis[stem]) for stem in sorted(ir.keys() & vis.keys())]
    skipped = [(stem, f"no visible image in {vis_dir}") for stem in sorted(ir.keys() - vis.keys())]
    skipped += [(stem, f"no infrared image in {ir_dir}") for stem in sorted(vis.keys() - ir.keys())]
    return PairListing(pairs, skipped)


def read_image(path: str | os.PathLike, color: bool) -> np.ndarray:
    """Read an image unchanged in depth (8/16-bit); colour images come back in BGR order.

    Raises ValueError when the file cannot be decoded.
    """
    flags = cv2.IMREAD_COLOR if color else cv2.IMREAD_UNCHANGED
    image = cv2.imread(str(path), flags)
    if image is None:
        raise ValueError(f"cannot decode image file {path}")
    if not color and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    return image


def read_visible(path: str | os.PathLike) -> np.ndarray:
    """Read a visible image as H x W gray or H x W x 3 BGR uint8 (alpha dropped).

    Raises ValueError for undecodable files and for bit depths other than 8.
    """
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"cannot decode image file {path}")
    if image.dtype != np.uint8:
        raise ValueError(f"{path} is a {image.dtype} image; an 8-bit gray or colour image is expected")
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


class WriteError(OSError):
    """An atomic write that failed: ``filename`` is the file it was writing, ``errno`` / ``strerror`` why."""


def temporary_path(path: str | os.PathLike) -> Path:
    """The hidden name an atomic write of ``path`` uses in the same folder: ``.NAME.PID.tmp``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary name in the target folder, then rename: never a half-written file.

    On any failure (a full disk, Ctrl-C) the temporary file is removed; an OSError is raised as WriteError
    naming ``path`` itself, not the temporary name, so a message built from it points at the file asked for.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:  # open() honours the umask, unlike mkstemp's 0600
            handle.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise WriteError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    return path


def write_image_atomic(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Encode by the suffix (PNG without one) and write atomically (see ``write_bytes_atomic``)."""
    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise ValueError(f"cannot encode image for {path}")
    return write_bytes_atomic(path, encoded.tobytes())


# .NAME.PID.tmp, and .NAME.PID.HEX8.tmp of older report writers
_TEMPORARY_NAME = re.compile(r"\.(?P<name>.+?)\.(?P<pid>[0-9]+)(?:\.[0-9a-f]{8})?\.tmp")


def _process_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_leftover_temporaries(folder: str | os.PathLike, names: tuple[str, ...] | None = None,
                                own: bool = False) -> list[Path]:
    """Remove the atomic writes' temporary files in ``folder`` (not its subfolders) whose writer is gone.

    ``names`` limits it to the temporaries of those file names; ``own`` removes this process's instead
    (a command that must exit at once). A missing or unreadable folder has nothing to remove.
    """
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY_NAME.fullmatch(entry.name)
        if match is None or (names is not None and match["name"] not in names):
            continue
        pid = int(match["pid"])
        if pid != os.getpid() if own else _process_running(pid):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file() or entry.is_symlink():
                entry.unlink()
                removed.append(entry)
    return removed
