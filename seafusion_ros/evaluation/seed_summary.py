"""Task-driven results over several training seeds: mean, spread and every seed's value.

On 49 validation frames with weak labels one segmentation run is noisy (a class's box AP can move by
0.2 between seeds), so a comparison between inputs should rest on several seeds. Each seed's full
report stays in its own folder; this module only combines them. The labelled mode has one table and
one chart for all its seeds (``summarise_labelled``, ``write_labelled_summary``: ``summary.{md,json,png}``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from seafusion_ros.data.labels import BOX_CLASSES
from seafusion_ros.evaluation.task_driven import (
    atomic_write,
    bar_chart,
    chart_row,
    contrast_table,
    format_score,
    table_header,
)


def _check_same_inputs(reports: Mapping[int, Mapping[str, Any]]) -> list[str]:
    """The inputs every seed's report has; ValueError when the seeds disagree or there is no report."""
    if not reports:
        raise ValueError("no seed reports to summarise")
    seeds = list(reports)
    inputs = list(reports[seeds[0]]["inputs"])
    for seed, report in reports.items():
        if list(report["inputs"]) != inputs:
            raise ValueError(f"seed {seed} has inputs {list(report['inputs'])}, seed {seeds[0]} has {inputs}")
    return inputs


def _spread(values: list[float | None]) -> dict[str, Any]:
    """Mean and sample standard deviation (0 for one seed) of the defined values, and all values."""
    present = [v for v in values if v is not None]
    if not present:
        return {"mean": None, "std": None, "per_seed": values}
    std = float(np.std(present, ddof=1)) if len(present) > 1 else 0.0
    return {"mean": float(np.mean(present)), "std": std, "per_seed": values}


