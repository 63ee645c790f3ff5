"""seafusion-eval task: task-driven evaluation of fusion by semantic segmentation (reference §5).

    seafusion-eval task --data ../shared/data/msrs_dev --fused released=FUSED_DIR --out runs/task
    seafusion-eval task --labelled ../shared/data/mfnet_labelled --fused released=FUSED_DIR --out runs/task_mfnet

trains the same segmentation network on infrared-only, visible-only and each ``--fused NAME=DIR`` folder over
the data set's fixed training split, then scores each on its validation split.

Box mode (``--data``, DATA/ir, DATA/vi, DATA/detection_yolo): mIoU on pseudo-masks derived from the YOLO boxes
(``--labels``: the warm infrared part of each box, or the box itself as a control no input shaped) and box
AP@0.5 per class against those boxes, with each input's object contrast (how far the labelled pixels stand
out from a ring around the box), and that of the content loss's intensity target max(DATA/ir, DATA/vi luma)
for comparison. Writes OUT/task_driven.{md,json,png}. With ``--seeds 0-4`` every seed gets its own folder
OUT/seed_N with its own report, and OUT/task_driven.* give the mean, standard deviation and every seed's value
(one run on 49 frames is noisy: compare inputs over seeds).

Labelled mode (``--labelled``, DATA/thermal, DATA/rgb and DATA/labels with the 9 MSRS class ids): IoU per
class against the real pixel labels, an absent class marked, mIoU over the classes present in the
validation labels. One table and one chart for all seeds: OUT/summary.{md,json,png} (mean ± std with
``--seeds``).

Each input's run lives in OUT/NAME (OUT/seed_N/NAME with ``--seeds``) and is reused when finished, resumed
when interrupted.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from seafusion_ros.cli import interrupts
from seafusion_ros.cli.number_arguments import non_negative_int, positive_float, positive_int
from seafusion_ros.cli.output_checks import check_output_folder, claim_output_folder, os_error_message
from seafusion_ros.cli.size_argument import parse_size
from seafusion_ros.cli.train_segmentation import DEFAULT_BACKBONE_LR_SCALE, DEFAULT_SIZE, OPTIMIZER_HELP
from seafusion_ros.data.dataset_splits import MFNET_VALIDATION_SEQUENCES
from seafusion_ros.data.labels import MSRS_CLASSES
from seafusion_ros.data.msrs_split import VALIDATION_FRAME_RANGES, split_stems
from seafusion_ros.data.pseudo_masks import LABEL_SCHEMES, write_pseudo_masks
from seafusion_ros.data.segmentation_data import LabelledSource, labelled_source
from seafusion_ros.evaluation.seed_summary import (
    summarise_labelled,
    summarise_seeds,
    write_labelled_summary,
    write_seed_report,
)
from seafusion_ros.evaluation.segmentation_scoring import BoxScoring
from seafusion_ros.evaluation.task_driven import run_labelled, run_task_driven
from seafusion_ros.models.bisenet_efficientnet import ARCH as EFFICIENTNET_ARCH
from seafusion_ros.models.bisenet_efficientnet import PRETRAINED_PACKAGE
from seafusion_ros.models.segmentation import ARCH, ARCHS
from seafusion_ros.training.segmentation_trainer import OPTIMIZERS, SegmentationTrainConfig

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


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown, except None: those options depend on the mode or the arch and say so in their help."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


DEFAULT_ARCH = {"box": ARCH, "labelled": EFFICIENTNET_ARCH}
DEFAULT_LABELS = "warm"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Train the segmentation network on infrared-only, visible-only and fused inputs and "
                    "compare them on the validation split. Box mode (--data): mIoU on box pseudo-masks, box "
                    "AP@0.5 per class, and the labelled objects' contrast in each input and in the content "
                    "loss's target max(infrared, visible Y). Labelled mode (--labelled): IoU per class against "
                    "real pixel labels and mIoU over the classes present, in one table and one chart over all "
                    "seeds.",
        formatter_class=_HelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="box mode: folder with ir/, vi/ and detection_yolo/ (msrs_dev)")
    source.add_argument("--labelled", type=Path, metavar="DATA",
                        help="labelled mode: folder with thermal/, rgb/ and labels/ (class ids 0-8, the 9 MSRS "
                             "classes), e.g. mfnet_labelled; split by sequence (00501-00550 and 00701-00750 "
                             "validate)")
    p.add_argument("--fused", action="append", type=_named_dir, default=[], metavar="NAME=DIR",
                   help="fused images of one method (same stems; with --labelled all labelled frames); repeat to "
                        "compare methods")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--no-single", action="store_true", help="skip the infrared-only and visible-only runs")
    p.add_argument("--arch", choices=ARCHS, default=None,
                   help=f"segmentation network (default: {DEFAULT_ARCH['box']} with --data, {DEFAULT_ARCH['labelled']} "
                        f"with --labelled); {EFFICIENTNET_ARCH} starts from an ImageNet-pretrained backbone "
                        f"(pip package {PRETRAINED_PACKAGE})")
    p.add_argument("--epochs", type=positive_int, default=150, help="training epochs of each network")
    p.add_argument("--batch-size", type=positive_int, default=8, help="training batch size")
    p.add_argument("--lr", type=positive_float, default=0.01,
                   help="base learning rate: heads at 10x, the backbone at --backbone-lr-scale x")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help=OPTIMIZER_HELP)
    p.add_argument("--backbone-lr-scale", type=positive_float, default=None,
                   help="backbone learning rate as a multiple of --lr (default: "
                        + ", ".join(f"{v:g} for {k}" for k, v in DEFAULT_BACKBONE_LR_SCALE.items()) + ")")
    p.add_argument("--size", type=parse_size, default=None,
                   help="working size HxW (default: "
                        + ", ".join(f"{h}x{w} for {k}" for k, (h, w) in DEFAULT_SIZE.items()) + ")")
    p.add_argument("--labels", choices=LABEL_SCHEMES, default=None,
                   help=f"box mode only, pseudo-mask scheme (default: {DEFAULT_LABELS}): warm = a box's warm "
                        "infrared pixels (the labels the bundled segmenter learnt; drawn from the infrared image, "
                        "so they favour it), box = each box's inner 80 %% (drawn from no input: the control)")
    p.add_argument("--close-px", type=non_negative_int, default=None,
                   help=f"box mode only: closing before components (default: {BoxScoring.close_px})")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=non_negative_int, default=0, help="one training seed (runs in OUT/NAME)")
    seeds.add_argument("--seeds", type=_seed_list, metavar="LIST",
                       help="several seeds, e.g. 0-4 or 0,2,5: runs in OUT/seed_N; OUT/task_driven.* (box mode) or "
                            "OUT/summary.* (labelled mode) give mean and std over them")
    p.add_argument("--device", default="cpu", help="torch device for training and scoring")
    p.add_argument("--threads", type=non_negative_int, default=0, help="CPU threads for torch (0 = torch default)")
    p.add_argument("--no-progress", action="store_true")
    return p


def _error(message: object, code: int = 2) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _add_fused(inputs: dict[str, Path], fused: list[tuple[str, Path]]) -> dict[str, Path]:
    """The single-camera inputs plus every --fused one; ValueError for a name used twice or no input."""
    inputs = dict(inputs)
    for name, folder in fused:
        if name in inputs:
            raise ValueError(f"input name {name!r} used twice")
        inputs[name] = folder
    if not inputs:
        raise ValueError("nothing to evaluate (give --fused or drop --no-single)")
    return inputs


def _check_inputs(inputs: dict[str, Path], stems: list[str]) -> None:
    """Every input folder exists and has an image of every frame; FileNotFoundError / ValueError otherwise."""
    for name, folder in inputs.items():
        if not folder.is_dir():
            raise FileNotFoundError(f"not a directory: {folder}")
        have = {p.stem for p in folder.iterdir()}
        missing = [s for s in stems if s not in have]
        if missing:
            raise ValueError(f"input {name} ({folder}) lacks {len(missing)} frames, e.g. {missing[:3]}")


def _train_config(args: argparse.Namespace, seed: int, arch: str) -> SegmentationTrainConfig:
    scale = DEFAULT_BACKBONE_LR_SCALE[arch] if args.backbone_lr_scale is None else args.backbone_lr_scale
    return SegmentationTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                                   backbone_lr_multiplier=scale, seed=seed, device=args.device,
                                   progress=not args.no_progress)


def _run_seeds(args: argparse.Namespace, run: Callable[[int, Path], dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """One report per seed: ``--seed`` runs in OUT, each of ``--seeds`` in OUT/seed_N."""
    if args.seeds is None:
        return {args.seed: run(args.seed, args.out)}
    return {seed: run(seed, args.out / f"seed_{seed}") for seed in args.seeds}


def _prepare_box(args: argparse.Namespace, inputs: dict[str, Path]) -> dict[str, Any]:
    """Checks the box-mode folders, claims OUT and writes the pseudo-masks; the split and the card fields."""
    labels = args.labels or DEFAULT_LABELS
    for folder in (args.data / "ir", args.data / "detection_yolo"):
        if not folder.is_dir():
            raise FileNotFoundError(f"not a directory: {folder}")
    stems = sorted(p.stem for p in (args.data / "ir").iterdir() if p.suffix.lower() == ".png")
    train, val = split_stems(stems)
    _check_inputs(inputs, stems)
    claim_output_folder(PROG, args.out, recursive=True)
    mask_dir = args.out / ("pseudo_masks" if labels == "warm" else "box_masks")
    write_pseudo_masks(args.data / "ir", args.data / "detection_yolo", mask_dir, stems, scheme=labels)
    card = {"data": str(args.data),
            "split": {"validation_frames": [list(r) for r in VALIDATION_FRAME_RANGES],
                      "train": len(train), "validation": len(val)},
            "labels": f"{labels} pseudo-masks from YOLO boxes (seafusion_ros.data.pseudo_masks)",
            "label_scheme": labels}
    return {"train": train, "val": val, "mask_dir": mask_dir, "labels": labels, "card": card}


def _box_mode(args: argparse.Namespace, inputs: dict[str, Path], prepared: dict[str, Any], card: dict[str, Any],
              arch: str, size: tuple[int, int]) -> None:
    """Every seed's run_task_driven report (OUT/task_driven.*, OUT/seed_N/task_driven.*), and with --seeds
    their summary in OUT/task_driven.*."""
    scoring = BoxScoring() if args.close_px is None else BoxScoring(close_px=args.close_px)
    pair_dirs = (args.data / "ir", args.data / "vi") if (args.data / "vi").is_dir() else None

    def run(seed: int, out_dir: Path) -> dict[str, Any]:
        return run_task_driven(inputs, prepared["mask_dir"], args.data / "detection_yolo", prepared["train"],
                               prepared["val"], out_dir, _train_config(args, seed, arch), size, scoring, card,
                               pair_dirs, arch)

    reports = _run_seeds(args, run)
    if args.seeds is not None:
        write_seed_report(summarise_seeds(reports), args.out)


def _prepare_labelled(args: argparse.Namespace, inputs: dict[str, Path]) -> dict[str, Any]:
    """Checks the labelled layout and that every input has every labelled frame, claims OUT; the source (masks,
    train and validation stems) and the card fields."""
    source = labelled_source(args.labelled)
    if not source.train or not source.validation:
        raise ValueError(f"{args.labelled}: {len(source.train)} training and {len(source.validation)} validation "
                         "frames; the task-driven evaluation needs both")
    _check_inputs(inputs, source.train + source.validation)
    claim_output_folder(PROG, args.out, recursive=True)
    card = {"data": str(args.labelled),
            "split": {"rule": source.rule.family, "description": source.rule.description,
                      "validation_sequences": [list(r) for r in MFNET_VALIDATION_SEQUENCES],
                      "train": len(source.train), "validation": len(source.validation)},
            "labels": f"pixel labels {source.mask_dir}", "label_scheme": "pixel labels"}
    return {"source": source, "card": card}


@interrupts.command(PROG)
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "task":
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    mode = "box" if args.data is not None else "labelled"
    if mode == "labelled" and (args.labels is not None or args.close_px is not None):
        return _error("--labels and --close-px are box-mode options; --labelled scores against its pixel labels")
    arch = args.arch or DEFAULT_ARCH[mode]
    size = args.size or DEFAULT_SIZE[arch]
    try:
        check_output_folder(args.out)
        if mode == "box":
            inputs = _add_fused({} if args.no_single else {"infrared": args.data / "ir", "visible": args.data / "vi"},
                                args.fused)
            prepared = _prepare_box(args, inputs)
        else:
            inputs = _add_fused({} if args.no_single else {"infrared": args.labelled / "thermal",
                                                             "visible": args.labelled / "rgb"}, args.fused)
            prepared = _prepare_labelled(args, inputs)
    except (ValueError, FileNotFoundError) as exc:  # OutputError is a ValueError
        return _error(exc)
    except OSError as exc:
        return _error(os_error_message(exc), 1)
    card = {"command": "seafusion-eval task " + shlex.join(argv), **prepared["card"]}
    try:
        if mode == "box":
            _box_mode(args, inputs, prepared, card, arch, size)
            report = args.out / "task_driven.md"
        else:
            source: LabelledSource = prepared["source"]

            def run(seed: int, out_dir: Path) -> dict[str, Any]:
                return run_labelled(inputs, source.mask_dir, source.train, source.validation, out_dir,
                                    _train_config(args, seed, arch), size, MSRS_CLASSES, arch, card)

            write_labelled_summary(summarise_labelled(_run_seeds(args, run), card), args.out)
            report = args.out / "summary.md"
    except ImportError as exc:  # the pretrained backbone's weights package
        return _error(exc)
    except (ValueError, FileNotFoundError) as exc:  # a run with other settings, an unreadable image
        return _error(exc)
    except OSError as exc:  # a full disk: each input's finished epochs stay in OUT and are resumed
        return _error(f"{os_error_message(exc)}; the finished epochs are kept and the same command resumes", 1)
    print(report.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
