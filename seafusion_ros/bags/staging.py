"""Writing outputs under a hidden temporary name and moving them into place only when complete.

A run that fails or is interrupted midway then leaves nothing half-written under the final name, and
whatever was there before is kept.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

STAGING_NAME = ".partial"  # inside a results folder: what a run is still writing


class StagedBag:
    """A new bag folder ``out``, written at ``path`` = ``.NAME.partial/NAME/`` beside it.

    The writer names its storage file after the folder it writes (``NAME.mcap``, ``NAME.db3``) and lists
    that name in metadata.yaml, so the folder is written under its final name inside a temporary parent:
    the finished bag holds nothing named ``partial``, and its files can be copied anywhere.
    ``commit`` moves it into place in one rename (same filesystem), ``discard`` removes it.
    """

    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out)
        if self.out.exists():
            raise FileExistsError(f"{self.out} already exists; rosbag2 writes a new folder")
        self._parent = self.out.with_name(f".{self.out.name}.partial")
        shutil.rmtree(self._parent, ignore_errors=True)  # left by a run that was killed
        self.path = self._parent / self.out.name

    def commit(self) -> Path:
        """Move the finished bag to ``out`` and remove the empty temporary parent; returns ``out``."""
        self.path.rename(self.out)
        self._parent.rmdir()
        return self.out

    def discard(self) -> None:
        """Remove whatever was written."""
        shutil.rmtree(self._parent, ignore_errors=True)


class StagedResults:
    """A run's result files and folders (``names``), written into ``path`` = ``out/.partial/`` and moved
    into ``out`` by ``commit`` once all are complete.

    Staging inside ``out`` keeps every move on one filesystem and needs no write access beside ``out``
    (a mounted volume, a folder in a read-only parent). ``commit`` replaces those results in ``out`` and
    removes the ones this run did not write (a contact sheet or an output bag of an earlier run would not
    belong to the new report); other files in ``out`` are left alone.
    """

    def __init__(self, out: str | os.PathLike, names: tuple[str, ...]) -> None:
        self.out = Path(out)
        self.names = names
        self._created = not self.out.exists()
        self.path = self.out / STAGING_NAME
        shutil.rmtree(self.path, ignore_errors=True)  # left by a run that was killed
        self.path.mkdir(parents=True)

    def commit(self) -> None:
        """Move every result into ``out``: each old version is moved away first, then the new one in.

        If a move fails, the ones already made are undone, so ``out`` holds the earlier results as they
        were and the new ones stay in ``path``; the OSError is raised.
        """
        replaced = self.path / ".replaced"
        replaced.mkdir()
        moved_in: list[str] = []
        moved_away: list[str] = []
        try:
            for name in self.names:
                new, old = self.path / name, self.out / name
                if os.path.lexists(old):
                    old.rename(replaced / name)
                    moved_away.append(name)
                if new.exists():
                    new.rename(old)
                    moved_in.append(name)
        except OSError:
            for name in reversed(moved_in):
                (self.out / name).rename(self.path / name)
            for name in reversed(moved_away):
                (replaced / name).rename(self.out / name)
            replaced.rmdir()
            raise
        shutil.rmtree(self.path)

    def discard(self) -> None:
        """Remove the new results; ``out`` stays as it was (and goes again if this run created it)."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._created:
            with contextlib.suppress(OSError):  # not empty: someone wrote into it meanwhile
                self.out.rmdir()
