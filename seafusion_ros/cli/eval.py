"""seafusion-eval: fusion quality metrics of one or more methods over IR / visible folders.

Fusion mode (the default)::

    seafusion-eval --ir IR_DIR --vis VIS_DIR --method released=DIR1 --method ours=DIR2 --out OUT
    seafusion-eval --ir IR_DIR --vis VIS_DIR --weights model.pt --out OUT

Downstream-task evaluation lives behind ``seafusion-eval task ...`` (dispatched to its own module).
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
from seafusion_ros.evaluation.fusion_metrics import METRIC_NAMES, to_gray
from seafusion_ros.evaluation.fusion_report import write_report
from seafusion_ros.evaluation.pairs import plan_evaluation
from seafusion_ros.evaluation.runner import keep_large_buffers_in_heap, score_plan
from seafusion_ros.imaging.image_files import match_pairs, write_image_atomic

PROG = "seafusion-eval"

TASK_COMMAND = "task"
TASK_MODULE = "seafusion_ros.cli.eval_task"


def _method_spec(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep or not name.strip() or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR, got {text!r}")
    return name.strip(), Path(folder)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Score fused images with the field's fusion metrics (" + ", ".join(METRIC_NAMES)
        + ", Tang et al. definitions) and write a per-image CSV, summary.json, summary.md, "
        "cumulative-distribution plots (cdf.png) and an example grid (examples.png). Several methods "
        "are compared side by side in one table and one set of plots. Files are matched by stem "
        "(00004N.png <-> 00004N.jpg); pairs missing a counterpart are listed, not fatal; an image that "
        "cannot be read or fused is listed too and makes the exit status 1. A report already in OUT is "
        "replaced, plots included. "
        f"'seafusion-eval {TASK_COMMAND} ...' evaluates downstream tasks instead.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--ir", required=True, type=Path, help="folder of infrared images")
    parser.add_argument("--vis", required=True, type=Path, help="folder of visible images")
    parser.add_argument("--out", required=True, type=Path, help="output folder for the report")
    parser.add_argument("--method", action="append", type=_method_spec, default=[], metavar="NAME=DIR",
                        help="a method's fused-image folder; repeat to compare methods")
    fuse = parser.add_argument_group("fuse on the fly (may be combined with --method)")
    fuse.add_argument("--weights", type=Path, help="fusion checkpoint: fuse every pair with the inference "
                      "engine into OUT/fused/NAME/ and score it")
    fuse.add_argument("--name", help="method name for --weights (default: the weights file stem)")
    add_engine_arguments(fuse, weights=False)
    parser.add_argument("--jobs", type=positive_int, default=min(2, os.cpu_count() or 1),
                        help="parallel worker processes for scoring")
    parser.add_argument("--examples", type=non_negative_int, default=4, help="example pairs in examples.png (0: none)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


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


def fuse_folder(args: argparse.Namespace, name: str) -> tuple[Path, list[tuple[str, str]]]:
    """Fuse every IR / visible pair with ``args.weights`` into OUT/fused/NAME; return it and failures.

    A write error that every further write would meet too (a full disk) is raised: no report could follow.
    """
    import cv2

    folder = args.out / "fused" / name
    claim_output_folder(PROG, folder)
    engine = engine_from_args(args)
    failures = []
    pairs = match_pairs(args.ir, args.vis).pairs
    for pair in tqdm(pairs, desc=f"fusing ({name})", unit="pair", disable=args.quiet):
        try:
            visible = cv2.imread(str(pair.visible), cv2.IMREAD_COLOR)
            if visible is None:
                raise ValueError(f"cannot decode image file {pair.visible}")
            output = engine.fuse(_read_ir_for_fusion(pair.ir), visible, visible_order="bgr",
                                 output_order="bgr")
        except ValueError as err:
            failures.append((pair.stem, f"fusion failed: {err}"))
            continue
        try:
            write_image_atomic(folder / f"{pair.stem}.png", output.image)
        except OSError as err:
            if fails_every_write(err):
                raise
            failures.append((pair.stem, os_error_message(err)))
    return folder, failures


def run_fusion_evaluation(args: argparse.Namespace) -> int:
    methods: dict[str, Path] = {}
    for name, folder in args.method:
        if name in methods:
            raise ValueError(f"method name {name!r} given twice")
        methods[name] = folder
    failures: list[tuple[str, str]] = []
    if args.weights is not None:
        name = args.name or args.weights.stem
        if name in methods:
            raise ValueError(f"method name {name!r} of --weights clashes with a --method; use --name")
        methods[name], failures = fuse_folder(args, name)
        methods[name].mkdir(parents=True, exist_ok=True)
    plan = plan_evaluation(args.ir, args.vis, methods)
    failed = {stem for stem, _ in failures}
    plan.skipped = failures + [(stem, reason) for stem, reason in plan.skipped if stem not in failed]
    start = time.perf_counter()
    results = score_plan(plan, jobs=args.jobs, progress=not args.quiet)
    written = write_report(args.out, plan, results, examples=args.examples)
    scored = sum(r.error is None for r in results)
    print(written["markdown"].read_text(encoding="utf-8"))
    print(f"scored {scored} pair(s) x {len(plan.methods)} method(s) in {time.perf_counter() - start:.1f} s; "
          f"skipped {len(plan.skipped) + len(results) - scored}")
    for kind, path in written.items():
        print(f"{kind}: {path}")
    if scored == 0:
        print("error: no pair could be scored (see summary.json 'skipped')", file=sys.stderr)
        return 1
    unreadable = len(failures) + len(results) - scored
    if unreadable:
        print(f"error: {unreadable} pair(s) could not be fused or read (see summary.json 'skipped')",
              file=sys.stderr)
        return 1
    return 0


@interrupts.command(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == TASK_COMMAND:
        try:
            task = importlib.import_module(TASK_MODULE)
        except ModuleNotFoundError as err:
            if err.name != TASK_MODULE:
                raise
            print(f"seafusion-eval {TASK_COMMAND}: not available in this version ({TASK_MODULE} missing)",
                  file=sys.stderr)
            return 2
        return task.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.method and args.weights is None:
        parser.error("give at least one --method NAME=DIR or --weights PATH")
    keep_large_buffers_in_heap()
    try:
        check_output_folder(args.out)
        claim_output_folder(PROG, args.out)
        return run_fusion_evaluation(args)
    except (FileNotFoundError, ValueError) as err:  # OutputError and CheckpointError are ValueErrors
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # writing the fused images or the report
        print(f"{PROG}: error: {os_error_message(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
