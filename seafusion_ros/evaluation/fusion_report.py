"""Evaluation outputs: per-image CSV, JSON summary, Markdown table, CDF curves and an example grid.

Every file is written under a temporary name in the output folder and renamed into place, so a
reader never sees half a report. Undefined metric values (see ``MetricUndefinedError``) are empty
CSV cells with a note, are left out of the statistics, and are counted under ``undefined`` in the
JSON; JSON is written with ``allow_nan=False`` so no NaN can slip into it.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from seafusion_ros.evaluation.fusion_metrics import (
    HIGHER_IS_BETTER,
    METRIC_DESCRIPTIONS,
    METRIC_NAMES,
)
from seafusion_ros.evaluation.pairs import EvaluationPlan, read_metric_image
from seafusion_ros.evaluation.runner import ItemResult
from seafusion_ros.imaging.image_files import write_bytes_atomic

CONVENTIONS = ("Tang et al. MATLAB suite definitions (shared/docs/metrics_reference.md): colour -> gray "
               "with MATLAB rgb2gray weights rounded to uint8; EN and MI on uint8 (MI in bits), the rest "
               "on float 0..255. Statistics over the scored pairs: mean, population std (ddof 0), median; "
               "undefined values are excluded and counted under 'undefined'.")


SPLIT_WORDS = {"all": "all pairs (training and validation)", "train": "training split", "val": "validation split"}


@dataclass(frozen=True)
class DataSelection:
    """The data set split the pairs came from (``--data``): a score is only meaningful next to the frames
    it covers, and a validation score only if the model never trained on them."""

    root: str
    family: str
    split: str
    rule: str

    def line(self) -> str:
        return f"Pairs: {SPLIT_WORDS[self.split]} of the {self.family} data set at {self.root} ({self.rule})."


@dataclass(frozen=True)
class OutputMode:
    """The engine settings shared by every method fused on the fly (``weights``: method -> checkpoint).

    One set for all of them, so their rows differ by the weights alone; a per-frame min-max stretch
    against an unstretched output would otherwise move every contrast metric on its own.
    """

    weights: dict[str, str]
    normalize: str
    precision: str
    backend: str
    device: str
    internal_scale: float
    thermal_gain: str

    def settings(self) -> str:
        text = f"--normalize {self.normalize}, precision {self.precision}, backend {self.backend}, device {self.device}"
        return text + (f", internal scale {self.internal_scale:g}" if self.internal_scale != 1.0 else "")

    def line(self) -> str:
        return f"Output mode: all --weights methods ({', '.join(self.weights)}) fused with {self.settings()}."


def folder_methods(methods: list[str], mode: OutputMode | None) -> list[str]:
    """Methods scored from a folder while others were fused here (none when nothing was fused here)."""
    return [] if mode is None else [m for m in methods if m not in mode.weights]


def folder_note(folders: list[str]) -> str:
    """The one line that says the folder methods' output mode is unknown (beside methods fused here)."""
    return (f"--method folder(s) {', '.join(folders)} were produced elsewhere; their output mode is not known "
            "to this tool.")


def provenance_lines(methods: list[str], selection: DataSelection | None, mode: OutputMode | None) -> list[str]:
    """What the pairs are and how the fused images were made, for the top of summary.md."""
    lines = [selection.line()] if selection else []
    if mode is not None:
        lines.append(mode.line())
        folders = folder_methods(methods, mode)
        if folders:
            lines.append(f"Note: {folder_note(folders)}")
    return [f"- {line}" for line in lines]


def _arrow(metric: str) -> str:
    return "↑" if HIGHER_IS_BETTER[metric] else "↓"


