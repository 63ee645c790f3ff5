"""Task-driven evaluation (reference §5): train the same segmentation network on infrared-only,
visible-only and fused images, then score each on the validation split.

Box mode (``run_task_driven``), two scores per input: mIoU on the pseudo-masks (weak labels, see
``pseudo_masks``) and, because the YOLO boxes are the real ground truth there, box AP at IoU 0.5 per
class from the predicted masks' connected components (``box_ap``); the results go to ``task_driven.json``,
``task_driven.md`` and one grouped bar chart ``task_driven.png``. Labelled mode (``run_labelled``): IoU
per class against real pixel labels, scored over the classes the validation labels contain
(``seed_summary`` writes its table and chart). Every input gets its own run folder (resumable).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seafusion_ros.data.labels import BOX_CLASSES, LabelSet
from seafusion_ros.data.pseudo_masks import read_yolo_boxes
from seafusion_ros.data.segmentation_data import SegmentationDataset
from seafusion_ros.evaluation.segmentation_scoring import (
    BoxScoring,
    box_class_contrast,
    evaluate_segmentation,
    over_present_classes,
)
from seafusion_ros.imaging.image_files import write_bytes_atomic
from seafusion_ros.inference.colour import rgb_to_y
from seafusion_ros.models.bisenet_efficientnet import ARCH as EFFICIENTNET_ARCH
from seafusion_ros.models.bisenet_efficientnet import bisenet_efficientnet_lite0
from seafusion_ros.models.checkpoint import read_checkpoint
from seafusion_ros.models.segmentation import ARCH, SegmentationNet, bisenet_lite, load_segmentation_model
from seafusion_ros.training.segmentation_trainer import FINAL, LAST, SegmentationTrainConfig, train_segmentation


def intensity_target_contrast(ir_dir: Path, vis_dir: Path, mask_dir: Path, boxes_dir: Path, stems: list[str],
                              base_size: tuple[int, int]) -> dict[str, float | None]:
    """Object contrast of max(infrared, visible Y), the content loss's intensity target (reference §3).

    It is the contrast a fusion trained on the content loss alone is asked to keep, so a fused input's row
    can be read against it: near it, the fusion does what its loss asks; above it, the semantic loss added
    contrast. Same frames, resizing and masks as the inputs' rows.
    """
    infrared = SegmentationDataset(ir_dir, mask_dir, BOX_CLASSES.num_classes, stems, base_size)
    visible = SegmentationDataset(vis_dir, mask_dir, BOX_CLASSES.num_classes, stems, base_size)
    contrast = box_class_contrast()
    for index, stem in enumerate(stems):
        (ir, mask), (vis, _) = infrared[index], visible[index]
        target = torch.maximum(rgb_to_y(ir[None]), rgb_to_y(vis[None]))[0, 0].mul(255.0).numpy()
        contrast.update(target, mask.numpy(), read_yolo_boxes(Path(boxes_dir) / f"{stem}.txt", *target.shape))
    return contrast.means()


def build_network(arch: str, num_classes: int, size: tuple[int, int], pretrained: bool) -> SegmentationNet:
    """An untrained network of ``arch``; ``pretrained`` reads the ImageNet backbone (a resumed run has its
    weights in last.pt). ImportError naming the weights package when it is missing."""
    if arch == EFFICIENTNET_ARCH:
        return bisenet_efficientnet_lite0(num_classes, pretrained=pretrained, inference_size=size)
    return bisenet_lite(num_classes, inference_size=size)


def train_or_resume(name: str, image_dir: Path, mask_dir: Path, train_stems: list[str], out_dir: Path,
                    config: SegmentationTrainConfig, base_size: tuple[int, int],
                    card: Mapping[str, Any], label_set: LabelSet = BOX_CLASSES,
                    arch: str = ARCH) -> SegmentationNet:
    """Train one input's network in ``out_dir`` (skipped when finished, resumed when interrupted).

    A finished or interrupted run is only reused when it was trained on the same images with the same
    settings; otherwise ValueError names the differences (its scores would be reported under settings it
    was never trained with).
    """
    settings = _run_settings(config, base_size, image_dir, len(train_stems), card.get("label_scheme", "warm"), arch)
    earlier = next((path for path in (out_dir / FINAL, out_dir / LAST) if path.is_file()), None)
    if earlier is not None:
        _check_same_run(earlier, settings)
    if earlier == out_dir / FINAL:
        return load_segmentation_model(earlier)[0]
    torch.manual_seed(config.seed)
    model = build_network(arch, label_set.num_classes, base_size, pretrained=earlier is None)
    train_set = SegmentationDataset(image_dir, mask_dir, label_set.num_classes, train_stems, base_size,
                                    train=True, seed=config.seed)
    full_card = {**card, **label_set.card(), "input": name, "images": settings["images"],
                 "train_frames": settings["train_frames"], "label_scheme": settings["label_scheme"]}
    train_segmentation(model, train_set, None, config, out_dir, full_card, resume=earlier is not None)
    return model


def _run_settings(config: SegmentationTrainConfig, base_size: tuple[int, int], image_dir: Path,
                  train_frames: int, label_scheme: str, arch: str) -> dict[str, Any]:
    """What makes two runs of one input the same experiment (device and progress bars do not)."""
    train = {k: v for k, v in asdict(config).items() if k not in ("device", "progress")}
    return {"train_config": train, "inference_size": list(base_size), "images": str(Path(image_dir).resolve()),
            "train_frames": train_frames, "label_scheme": label_scheme, "arch": arch}


def _check_same_run(checkpoint: Path, wanted: Mapping[str, Any]) -> None:
    state = read_checkpoint(checkpoint)
    card = state.get("model_card", {})
    trained = card.get("train_config", {})  # a key an older version did not record is not compared
    differences = [f"{key} {trained[key]!r} there, {value!r} now"
                   for key, value in wanted["train_config"].items() if key in trained and trained[key] != value]
    if state.get("arch", ARCH) != wanted["arch"]:
        differences.insert(0, f"arch {state.get('arch', ARCH)} there, {wanted['arch']} now")
    if card.get("inference_size", wanted["inference_size"]) != wanted["inference_size"]:
        differences.append(f"size {card['inference_size']} there, {wanted['inference_size']} now")
    recorded_images = Path(card.get("images", wanted["images"]))  # older versions: relative to an unknown cwd
    if recorded_images.is_absolute() and recorded_images != Path(wanted["images"]):
        differences.append(f"images {recorded_images} there, {wanted['images']} now")
    if card.get("label_scheme", "warm") != wanted["label_scheme"]:  # older versions only knew warm labels
        differences.append(f"{card.get('label_scheme', 'warm')} labels there, {wanted['label_scheme']} now")
    if card.get("train_frames", wanted["train_frames"]) != wanted["train_frames"]:
        differences.append(f"{card['train_frames']} training frames there, {wanted['train_frames']} now")
    if differences:
        raise ValueError(f"{checkpoint.parent} holds a run with other settings ({'; '.join(differences)}): "
                         "use another --out, or remove that folder to train it again")


def run_task_driven(inputs: Mapping[str, Path], mask_dir: Path, boxes_dir: Path, train_stems: list[str],
                    val_stems: list[str], out_dir: Path, config: SegmentationTrainConfig,
                    base_size: tuple[int, int] = (240, 320), scoring: BoxScoring = BoxScoring(),
                    card: Mapping[str, Any] | None = None,
                    pair_dirs: tuple[Path, Path] | None = None, arch: str = ARCH) -> dict[str, Any]:
    """Train and score one network per input folder; write the table and the chart; return the results.

    With ``pair_dirs`` (the infrared and visible folders) the report also gives the object contrast of the
    content loss's intensity target (``intensity_target_contrast``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for name, image_dir in inputs.items():
        model = train_or_resume(name, image_dir, mask_dir, train_stems, out_dir / name, config, base_size,
                                card or {}, arch=arch)
        val_set = SegmentationDataset(image_dir, mask_dir, BOX_CLASSES.num_classes, val_stems, base_size)
        results[name] = {"images": str(image_dir), **evaluate_segmentation(model, val_set, boxes_dir, scoring,
                                                                           config.device)}
    report = {"inputs": results, "validation_stems": len(val_stems), "train_stems": len(train_stems),
              "size": list(base_size), "epochs": config.epochs, "box_scoring": scoring.__dict__,
              "labels": (card or {}).get("label_scheme", "warm")}
    if pair_dirs is not None:
        report["intensity_target_contrast"] = intensity_target_contrast(*pair_dirs, mask_dir, boxes_dir,
                                                                        val_stems, base_size)
    write_report(report, out_dir)
    return report


