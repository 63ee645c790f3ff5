"""Where a command writes: checked before it loads a model or reads any data, cleared of what a killed run
left, and its write errors turned into one line naming the file and the reason.

A folder that cannot take the outputs (a file in the way, a read-only filesystem, no permission, a full
disk) is then an error (exit status 2) before any work, not a traceback after the first result.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
from pathlib import Path

from seafusion_ros.cli.interrupts import on_forced_exit
from seafusion_ros.imaging.image_files import WriteError, remove_leftover_temporaries

# What writing a bag raises on a full disk: rosbags' MCAP writer an OSError, its sqlite3 storage an sqlite3 error.
BAG_WRITE_ERRORS = (OSError, sqlite3.Error)

# A write that failed with one of these fails the same way for every further file in that folder.
FOLDER_WIDE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


class OutputError(ValueError):
    """An output location that cannot be written, with the reason."""


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path):
        path = path.parent
    return path


def _write_problem(folder: Path) -> str | None:
    """Why files cannot be created in the existing folder ``folder``, or None."""
    stats = os.statvfs(folder)
    if stats.f_flag & os.ST_RDONLY:
        return "read-only filesystem"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "no write permission"
    if (stats.f_bfree if os.geteuid() == 0 else stats.f_bavail) == 0:
        return "no space left on device"
    return None


def check_output_folder(folder: str | os.PathLike) -> None:
    """Raise OutputError unless ``folder`` is a writable folder or can be created as one (it is not created:
    a run that stops before its first result leaves nothing behind)."""
    folder = Path(folder)
    nearest = _nearest_existing(folder)
    if nearest == Path(os.path.abspath(folder)):
        if not folder.is_dir():
            raise OutputError(f"{folder} exists and is not a folder")
        problem = _write_problem(folder)
        if problem:
            raise OutputError(f"cannot write into {folder}: {problem}")
        return
    if not nearest.is_dir():
        raise OutputError(f"cannot create {folder}: {nearest} is not a folder")
    problem = _write_problem(nearest)
    if problem:
        raise OutputError(f"cannot create {folder}: {problem} in {nearest}")


def check_output_file(path: str | os.PathLike, what: str = "file") -> None:
    """Raise OutputError unless ``path`` can be written as a file (see ``check_output_folder``)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give the path of the {what}")
    check_output_folder(path.parent)


def _folders(folder: Path, recursive: bool) -> list[Path]:
    return [Path(root) for root, _, _ in os.walk(folder)] if recursive else [folder]


def claim_output_folder(prog: str, folder: str | os.PathLike, recursive: bool = False,
                        names: tuple[str, ...] | None = None) -> None:
    """Remove the temporary files a killed run left in ``folder`` (and its subfolders when ``recursive``; only
    those of ``names`` if given), and have a forced exit of this run remove its own there."""
    folder = Path(folder)
    removed = [path for each in _folders(folder, recursive) for path in remove_leftover_temporaries(each, names)]
    if removed:
        print(f"{prog}: removed {len(removed)} temporary file(s) left in {folder} by a run that was killed",
              file=sys.stderr)
    on_forced_exit(lambda: [remove_leftover_temporaries(each, names, own=True)
                            for each in _folders(folder, recursive)])


def os_error_message(exc: OSError) -> str:
    """'cannot write PATH: reason' for a failed atomic write, 'PATH: reason' for other OSErrors."""
    if isinstance(exc, WriteError):
        return f"cannot write {exc.filename}: {exc.strerror}"
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def fails_every_write(exc: OSError) -> bool:
    """True for a full disk, a read-only filesystem or a permission problem: every further write fails too."""
    return exc.errno in FOLDER_WIDE_ERRNOS


def bag_write_failure(bag: str | os.PathLike, exc: Exception) -> str:
    """'cannot write BAG: reason' for one of BAG_WRITE_ERRORS (whose own message may not name the file)."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"cannot write {bag}: {reason}"