def _number(value: float, scale: float | None = None) -> str:
    """Four decimals, or scientific notation when ``scale`` (default: the value) is tiny, as the Nabf
    of an artefact-free method is; a std takes its mean as scale so both read alike."""
    scale = value if scale is None else scale
    return f"{value:.4f}" if scale == 0 or abs(scale) >= 0.01 else f"{value:.3e}"


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def save_figure_atomic(figure: plt.Figure, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Render in memory, then write atomically; the figure is closed either way."""
    path = Path(path)
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, dpi=dpi, format=path.suffix.lstrip(".") or "png", bbox_inches="tight")
    finally:
        plt.close(figure)
    return write_bytes_atomic(path, buffer.getvalue())


def scored(results: list[ItemResult]) -> list[ItemResult]:
    return [r for r in results if r.error is None]


def metric_values(results: list[ItemResult], method: str, metric: str) -> np.ndarray:
    """The defined values of one metric for one method, over the scored pairs."""
    values = [r.scores[method].values[metric] for r in scored(results) if metric in r.scores[method].values]
    return np.asarray(values, dtype=np.float64)


def _statistic(values: np.ndarray, how) -> float | None:
    return float(how(values)) if values.size else None


def summarize(results: list[ItemResult], methods: list[str]) -> dict:
    """``{"methods": {NAME: {"n", "mean", "std", "median"}}, "undefined": {...}}``."""
    summary: dict = {"methods": {}, "undefined": {}}
    ok = scored(results)
    for method in methods:
        stats = {"n": len(ok), "mean": {}, "std": {}, "median": {}}
        for metric in METRIC_NAMES:
            values = metric_values(results, method, metric)
            stats["mean"][metric] = _statistic(values, np.mean)
            stats["std"][metric] = _statistic(values, np.std)
            stats["median"][metric] = _statistic(values, np.median)
        summary["methods"][method] = stats
        undefined: dict[str, dict] = {}
        for result in ok:
            for metric, reason in result.scores[method].undefined.items():
                entry = undefined.setdefault(metric, {"count": 0, "reasons": {}})
                entry["count"] += 1
                entry["reasons"][reason] = entry["reasons"].get(reason, 0) + 1
        if undefined:
            summary["undefined"][method] = undefined
    return summary


def per_image_csv(results: list[ItemResult], methods: list[str]) -> str:
    """One row per method x pair; an undefined value is an empty cell explained in ``notes``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "stem", *METRIC_NAMES, "notes"])
    for method in methods:
        for result in scored(results):
            scores = result.scores[method]
            cells = [repr(scores.values[m]) if m in scores.values else "" for m in METRIC_NAMES]
            notes = "; ".join(f"{m} undefined: {reason}" for m, reason in scores.undefined.items())
            writer.writerow([method, result.stem, *cells, notes])
    return buffer.getvalue()


def markdown_table(summary: dict, skipped: list[tuple[str, str]],
                   unused_fused: dict[str, list[str]] | None = None, provenance: list[str] | None = None) -> str:
    """Methods as rows, metrics as columns (mean ± std, arrow = better direction, best in bold), under the
    ``provenance`` lines (see ``provenance_lines``)."""
    methods = summary["methods"]
    best: dict[str, float] = {}
    for metric in METRIC_NAMES:
        means = [s["mean"][metric] for s in methods.values() if s["mean"][metric] is not None]
        if means and len(methods) > 1:
            best[metric] = max(means) if HIGHER_IS_BETTER[metric] else min(means)
    lines = [
        "# Fusion evaluation",
        "",
        *([*provenance, ""] if provenance else []),
        "Mean ± standard deviation over the pairs; ↑ higher is better, ↓ lower is better"
        + ("; best method in bold." if len(methods) > 1 else "."),
        "",
        "| method | n | " + " | ".join(f"{m} {_arrow(m)}" for m in METRIC_NAMES) + " |",
        "|---|---:|" + "---:|" * len(METRIC_NAMES),
    ]
    for name, stats in methods.items():
        cells = []
        for metric in METRIC_NAMES:
            mean, std = stats["mean"][metric], stats["std"][metric]
            if mean is None:
                cells.append("—")
                continue
            cell = f"{_number(mean)} ± {_number(std, mean)}"
            cells.append(f"**{cell}**" if best.get(metric) == mean else cell)
        lines.append(f"| {name} | {stats['n']} | " + " | ".join(cells) + " |")
    lines.append("")
    for method, undefined in summary.get("undefined", {}).items():
        for metric, entry in undefined.items():
            reasons = ", ".join(entry["reasons"])
            lines.append(f"- {method}: {metric} undefined on {entry['count']} pair(s) ({reasons}); excluded.")
    if skipped:
        lines.append(f"- {len(skipped)} pair(s) skipped, see summary.json: "
                     + "; ".join(f"{stem} ({reason})" for stem, reason in skipped[:5])
                     + (" ..." if len(skipped) > 5 else ""))
    for method, stems in (unused_fused or {}).items():
        lines.append(f"- {len(stems)} fused image(s) of {method} have no IR/visible pair and were ignored.")
    lines += ["", "Metrics: " + "; ".join(f"{m}: {METRIC_DESCRIPTIONS[m]}" for m in METRIC_NAMES) + ".", ""]
    return "\n".join(lines)