def run_labelled(inputs: Mapping[str, Path], mask_dir: Path, train_stems: list[str], val_stems: list[str],
                 out_dir: Path, config: SegmentationTrainConfig, base_size: tuple[int, int], label_set: LabelSet,
                 arch: str, card: Mapping[str, Any]) -> dict[str, Any]:
    """One seed of the labelled mode: train (or reuse) one network per input folder in ``out_dir/NAME`` on
    the real pixel labels and score it on the validation frames (``over_present_classes``); returns the
    scores, which ``seed_summary.summarise_labelled`` combines over seeds into the one table."""
    results: dict[str, Any] = {}
    for name, image_dir in inputs.items():
        model = train_or_resume(name, image_dir, mask_dir, train_stems, out_dir / name, config, base_size, card,
                                label_set, arch)
        val_set = SegmentationDataset(image_dir, mask_dir, label_set.num_classes, val_stems, base_size)
        scores = evaluate_segmentation(model, val_set, None, device=config.device, class_names=label_set.names)
        results[name] = {"images": str(image_dir), **over_present_classes(scores)}
    return {"inputs": results, "classes": list(label_set.names), "validation_stems": len(val_stems),
            "train_stems": len(train_stems), "size": list(base_size), "epochs": config.epochs, "arch": arch,
            "backbone_lr_multiplier": config.backbone_lr_multiplier}


def format_score(value: float | None) -> str:
    """Three decimals, or n/a for a score that is undefined (a class without ground truth)."""
    return "n/a" if value is None else f"{value:.3f}"


