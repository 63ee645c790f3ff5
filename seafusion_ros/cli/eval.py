"""seafusion-eval: fusion quality metrics of one or more methods over IR / visible pairs.

Fusion mode (the default)::

    seafusion-eval --ir IR_DIR --vis VIS_DIR --method released=DIR1 --method ours=DIR2 --out OUT
    seafusion-eval --data ROOT --split val --weights ours=model.pt --weights released=official.pth --out OUT

Every ``--weights`` checkpoint is fused with the same engine settings, so their rows compare like with
like; the report states those settings and the data set split.
Downstream-task evaluation lives behind ``seafusion-eval task ...`` and the scoring of class-id masks against
pixel labels behind ``seafusion-eval masks ...`` (each dispatched to its own module).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from seafusion_ros.cli import interrupts
from seafusion_ros.cli.engine_options import add_engine_arguments, engine_from_args
from seafusion_ros.cli.number_arguments import non_negative_int, positive_int
from seafusion_ros.cli.output_checks import (
    check_output_folder,
    claim_output_folder,
    fails_every_write,
    os_error_message,
)
from seafusion_ros.data.dataset_splits import (
    LLVIP,
    MFNET_LABELLED,
    MSRS,
    ROADSCENE,
    SUBSETS,
    dataset_pairs,
    split_pairs,
)
from seafusion_ros.evaluation.fusion_metrics import METRIC_NAMES, to_gray
from seafusion_ros.evaluation.fusion_report import DataSelection, OutputMode, write_report
from seafusion_ros.evaluation.pairs import plan_pairs
from seafusion_ros.evaluation.runner import keep_large_buffers_in_heap, score_plan
from seafusion_ros.imaging.image_files import ImagePair, match_pairs, write_image_atomic
from seafusion_ros.inference.engine import FusionEngine

PROG = "seafusion-eval"

# subcommands with their own module: downstream tasks, and scoring masks made elsewhere
SUBCOMMANDS = {"task": "seafusion_ros.cli.eval_task", "masks": "seafusion_ros.cli.eval_masks"}


def _method_spec(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep or not name.strip() or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR, got {text!r}")
    return name.strip(), Path(folder)


def _weights_spec(text: str) -> tuple[str | None, Path]:
    """``NAME=PATH`` or ``PATH``; a NAME is a folder name under OUT/fused, so text before '=' that holds a
    '/' belongs to the path (``runs/lr=0.1/model.pt``)."""
    name, sep, path = text.partition("=")
    if not sep or "/" in name:
        return None, Path(text)
    name = name.strip()
    if not name or name in (".", "..") or not path:
        raise argparse.ArgumentTypeError(f"expected [NAME=]PATH with a NAME usable as a folder name, got {text!r}")
    return name, Path(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Score fused images with the field's fusion metrics (" + ", ".join(METRIC_NAMES)
        + ", Tang et al. definitions) and write a per-image CSV, summary.json, summary.md, "
        "cumulative-distribution plots (cdf.png) and an example grid (examples.png). Several methods "
        "are compared side by side in one table and one set of plots. Files are matched by stem "
        "(00004N.png <-> 00004N.jpg); pairs missing a counterpart are listed, not fatal; an image that "
        "cannot be read or fused is listed too and makes the exit status 1. A report already in OUT is "
        "replaced, plots included. Every --weights checkpoint is fused with the same engine settings "
        "(--normalize, --precision, --backend, ...), which the report states, so those rows compare like "
        "with like; --method folders were made elsewhere, in a mode the tool cannot know. "
        "'seafusion-eval task ...' evaluates downstream tasks instead, and 'seafusion-eval masks ...' scores "
        "class-id masks against pixel labels.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    pairs = parser.add_argument_group("pairs: --ir and --vis, or --data")
    pairs.add_argument("--ir", type=Path, help="folder of infrared images")
    pairs.add_argument("--vis", type=Path, help="folder of visible images")
    pairs.add_argument("--data", type=Path, metavar="ROOT",
                       help="a data set folder (ir/ + vi/, or the labelled layout rgb/ + thermal/ + labels/) whose "
                            "--split is scored; the report names the data set family, the split and its rule")
    rules = "; ".join(f"{rule.family}: {rule.description}" for rule in (MSRS, ROADSCENE, LLVIP, MFNET_LABELLED))
    pairs.add_argument("--split", choices=SUBSETS, default=argparse.SUPPRESS,
                       help=f"pairs of --data, by the data set's fixed rule ({rules}; other names: no validation "
                            "pairs) (default: all)")
    parser.add_argument("--out", required=True, type=Path, help="output folder for the report")
    parser.add_argument("--method", action="append", type=_method_spec, default=[], metavar="NAME=DIR",
                        help="a method's fused-image folder; repeat to compare methods")
    fuse = parser.add_argument_group("fuse on the fly (may be combined with --method)")
    fuse.add_argument("--weights", action="append", type=_weights_spec, default=[], metavar="[NAME=]PATH",
                      help="fusion checkpoint (ours or the authors' released .pth): fuse every pair with the "
                           "inference engine into OUT/fused/NAME/ and score it; repeat to compare checkpoints, "
                           "all fused with the same settings below. NAME defaults to the file stem")
    fuse.add_argument("--name", help="method name of a single --weights PATH, the same as --weights NAME=PATH "
                      "(default: the file stem)")
    add_engine_arguments(fuse, weights=False)
    parser.add_argument("--jobs", type=positive_int, default=min(2, os.cpu_count() or 1),
                        help="parallel worker processes for scoring")
    parser.add_argument("--examples", type=non_negative_int, default=4, help="example pairs in examples.png (0: none)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Path]:
    """Validate the pair source and the method names (exit status 2 with usage on a mistake), before any
    model loads; set ``args.split`` and return the --weights checkpoints by method name."""
    split = getattr(args, "split", None)
    if args.data is not None:
        if args.ir is not None or args.vis is not None:
            parser.error("--data ROOT replaces --ir/--vis: give one or the other")
        args.split = split or "all"
    else:
        if args.ir is None or args.vis is None:
            parser.error("give --ir DIR and --vis DIR, or --data ROOT")
        if split is not None:
            parser.error("--split selects pairs of --data ROOT; with --ir/--vis every matched pair is scored")
        args.split = None
    if not args.method and not args.weights:
        parser.error("give at least one --method NAME=DIR or --weights [NAME=]PATH")
    if args.name is not None:
        if len(args.weights) != 1:
            parser.error("--name names a single --weights; name several as --weights NAME=PATH")
        if args.weights[0][0] is not None:
            parser.error("--name and --weights NAME=PATH both name the checkpoint; give one of them")
    names = [name for name, _ in args.method]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        parser.error(f"method name {twice[0]!r} given twice in --method")
    weights: dict[str, Path] = {}
    for name, path in args.weights:
        name = name or args.name or path.stem
        if name in names or name in weights:
            parser.error(f"method name {name!r} given twice; name each --weights as NAME=PATH (a method's name "
                         "is its row in the report and, for --weights, its folder OUT/fused/NAME)")
        weights[name] = path
    return weights


def _read_ir_for_fusion(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"cannot decode image file {path}")
    if image.ndim == 3:
        if image.dtype != np.uint8:
            raise ValueError(f"{path}: colour infrared images must be 8-bit, got {image.dtype}")
        image = to_gray(np.ascontiguousarray(image[:, :, 2::-1]), str(path))
    return image


def select_pairs(args: argparse.Namespace) -> tuple[list[ImagePair], list[tuple[str, str]], set[str],
                                                   DataSelection | None]:
    """(pairs to score, unmatched stems with the reason, stems of --data left out by --split, the split)."""
    if args.data is None:
        listing = match_pairs(args.ir, args.vis)
        return listing.pairs, listing.skipped, set(), None
    pairs, rule = split_pairs(args.data, args.split)
    if not pairs:
        raise ValueError(f"{args.data}: no {args.split} pairs ({rule.family}: {rule.description})")
    chosen = {p.stem for p in pairs}
    others = set() if args.split == "all" else {p.stem for p in dataset_pairs(args.data)} - chosen
    return pairs, [], others, DataSelection(str(args.data), rule.family, args.split, rule.description)


def load_engines(args: argparse.Namespace, weights: dict[str, Path]) -> dict[str, FusionEngine]:
    """One engine per checkpoint, all from the same engine options; every checkpoint loads before the first
    pair is fused, so a bad file fails in seconds."""
    return {name: engine_from_args(argparse.Namespace(**{**vars(args), "weights": path}))
            for name, path in weights.items()}


def output_mode(args: argparse.Namespace, engines: dict[str, FusionEngine]) -> OutputMode:
    """The settings the engines resolved (``auto`` precision and backend included); the same for all."""
    engine = next(iter(engines.values()))
    if args.gain == "percentile":
        gain = f"percentile {args.gain_percentiles[0]:g}-{args.gain_percentiles[1]:g}"
    elif args.gain == "fixed":
        gain = f"fixed {args.gain_range[0]:g}-{args.gain_range[1]:g}"
    else:
        gain = args.gain
    return OutputMode({name: str(e.weights_path) for name, e in engines.items()}, engine.normalize,
                      engine.precision, engine.backend, str(engine.device), engine.internal_scale, gain)


def fuse_pairs(engine: FusionEngine, pairs: list[ImagePair], folder: Path, name: str,
               quiet: bool) -> list[tuple[str, str]]:
    """Fuse every pair into FOLDER/STEM.png; return the pairs that failed, with the reason.

    A write error that every further write would meet too (a full disk) is raised: no report could follow.
    """
    import cv2

    claim_output_folder(PROG, folder)
    folder.mkdir(parents=True, exist_ok=True)
    failures = []
    for pair in tqdm(pairs, desc=f"fusing ({name})", unit="pair", disable=quiet):
        try:
            visible = cv2.imread(str(pair.visible), cv2.IMREAD_COLOR)
            if visible is None:
                raise ValueError(f"cannot decode image file {pair.visible}")
            output = engine.fuse(_read_ir_for_fusion(pair.ir), visible, visible_order="bgr",
                                 output_order="bgr")
        except ValueError as err:
            failures.append((pair.stem, f"fusion failed ({name}): {err}"))
            continue
        try:
            write_image_atomic(folder / f"{pair.stem}.png", output.image)
        except OSError as err:
            if fails_every_write(err):
                raise
            failures.append((pair.stem, os_error_message(err)))
    return failures


def run_fusion_evaluation(args: argparse.Namespace, weights: dict[str, Path]) -> int:
    pairs, unmatched, others, selection = select_pairs(args)
    methods: dict[str, Path] = dict(args.method)
    engines = load_engines(args, weights)
    mode = output_mode(args, engines) if engines else None
    failures: list[tuple[str, str]] = []
    for name in list(engines):
        methods[name] = args.out / "fused" / name
        failures += fuse_pairs(engines.pop(name), pairs, methods[name], name, args.quiet)
    plan = plan_pairs(pairs, methods, unmatched, others)
    failed = {stem for stem, _ in failures}
    plan.items = [item for item in plan.items if item.stem not in failed]  # not an earlier run's image
    plan.skipped = failures + [(stem, reason) for stem, reason in plan.skipped if stem not in failed]
    start = time.perf_counter()
    results = score_plan(plan, jobs=args.jobs, progress=not args.quiet)
    written = write_report(args.out, plan, results, examples=args.examples, selection=selection, mode=mode)
    scored = sum(r.error is None for r in results)
    unscored = len(results) - scored
    print(written["markdown"].read_text(encoding="utf-8"))
    print(f"scored {scored} pair(s) x {len(plan.methods)} method(s) in {time.perf_counter() - start:.1f} s; "
          f"skipped {len({stem for stem, _ in plan.skipped}) + unscored}")
    for kind, path in written.items():
        print(f"{kind}: {path}")
    if scored == 0:
        print("error: no pair could be scored (see summary.json 'skipped')", file=sys.stderr)
        return 1
    if failed or unscored:
        print(f"error: {len(failed) + unscored} pair(s) could not be fused or read (see summary.json 'skipped')",
              file=sys.stderr)
        return 1
    return 0


@interrupts.command(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        module_name = SUBCOMMANDS[argv[0]]
        try:
            subcommand = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            print(f"seafusion-eval {argv[0]}: not available in this version ({module_name} missing)",
                  file=sys.stderr)
            return 2
        return subcommand.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    weights = check_arguments(parser, args)
    keep_large_buffers_in_heap()
    try:
        check_output_folder(args.out)
        claim_output_folder(PROG, args.out)
        return run_fusion_evaluation(args, weights)
    except (FileNotFoundError, ValueError) as err:  # OutputError and CheckpointError are ValueErrors
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # writing the fused images or the report
        print(f"{PROG}: error: {os_error_message(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