def summarise_seeds(reports: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """Combine one ``run_task_driven`` report per seed (all with the same inputs) into per-input spreads."""
    inputs = _check_same_inputs(reports)
    seeds = list(reports)
    names = list(BOX_CLASSES.names)
    summary: dict[str, Any] = {}
    for name in inputs:
        runs = [reports[s]["inputs"][name] for s in seeds]
        summary[name] = {
            "miou": _spread([r["miou"] for r in runs]),
            "iou": {n: _spread([r["iou"].get(n) for r in runs]) for n in names},
            "box_ap50": {n: _spread([r["box_ap50"].get(n) for r in runs]) for n in names[1:]},
            "box_map50": _spread([r["box_map50"] for r in runs]),
            "object_contrast": runs[0].get("object_contrast", {}),  # the images' property: same every seed
        }
    first = reports[seeds[0]]
    return {"seeds": seeds, "inputs": summary, "validation_stems": first["validation_stems"],
            "train_stems": first["train_stems"], "size": first["size"], "epochs": first["epochs"],
            "labels": first.get("labels", "warm"),
            "intensity_target_contrast": first.get("intensity_target_contrast")}


def _cell(spread: Mapping[str, Any]) -> str:
    return "n/a" if spread["mean"] is None else f"{spread['mean']:.3f} ± {spread['std']:.3f}"


def write_seed_report(summary: dict[str, Any], out_dir: Path) -> None:
    """``task_driven.{md,json,png}`` in ``out_dir``: mean ± std over the seeds, then every seed's AP50."""
    names = list(BOX_CLASSES.names[1:])
    seeds = summary["seeds"]
    rows = table_header()
    per_seed = ["| input | class | " + " | ".join(f"seed {s}" for s in seeds) + " |",
                "|---" * (2 + len(seeds)) + "|"]
    for name, r in summary["inputs"].items():
        rows.append(f"| {name} | {_cell(r['miou'])} | " + " | ".join(_cell(r["iou"][n]) for n in names)
                    + " | " + " | ".join(_cell(r["box_ap50"][n]) for n in names) + f" | {_cell(r['box_map50'])} |")
        for n in names:
            values = " | ".join(format_score(v) for v in r["box_ap50"][n]["per_seed"])
            per_seed.append(f"| {name} | {n} | {values} |")
    text = (f"Task-driven evaluation over {len(seeds)} seeds ({', '.join(map(str, seeds))}): validation split "
            f"({summary['validation_stems']} frames), network trained {summary['epochs']} epochs on "
            f"{summary['train_stems']} frames at {summary['size'][0]}x{summary['size'][1]}. Mean ± sample "
            f"standard deviation over the seeds; mIoU on {summary.get('labels', 'warm')} pseudo-masks, AP50 from "
            f"mask components vs YOLO boxes. Each seed's own report is in seed_N/.\n\n" + "\n".join(rows)
            + "\n\nBox AP50 per seed:\n\n" + "\n".join(per_seed) + "\n\n"
            + contrast_table(summary["inputs"], summary.get("intensity_target_contrast")))
    means, errors = {}, {}
    for name, r in summary["inputs"].items():
        spreads = chart_row(r)
        means[name] = [s["mean"] for s in spreads]
        errors[name] = [s["std"] for s in spreads]
    title = f"Segmentation trained on each input, mean ± std over {len(seeds)} seeds"
    atomic_write(out_dir / "task_driven.md", text.encode())
    atomic_write(out_dir / "task_driven.json", json.dumps(summary, indent=2).encode())
    atomic_write(out_dir / "task_driven.png", bar_chart(means, title, errors))


def summarise_labelled(reports: Mapping[int, Mapping[str, Any]], card: Mapping[str, Any]) -> dict[str, Any]:
    """Combine one ``run_labelled`` report per seed into per-input, per-class spreads; ``card`` (data, split,
    command) is carried into the summary. The classes absent from the validation labels are the same for
    every input and seed (same frames, same size), so they are listed once."""
    inputs = _check_same_inputs(reports)
    seeds = list(reports)
    first = reports[seeds[0]]
    classes = list(first["classes"])
    label_pixels = first["inputs"][inputs[0]]["label_pixels"]
    summary: dict[str, Any] = {}
    for name in inputs:
        runs = [reports[s]["inputs"][name] for s in seeds]
        summary[name] = {"images": runs[0]["images"], "miou": _spread([r["miou"] for r in runs]),
                         "iou": {c: _spread([r["iou"][c] for r in runs]) for c in classes}}
    return {**card, "seeds": seeds, "inputs": summary, "classes": classes, "label_pixels": label_pixels,
            "absent_classes": [c for c in classes if label_pixels[c] == 0],
            **{k: first[k] for k in ("validation_stems", "train_stems", "size", "epochs", "arch",
                                     "backbone_lr_multiplier")}}


def _labelled_cell(spread: Mapping[str, Any], several_seeds: bool) -> str:
    if spread["mean"] is None:
        return "n/a"
    return f"{spread['mean']:.3f} ± {spread['std']:.3f}" if several_seeds else f"{spread['mean']:.3f}"


def write_labelled_summary(summary: dict[str, Any], out_dir: Path) -> None:
    """``summary.{md,json,png}`` in ``out_dir``: one table (mIoU and IoU per class, mean ± std over the seeds)
    and one bar chart of the same numbers; a class absent from the validation labels is marked in both."""
    seeds, classes, absent = summary["seeds"], summary["classes"], set(summary["absent_classes"])
    several = len(seeds) > 1
    header = ["mIoU"] + [f"{c} (absent)" if c in absent else c for c in classes]
    rows = ["| input | " + " | ".join(header) + " |", "|---" + "|---:" * len(header) + "|"]
    for name, r in summary["inputs"].items():
        cells = [_labelled_cell(r["miou"], several)]
        cells += ["absent" if c in absent else _labelled_cell(r["iou"][c], several) for c in classes]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    present = len(classes) - len(absent)
    spread = (f"mean ± sample standard deviation over {len(seeds)} seeds ({', '.join(map(str, seeds))}), every "
              "seed's value in summary.json" if several else f"seed {seeds[0]}")
    absent_note = ("" if not absent else f" Absent: {', '.join(c for c in classes if c in absent)} has no pixel in "
                   "the validation labels, so it has no IoU and is left out of the mIoU.")
    size = summary["size"]
    text = (f"Task-driven evaluation on pixel labels ({summary['data']}): {summary['arch']} trained "
            f"{summary['epochs']} epochs on the {summary['train_stems']} training frames of each input at "
            f"{size[0]}x{size[1]}, scored on the {summary['validation_stems']} validation frames (split: "
            f"{summary['split']['description']}); {spread}. IoU per class against the labels; mIoU over the "
            f"{present} classes present in the validation labels ({classes[0]} included).{absent_note}\n\n"
            + "\n".join(rows) + "\n")
    means = {name: [r["miou"]["mean"]] + [None if c in absent else r["iou"][c]["mean"] for c in classes]
             for name, r in summary["inputs"].items()}
    errors = {name: [r["miou"]["std"]] + [None if c in absent else r["iou"][c]["std"] for c in classes]
              for name, r in summary["inputs"].items()}
    groups = ["mIoU"] + [f"{c}\n(absent)" if c in absent else c for c in classes]
    title = ("Segmentation trained on each input, IoU on the validation labels"
             + (f", mean ± std over {len(seeds)} seeds" if several else f", seed {seeds[0]}"))
    atomic_write(out_dir / "summary.md", text.encode())
    atomic_write(out_dir / "summary.json", json.dumps(summary, indent=2).encode())
    atomic_write(out_dir / "summary.png", bar_chart(means, title, errors if several else None, groups,
                                                    ylabel="IoU (validation split)"))
