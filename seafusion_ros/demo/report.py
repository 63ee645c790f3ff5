"""The live demo's report, from its two bags: what was played in, and what the node published.

ROS-free (rosbags only), so the report can be rebuilt from the bags anywhere. Rates are averaged over
the recording's span in bag time. End-to-end latency is the recorder's receive time (``/clock`` time,
so bag time) minus the input stamp each output carries; per-stage latency comes from the node's last
``/diagnostics`` status in the output bag. Pictures: the inputs the node fused (the RGB image with
the output's stamp and the thermal image nearest to it, the node's partner unless messages were lost
in transport), the fused image and the overlay, on one contact sheet.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seafusion_ros.bags.bag_reader import BagReader
from seafusion_ros.bags.messages import TYPESTORE, deserialize_image, image_array
from seafusion_ros.bags.replay_report import contact_sheet, summary_stats
from seafusion_ros.evaluation.fusion_report import write_text_atomic
from seafusion_ros.imaging.encodings import COLOUR_ENCODINGS, COLOUR_ORDER, THERMAL_ENCODINGS
from seafusion_ros.imaging.image_files import write_image_atomic
from seafusion_ros.imaging.pair_input import decode_input
from seafusion_ros.imaging.stamps import stamp_to_ns
from seafusion_ros.imaging.time_sync import pair_streams
from seafusion_ros.inference.thermal_gain import ThermalGain

FUSED, MASK, OVERLAY = "/fused/image", "/segmentation/mask", "/segmentation/overlay"
CLASSES, DIAGNOSTICS = "/segmentation/classes", "/diagnostics"
OUTPUT_IMAGES = (FUSED, MASK, OVERLAY)
NODE_STAGES = ("decode", "fuse", "segment", "publish", "in_node", "end_to_end")


@dataclass
class DemoRun:
    """How the demo ran: the bags, the input topics in the input bag, and settings worth reporting."""

    input_bag: Path
    output_bag: Path
    thermal_topic: str
    rgb_topic: str
    settings: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    slop_ns: int = 50_000_000
    queue_size: int = 10


def _input_index(run: DemoRun) -> tuple[dict[str, Any], dict[int, int]]:
    """Counts, stamps and span of the inputs, and RGB stamp -> nearest thermal stamp (within the slop)."""
    events, stamps = [], {"thermal": [], "rgb": []}
    with BagReader(run.input_bag) as reader:
        wanted = [c for c in reader.connections if c.topic in (run.thermal_topic, run.rgb_topic)]
        for connection, _, raw in reader.messages(connections=wanted):
            role = "thermal" if connection.topic == run.thermal_topic else "rgb"
            stamp = stamp_to_ns(deserialize_image(raw, connection.msgtype).header.stamp)
            stamps[role].append(stamp)
            events.append((0 if role == "thermal" else 1, stamp, stamp))
        span_ns = reader.end_time - reader.start_time
    pairs = pair_streams(events, "approximate", run.queue_size, run.slop_ns)
    info = {role: {"messages": len(s), "camera_rate_hz": _rate(s)} for role, s in stamps.items()}
    thermal = np.array(sorted(stamps["thermal"]), dtype=np.int64)
    partner = {}
    for rgb in stamps["rgb"]:
        if thermal.size:
            i = int(np.argmin(np.abs(thermal - rgb)))
            if abs(int(thermal[i]) - rgb) < run.slop_ns:
                partner[rgb] = int(thermal[i])
    return {"inputs": info, "span_s": span_ns / 1e9, "rgb_stamps": set(stamps["rgb"]),
            "pairs_by_sync_rules": len(pairs)}, partner


def _rate(stamps: list[int]) -> float:
    return (len(stamps) - 1) / ((max(stamps) - min(stamps)) / 1e9) if len(stamps) > 1 and max(stamps) > min(stamps) \
        else 0.0


def _read_outputs(output_bag: Path) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str] | None, dict | None]:
    """Per output image topic the messages' stamps, receive times and layout; the node's last diagnostics; classes."""
    outputs: dict[str, list[dict[str, Any]]] = {}
    diagnostics, classes = None, None
    with BagReader(output_bag) as reader:
        for connection, log_ns, raw in reader.messages():
            if connection.topic in OUTPUT_IMAGES:
                msg = deserialize_image(raw)
                outputs.setdefault(connection.topic, []).append(
                    {"stamp_ns": stamp_to_ns(msg.header.stamp), "log_ns": log_ns, "height": int(msg.height),
                     "width": int(msg.width), "encoding": msg.encoding, "frame_id": msg.header.frame_id})
            elif connection.topic == DIAGNOSTICS:
                array = TYPESTORE.deserialize_cdr(raw, connection.msgtype)
                for status in array.status:
                    if status.name.endswith("seafusion_node"):
                        diagnostics = {kv.key: kv.value for kv in status.values}
            elif connection.topic == CLASSES:
                classes = json.loads(TYPESTORE.deserialize_cdr(raw, connection.msgtype).data)
    return outputs, diagnostics, classes


def _number(values: dict[str, str], key: str) -> float | None:
    try:
        number = float(values[key])
    except (KeyError, ValueError):
        return None
    return None if np.isnan(number) else number


def summarise(run: DemoRun) -> tuple[dict[str, Any], dict[int, int]]:
    """Everything the report says, as JSON-ready numbers; and the RGB -> thermal stamp pairs."""
    inputs, partner = _input_index(run)
    span = max(inputs["span_s"], 1e-9)
    outputs, diagnostics, classes = _read_outputs(run.output_bag) if run.output_bag.exists() else ({}, None, None)
    problems = list(run.problems)
    if not run.output_bag.exists():
        problems.append(f"no output bag at {run.output_bag}")
    topics = {}
    for topic, messages in sorted(outputs.items(), key=lambda item: OUTPUT_IMAGES.index(item[0])):
        foreign = [m["stamp_ns"] for m in messages if m["stamp_ns"] not in inputs["rgb_stamps"]]
        if foreign:
            problems.append(f"{len(foreign)} {topic} messages carry a stamp that is no input RGB stamp")
        topics[topic] = {
            "messages": len(messages), "rate_hz": len(messages) / span,
            "sizes": sorted({f"{m['width']}x{m['height']}" for m in messages}),
            "encodings": sorted({m["encoding"] for m in messages}),
            "stamps_from_inputs": not foreign,
            "end_to_end_ms": summary_stats([(m["log_ns"] - m["stamp_ns"]) / 1e6 for m in messages]),
        }
    if FUSED not in outputs:
        problems.append("the node published no fused image (see logs/node.log)")
    node: dict[str, Any] = {}
    if diagnostics is not None:
        counts = {k: _number(diagnostics, k) for k in ("thermal_received", "rgb_received", "paired", "processed",
                                                       "dropped_pairs", "skipped_no_subscribers")}
        stages = {stage: {"mean": _number(diagnostics, f"latency_{stage}_ms"),
                          "max": _number(diagnostics, f"latency_{stage}_max_ms")} for stage in NODE_STAGES}
        node = {**{k: int(v) for k, v in counts.items() if v is not None},
                "stage_latency_ms": {stage: v for stage, v in stages.items() if v["mean"] is not None},
                "device": diagnostics.get("device", ""), "segmentation": diagnostics.get("segmentation", ""),
                "synchroniser": diagnostics.get("synchroniser", ""), "input_qos": diagnostics.get("input_qos", "")}
        node["rates_hz"] = {k: node[k] / span for k in ("thermal_received", "rgb_received", "paired", "processed")
                            if k in node}
    else:
        problems.append("no /diagnostics from seafusion_node in the output bag")
    summary = {"settings": run.settings, "input_bag": str(run.input_bag), "output_bag": str(run.output_bag),
               "recording_span_s": inputs["span_s"], "inputs": inputs["inputs"],
               "pairs_by_sync_rules": inputs["pairs_by_sync_rules"], "node": node, "outputs": topics,
               "classes": classes, "problems": problems}
    return summary, partner


def _samples(run: DemoRun, partner: dict[int, int], count: int) -> list[dict[str, np.ndarray]]:
    """Thermal, RGB, fused and overlay images for up to ``count`` output stamps spread over the run."""
    with BagReader(run.output_bag) as reader:
        fused_stamps = sorted(stamp_to_ns(deserialize_image(raw).header.stamp)
                              for c, _, raw in reader.messages() if c.topic == FUSED)
        if not fused_stamps:
            return []
        chosen = {fused_stamps[int(i)] for i in np.linspace(0, len(fused_stamps) - 1, min(count, len(fused_stamps)))}
        images: dict[int, dict[str, np.ndarray]] = {s: {} for s in chosen}
        for connection, _, raw in reader.messages():
            if connection.topic in (FUSED, OVERLAY):
                msg = deserialize_image(raw)
                stamp = stamp_to_ns(msg.header.stamp)
                if stamp in images:
                    images[stamp]["fused" if connection.topic == FUSED else "overlay"] = image_array(msg)
    wanted = {("rgb", s) for s in chosen} | {("thermal", partner[s]) for s in chosen if s in partner}
    gain = ThermalGain()
    with BagReader(run.input_bag) as reader:
        for connection, _, raw in reader.messages():
            role = {run.thermal_topic: "thermal", run.rgb_topic: "rgb"}.get(connection.topic)
            msg = deserialize_image(raw, connection.msgtype) if role else None
            if role is None or (role, stamp_to_ns(msg.header.stamp)) not in wanted:
                continue
            allowed = COLOUR_ENCODINGS if role == "rgb" else THERMAL_ENCODINGS
            stamp, (array, encoding) = stamp_to_ns(msg.header.stamp), decode_input(msg, allowed)
            if role == "rgb":
                if COLOUR_ORDER.get(encoding) == "bgr":
                    array = array[:, :, 2::-1]
                images[stamp]["rgb"] = np.ascontiguousarray(array[..., :3]) if array.ndim == 3 else array
            else:
                for rgb_stamp in [s for s in chosen if partner.get(s) == stamp]:
                    images[rgb_stamp]["thermal"] = _display_thermal(array, gain)
    columns = ("thermal", "rgb", "fused", "overlay")
    rows = [images[s] for s in sorted(images)]
    present = [c for c in columns if all(c in row for row in rows)]
    return [{c: row[c] for c in present} for row in rows]


def _display_thermal(array: np.ndarray, gain: ThermalGain) -> np.ndarray:
    """8-bit view of a thermal frame with the node's default percentile gain."""
    if array.dtype == np.uint8:
        return array
    scale, offset = gain.scale_and_offset(array)
    return np.clip((array.astype(np.float32) * scale + offset) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(summary: dict[str, Any]) -> str:
    """report.md: what ran, rates, latencies, outputs, pictures, problems."""
    s, node, outputs = summary["settings"], summary["node"], summary["outputs"]
    span = summary["recording_span_s"]
    lines = ["# seafusion_ros live demo", "",
             f"The bag ({s.get('bag', summary['input_bag'])}, {span:.1f} s) was played into a running "
             f"`seafusion_node` by `seafusion-play` (rate {s.get('rate', 1.0):g}, /clock published, node and "
             "recorder on `use_sim_time`); `seafusion-record` wrote the node's outputs, its latched classes and "
             f"/diagnostics to `{Path(summary['output_bag']).name}/`.", ""]
    lines += [f"- {key}: `{value}`" for key, value in s.items()]
    if summary["problems"]:
        lines += ["", "## Problems", ""] + [f"- {p}" for p in summary["problems"]]
    ins, rates = summary["inputs"], node.get("rates_hz", {})
    lines += ["", f"## Rates (averaged over the {span:.1f} s recording)", "",
              "| stream | messages | rate (Hz) |", "|---|---:|---:|",
              f"| thermal in the bag | {ins['thermal']['messages']} | {ins['thermal']['camera_rate_hz']:.1f} |",
              f"| RGB in the bag | {ins['rgb']['messages']} | {ins['rgb']['camera_rate_hz']:.1f} |"]
    for key, label in (("thermal_received", "thermal received by the node"),
                       ("rgb_received", "RGB received by the node"), ("paired", "pairs formed by the node"),
                       ("processed", "pairs processed (fused and published)")):
        if key in node:
            lines.append(f"| {label} | {node[key]} | {rates[key]:.2f} |")
    for topic, t in outputs.items():
        lines.append(f"| {topic} recorded | {t['messages']} | {t['rate_hz']:.2f} |")
    played = ins["thermal"]["messages"] + ins["rgb"]["messages"]
    if "thermal_received" in node and "rgb_received" in node:
        lost = played - node["thermal_received"] - node["rgb_received"]
        lines += ["", f"From the complete bag the synchroniser rules form {summary['pairs_by_sync_rules']} pairs."]
        if lost > 0:
            lines[-1] += (f" {lost} of the {played} played messages never reached the node (input QoS "
                          f"{node.get('input_qos', '?')}): best-effort delivery drops large images when the receiving "
                          "process is busy, as with a real camera; `--reliable` plays them reliably instead.")
    if "paired" in node and "processed" in node:
        fuse = node["stage_latency_ms"].get("fuse", {}).get("mean")
        pair_period = 1000.0 * span / node["paired"] if node["paired"] else None
        lines += ["", f"The node formed {node['paired']} pairs and processed {node['processed']}; "
                  f"{node.get('dropped_pairs', 0)} were replaced by a newer pair before its worker got to them. "
                  "That is by design: the worker always takes the newest pair, so outputs stay current instead "
                  f"of queueing up. Here one fusion took {_fmt(fuse, 0)} ms on `{node.get('device', '?')}` while a "
                  f"new pair formed every {_fmt(pair_period, 0)} ms."]
    lines += ["", "## Latency (ms)", "", "| measure | mean | median | p90 | max |", "|---|---:|---:|---:|---:|"]
    for topic, t in outputs.items():
        e = t["end_to_end_ms"]
        if e:
            lines.append(f"| end to end, {topic} (receive - input stamp) | {e['mean']:.0f} | {e['median']:.0f} | "
                         f"{e['p90']:.0f} | {e['max']:.0f} |")
    for stage, v in node.get("stage_latency_ms", {}).items():
        if stage == "segment" and node.get("segmentation") == "off":
            continue
        lines.append(f"| node stage `{stage}` (/diagnostics, last 50 pairs) | {_fmt(v['mean'])} |  |  | "
                     f"{_fmt(v['max'])} |")
    lines += ["", "## Outputs", "", "| topic | messages | size | encoding | stamps = input RGB stamps |",
              "|---|---:|---|---|---|"]
    for topic, t in outputs.items():
        lines.append(f"| {topic} | {t['messages']} | {', '.join(t['sizes'])} | {', '.join(t['encodings'])} | "
                     f"{'yes' if t['stamps_from_inputs'] else 'NO'} |")
    if summary["classes"]:
        lines.append(f"\nClasses (segmentation/classes): {', '.join(summary['classes'].get('classes', []))}")
    elif node.get("segmentation") == "off":
        lines.append("\nSegmentation is off (no segmentation model installed): fused image only, no mask or overlay.")
    lines += ["", "## Pictures", "",
              "Thermal (8-bit view) | RGB | fused | overlay (when segmenting), for outputs spread over the run:", "",
              "![contact sheet](contact_sheet.png)", ""]
    return "\n".join(lines)


def write_demo_report(run: DemoRun, out_dir: str | os.PathLike, sample_frames: int = 4) -> dict[str, Any]:
    """Write report.json, report.md and contact_sheet.png into out_dir; returns the summary."""
    out_dir = Path(out_dir)
    summary, partner = summarise(run)
    samples = _samples(run, partner, sample_frames) if run.output_bag.exists() else []
    sheet = contact_sheet(samples, sample_frames)
    if sheet is not None:
        write_image_atomic(out_dir / "contact_sheet.png", sheet)
    else:
        summary["problems"].append("no output frame to show: contact_sheet.png not written")
    write_text_atomic(out_dir / "report.json", json.dumps(summary, indent=2))
    write_text_atomic(out_dir / "report.md", markdown(summary))
    return summary
