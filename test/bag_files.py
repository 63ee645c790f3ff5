"""Checks that a finished rosbag2 folder stands on its own: shared by the bag writer tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from rosbags.rosbag2 import Reader


def bag_messages(bag: Path) -> list[tuple[str, int, bytes]]:
    """(topic, log time, raw CDR) of every message, in log-time order."""
    with Reader(bag) as reader:
        return [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]


def assert_self_contained(bag: Path, copy_to: Path) -> None:
    """No file of the finished bag is named as partial, metadata.yaml names files that exist, and the
    folder's files copied as ``cp BAG/* DEST/`` copies them (the shell's ``*`` skips hidden names) are
    the same bag."""
    names = [p.name for p in bag.rglob("*")]
    assert not [n for n in names if "partial" in n], names
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["relative_file_paths"] and all((bag / f).is_file() for f in info["relative_file_paths"]), info
    copy_to.mkdir()
    for path in bag.iterdir():
        if not path.name.startswith("."):
            shutil.copy2(path, copy_to / path.name)
    messages = bag_messages(bag)
    assert messages and bag_messages(copy_to) == messages
