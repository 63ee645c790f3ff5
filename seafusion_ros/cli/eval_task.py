"""seafusion-eval task: task-driven evaluation of fusion by semantic segmentation (reference §5).

    seafusion-eval task --data ../shared/data/msrs_dev --fused released=FUSED_DIR --out runs/task

trains the same segmentation network on infrared-only (DATA/ir), visible-only (DATA/vi) and each
``--fused NAME=DIR`` folder over the fixed training split, then scores each on the validation split:
mIoU on pseudo-masks derived from DATA/detection_yolo (``--labels``: the warm infrared part of each box, or
the box itself as a control no input shaped) and box AP@0.5 per class against those boxes,
with each input's object contrast (how far the labelled pixels stand out from a ring around the box),
and that of the content loss's intensity target max(DATA/ir, DATA/vi luma) for comparison.
Writes OUT/task_driven.{md,json,png}; each input's run lives in OUT/NAME and is resumed if interrupted.
With ``--seeds 0-4`` every seed gets its own such folder OUT/seed_N, and OUT/task_driven.* give the mean,
standard deviation and every seed's value (one run on 49 frames is noisy: compare inputs over seeds).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch

from seafusion_ros.cli import interrupts
from seafusion_ros.cli.number_arguments import non_negative_int, positive_float, positive_int
from seafusion_ros.cli.output_checks import check_output_folder, claim_output_folder, os_error_message
from seafusion_ros.cli.size_argument import parse_size
from seafusion_ros.data.msrs_split import VALIDATION_FRAME_RANGES, split_stems
from seafusion_ros.data.pseudo_masks import LABEL_SCHEMES, write_pseudo_masks
from seafusion_ros.evaluation.seed_summary import summarise_seeds, write_seed_report
from seafusion_ros.evaluation.segmentation_scoring import BoxScoring
from seafusion_ros.evaluation.task_driven import run_task_driven
from seafusion_ros.training.segmentation_trainer import SegmentationTrainConfig

PROG = "seafusion-eval task"


def _named_dir(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep or not name.strip() or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR, got {text!r}")
    return name.strip(), Path(folder)


def _seed_list(text: str) -> list[int]:
    """'0,1,2', '0-4' or a mix ('0-2,7') -> distinct seeds in the order given."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            first, sep, last = part.strip().partition("-")
            seeds += list(range(int(first), int(last) + 1)) if sep else [int(first)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 0,1,2 or 0-4, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct non-negative seeds, got {text!r}")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Train the segmentation network on infrared-only, visible-only and fused inputs and "
                    "compare them on the validation split (mIoU on box pseudo-masks, box AP@0.5 per class, and "
                    "the labelled objects' contrast in each input and in the content loss's target "
                    "max(infrared, visible Y)).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="folder with ir/, vi/ and detection_yolo/")
    p.add_argument("--fused", action="append", type=_named_dir, default=[], metavar="NAME=DIR",
                   help="fused images of one method (same stems); repeat to compare methods")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--no-single", action="store_true", help="skip the infrared-only and visible-only runs")
    p.add_argument("--epochs", type=positive_int, default=150)
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--lr", type=positive_float, default=0.01)
    p.add_argument("--size", type=parse_size, default=(120, 160), help="working size HxW")
    p.add_argument("--labels", choices=LABEL_SCHEMES, default="warm",
                   help="pseudo-mask scheme: warm = a box's warm infrared pixels (the labels the bundled segmenter "
                        "learnt; drawn from the infrared image, so they favour it), box = each box's inner 80 %% "
                        "(drawn from no input: the control)")
    p.add_argument("--close-px", type=non_negative_int, default=BoxScoring.close_px, help="closing before components")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=non_negative_int, default=0, help="one training seed (runs in OUT/NAME)")
    seeds.add_argument("--seeds", type=_seed_list, metavar="LIST",
                       help="several seeds, e.g. 0-4 or 0,2,5: runs in OUT/seed_N, OUT/task_driven.* summarise them")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=non_negative_int, default=0, help="CPU threads for torch (0 = torch default)")
    p.add_argument("--no-progress", action="store_true")
    return p


@interrupts.command(PROG)
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "task":
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    inputs: dict[str, Path] = {}
    if not args.no_single:
        inputs = {"infrared": args.data / "ir", "visible": args.data / "vi"}
    for name, folder in args.fused:
        if name in inputs:
            print(f"{PROG}: error: input name {name!r} used twice", file=sys.stderr)
            return 2
        inputs[name] = folder
    if not inputs:
        print(f"{PROG}: error: nothing to evaluate (give --fused or drop --no-single)", file=sys.stderr)
        return 2
    try:
        check_output_folder(args.out)
        for folder in [args.data / "ir", args.data / "detection_yolo", *inputs.values()]:
            if not folder.is_dir():
                raise FileNotFoundError(f"not a directory: {folder}")
        stems = sorted(p.stem for p in (args.data / "ir").iterdir() if p.suffix.lower() == ".png")
        train, val = split_stems(stems)
        for name, folder in inputs.items():
            have = {p.stem for p in folder.iterdir()}
            missing = [s for s in stems if s not in have]
            if missing:
                raise ValueError(f"input {name} ({folder}) lacks {len(missing)} frames, e.g. {missing[:3]}")
        claim_output_folder(PROG, args.out, recursive=True)
        mask_dir = args.out / ("pseudo_masks" if args.labels == "warm" else "box_masks")
        write_pseudo_masks(args.data / "ir", args.data / "detection_yolo", mask_dir, stems, scheme=args.labels)
    except (ValueError, FileNotFoundError) as exc:  # OutputError is a ValueError
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{PROG}: error: {os_error_message(exc)}", file=sys.stderr)
        return 1
    card = {"command": "seafusion-eval task " + shlex.join(argv), "data": str(args.data),
            "split": {"validation_frames": [list(r) for r in VALIDATION_FRAME_RANGES],
                      "train": len(train), "validation": len(val)},
            "labels": f"{args.labels} pseudo-masks from YOLO boxes (seafusion_ros.data.pseudo_masks)",
            "label_scheme": args.labels}
    scoring = BoxScoring(close_px=args.close_px)
    pair_dirs = (args.data / "ir", args.data / "vi") if (args.data / "vi").is_dir() else None

    def run(seed: int, out_dir: Path) -> dict:
        config = SegmentationTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                         seed=seed, device=args.device, progress=not args.no_progress)
        return run_task_driven(inputs, mask_dir, args.data / "detection_yolo", train, val, out_dir, config,
                               args.size, scoring, card, pair_dirs)

    try:
        if args.seeds is None:
            run(args.seed, args.out)
        else:
            write_seed_report(summarise_seeds({s: run(s, args.out / f"seed_{s}") for s in args.seeds}), args.out)
    except (ValueError, FileNotFoundError) as exc:  # a run with other settings, an unreadable image
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk: each input's finished epochs stay in OUT and are resumed
        print(f"{PROG}: error: {os_error_message(exc)}; the finished epochs are kept and the same command resumes",
              file=sys.stderr)
        return 1
    print((args.out / "task_driven.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
