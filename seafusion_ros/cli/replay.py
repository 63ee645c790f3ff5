"""seafusion-replay: evaluate the node's processing offline on a rosbag2 recording.

Reads raw Image or compressed (JPEG/PNG CompressedImage) camera topics. Pairs thermal and RGB with the
node's synchroniser rules, registers thermal to the RGB camera with the
node's registration choices, fuses and segments every pair, writes the
outputs to OUT/output_bag (stamped with the inputs' headers) and a report (OUT/report.md,
OUT/report.json, OUT/contact_sheet.png). A damaged bag or a missing topic gives a message and a
partial report, not a traceback (exit status 1). OUT must be new or empty; --overwrite replaces the
results of an earlier run there, only once the new ones are complete (a run that fails or is
interrupted leaves OUT as it was; other files in OUT are kept).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from seafusion_ros.bags.replay import ReplayOptions, replay_bag
from seafusion_ros.bags.replay_report import REPORT_FILES, write_report
from seafusion_ros.bags.staging import STAGING_NAME, StagedResults
from seafusion_ros.cli import interrupts
from seafusion_ros.cli.engine_options import add_engine_arguments, engine_from_args
from seafusion_ros.cli.number_arguments import positive_float, positive_int
from seafusion_ros.cli.output_checks import check_output_folder, os_error_message
from seafusion_ros.cli.size_argument import size_type
from seafusion_ros.imaging.registration import IDENTITY_HOMOGRAPHY, REGISTRATION_MODES, Registration
from seafusion_ros.imaging.time_sync import SYNC_MODES, make_sync
from seafusion_ros.weights import classes_and_palette, load_segmenter

OUTPUT_BAG = "output_bag"
PROG = "seafusion-replay"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("bag", type=Path, help="input rosbag2 folder (sqlite3 or MCAP)")
    p.add_argument("--out", required=True, type=Path, help="report folder (created; must be empty unless --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace the results of an earlier run in --out ({', '.join((OUTPUT_BAG, *REPORT_FILES))}) "
                        "once the new ones are complete")
    p.add_argument("--thermal-topic", default="thermal/image_raw",
                   help="exact name, or a unique suffix; TOPIC/compressed (CompressedImage) is read when the bag "
                        "has no TOPIC")
    p.add_argument("--rgb-topic", default="rgb/image_raw",
                   help="exact name, or a unique suffix; TOPIC/compressed is read when the bag has no TOPIC")
    p.add_argument("--sync", choices=SYNC_MODES, default="approximate")
    p.add_argument("--queue-size", type=positive_int, default=10)
    p.add_argument("--slop", type=positive_float, default=0.05, help="seconds (> 0); pairs must be strictly closer")
    p.add_argument("--registration-mode", choices=REGISTRATION_MODES, default="none",
                   help="thermal -> RGB warp, as the node's registration.mode: none (sizes must match; other pairs "
                        "are skipped), scale (stretch thermal to the RGB size), homography (--homography)")
    p.add_argument("--homography", type=float, nargs=9, default=list(IDENTITY_HOMOGRAPHY), metavar="H",
                   help="3x3 thermal -> RGB pixel homography, row-major (with --registration-mode homography)")
    p.add_argument("--output-size", type=size_type(1), default=None, metavar="HxW",
                   help="fused output size as HEIGHTxWIDTH, e.g. 240x320 (None: the RGB image's size)")
    add_engine_arguments(p)
    p.add_argument("--segmentation-weights", default="", help="segmentation checkpoint ('' = bundled default)")
    p.add_argument("--no-segmentation", action="store_true", help="fuse only")
    p.add_argument("--no-metrics", action="store_true", help="skip the fusion metrics (faster)")
    p.add_argument("--no-output-bag", action="store_true", help="write the report only")
    p.add_argument("--samples", type=positive_int, default=6, help="frames on the contact sheet")
    p.add_argument("--no-progress", action="store_true")
    return p


def _out_problem(out: Path, overwrite: bool) -> str | None:
    """Why --out cannot take the results, or None."""
    try:
        check_output_folder(out)
    except ValueError as exc:
        return str(exc)
    if out.is_dir() and not overwrite and any(p.name != STAGING_NAME for p in out.iterdir()):
        return f"--out folder {out} is not empty; pass --overwrite to replace the results in it, or another --out"
    return None


@interrupts.command(PROG)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    problem = _out_problem(args.out, args.overwrite)
    if problem is not None:  # before the models load
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        return 2
    try:
        # the synchroniser itself checks queue size and slop, before the models load
        make_sync(args.sync, 2, args.queue_size, int(round(args.slop * 1e9)), print)
        registration = Registration(args.registration_mode, args.homography, args.output_size)
        engine = engine_from_args(args)
        palette, classes = None, []
        if not args.no_segmentation:
            model, card, note = load_segmenter(args.segmentation_weights)
            print(note)
            if model is not None:
                engine.set_segmenter(model)
                classes, palette = classes_and_palette(card, model)
    except (ValueError, FileNotFoundError) as exc:  # CheckpointError is a ValueError
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    options = ReplayOptions(args.thermal_topic, args.rgb_topic, args.sync, args.queue_size, args.slop,
                            segment=not args.no_segmentation, metrics=not args.no_metrics, sample_frames=args.samples,
                            registration=registration)
    try:
        staged = StagedResults(args.out, (OUTPUT_BAG, *REPORT_FILES))
    except OSError as exc:  # e.g. no write permission
        print(f"{PROG}: error: cannot write into --out {args.out}: {exc}", file=sys.stderr)
        return 2
    interrupts.on_forced_exit(staged.discard)
    bar = tqdm(desc="replaying", unit="msg", disable=args.no_progress)

    def progress(seen: int, total: int) -> None:
        bar.total = total
        bar.update(seen - bar.n)

    try:
        result = replay_bag(args.bag, None if args.no_output_bag else staged.path / OUTPUT_BAG, engine, options,
                            palette, classes, progress)
        if result.output_bag is not None:
            result.output_bag = str(args.out / OUTPUT_BAG)  # the report names where it will be, not the staging
        summary = write_report(result, staged.path, args.samples)
    except OSError as exc:  # a full disk: the results of an earlier run stay as they were
        staged.discard()
        print(f"{PROG}: error: writing the results failed ({os_error_message(exc)}); {args.out} is left as it was",
              file=sys.stderr)
        return 1
    except BaseException:  # Ctrl-C or a failure: the results of an earlier run stay as they were
        staged.discard()
        raise
    finally:
        bar.close()
    try:
        staged.commit()
    except OSError as exc:
        print(f"{PROG}: error: cannot move the results into {args.out}: {exc} (it keeps the "
              f"earlier results; the new ones are in {staged.path})", file=sys.stderr)
        return 1
    for problem in result.problems:
        print(f"{PROG}: {problem}", file=sys.stderr)
    print(f"{summary['pairs']} pairs; unmatched thermal {summary['unmatched']['thermal']}, "
          f"RGB {summary['unmatched']['rgb']}; report {args.out / 'report.md'}")
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
