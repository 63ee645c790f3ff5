"""Compressed image transport: decode cost per message, and what JPEG does to the node's outputs.

1. Decode time (median) and message size of one 480x640 msrs_dev frame as the node receives it: raw
   rgb8 / 16UC1 Image, JPEG RGB and 16-bit PNG thermal CompressedImage.
2. The same msrs_dev pairs recorded twice with ``seafusion-make-bag`` (raw, and ``--compressed``:
   PNG thermal, JPEG RGB), both replayed with ``seafusion-replay`` and the bundled models; the fused
   images and class masks are compared stamp by stamp, next to the JPEG loss of the RGB input itself.

Prints two tables and writes bench/results/transport.json.

    .venv/bin/python bench/bench_transport.py [--pairs 24] [--jpeg-quality 90] [--precision fp32]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader

from seafusion_ros.bags.messages import compressed_message, deserialize_image, image_message
from seafusion_ros.cli.make_bag import main as make_bag_main
from seafusion_ros.cli.replay import main as replay_main
from seafusion_ros.imaging.compressed import decode_compressed
from seafusion_ros.imaging.encodings import COLOUR_ORDER, decode_image
from seafusion_ros.imaging.image_files import read_image, read_visible
from seafusion_ros.imaging.pair_input import decode_input
from seafusion_ros.imaging.stamps import stamp_to_ns

REPO = Path(__file__).resolve().parents[1]
MSRS = REPO.parent / "shared" / "data" / "msrs_dev"
RESULTS = REPO / "bench" / "results" / "transport.json"


def median_ms(decode, msg, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        decode(msg)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def decode_rows(stem: str, quality: int, repeats: int) -> list[dict]:
    rgb = np.ascontiguousarray(read_visible(MSRS / "vi" / f"{stem}.png")[:, :, ::-1])
    thermal = read_image(MSRS / "ir" / f"{stem}.png", color=False).astype(np.uint16) * 257
    messages = [("RGB raw rgb8 Image", image_message(rgb, "rgb8", 0, "rgb"), decode_image),
                ("RGB JPEG CompressedImage", compressed_message(rgb, "rgb8", 0, "rgb", "jpeg", quality),
                 decode_compressed),
                ("thermal raw 16UC1 Image", image_message(thermal, "16UC1", 0, "thermal"), decode_image),
                ("thermal 16-bit PNG CompressedImage", compressed_message(thermal, "16UC1", 0, "thermal", "png"),
                 decode_compressed)]
    return [{"message": name, "bytes": int(msg.data.nbytes), "decode_ms": median_ms(fn, msg, repeats)}
            for name, msg, fn in messages]


def _images(bag: Path, topics: tuple[str, ...]) -> dict[str, dict[int, np.ndarray]]:
    found: dict[str, dict[int, np.ndarray]] = {t: {} for t in topics}
    allowed = ("rgb8", "bgr8", "mono8", "16UC1", "mono16")
    with Reader(bag) as reader:
        for connection, _, raw in reader.messages(connections=[c for c in reader.connections if c.topic in topics]):
            msg = deserialize_image(raw, connection.msgtype)
            array, encoding = decode_input(msg, allowed)
            if COLOUR_ORDER.get(encoding) == "bgr":  # compressed colour decodes as bgr8
                array = np.ascontiguousarray(array[:, :, ::-1])
            found[connection.topic][stamp_to_ns(msg.header.stamp)] = array
    return found


def _psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)


def compare(raw_out: Path, jpeg_out: Path, raw_in: Path, jpeg_in: Path) -> dict:
    fused_raw, fused_jpeg = (_images(b, ("/fused/image", "/segmentation/mask")) for b in (raw_out, jpeg_out))
    inputs_raw = _images(raw_in, ("/thermal/image_raw", "/rgb/image_raw"))
    inputs_jpeg = _images(jpeg_in, ("/thermal/image_raw/compressed", "/rgb/image_raw/compressed"))
    stamps = sorted(fused_raw["/fused/image"].keys() & fused_jpeg["/fused/image"].keys())

    def stats(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
        diffs = [np.abs(a.astype(np.int32) - b.astype(np.int32)) for a, b in pairs]
        return {"mean_abs": float(np.mean([d.mean() for d in diffs])), "max_abs": int(max(d.max() for d in diffs)),
                "psnr_db": float(np.mean([_psnr(a, b, 255.0) for a, b in pairs]))}

    rgb = [(inputs_raw["/rgb/image_raw"][s], inputs_jpeg["/rgb/image_raw/compressed"][s]) for s in stamps]
    thermal_raw = inputs_raw["/thermal/image_raw"]
    thermal_png = inputs_jpeg["/thermal/image_raw/compressed"]
    masks = [(fused_raw["/segmentation/mask"][s], fused_jpeg["/segmentation/mask"][s]) for s in stamps]
    return {"pairs": len(stamps),
            "rgb_input_jpeg_loss": stats(rgb),
            "thermal_png_identical": all(np.array_equal(thermal_raw[s], thermal_png[s]) for s in thermal_raw),
            "fused": stats([(fused_raw["/fused/image"][s], fused_jpeg["/fused/image"][s]) for s in stamps]),
            "mask_pixel_agreement": float(np.mean([np.mean(a == b) for a, b in masks]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=24, help="msrs_dev pairs (first N by name)")
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument("--precision", default="fp32", help="replay precision (fp32: differences are JPEG's alone)")
    parser.add_argument("--repeats", type=int, default=50, help="decode timing runs (median reported)")
    args = parser.parse_args()
    if not (MSRS / "ir").is_dir():
        raise SystemExit(f"{MSRS} not found: ../shared/data/msrs_dev is needed")
    stems = sorted(p.stem for p in (MSRS / "ir").glob("*.png"))[: args.pairs]

    decode = decode_rows(stems[0], args.jpeg_quality, args.repeats)
    print(f"decode, one 480x640 msrs_dev frame ({stems[0]}), median of {args.repeats}")
    print(f"{'message':36s} {'bytes':>9s} {'decode ms':>10s}")
    for row in decode:
        print(f"{row['message']:36s} {row['bytes']:9d} {row['decode_ms']:10.2f}")

    with tempfile.TemporaryDirectory(prefix="bench_transport_") as tmp:
        work = Path(tmp)
        for name in ("ir", "vi"):
            (work / name).mkdir()
            for stem in stems:
                (work / name / f"{stem}.png").symlink_to(MSRS / name / f"{stem}.png")
        bags = {"raw": [], "compressed": ["--compressed", "--jpeg-quality", str(args.jpeg_quality)]}
        for name, extra in bags.items():
            if make_bag_main([str(work / f"{name}_bag"), "--ir", str(work / "ir"), "--vis", str(work / "vi"),
                              "--no-progress", *extra]) != 0:
                raise SystemExit(f"seafusion-make-bag failed for the {name} bag")
            if replay_main([str(work / f"{name}_bag"), "--out", str(work / f"{name}_replay"), "--device", "cpu",
                            "--precision", args.precision, "--no-metrics", "--no-progress"]) != 0:
                raise SystemExit(f"seafusion-replay failed for the {name} bag")
        sizes = {name: sum(f.stat().st_size for f in (work / f"{name}_bag").iterdir()) for name in bags}
        result = compare(work / "raw_replay" / "output_bag", work / "compressed_replay" / "output_bag",
                         work / "raw_bag", work / "compressed_bag")

    print(f"\nraw vs compressed bag ({result['pairs']} msrs_dev pairs, JPEG quality {args.jpeg_quality}, "
          f"replay precision {args.precision}); bag size raw {sizes['raw'] / 1e6:.1f} MB, "
          f"compressed {sizes['compressed'] / 1e6:.1f} MB")
    print(f"{'compared':34s} {'mean |diff|':>12s} {'max |diff|':>11s} {'PSNR dB':>8s}")
    for label, key in (("RGB input: raw vs JPEG", "rgb_input_jpeg_loss"), ("fused output: raw vs JPEG bag", "fused")):
        row = result[key]
        print(f"{label:34s} {row['mean_abs']:12.3f} {row['max_abs']:11d} {row['psnr_db']:8.2f}")
    print(f"thermal PNG identical to raw: {result['thermal_png_identical']}; class mask pixels equal: "
          f"{100 * result['mask_pixel_agreement']:.2f} %")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp_json = RESULTS.with_suffix(".json.tmp")
    tmp_json.write_text(json.dumps({
        "decode": decode, "replay": result, "bag_bytes": sizes, "jpeg_quality": args.jpeg_quality,
        "precision": args.precision, "stems": stems,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
    }, indent=2) + "\n")
    os.replace(tmp_json, RESULTS)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