def plot_cdf(results: list[ItemResult], methods: list[str]) -> plt.Figure:
    """One panel per metric, one curve per method: a point (x, y) means y% of pairs score at most x."""
    cols = 4
    rows = int(np.ceil(len(METRIC_NAMES) / cols))
    figure, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, metric in zip(axes.ravel(), METRIC_NAMES, strict=False):
        for i, method in enumerate(methods):
            values = np.sort(metric_values(results, method, metric))
            if not values.size:
                continue
            percent = 100.0 * np.arange(1, values.size + 1) / values.size
            ax.plot(values, percent, color=colours(i % 10), linewidth=1.6, marker="o",
                    markersize=2.5 if values.size <= 80 else 0, label=f"{method}: {values.mean():.4g}")
        ax.set_title(f"{metric} {_arrow(metric)}", fontsize=11, fontweight="bold")
        ax.set_ylim(0, 100)
        ax.set_ylabel("pairs scoring ≤ x (%)", fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(6))
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 4), useMathText=True)
        ax.tick_params(labelsize=8)
        if ax.lines:
            ax.legend(fontsize=7, loc="lower right", title="mean", title_fontsize=7)
        else:
            ax.text(0.5, 0.5, "undefined on every pair", ha="center", va="center", transform=ax.transAxes)
    for ax in axes.ravel()[len(METRIC_NAMES):]:
        ax.axis("off")
    n = len(scored(results))
    figure.suptitle(f"Cumulative distribution of fusion metrics over {n} pairs "
                    "(curve further right is better for ↑, further left for ↓)", fontsize=12)
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    return figure


def example_stems(results: list[ItemResult], count: int) -> list[str]:
    """``count`` scored stems spread evenly over the sorted list (deterministic)."""
    stems = [r.stem for r in scored(results)]
    if count <= 0 or not stems:
        return []
    picks = np.unique(np.linspace(0, len(stems) - 1, min(count, len(stems))).round().astype(int))
    return [stems[i] for i in picks]


def _show(ax: plt.Axes, image: np.ndarray, title: str | None) -> None:
    if image.ndim == 2:
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)


def plot_examples(plan: EvaluationPlan, stems: list[str]) -> plt.Figure:
    """Rows of example pairs: infrared, visible, then each method's fused image."""
    items = {item.stem: item for item in plan.items}
    columns = ["infrared", "visible", *plan.methods]
    figure, axes = plt.subplots(len(stems), len(columns), figsize=(2.8 * len(columns), 2.2 * len(stems)),
                                squeeze=False)
    for row, stem in enumerate(stems):
        item = items[stem]
        paths = [item.ir, item.visible, *(item.fused[m] for m in plan.methods)]
        for col, (path, title) in enumerate(zip(paths, columns, strict=True)):
            _show(axes[row, col], read_metric_image(path), title if row == 0 else None)
        axes[row, 0].set_ylabel(stem, fontsize=9)
    figure.tight_layout()
    return figure


PLOT_FILES = {"cdf": "cdf.png", "examples": "examples.png"}


def _mode_document(methods: list[str], mode: OutputMode | None) -> dict | None:
    if mode is None:
        return None
    settings = {k: v for k, v in asdict(mode).items() if k != "weights"}
    folders = folder_methods(methods, mode)
    return {"fused_here": mode.weights, "settings": settings, "description": mode.line(),
            "folder_methods": folders, "folder_note": folder_note(folders) if folders else None}


def write_report(out_dir: str | os.PathLike, plan: EvaluationPlan, results: list[ItemResult],
                 examples: int = 4, selection: DataSelection | None = None,
                 mode: OutputMode | None = None) -> dict[str, Path]:
    """Write per_image.csv, summary.json, summary.md, cdf.png and examples.png; return their paths.

    ``selection`` (the data set split) and ``mode`` (the settings of the methods fused on the fly) are
    stated in summary.json (``data``, ``output_mode``) and at the top of summary.md.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    skipped = list(plan.skipped) + [(r.stem, r.error) for r in results if r.error is not None]
    summary = summarize(results, plan.methods)
    document = {
        "methods": summary["methods"],
        "metrics": {m: {"description": METRIC_DESCRIPTIONS[m], "higher_is_better": HIGHER_IS_BETTER[m]}
                    for m in METRIC_NAMES},
        "conventions": CONVENTIONS,
        "data": asdict(selection) if selection else None,
        "output_mode": _mode_document(plan.methods, mode),
        "undefined": summary["undefined"],
        "skipped": [{"stem": stem, "reason": reason} for stem, reason in skipped],
        "unused_fused": plan.unused_fused,
    }
    written = {
        "csv": write_text_atomic(out / "per_image.csv", per_image_csv(results, plan.methods)),
        "json": write_text_atomic(out / "summary.json",
                                  json.dumps(document, indent=2, allow_nan=False) + "\n"),
        "markdown": write_text_atomic(out / "summary.md", markdown_table(
            summary, skipped, plan.unused_fused, provenance_lines(plan.methods, selection, mode))),
    }
    if scored(results):
        written["cdf"] = save_figure_atomic(plot_cdf(results, plan.methods), out / "cdf.png")
        stems = example_stems(results, examples)
        if stems:
            written["examples"] = save_figure_atomic(plot_examples(plan, stems), out / "examples.png")
    for stale in PLOT_FILES.keys() - written.keys():  # an earlier report's plot would pass for this one's
        (out / PLOT_FILES[stale]).unlink(missing_ok=True)
    return written
