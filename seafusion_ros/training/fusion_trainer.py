"""Training the fusion network with the content loss: Adam, per-epoch decay, checkpoints, resume.

Every epoch writes ``last.pt`` (weights, optimiser, scheduler, history: enough to resume exactly)
and adds a line to ``history.jsonl``; the run ends with ``model.pt``, the weights plus a model
card saying how they were made. All files are written atomically.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from seafusion_ros.data.pair_dataset import PairBatch, PairCropDataset
from seafusion_ros.inference.colour import rgb_to_y
from seafusion_ros.models.checkpoint import read_checkpoint, save_checkpoint
from seafusion_ros.training.content_loss import DEFAULT_ALPHA, content_loss
from seafusion_ros.training.segmentation_trainer import write_json_lines


@dataclass(frozen=True)
class FusionTrainConfig:
    epochs: int = 10
    lr: float = 1e-3
    lr_decay: float = 0.75
    alpha: float = DEFAULT_ALPHA


class FusionTrainer:
    """Runs epochs over a PairCropDataset; ``validation`` (optional) is scored with the same loss.

    Validation may be one set or several by name (one per data set): each is logged as
    ``val_loss/NAME`` and their pooled mean over all crops as ``val_loss``.
    """

    def __init__(self, model: nn.Module, dataset: PairCropDataset, config: FusionTrainConfig, out_dir: Path,
                 device: torch.device,
                 validation: PairCropDataset | Mapping[str, PairCropDataset] | None = None,
                 model_card: dict[str, Any] | None = None, log: Callable[[str], None] = print) -> None:
        self.model = model.to(device)
        if isinstance(validation, PairCropDataset):
            validation = {"val": validation}
        self.dataset, self.validation, self.config = dataset, dict(validation or {}), config
        self.out_dir, self.device, self.log = Path(out_dir), device, log
        self.model_card = dict(model_card or {})
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=config.lr_decay)
        self.epoch = 0
        self.history: list[dict[str, float]] = []

    def resume(self, path: Path) -> None:
        """Continue from a ``last.pt`` written by this trainer."""
        state = read_checkpoint(path)
        if "optimizer" not in state:
            raise ValueError(f"{path} holds weights only; --resume needs a training checkpoint (last.pt)")
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        self.history = list(state.get("history", []))
        previous = state.get("model_card", {})
        if "training_command" in previous:  # the card tells the whole story: first command, then each resume
            resumed = [*previous.get("resumed_with", []), self.model_card.get("training_command", "")]
            self.model_card.update(training_command=previous["training_command"], resumed_with=resumed)
        self.log(f"resumed from {path} after epoch {self.epoch}")

    def _loss(self, batch: PairBatch) -> tuple[torch.Tensor, dict[str, float]]:
        vis_y = rgb_to_y(batch.visible.to(self.device))
        ir = batch.infrared.to(self.device)
        return content_loss(self.model(vis_y, ir), vis_y, ir, self.config.alpha)

    def _validate(self) -> dict[str, float]:
        """``val_loss`` pooled over every validation crop, plus ``val_loss/NAME`` per set when there are several."""
        if not self.validation:
            return {}
        self.model.eval()
        scores, total, count = {}, 0.0, 0
        with torch.inference_mode():
            for name, dataset in self.validation.items():
                set_total, set_count = 0.0, 0
                for batch in dataset.batches(epoch=0):
                    set_total += float(self._loss(batch)[0]) * len(batch.visible)
                    set_count += len(batch.visible)
                if len(self.validation) > 1:
                    scores[f"val_loss/{name}"] = set_total / set_count
                total, count = total + set_total, count + set_count
        self.model.train()
        return {"val_loss": total / count, **scores}

    def train(self, progress: bool = True) -> list[dict[str, float]]:
        self.model.train()
        while self.epoch < self.config.epochs:
            started = time.perf_counter()
            sums = {"loss": 0.0, "intensity": 0.0, "texture": 0.0}
            bar = tqdm(self.dataset.batches(self.epoch), total=len(self.dataset), disable=not progress,
                       desc=f"epoch {self.epoch + 1}/{self.config.epochs}", leave=False)
            for step, batch in enumerate(bar, start=1):
                loss, parts = self._loss(batch)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                sums["loss"] += float(loss.detach())
                for key, value in parts.items():
                    sums[key] += value
                bar.set_postfix(loss=f"{sums['loss'] / step:.4f}")
            self.scheduler.step()
            self.epoch += 1
            record = {"epoch": self.epoch, **{k: v / max(len(self.dataset), 1) for k, v in sums.items()},
                      "lr": self.optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started}
            record.update(self._validate())
            self.history.append(record)
            self._save_epoch()
            self.log(json.dumps(record))
        return self.history

    def _save_epoch(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self.out_dir / "last.pt", self.model, "seafusion", self.model_card, extra={
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch, "history": self.history, "config": asdict(self.config)})
        write_json_lines(self.out_dir / "history.jsonl", self.history)

    def export(self, path: Path, extra_card: dict[str, Any] | None = None) -> Path:
        """Weights plus model card (no optimiser state): what ships and what ``--weights`` loads."""
        card = {**self.model_card, **(extra_card or {}),
                "training": {"config": asdict(self.config), "epochs_run": self.epoch, "history": self.history,
                             "hardware": f"{platform.processor() or platform.machine()}, "
                                         f"{torch.get_num_threads()} threads, device {self.device}",
                             "torch": str(torch.__version__),
                             "training_seconds": round(sum(h["seconds"] for h in self.history), 1)}}
        return save_checkpoint(path, self.model, "seafusion", card)
