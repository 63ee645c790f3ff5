"""Train/validation splits of the supported data sets, always by whole sequence or scene.

Neighbouring frames of one drive are near-duplicates, so a random split would score a model on
frames it has all but seen. Each data set family has a fixed rule, chosen from the folder layout
and the file names; a folder whose names match no rule is training data only.

| family | names | validation |
|---|---|---|
| msrs | ``00412D`` | frames 400-520 and 1100-1199 (:mod:`seafusion_ros.data.msrs_split`) |
| mfnet_labelled | ``00412D`` beside ``labels/`` | sequences 00501-00550 (day) and 00701-00750 (night) |
| roadscene | ``FLIR_08721``, ``FLIR_video_00069`` | ``FLIR_08700`` and later (``FLIR_video_*`` trains) |
| llvip | ``190001`` | scenes ``19xxxx`` and ``20xxxx`` (LLVIP's test split) |
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from seafusion_ros.data import msrs_split
from seafusion_ros.imaging.image_files import ImagePair, match_pairs

SUBSETS = ("train", "val", "all")

# mfnet_labelled: whole sequences held out, one day and one night. Of the two night sequences, 011xx holds
# 80 % of the data's bike pixels and 76 % of its colour-cone pixels, so it trains and 007xx validates;
# that leaves every class but guardrail (only in 001xx) in both splits. 011xx holds MSRS validation
# frames 1102-1148 (MSRS's enhanced infrared of the same scenes): docs/training.md says what that means.
MFNET_VALIDATION_SEQUENCES: tuple[tuple[int, int], ...] = ((501, 551), (701, 751))
ROADSCENE_FIRST_VALIDATION_FRAME = 8700
LLVIP_VALIDATION_SCENES = ("19", "20")

_MSRS_STEM = re.compile(r"^(\d{5})[DN]$")
_FLIR_STEM = re.compile(r"^FLIR_(video_)?(\d+)$")
_LLVIP_STEM = re.compile(r"^(\d{2})\d{4}$")


@dataclass(frozen=True)
class SplitRule:
    """How one data set family is split; ``is_validation`` is only asked about names ``matches`` accepts."""

    family: str
    description: str
    matches: Callable[[str], bool]
    is_validation: Callable[[str], bool]


def _mfnet_validation(stem: str) -> bool:
    n = int(stem[:5])
    return any(start <= n < stop for start, stop in MFNET_VALIDATION_SEQUENCES)


def near_mfnet_validation(stem: str) -> bool:
    """Whether an MFNet-named frame (``00512D``) lies in the hundred of a validation sequence (005xx, 007xx):
    the frames just outside a sequence show the same street, so data that trains beside the labelled frames
    leaves them out."""
    match = _MSRS_STEM.match(stem)
    if match is None:
        return False
    hundred = int(match[1]) // 100
    return any(start // 100 <= hundred <= (stop - 1) // 100 for start, stop in MFNET_VALIDATION_SEQUENCES)


def _roadscene_validation(stem: str) -> bool:
    match = _FLIR_STEM.match(stem)
    return match is not None and match[1] is None and int(match[2]) >= ROADSCENE_FIRST_VALIDATION_FRAME


MSRS = SplitRule("msrs", "MSRS frames 400-520 and 1100-1199 are validation",
                 lambda s: _MSRS_STEM.match(s) is not None, msrs_split.is_validation)
MFNET_LABELLED = SplitRule("mfnet_labelled", "sequences 00501-00550 (day) and 00701-00750 (night) are validation",
                           lambda s: _MSRS_STEM.match(s) is not None, _mfnet_validation)
ROADSCENE = SplitRule("roadscene", f"FLIR_{ROADSCENE_FIRST_VALIDATION_FRAME:05d} and later are validation",
                      lambda s: _FLIR_STEM.match(s) is not None, _roadscene_validation)
LLVIP = SplitRule("llvip", "scenes 19xxxx and 20xxxx are validation",
                  lambda s: _LLVIP_STEM.match(s) is not None, lambda s: s[:2] in LLVIP_VALIDATION_SCENES)
UNSPLIT = SplitRule("unsplit", "no validation frames (names match no known data set)",
                    lambda s: True, lambda s: False)


def is_labelled_layout(root: str | os.PathLike) -> bool:
    """The ``mfnet_labelled`` layout: ``rgb/``, ``thermal/`` and ``labels/`` folders."""
    root = Path(root)
    return all((root / name).is_dir() for name in ("rgb", "thermal", "labels"))


def rule_for(root: str | os.PathLike, stems: Sequence[str]) -> SplitRule:
    """The split rule of a data folder: by layout first, then the first family all names belong to."""
    if is_labelled_layout(root):
        return MFNET_LABELLED
    for rule in (MSRS, ROADSCENE, LLVIP):
        if stems and all(rule.matches(s) for s in stems):
            return rule
    return UNSPLIT


def dataset_pairs(root: str | os.PathLike) -> list[ImagePair]:
    """Every infrared/visible pair of a data folder (``ir/`` + ``vi/``, or ``thermal/`` + ``rgb/``)."""
    root = Path(root)
    ir_dir, vis_dir = (root / "thermal", root / "rgb") if is_labelled_layout(root) else (root / "ir", root / "vi")
    if not ir_dir.is_dir() or not vis_dir.is_dir():
        raise FileNotFoundError(f"{root}: expected ir/ and vi/ folders (or the labelled layout: rgb/, thermal/, "
                                "labels/)")
    pairs = match_pairs(ir_dir, vis_dir).pairs
    if not pairs:
        raise ValueError(f"no infrared/visible pairs found under {ir_dir} and {vis_dir}")
    return pairs


def split_pairs(root: str | os.PathLike, subset: str) -> tuple[list[ImagePair], SplitRule]:
    """The pairs of ``subset`` (train, val or all) of a data folder, and the rule that chose them."""
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
    pairs = dataset_pairs(root)
    rule = rule_for(root, [p.stem for p in pairs])
    if subset == "all":
        return pairs, rule
    want_val = subset == "val"
    return [p for p in pairs if rule.is_validation(p.stem) == want_val], rule
