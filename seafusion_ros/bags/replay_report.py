"""The replay report: report.json (numbers), report.md (for people) and contact_sheet.png (pictures)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from seafusion_ros.bags.replay import ReplayResult
from seafusion_ros.evaluation.fusion_metrics import HIGHER_IS_BETTER, METRIC_NAMES
from seafusion_ros.evaluation.fusion_report import write_text_atomic
from seafusion_ros.imaging.image_files import write_image_atomic

STAGES = ("decode", "prepare", "fuse", "segment", "finish", "encode_write")
REPORT_JSON, REPORT_MD, CONTACT_SHEET = "report.json", "report.md", "contact_sheet.png"
REPORT_FILES = (REPORT_JSON, REPORT_MD, CONTACT_SHEET)


def summary_stats(values: list[float], scale: float = 1.0) -> dict[str, float]:
    """n, mean, std, median, p90, min and max of values times scale; {} when there are none."""
    if not values:
        return {}
    v = np.asarray(values, dtype=np.float64) * scale
    return {"n": int(v.size), "mean": float(v.mean()), "std": float(v.std()), "median": float(np.median(v)),
            "p90": float(np.percentile(v, 90)), "min": float(v.min()), "max": float(v.max())}


def summarise(result: ReplayResult) -> dict[str, Any]:
    """Everything the report says, as JSON-ready numbers (latencies and offsets in milliseconds)."""
    offsets = [(p.thermal_stamp_ns - p.rgb_stamp_ns) / 1e6 for p in result.pairs]
    latency = {stage: summary_stats([p.timings[stage] for p in result.pairs if stage in p.timings], 1000.0)
               for stage in STAGES}
    totals = [sum(p.timings.values()) for p in result.pairs]
    metrics = {name: summary_stats([p.metrics[name] for p in result.pairs if name in p.metrics])
               for name in METRIC_NAMES}
    return {
        "bag": result.bag,
        "output_bag": result.output_bag,
        "topics": result.topics,
        "ignored_topics": result.ignored_topics,
        "messages_received": result.received,
        "messages_rejected": result.rejected,
        "pairs": len(result.pairs),
        "pairs_skipped": result.skipped_pairs,
        "unmatched": result.unmatched,
        "stamp_offset_thermal_minus_rgb_ms": summary_stats(offsets),
        "latency_ms": {k: v for k, v in latency.items() if v},
        "total_latency_ms": summary_stats(totals, 1000.0),
        "fusion_metrics": {k: v for k, v in metrics.items() if v},
        "classes": result.classes,
        "problems": result.problems,
    }


def contact_sheet(samples: list[dict[str, np.ndarray]], count: int, width: int = 320) -> np.ndarray | None:
    """Rows of thermal | rgb | fused | overlay tiles (those present) for up to count evenly spread samples."""
    if not samples:
        return None
    picks = [samples[int(i)] for i in np.linspace(0, len(samples) - 1, min(count, len(samples)))]
    columns = [c for c in ("thermal", "rgb", "fused", "overlay") if c in picks[0]]
    rows = []
    for sample in picks:
        tiles = []
        for column in columns:
            image = sample[column]
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[:, :, ::-1]
            tile = cv2.resize(image, (width, int(round(image.shape[0] * width / image.shape[1]))),
                              interpolation=cv2.INTER_AREA)
            cv2.putText(tile, column, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(tile)
        rows.append(np.hstack(tiles))
    return np.vstack(rows)


def _markdown(summary: dict[str, Any], sheet: bool) -> str:
    lines = [f"# Replay report: `{summary['bag']}`", ""]
    if summary["problems"]:
        lines += ["## Problems", ""] + [f"- {p}" for p in summary["problems"]] + [""]
    received, unmatched = summary["messages_received"], summary["unmatched"]
    lines += ["## Pairing", "",
              f"- pairs formed: **{summary['pairs']}**",
              f"- thermal messages: {received['thermal']} ({unmatched['thermal']} unmatched, "
              f"{summary['messages_rejected']['thermal']} undecodable)",
              f"- RGB messages: {received['rgb']} ({unmatched['rgb']} unmatched, "
              f"{summary['messages_rejected']['rgb']} undecodable)"]
    off = summary["stamp_offset_thermal_minus_rgb_ms"]
    if off:
        lines.append(f"- stamp offset thermal - RGB: mean {off['mean']:.2f} ms, std {off['std']:.2f} ms, "
                     f"range [{off['min']:.2f}, {off['max']:.2f}] ms")
    if summary["ignored_topics"]:
        lines.append(f"- other topics in the bag (ignored): {', '.join(summary['ignored_topics'])}")
    if summary["output_bag"]:
        lines.append(f"- output bag: `{summary['output_bag']}`")
    if summary["latency_ms"]:
        lines += ["", "## Latency per pair (ms)", "", "| stage | median | p90 | max |", "|---|---:|---:|---:|"]
        for stage, s in {**summary["latency_ms"], "total": summary["total_latency_ms"]}.items():
            lines.append(f"| {stage} | {s['median']:.1f} | {s['p90']:.1f} | {s['max']:.1f} |")
    if summary["fusion_metrics"]:
        lines += ["", f"## Fusion metrics over {summary['pairs']} pairs", "", "| metric | mean | std | median |",
                  "|---|---:|---:|---:|"]
        for name, s in summary["fusion_metrics"].items():
            arrow = "↑" if HIGHER_IS_BETTER[name] else "↓"
            lines.append(f"| {name} {arrow} | {s['mean']:.4f} | {s['std']:.4f} | {s['median']:.4f} |")
    lines += ["", f"![contact sheet]({CONTACT_SHEET})", ""] if sheet else [""]
    return "\n".join(lines)


def write_report(result: ReplayResult, out_dir: str | os.PathLike, sample_frames: int = 6) -> dict[str, Any]:
    """Write report.json, report.md and (with pairs) contact_sheet.png into out_dir; returns the summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarise(result)
    sheet = contact_sheet(result.samples, sample_frames)
    if sheet is not None:
        write_image_atomic(out_dir / CONTACT_SHEET, sheet)
    write_text_atomic(out_dir / REPORT_JSON, json.dumps(summary, indent=2))
    write_text_atomic(out_dir / REPORT_MD, _markdown(summary, sheet is not None))
    return summary
