"""What the content loss sees on each camera: source statistics per data set's training split.

The content loss (reference section 3) targets max(infrared, visible luminance) per pixel and the
larger of the two Sobel magnitudes. Which source wins, and by how much, depends on the camera: its
thermal gain (AGC), its visible exposure and sharpness. Per data set this prints:

- mean and standard deviation of the 8-bit infrared and of the visible luminance;
- ``ir>=vis``: the share of pixels whose intensity target is the infrared;
- ``ir sat``: the share of infrared pixels at 250 or above (a clipping AGC);
- mean Sobel magnitude of each source, and ``ir grad``: the share of pixels whose texture target is the
  infrared gradient.

Writes bench/results/camera_statistics.json.

    .venv/bin/python bench/bench_camera_statistics.py [--pairs 40]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from seafusion_ros.data.dataset_splits import split_pairs
from seafusion_ros.data.pair_dataset import to_unit_ir
from seafusion_ros.imaging.image_files import read_image, write_bytes_atomic
from seafusion_ros.inference.colour import rgb_to_y
from seafusion_ros.training.content_loss import sobel_magnitude

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DATA_SETS = ("msrs_dev", "roadscene_train", "mfnet_labelled", "llvip", "m3fd", "fmb")
RESULTS = REPO / "bench" / "results" / "camera_statistics.json"
COLUMNS = ("ir mean", "ir sd", "vis mean", "vis sd", "ir>=vis", "ir sat", "ir |grad|", "vis |grad|", "ir grad")


def pair_statistics(ir_path: Path, visible_path: Path) -> dict[str, float]:
    """The statistics of one pair, infrared and visible luminance on the 0-255 scale."""
    ir = torch.from_numpy(to_unit_ir(read_image(ir_path, color=False))).float()[None, None] / 255
    rgb = torch.from_numpy(read_image(visible_path, color=True)[:, :, ::-1].copy()).permute(2, 0, 1)[None]
    vis = rgb_to_y(rgb.float() / 255)
    ir_grad, vis_grad = sobel_magnitude(ir), sobel_magnitude(vis)
    return {"ir mean": float(ir.mean()) * 255, "ir sd": float(ir.std()) * 255,
            "vis mean": float(vis.mean()) * 255, "vis sd": float(vis.std()) * 255,
            "ir>=vis": float((ir >= vis).float().mean()), "ir sat": float((ir >= 250 / 255).float().mean()),
            "ir |grad|": float(ir_grad.mean()) * 255, "vis |grad|": float(vis_grad.mean()) * 255,
            "ir grad": float((ir_grad >= vis_grad).float().mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=40, help="pairs per data set (evenly spaced)")
    args = parser.parse_args()
    results = {}
    for name in DATA_SETS:
        root = DATA / name
        if not root.is_dir():
            print(f"{name}: not found under {DATA}, skipped")
            continue
        pairs = split_pairs(root, "train")[0]
        chosen = [pairs[i] for i in np.linspace(0, len(pairs) - 1, min(args.pairs, len(pairs))).round().astype(int)]
        rows = [pair_statistics(p.ir, p.visible) for p in chosen]
        results[name] = {"pairs": len(rows), **{c: float(np.mean([r[c] for r in rows])) for c in COLUMNS}}
    print(f"| data set | pairs | {' | '.join(COLUMNS)} |")
    print(f"|---|---:|{'---:|' * len(COLUMNS)}")
    for name, row in results.items():
        cells = [f"{row[c]:.1f}" if "mean" in c or "sd" in c or "|grad|" in c else f"{row[c]:.2f}" for c in COLUMNS]
        print(f"| {name} | {row['pairs']} | {' | '.join(cells)} |")
    write_bytes_atomic(RESULTS, (json.dumps(results, indent=2) + "\n").encode())
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
