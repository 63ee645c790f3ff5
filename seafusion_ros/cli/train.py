"""seafusion-train: train the SeAFusion fusion network with the content loss.

``--joint`` hands over to the joint adaptive (fusion + segmentation) training.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
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
from seafusion_ros.cli.output_checks import check_output_folder, claim_output_folder, os_error_message
from seafusion_ros.data.dataset_splits import split_pairs
from seafusion_ros.data.pair_dataset import PairCropDataset
from seafusion_ros.inference.device import resolve_device
from seafusion_ros.models.checkpoint import load_fusion_model
from seafusion_ros.models.seafusion import seafusion
from seafusion_ros.training.content_loss import MIN_CROP
from seafusion_ros.training.fusion_trainer import FusionTrainConfig, FusionTrainer

RUN_FILES = ("last.pt", "model.pt", "history.jsonl")
PROG = "seafusion-train"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Train the SeAFusion fusion network (content loss: intensity + alpha x texture) on aligned "
                    "infrared/visible pairs, from one or several data folders (DATA/ir + DATA/vi, or the "
                    "labelled layout DATA/thermal + DATA/rgb + DATA/labels). Images of any size are used at "
                    "native resolution (random crops). Each data set is split by its fixed rule (MSRS frame "
                    "ranges, RoadScene FLIR_08700 and later, mfnet_labelled sequences, LLVIP scenes 19/20; "
                    "other names: all training); validation frames are never trained on and are scored per "
                    "data set every epoch. Use --joint for the joint adaptive fusion + segmentation training "
                    "(all further arguments go to it).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, action="append", type=data_source, metavar="DATA[:WEIGHT]",
                   help="data folder; repeat to train on several. WEIGHT (default 1) is how often each of its "
                        "pairs is drawn relative to other folders' pairs")
    p.add_argument("--out", required=True, type=Path, help="run folder: last.pt, history.jsonl, model.pt")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--crop", type=int_at_least(MIN_CROP), default=128, help="random square crop size in pixels")
    p.add_argument("--crops-per-image", type=positive_int, default=4,
                   help="crops drawn per pair and epoch (times the pair's data weight)")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate")
    p.add_argument("--lr-decay", type=positive_float, default=0.75, help="learning-rate factor per epoch")
    p.add_argument("--alpha", type=non_negative_float, default=10.0, help="texture loss weight")
    p.add_argument("--hot-crop-fraction", type=fraction, default=0.0,
                   help="fraction of crops centred on the warmest 1%% infrared pixels (hot objects)")
    p.add_argument("--init-weights", type=Path, help="start from this fusion checkpoint (fine-tuning)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=non_negative_int, default=0, help="CPU threads for torch (0 = torch default)")
    p.add_argument("--resume", type=Path, help="continue from a last.pt of an interrupted run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs one line per epoch)")
    return p


@interrupts.command(PROG)
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--joint" in argv:
        from seafusion_ros.cli.train_joint import main as joint_main

        argv.remove("--joint")
        return joint_main(argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    earlier = [name for name in RUN_FILES if (args.out / name).exists()]
    if earlier and not args.resume:
        print(f"{PROG}: error: {args.out} already holds a training run ({', '.join(earlier)}): pass "
              f"--resume {args.out / 'last.pt'} to continue it, or choose another --out", file=sys.stderr)
        return 2
    try:
        check_output_folder(args.out)
        device = resolve_device(args.device)
        train_pairs, weights, validation_pairs, sources = [], [], {}, []
        for source in args.data:
            train, rule = split_pairs(source.root, "train")
            val = split_pairs(source.root, "val")[0]
            name = source.root.resolve().name
            if any(s["name"] == name for s in sources):
                name = f"{name}_{len(sources)}"
            train_pairs += train
            weights += [source.weight] * len(train)
            if val:
                validation_pairs[name] = val
            sources.append({"name": name, "root": str(source.root), "family": rule.family, "split": rule.description,
                            "weight": source.weight, "train_pairs": len(train), "val_pairs": len(val)})
        if not train_pairs:
            raise ValueError("no training pairs: every --data folder holds validation frames only")
        uniform = all(w == 1.0 for w in weights)
        dataset = PairCropDataset(train_pairs, args.crop, args.batch_size, args.crops_per_image, args.seed,
                                  hot_crop_fraction=args.hot_crop_fraction, weights=None if uniform else weights)
        model = seafusion()
        if args.init_weights:
            model, init_card = load_fusion_model(args.init_weights)
        if len(dataset) == 0:
            raise ValueError(f"0 batches per epoch: {len(train_pairs)} training pairs x {args.crops_per_image} "
                             f"crops per image is less than --batch-size {args.batch_size}")
        validation = {name: PairCropDataset(pairs, 2 * args.crop, args.batch_size, 1, seed=12345, drop_last=False)
                      for name, pairs in validation_pairs.items()}
    except (ValueError, FileNotFoundError) as exc:  # CheckpointError and OutputError are ValueErrors
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    command = "seafusion-train " + shlex.join(argv)
    card = {
        "name": "SeAFusion fusion network, content loss",
        "architecture": "SeAFusion fusion network (Tang et al. 2022), 166,657 parameters",
        "training_data": sources,
        "training_command": command,
        "loss": f"L_int + {args.alpha} x L_tex (reference section 3)",
    }
    if args.init_weights:
        card["initialised_from"] = {"path": str(args.init_weights), "model_card": init_card}
    trainer = FusionTrainer(model.train(), dataset, FusionTrainConfig(args.epochs, args.lr, args.lr_decay, args.alpha),
                            args.out, device, validation, card)
    if args.resume:
        try:
            trainer.resume(args.resume)
        except (ValueError, FileNotFoundError, RuntimeError) as exc:  # not a last.pt, or another network's
            print(f"{PROG}: error: --resume {args.resume}: {exc}", file=sys.stderr)
            return 2
    claim_output_folder(PROG, args.out)
    for source in sources:
        print(f"{source['root']}: {source['train_pairs']} training and {source['val_pairs']} validation pairs "
              f"({source['family']}: {source['split']}), weight {source['weight']:g}", flush=True)
    print(f"training on {len(train_pairs)} pairs ({len(dataset)} batches/epoch), device {device}", flush=True)
    try:
        trainer.train(progress=not args.no_progress)
        out = trainer.export(args.out / "model.pt")
    except OSError as exc:  # a full disk: last.pt holds the last epoch that was saved whole
        print(f"{PROG}: error: {os_error_message(exc)}; continue with --resume {args.out / 'last.pt'} once "
              "there is room", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