def table_header() -> list[str]:
    """The two header lines of the per-input table: mIoU, IoU and AP50 per object class, box mAP50."""
    names = BOX_CLASSES.names[1:]
    return ["| input | mIoU | " + " | ".join(f"IoU {n}" for n in names) + " | "
            + " | ".join(f"AP50 {n}" for n in names) + " | box mAP50 |",
            "|---" * (3 + 2 * len(names)) + "|"]


INTENSITY_TARGET_ROW = "max(infrared, visible Y): content-loss target"


def contrast_table(inputs: Mapping[str, Mapping[str, Any]],
                   intensity_target: Mapping[str, float | None] | None = None) -> str:
    """The object-contrast paragraph and table (``object_contrast`` of each input's results), with a last
    row for the content loss's intensity target when it is given."""
    names = list(BOX_CLASSES.names[1:])
    rows = ["| input | " + " | ".join(names) + " |", "|---" * (1 + len(names)) + "|"]
    table = {name: r.get("object_contrast", {}) for name, r in inputs.items()}
    if intensity_target is not None:
        table[INTENSITY_TARGET_ROW] = intensity_target
    for name, values in table.items():
        rows.append(f"| {name} | " + " | ".join("n/a" if values.get(n) is None else f"{values[n]:.1f}"
                                                for n in names) + " |")
    target_note = ("" if intensity_target is None else
                   " The last row is the content loss's intensity target, max(infrared, visible Y): what a fusion "
                   "trained on the content loss alone is asked to keep.")
    return ("Object contrast in each input (validation split, working size): mean luma of a box's labelled "
            f"pixels minus the median luma of a 4-pixel ring around the box, grey levels.{target_note}\n\n"
            + "\n".join(rows) + "\n")


def write_report(report: dict[str, Any], out_dir: Path) -> None:
    """``task_driven.json``, ``task_driven.md`` and ``task_driven.png``, each written atomically."""
    names = list(BOX_CLASSES.names[1:])
    rows = table_header()
    for name, r in report["inputs"].items():
        rows.append(f"| {name} | {format_score(r['miou'])} | "
                    + " | ".join(format_score(r["iou"].get(n)) for n in names)
                    + " | " + " | ".join(format_score(r["box_ap50"].get(n)) for n in names)
                    + f" | {format_score(r['box_map50'])} |")
    text = (f"Task-driven evaluation: validation split ({report['validation_stems']} frames), network "
            f"trained {report['epochs']} epochs on {report['train_stems']} frames at {report['size'][0]}x"
            f"{report['size'][1]}. mIoU on {report.get('labels', 'warm')} pseudo-masks; AP50 from mask components "
            "vs YOLO boxes.\n\n"
            + "\n".join(rows) + "\n\n" + contrast_table(report["inputs"], report.get("intensity_target_contrast")))
    atomic_write(out_dir / "task_driven.md", text.encode())
    atomic_write(out_dir / "task_driven.json", json.dumps(report, indent=2).encode())
    atomic_write(out_dir / "task_driven.png", _bar_chart(report))


CHART_METRICS = ["mIoU"] + [f"AP50 {n}" for n in BOX_CLASSES.names[1:]] + ["box mAP50"]


def chart_row(result: Mapping[str, Any]) -> list[Any]:
    """An input's entries in ``CHART_METRICS`` order: scores of one run, or the spreads of several seeds."""
    return [result["miou"]] + [result["box_ap50"].get(n) for n in BOX_CLASSES.names[1:]] + [result["box_map50"]]


def _bar_chart(report: dict[str, Any]) -> bytes:
    values = {name: chart_row(r) for name, r in report["inputs"].items()}
    return bar_chart(values, "Segmentation trained on each input: mIoU (pseudo-masks) and box AP@0.5")


def bar_chart(values: Mapping[str, list[float | None]], title: str,
              errors: Mapping[str, list[float | None]] | None = None, groups: list[str] | None = None,
              ylabel: str = "score (validation split)") -> bytes:
    """PNG bytes of grouped bars, one group per ``groups`` entry (default ``CHART_METRICS``) and one bar per
    input (with optional error bars); a missing value draws as 0, without an error bar."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    groups = CHART_METRICS if groups is None else groups
    width = 0.8 / max(1, len(values))
    fig, axis = plt.subplots(figsize=(max(9.0, 1.1 * len(groups)), 4), dpi=100)
    for i, (name, scores) in enumerate(values.items()):
        xs = np.arange(len(groups)) + (i - (len(values) - 1) / 2) * width
        spread = None if errors is None else [np.nan if e is None else e for e in errors[name]]
        axis.bar(xs, [0.0 if v is None else v for v in scores], width, yerr=spread, capsize=2, label=name)
    axis.set_xticks(np.arange(len(groups)), groups)
    axis.set_ylim(0, 1)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: no bar is hidden behind it
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def atomic_write(path: Path, data: bytes) -> None:
    """A report is never half-written (see ``write_bytes_atomic``)."""
    write_bytes_atomic(path, data)
