"""seafusion-fuse: fuse every infrared/visible pair of two folders (matched by file stem) into PNGs."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from seafusion_ros.cli.engine_options import add_engine_arguments, engine_from_args
from seafusion_ros.imaging.image_files import match_pairs, read_image, read_visible, write_image_atomic


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="seafusion-fuse",
        description="Fuse every infrared/visible pair of two folders, matched by file stem, into OUT/STEM.png. "
                    "Each image is written to a temporary name and renamed, so OUT never holds a partial file. "
                    "Pairs that cannot be fused are listed with the reason at the end (exit status 1); no pair "
                    "to fuse at all is an error (exit status 2).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--ir", required=True, type=Path, help="folder of infrared images (8/16-bit gray)")
    p.add_argument("--vis", required=True, type=Path, help="folder of visible images (8-bit gray or colour)")
    p.add_argument("--out", required=True, type=Path, help="output folder for the fused PNGs")
    add_engine_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.out.exists() and not args.out.is_dir():
            raise ValueError(f"--out {args.out} exists and is not a folder")
        listing = match_pairs(args.ir, args.vis)
        if not listing.pairs:
            unmatched = f" ({len(listing.skipped)} unmatched, e.g. {listing.skipped[0][0]})" if listing.skipped else ""
            raise ValueError(f"no infrared/visible pairs with the same file stem in {args.ir} and {args.vis}"
                             f"{unmatched}")
        engine = engine_from_args(args)
    except (ValueError, FileNotFoundError) as exc:  # CheckpointError is a ValueError
        print(f"seafusion-fuse: error: {exc}", file=sys.stderr)
        return 2
    failed: list[tuple[str, str]] = []
    fused = 0
    for pair in tqdm(listing.pairs, desc="fusing", unit="pair", disable=args.no_progress):
        try:
            ir = read_image(pair.ir, color=False)
            vis = read_visible(pair.visible)
            out = engine.fuse(ir, vis, visible_order="bgr", output_order="bgr")
        except ValueError as exc:  # CheckpointError is a ValueError
            failed.append((pair.stem, str(exc)))
            continue
        write_image_atomic(args.out / f"{pair.stem}.png", out.image if vis.ndim == 3 else out.image[:, :, 0])
        fused += 1
    for stem, reason in listing.skipped:
        print(f"skipped {stem}: {reason}", file=sys.stderr)
    for stem, reason in failed:
        print(f"failed {stem}: {reason}", file=sys.stderr)
    print(f"fused {fused} pair(s) into {args.out}; {len(listing.skipped)} unmatched, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
