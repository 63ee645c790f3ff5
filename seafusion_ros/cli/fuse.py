"""seafusion-fuse: fuse every infrared/visible pair of two folders (matched by file stem) into PNGs, and with
--masks write the segmentation model's class-id mask of each fused image beside them."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from torch import nn
from tqdm import tqdm

from seafusion_ros.cli import interrupts
from seafusion_ros.cli.engine_options import add_engine_arguments, engine_from_args
from seafusion_ros.cli.output_checks import (
    check_output_folder,
    claim_output_folder,
    fails_every_write,
    os_error_message,
)
from seafusion_ros.imaging.image_files import match_pairs, read_image, read_visible, write_image_atomic
from seafusion_ros.weights import DEFAULT_SEGMENTATION_WEIGHTS, load_segmenter

PROG = "seafusion-fuse"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Fuse every infrared/visible pair of two folders, matched by file stem, into OUT/STEM.png. "
                    "Each image is written to a temporary name and renamed, so OUT never holds a partial file. "
                    "Pairs that cannot be fused or written are listed with the reason at the end (exit status 1); "
                    "a full disk, a read-only filesystem or a permission error stops the run at the first such "
                    "write. No pair to fuse at all, or an OUT that cannot be written, is an error (exit status 2). "
                    "Ctrl-C / SIGTERM stop it (exit status 130 / 143); the images already written are complete. "
                    "--masks DIR also writes DIR/STEM.png, the class ids (mono8, pixel = class id) the segmentation "
                    "model gives the fused image, under the same rules; a pair counts as fused once both files are "
                    "written.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--ir", required=True, type=Path, help="folder of infrared images (8/16-bit gray)")
    p.add_argument("--vis", required=True, type=Path, help="folder of visible images (8-bit gray or colour)")
    p.add_argument("--out", required=True, type=Path, help="output folder for the fused PNGs")
    add_engine_arguments(p)
    p.add_argument("--masks", type=Path, metavar="DIR",
                   help="also write each pair's class-id mask (mono8 PNG named by the stem) into this folder")
    p.add_argument("--segmentation-weights", type=Path, metavar="PATH",
                   help="segmentation checkpoint for --masks; None: the bundled model")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse option combinations that cannot do what they say (exit status 2 with usage)."""
    if args.masks is None:
        if args.segmentation_weights is not None:
            parser.error("--segmentation-weights is used only with --masks DIR")
    elif args.masks.resolve() == args.out.resolve():
        parser.error("--masks must be another folder than --out: masks and fused images are both named STEM.png")


def segmenter(path: Path | None) -> nn.Module:
    """The segmentation model for --masks: PATH, or the bundled one (an error when it is not installed)."""
    model, _, note = load_segmenter(path)
    if model is None:
        raise ValueError(f"--masks needs a segmentation model and none is bundled at {DEFAULT_SEGMENTATION_WEIGHTS}; "
                         "give --segmentation-weights PATH")
    logging.info(note)
    return model


@interrupts.command(PROG)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    folders = [args.out] if args.masks is None else [args.out, args.masks]
    try:
        for folder in folders:
            check_output_folder(folder)
        listing = match_pairs(args.ir, args.vis)
        if not listing.pairs:
            unmatched = f" ({len(listing.skipped)} unmatched, e.g. {listing.skipped[0][0]})" if listing.skipped else ""
            raise ValueError(f"no infrared/visible pairs with the same file stem in {args.ir} and {args.vis}"
                             f"{unmatched}")
        for folder in folders:
            claim_output_folder(PROG, folder)
        masker = segmenter(args.segmentation_weights) if args.masks is not None else None
        engine = engine_from_args(args)
        engine.set_segmenter(masker)
    except (ValueError, FileNotFoundError) as exc:  # CheckpointError and OutputError are ValueErrors
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    failed: list[tuple[str, str]] = []
    fused = 0
    not_tried = 0
    stopped_in = args.out
    try:
        for index, pair in enumerate(tqdm(listing.pairs, desc="fusing", unit="pair", disable=args.no_progress)):
            try:
                ir = read_image(pair.ir, color=False)
                vis = read_visible(pair.visible)
                out = engine.fuse(ir, vis, visible_order="bgr", output_order="bgr", segment=args.masks is not None)
            except ValueError as exc:  # CheckpointError is a ValueError
                failed.append((pair.stem, str(exc)))
                continue
            try:
                write_image_atomic(args.out / f"{pair.stem}.png", out.image if vis.ndim == 3 else out.image[:, :, 0])
                if args.masks is not None:
                    write_image_atomic(args.masks / f"{pair.stem}.png", out.mask)
            except OSError as exc:
                failed.append((pair.stem, os_error_message(exc)))
                if fails_every_write(exc):
                    not_tried = len(listing.pairs) - index - 1
                    stopped_in = Path(exc.filename).parent if exc.filename else args.out
                    break
                continue
            fused += 1
    except KeyboardInterrupt:
        print(f"{PROG}: fused {fused} of {len(listing.pairs)} pair(s) into {args.out} before the interruption",
              file=sys.stderr)
        raise
    for stem, reason in listing.skipped:
        print(f"skipped {stem}: {reason}", file=sys.stderr)
    for stem, reason in failed:
        print(f"failed {stem}: {reason}", file=sys.stderr)
    if not_tried:
        print(f"{PROG}: stopped: {failed[-1][1]}; every further write into {stopped_in} would fail the same way, "
              f"so {not_tried} pair(s) were not tried", file=sys.stderr)
    masks = f", masks into {args.masks}" if args.masks is not None else ""
    print(f"fused {fused} pair(s) into {args.out}{masks}; {len(listing.skipped)} unmatched, {len(failed)} failed"
          + (f", {not_tried} not tried" if not_tried else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
