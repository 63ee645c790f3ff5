"""Joint low-level / high-level adaptive training (reference §3-4), scaled to ``msrs_dev`` and a CPU.

Round r = 1..R:
1. Fusion: train the fusion network (Adam, lr decayed by ``fusion_lr_decay`` per epoch) on random
   native-resolution crops (a share centred on hot infrared pixels) with L = L_content + beta_r x L_sem,
   where L_sem is the OHEM loss (main + 0.1 aux) of the previous round's segmentation network, frozen
   and in eval mode, on the fused RGB crop scaled to the segmentation working size. beta_r = r - 1 by
   default (0, 1, 2, 3): round 1 is pure content loss, before any segmentation network exists, unless the
   run starts from a trained segmentation network (``init_segmentation``), which round 1 then uses.
2. Fuse every frame (training and validation) at native size with the new fusion network; keep it at
   the working size for segmentation and, for validation frames, at native size for the metrics.
3. Segmentation: continue training the segmentation network on the freshly fused training frames.
4. Validate on the held-out frames: content loss and fusion metrics (EN, SD, SF, MI, VIF, Qabf) at
   native size, mIoU on the pseudo-masks and box AP@0.5 at the working size; one JSON line per round
   in ``joint_log.jsonl``.

Every stage leaves a file behind (``round_r/fusion.pt``, ``round_r/fused/`` and
``round_r/fused_validation/``, ``round_r/seg/segmentation.pt``) and its trainer's ``last.pt`` per epoch,
so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from seafusion_ros.data.hot_crops import hot_pixels, window_around
from seafusion_ros.data.labels import BOX_CLASSES
from seafusion_ros.data.msrs_split import split_stems
from seafusion_ros.data.pseudo_masks import write_pseudo_masks
from seafusion_ros.data.segmentation_data import SegmentationDataset
from seafusion_ros.evaluation.fusion_metrics import fusion_scores
from seafusion_ros.evaluation.segmentation_scoring import BoxScoring, evaluate_segmentation
from seafusion_ros.imaging.image_files import match_pairs, read_image, write_image_atomic
from seafusion_ros.inference.colour import rgb_to_ycrcb, ycrcb_to_rgb
from seafusion_ros.inference.device import resolve_precision
from seafusion_ros.models.checkpoint import load_fusion_model, read_checkpoint, save_checkpoint
from seafusion_ros.models.seafusion import FusionNet, seafusion
from seafusion_ros.models.segmentation import (
    ARCH,
    BiSeNetLite,
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
    train_segmentation,
    write_json_lines,
)

FUSION_METRICS = ("EN", "SD", "SF", "MI", "VIF", "Qabf")
JOINT_LOG = "joint_log.jsonl"
DONE = ".complete"


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
    seed: int = 0
    device: str = "cpu"
    progress: bool = True

    def beta(self, round_number: int) -> float:
        if self.betas is None:
            return float(round_number - 1)
        if len(self.betas) < self.rounds:
            raise ValueError(f"{len(self.betas)} betas given for {self.rounds} rounds")
        return float(self.betas[round_number - 1])


class JointFrames:
    """Visible RGB, infrared and pseudo-mask of every frame at native resolution, held in memory.

    The fusion network trains and is scored at the sensors' resolution (it is deployed there); only the
    segmentation network works at the reduced working size, so the semantic loss sees the fused crop
    area-downsampled by ``seg_scale``.
    """

    def __init__(self, data_root: Path, mask_dir: Path, stems: list[str], size: tuple[int, int]) -> None:
        pairs = {p.stem: p for p in match_pairs(data_root / "ir", data_root / "vi").pairs}
        missing = [s for s in stems if s not in pairs]
        if missing:
            raise ValueError(f"no infrared/visible pair for {missing[:5]} under {data_root}")
        self.stems = stems
        self.size = size
        self.visible = [cv2.cvtColor(read_image(pairs[s].visible, True), cv2.COLOR_BGR2RGB) for s in stems]
        self.infrared = [read_image(pairs[s].ir, False) for s in stems]
        self.masks = [cv2.imread(str(mask_dir / f"{s}.png"), cv2.IMREAD_UNCHANGED) for s in stems]
        native = self.infrared[0].shape if stems else size
        for stem, vis, ir, mask in zip(stems, self.visible, self.infrared, self.masks, strict=True):
            if ir.dtype != np.uint8:
                raise ValueError(f"{stem}: joint training reads 8-bit infrared, got {ir.dtype}")
            if ir.shape != native or vis.shape[:2] != native or mask.shape != native:
                raise ValueError(f"{stem}: infrared {ir.shape}, visible {vis.shape[:2]} and mask {mask.shape} "
                                 f"must all be {native} (joint training needs one native frame size)")
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
              hot_crop_fraction: float = 0.0):
        """Batches of (visible N x 3, infrared N x 1, mask N) native-resolution crops, horizontally flipped
        at random; ``hot_crop_fraction`` of them centred on one of the warmest 1 % infrared pixels."""
        height, width = self.native
        if crop > min(height, width):
            raise ValueError(f"crop {crop} is larger than the frames ({height}x{width})")
        rng = np.random.default_rng((seed, epoch))
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


def train_fusion_round(fusion: FusionNet, segmenter: BiSeNetLite | None, frames: JointFrames, beta: float,
                       config: JointConfig, out_dir: Path) -> list[dict[str, Any]]:
    """Stage 1 of a round; per-epoch ``fusion_last.pt`` for resume, ``fusion.pt`` at the end."""
    device = torch.device(config.device)
    fusion.to(device).train()
    optimizer = torch.optim.Adam(fusion.parameters(), lr=config.fusion_lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.fusion_lr_decay)
    semantic = SemanticLoss()
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
        batches = frames.crops(epoch, config.crop, config.fusion_batch_size, config.crops_per_image, config.seed,
                               config.hot_crop_fraction)
        total = len(frames.stems) * config.crops_per_image // config.fusion_batch_size
        for visible, infrared, mask in tqdm(batches, total=total, disable=not config.progress, leave=False,
                                            desc=f"fusion epoch {epoch + 1}/{config.fusion_epochs} beta={beta:g}"):
            visible, infrared, mask = visible.to(device), infrared.to(device), mask.to(device)
            rgb, fused_y, visible_y = fuse_rgb(fusion, visible, infrared)
            loss, _ = content_loss(fused_y, visible_y, infrared, config.alpha)
            sums["content"] += float(loss.detach())
            if segmenter is not None and beta > 0:
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
def fuse_frames(fusion: FusionNet, frames: JointFrames, val_stems: set[str], fused_dir: Path, val_dir: Path,
                device: str) -> None:
    """Fuse every frame at native resolution; write it at the working size to ``fused_dir`` (segmentation
    training) and, for validation frames, at native size to ``val_dir`` (fusion metrics, ``seafusion-eval``).

    Training frames use the CPU's fast autocast precision (bf16 where native, else fp32; fp16 on CUDA) since
    they only feed the segmentation network; validation frames are fused in fp32 like the metric runs.
    ``.complete`` marks a finished folder.
    """
    torch_device = torch.device(device)
    fusion.to(torch_device).eval()
    fast = resolve_precision("auto", torch_device)
    dsize = (frames.size[1], frames.size[0])
    val_dir.mkdir(parents=True, exist_ok=True)
    for stem, vis, ir in zip(frames.stems, frames.visible, frames.infrared, strict=True):
        visible, infrared = _unit_tensor(vis).to(torch_device), _unit_tensor(ir).to(torch_device)
        validation = stem in val_stems
        with torch.autocast(torch_device.type, dtype=fast, enabled=not validation and fast != torch.float32):
            rgb = fuse_rgb(fusion, visible, infrared)[0][0].float().clamp(0, 1)
        bgr = cv2.cvtColor(rgb.mul(255.0).round().byte().cpu().numpy().transpose(1, 2, 0), cv2.COLOR_RGB2BGR)
        write_image_atomic(fused_dir / f"{stem}.png", cv2.resize(bgr, dsize, interpolation=cv2.INTER_AREA))
        if validation:
            write_image_atomic(val_dir / f"{stem}.png", bgr)
    (fused_dir / DONE).touch()


def validate_round(segmenter: BiSeNetLite, frames: JointFrames, fused_dir: Path, val_dir: Path, mask_dir: Path,
                   boxes_dir: Path, val_stems: list[str], config: JointConfig) -> dict[str, Any]:
    """Content loss and fusion metrics of the native-resolution validation fusions, segmentation scores on
    the working-size ones."""
    index = {s: i for i, s in enumerate(frames.stems)}
    metrics: dict[str, list[float]] = {m: [] for m in FUSION_METRICS}
    content = []
    for stem in val_stems:
        i = index[stem]
        fused = cv2.cvtColor(read_image(val_dir / f"{stem}.png", True), cv2.COLOR_BGR2RGB)
        fused_y = rgb_to_ycrcb(_unit_tensor(fused))[0]
        visible_y = rgb_to_ycrcb(_unit_tensor(frames.visible[i]))[0]
        infrared = _unit_tensor(frames.infrared[i])
        content.append(float(content_loss(fused_y, visible_y, infrared, config.alpha)[0]))
        scores = fusion_scores(fused, frames.infrared[i], frames.visible[i], FUSION_METRICS)
        for name, value in scores.values.items():
            metrics[name].append(value)
    val_set = SegmentationDataset(fused_dir, mask_dir, BOX_CLASSES.num_classes, val_stems, config.size)
    return {"content_loss": float(np.mean(content)),
            **{name: float(np.mean(v)) if v else None for name, v in metrics.items()},
            "segmentation": evaluate_segmentation(segmenter, val_set, boxes_dir, BoxScoring(), config.device)}


RUN_ONLY_FIELDS = {"rounds", "betas", "device", "progress"}  # may change on resume (betas: later rounds only)


def check_resume_config(out_dir: Path, config: JointConfig) -> None:
    """Refuse to continue a run under settings that differ from those its finished rounds were trained with.

    Each round's ``fusion.pt`` card holds the configuration and beta it was trained with. Device, progress and
    the number of rounds may change, and so may the betas of rounds not trained yet (to branch a schedule
    from a finished round); anything else would silently mix two recipes in one model.
    """
    now = _comparable_card(_jsonable(asdict(config)))
    problems: list[str] = []
    for path in sorted(out_dir.glob("round_*/fusion.pt")):
        card = read_checkpoint(path)["model_card"]
        round_number, beta = card.get("round"), card.get("beta")
        if round_number is not None and beta is not None and round_number <= config.rounds \
                and float(beta) != config.beta(round_number):
            problems.append(f"beta of round {round_number}: {beta:g} in the run, {config.beta(round_number):g} now")
        then = _comparable_card(card.get("config", {}))
        for key in sorted(set(then) | set(now)):
            if then.get(key) != now.get(key):
                problems.append(f"{key}: {then.get(key)} in the run, {now.get(key)} now")
    if problems:
        raise ValueError(f"{out_dir} was trained with other settings (" + "; ".join(dict.fromkeys(problems))
                         + "): resume with the run's settings or use another --out")


def _comparable_card(config: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in config.items() if k not in RUN_ONLY_FIELDS and k != "segmentation"}
    flat.update({f"segmentation.{k}": v for k, v in config.get("segmentation", {}).items()
                 if k not in RUN_ONLY_FIELDS})
    return flat


def run_joint_training(data_root: str | os.PathLike, out_dir: str | os.PathLike, config: JointConfig,
                       init_fusion: str | os.PathLike | None = None,
                       card: dict[str, Any] | None = None,
                       init_segmentation: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """All rounds (finished stages are skipped, interrupted ones resumed); returns the per-round log.

    ``init_segmentation`` starts from an existing segmentation network (e.g. the bundled one): round 1's
    fusion training then already has a frozen segmenter for its semantic loss, so joint fine-tuning of a
    trained pair can begin with beta > 0. Without it round 1 has no segmenter and its beta must be 0.
    Writes ``fusion_joint.pt`` and ``segmentation_joint.pt`` (with model cards) after the last round.
    """
    data_root, out_dir = Path(data_root), Path(out_dir)
    check_resume_config(out_dir, config)
    if init_segmentation is None and config.beta(1) > 0:
        raise ValueError(f"round 1 has no segmentation network for the semantic loss, so its beta must be 0 "
                         f"(got {config.beta(1):g}); give it an initial segmentation network "
                         f"(seafusion-train --joint --init-segmentation)")
    segmenter, segmenter_card = _initial_segmenter(init_segmentation, config.size)
    out_dir.mkdir(parents=True, exist_ok=True)
    stems = sorted(p.stem for p in match_pairs(data_root / "ir", data_root / "vi").pairs)
    train_stems, val_stems = split_stems(stems)
    if not train_stems or not val_stems:
        raise ValueError(f"{data_root}: need MSRS-named frames on both sides of the split")
    mask_dir = out_dir / "pseudo_masks"
    boxes_dir = data_root / "detection_yolo"
    write_pseudo_masks(data_root / "ir", boxes_dir, mask_dir, stems)
    frames = JointFrames(data_root, mask_dir, stems, config.size)
    train_frames = frames.subset(train_stems)
    log_path = out_dir / JOINT_LOG
    log: list[dict[str, Any]] = []
    if log_path.is_file():
        log = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    done_rounds = {record["round"] for record in log}
    base_card = {**(card or {}), "config": _jsonable(asdict(config))}
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
        torch.manual_seed(config.seed * 100 + round_number)
        if (round_dir / "fusion.pt").is_file():
            fusion = load_fusion_model(round_dir / "fusion.pt")[0]
            fusion_history = read_checkpoint(round_dir / "fusion.pt")["model_card"].get("history", [])
        else:
            fusion_history = train_fusion_round(fusion, segmenter, train_frames, beta, config, round_dir)
            save_checkpoint(round_dir / "fusion.pt", fusion, "seafusion",
                            {**base_card, "round": round_number, "beta": beta, "history": fusion_history})
        fused_dir, val_dir = round_dir / "fused", round_dir / "fused_validation"
        if not (fused_dir / DONE).is_file():
            fuse_frames(fusion, frames, set(val_stems), fused_dir, val_dir, config.device)
        seg_dir = round_dir / "seg"
        if (seg_dir / FINAL).is_file():
            segmenter = load_segmentation_model(seg_dir / FINAL)[0]
            segmenter.inference_size = tuple(config.size)  # also for rounds saved by versions without the field
        else:
            if segmenter is None:
                segmenter = bisenet_lite(BOX_CLASSES.num_classes, inference_size=config.size)
            segmenter.requires_grad_(True)
            train_set = SegmentationDataset(fused_dir, mask_dir, BOX_CLASSES.num_classes, train_stems, config.size,
                                            train=True, seed=config.seed + round_number)
            train_segmentation(segmenter, train_set, None, config.segmentation, seg_dir,
                               {**base_card, **BOX_CLASSES.card(), "round": round_number},
                               resume=(seg_dir / LAST).is_file())
        if round_number in done_rounds:
            continue
        record = {"round": round_number, "beta": beta, "fusion": fusion_history[-1] if fusion_history else None,
                  "segmentation_loss": _last_segmentation_loss(seg_dir),
                  "validation": validate_round(segmenter, frames, fused_dir, val_dir, mask_dir, boxes_dir,
                                               val_stems, config),
                  "seconds": round(time.perf_counter() - started, 1)}
        log.append(record)
        write_json_lines(log_path, log)
        tqdm.write(f"round {json.dumps(record)}")
        sys.stdout.flush()
    final_card = {**base_card, "rounds": config.rounds, "log": log, "split_validation_frames": len(val_stems),
                  "train_frames": len(train_stems)}
    save_checkpoint(out_dir / "fusion_joint.pt", fusion, "seafusion",
                    {**final_card, "name": "SeAFusion fusion network, joint adaptive training"})
    if segmenter is not None:
        save_checkpoint(out_dir / "segmentation_joint.pt", segmenter.eval(), ARCH,
                        {**final_card, **BOX_CLASSES.card(), **segmentation_card_fields(segmenter),
                         "name": "BiSeNet-lite segmentation, joint adaptive training"})
    return log


def _initial_segmenter(path: str | os.PathLike | None,
                       size: tuple[int, int]) -> tuple[BiSeNetLite | None, dict[str, Any] | None]:
    """The segmentation network to start from and its card, checked against the classes joint training
    labels."""
    if path is None:
        return None, None
    model, card = load_segmentation_model(path)
    if list(card["classes"]) != list(BOX_CLASSES.names):
        raise ValueError(f"{path}: segments {card['classes']}, but joint training labels "
                         f"{list(BOX_CLASSES.names)} (pseudo-masks from the boxes)")
    model.inference_size = tuple(size)
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
