"""seafusion-eval masks: score class-id masks against a labelled folder's pixel labels.

    seafusion-fuse --ir DATA/thermal --vis DATA/rgb --out runs/fused --masks runs/masks
    seafusion-eval masks --labelled DATA --masks runs/masks --out runs/mask_scores

scores the masks of the split's frames (``--split val`` by default: the frames no bundled model trained on)
against DATA/labels at the labels' resolution: IoU per class, mIoU over the classes with labelled pixels,
and the same by day and by night for MSRS-style stems (``00501D``, ``00701N``). Writes OUT/summary.json and
OUT/summary.md and prints the table. Any segmenter's masks can be scored, so the number is that of the
pipeline that made them (engine, precision, resizing), not of a separate evaluation path.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from seafusion_ros.cli import interrupts
from seafusion_ros.cli.output_checks import check_output_folder, claim_output_folder, os_error_message
from seafusion_ros.data.labels import MSRS_CLASSES
from seafusion_ros.data.segmentation_data import labelled_source
from seafusion_ros.evaluation.fusion_report import write_text_atomic
from seafusion_ros.evaluation.mask_scoring import MaskScores, score_masks

PROG = "seafusion-eval masks"
SPLITS = ("val", "train", "all")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Score class-id masks (mono8 PNGs named by the frame's stem, e.g. from 'seafusion-fuse --masks') "
                    "against the pixel labels of a labelled folder (thermal/, rgb/, labels/ with the 9 MSRS class "
                    "ids): IoU per class, mIoU over the classes with labelled pixels, and the same by day and by "
                    "night for MSRS-style stems. Every frame of the split needs a mask of its label's size. Writes "
                    "OUT/summary.json and OUT/summary.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--labelled", required=True, type=Path, metavar="DATA",
                   help="labelled folder (thermal/, rgb/, labels/), e.g. ../shared/data/mfnet_labelled")
    p.add_argument("--masks", required=True, type=Path, metavar="DIR", help="folder of class-id masks, STEM.png")
    p.add_argument("--split", choices=SPLITS, default="val",
                   help="frames to score: the folder's validation split (by whole sequence), training split, or all")
    p.add_argument("--out", required=True, type=Path, help="output folder for summary.json and summary.md")
    return p


def _cell(value: float | None) -> str:
    return "absent" if value is None else f"{value:.3f}"


def report_text(scores: dict[str, MaskScores], class_names: Sequence[str], data: Path, masks: Path, split: str,
                split_rule: str) -> str:
    """summary.md: one row per frame group, mIoU and IoU per class; absent classes' predicted pixels below."""
    everything = scores["all"]
    absent = [c for c in class_names if everything.iou[c] is None]
    rows = ["| frames | count | mIoU | " + " | ".join(class_names) + " |",
            "|---|---:|---:|" + "---:|" * len(class_names)]
    for group, s in scores.items():
        rows.append(f"| {group} | {s.frames} | {_cell(s.miou)} | "
                    + " | ".join(_cell(s.iou[c]) for c in class_names) + " |")
    present = len(class_names) - len(absent)
    lines = [f"Masks in `{masks}` scored against the labels of `{data}`, {split} split ({split_rule}), at the "
             f"labels' resolution. IoU per class from the confusion matrix summed over a row's frames; mIoU over "
             f"the classes with labelled pixels in those frames ({present} for all frames, {class_names[0]} "
             "included).", "", *rows, ""]
    if absent:
        predicted = ", ".join(f"{c} {everything.predicted_pixels[c]}" for c in absent)
        lines.append(f"Absent from these labels (no IoU, not in the mIoU): {', '.join(absent)}; pixels predicted as "
                     f"them: {predicted}.")
        lines.append("")
    return "\n".join(lines)


def write_report(out: Path, files: dict[str, str]) -> None:
    """Each file atomically; when one fails, those already written are removed, so this run's files never sit
    beside another run's as one report."""
    written: list[Path] = []
    try:
        for name, text in files.items():
            written.append(write_text_atomic(out / name, text))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace, command: str) -> int:
    source = labelled_source(args.labelled)
    stems = {"val": source.validation, "train": source.train, "all": sorted(source.train + source.validation)}[
        args.split]
    if not stems:
        raise ValueError(f"{args.labelled}: no labelled frame in its {args.split} split ({source.rule.description})")
    class_names = list(MSRS_CLASSES.names)
    scores = score_masks(args.masks, source.mask_dir, stems, class_names)
    text = report_text(scores, class_names, args.labelled, args.masks, args.split, source.rule.description)
    summary = {"command": command, "labelled": str(args.labelled), "masks": str(args.masks), "split": args.split,
               "split_rule": source.rule.description, "classes": class_names,
               "scores": {group: s.to_dict() for group, s in scores.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    claim_output_folder(PROG, args.out)
    write_report(args.out, {"summary.md": text, "summary.json": json.dumps(summary, indent=2)})
    print(text, end="")
    print(f"wrote {args.out / 'summary.md'} and summary.json")
    return 0


@interrupts.command(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "masks":
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    try:
        check_output_folder(args.out)
        return run(args, "seafusion-eval masks " + shlex.join(argv))
    except (FileNotFoundError, ValueError) as err:  # OutputError is a ValueError
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"{PROG}: error: {os_error_message(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
