"""Train the segmentation network alone on a folder of (fused) images and class-id masks.

    python -m seafusion_ros.cli.train_segmentation --images FUSED_DIR --pseudo-from ../shared/data/msrs_dev \\
        --out runs/seg --export seafusion_ros/weights/segmentation_default.pt

Labels are either real pixel labels (``--masks DIR`` of class-id PNGs, with ``--classes msrs``, a
number, or comma-separated names) or pseudo-masks derived from YOLO boxes (``--pseudo-from DATA`` with
DATA/ir and DATA/detection_yolo; cached in OUT/pseudo_masks). MSRS-named frames are split by frame
number (``--split msrs``); validation frames are never trained on. ``--export`` writes the weights with a
model card stating data, split, command and validation numbers.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from seafusion_ros.cli import interrupts
from seafusion_ros.cli.output_checks import (
    check_output_file,
    check_output_folder,
    claim_output_folder,
    os_error_message,
)
from seafusion_ros.cli.size_argument import parse_size
from seafusion_ros.data.labels import BOX_CLASSES, PRESETS, LabelSet, generic_label_set
from seafusion_ros.data.msrs_split import VALIDATION_FRAME_RANGES, split_stems
from seafusion_ros.data.pseudo_masks import write_pseudo_masks
from seafusion_ros.data.segmentation_data import SegmentationDataset, list_images
from seafusion_ros.evaluation.segmentation_scoring import BoxScoring, evaluate_segmentation
from seafusion_ros.models.checkpoint import save_checkpoint
from seafusion_ros.models.segmentation import ARCH, bisenet_lite, segmentation_card_fields
from seafusion_ros.training.segmentation_trainer import LAST, SegmentationTrainConfig, train_segmentation

PROG = "train_segmentation"
PSEUDO_MASK_RULE = ("pseudo-masks from YOLO boxes: outside all boxes background; inside a box the infrared "
                    "pixels above min(Otsu in the box, 90th percentile of a 4-px ring around it + 10) are the "
                    "object, the rest of the box ignore (255); boxes whose warm pixels are < 20 grey levels "
                    "above the ring median are ignore; smaller boxes overrule larger ones "
                    "(seafusion_ros.data.pseudo_masks)")


def parse_classes(text: str) -> LabelSet:
    """``boxes``, ``msrs``, a class count, or comma-separated class names."""
    if text in PRESETS:
        return PRESETS[text]
    if text.isdigit():
        return generic_label_set(int(text))
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if len(names) < 2:
        raise argparse.ArgumentTypeError(f"expected boxes, msrs, a class count or >= 2 names, got {text!r}")
    return LabelSet(names, generic_label_set(len(names)).palette)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m seafusion_ros.cli.train_segmentation",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--images", required=True, type=Path, help="input images (fused RGB, or any 8-bit images)")
    labels = p.add_mutually_exclusive_group(required=True)
    labels.add_argument("--masks", type=Path, help="class-id PNG masks (255 = ignore), same stems")
    labels.add_argument("--pseudo-from", type=Path, metavar="DATA", help="derive masks from DATA/ir + "
                        "DATA/detection_yolo boxes (classes: background, person, bicycle, car)")
    p.add_argument("--classes", type=parse_classes, default=None,
                   help="with --masks: boxes, msrs (9 MSRS classes), a count, or names a,b,c (default boxes)")
    p.add_argument("--split", choices=("msrs", "none"), default="msrs",
                   help="msrs: fixed frame-number validation split; none: train on everything")
    p.add_argument("--out", required=True, type=Path, help="run folder (last.pt, log.jsonl, segmentation.pt)")
    p.add_argument("--export", type=Path, help="also write the final weights + full model card here")
    p.add_argument("--name", default="BiSeNet-lite segmentation", help="model name for the card")
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.01, help="backbone learning rate (heads 10x)")
    p.add_argument("--size", type=parse_size, default=(120, 160), help="base size HxW (also the inference size)")
    p.add_argument("--crop", type=parse_size, default=None, help="training crop HxW (default: base size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = torch default)")
    p.add_argument("--resume", action="store_true", help="continue OUT/last.pt")
    p.add_argument("--no-progress", action="store_true")
    return p


def _prepare(args: argparse.Namespace) -> tuple[LabelSet, Path, Path | None, list[str], list[str]]:
    images = list_images(args.images)
    if args.pseudo_from is not None:
        if args.classes not in (None, BOX_CLASSES):
            raise ValueError("--pseudo-from always gives the box classes; drop --classes")
        stems = sorted(set(images) & {p.stem for p in (args.pseudo_from / "ir").glob("*.png")})
        mask_dir = args.out / "pseudo_masks"
        write_pseudo_masks(args.pseudo_from / "ir", args.pseudo_from / "detection_yolo", mask_dir, stems)
        label_set, boxes = BOX_CLASSES, args.pseudo_from / "detection_yolo"
    else:
        mask_dir, boxes = args.masks, None
        stems = sorted(set(images) & set(list_images(mask_dir)))
        label_set = args.classes or BOX_CLASSES
    if not stems:
        raise ValueError(f"no frames with both an image in {args.images} and a label")
    train, val = split_stems(stems) if args.split == "msrs" else (stems, [])
    return label_set, mask_dir, boxes, train, val


@interrupts.command(PROG)
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        check_output_folder(args.out)
        if args.export is not None:
            check_output_file(args.export, "checkpoint file")
        claim_output_folder(PROG, args.out, recursive=True)
        label_set, mask_dir, boxes, train, val = _prepare(args)
        train_set = SegmentationDataset(args.images, mask_dir, label_set.num_classes, train, args.size,
                                        train=True, crop=args.crop, seed=args.seed)
        val_set = SegmentationDataset(args.images, mask_dir, label_set.num_classes, val, args.size) if val else None
    except (ValueError, FileNotFoundError) as exc:  # OutputError is a ValueError
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # writing the pseudo-masks
        print(f"{PROG}: error: {os_error_message(exc)}", file=sys.stderr)
        return 1
    if (args.out / LAST).exists() and not args.resume:
        print(f"{PROG}: error: {args.out / LAST} exists; pass --resume or another --out", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    model = bisenet_lite(label_set.num_classes, inference_size=args.size)
    command = "python -m seafusion_ros.cli.train_segmentation " + shlex.join(argv)
    card: dict[str, Any] = {
        "name": args.name,
        **label_set.card(),
        "input": "fused RGB in [0, 1], N x 3 x H x W, no mean/std",
        "data": {"images": str(args.images), "labels": PSEUDO_MASK_RULE if boxes else f"pixel labels {mask_dir}",
                 "train_frames": len(train), "validation_frames": len(val), "size": list(args.size)},
        "split": ({"rule": "MSRS frame number", "validation_frames": [list(r) for r in VALIDATION_FRAME_RANGES]}
                  if args.split == "msrs" else {"rule": "none (no validation)"}),
        "command": command,
    }
    started = time.perf_counter()
    config = SegmentationTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                     device=args.device, progress=not args.no_progress)
    try:
        train_segmentation(model, train_set, val_set, config, args.out, card, resume=args.resume)
    except ValueError as exc:  # --resume with a damaged or missing last.pt (CheckpointError)
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk: last.pt holds the last epoch that was saved whole
        print(f"{PROG}: error: {os_error_message(exc)}; continue with --resume once there is room", file=sys.stderr)
        return 1
    card["training"] = {"hardware": f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads"
                        if args.device == "cpu" else args.device,
                        "seconds_this_call": round(time.perf_counter() - started, 1), "torch": str(torch.__version__)}
    if val_set is not None:
        card["validation"] = evaluate_segmentation(model, val_set, boxes, BoxScoring(), args.device)
        print(f"validation: {card['validation']}")
    if args.export:
        try:
            save_checkpoint(args.export, model.eval(), ARCH, {**card, **segmentation_card_fields(model),
                                                             "train_config": config.__dict__})
        except OSError as exc:
            print(f"{PROG}: error: {os_error_message(exc)}; the trained weights are in {args.out}",
                  file=sys.stderr)
            return 1
        print(f"wrote {args.export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
