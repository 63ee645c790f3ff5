"""seafusion-demo: fuse the embedded synthetic night scene and write pictures to an output folder.

Writes ``thermal.png`` (the 14-bit frame after the automatic gain), ``rgb.png``, ``fused.png`` and
``side_by_side.png`` (thermal | RGB | fused, labelled), and prints where they are and how long fusion took.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import cv2
import numpy as np

from seafusion_ros.engine import FusionEngine
from seafusion_ros.image_pairs import write_image_atomic
from seafusion_ros.synthetic_scene import render_frame


def labelled(image_bgr: np.ndarray, text: str) -> np.ndarray:
    out = image_bgr.copy()
    scale = max(image_bgr.shape[1] / 640, 0.4)
    cv2.putText(out, text, (int(10 * scale), int(30 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                max(int(2 * scale), 1), cv2.LINE_AA)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="seafusion-demo", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder")
    p.add_argument("--weights", type=Path, default=None, help="fusion checkpoint (default: bundled model)")
    p.add_argument("--device", default="auto")
    p.add_argument("--frame", type=int, default=0, help="scene frame index (the pedestrian walks with it)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    frame = render_frame(args.frame)
    engine = FusionEngine(args.weights, device=args.device)
    engine.warmup(*frame.rgb.shape[:2])
    result = engine.fuse(frame.thermal, frame.rgb, visible_order="rgb", output_order="bgr")
    low, high = engine.gain.window
    thermal8 = np.clip((frame.thermal.astype(np.float32) - low) * (255.0 / (high - low)), 0, 255).astype(np.uint8)
    thermal_bgr = cv2.cvtColor(thermal8, cv2.COLOR_GRAY2BGR)
    rgb_bgr = np.ascontiguousarray(frame.rgb[:, :, ::-1])
    written = [
        write_image_atomic(args.out / "thermal.png", thermal8),
        write_image_atomic(args.out / "rgb.png", rgb_bgr),
        write_image_atomic(args.out / "fused.png", result.image),
        write_image_atomic(args.out / "side_by_side.png", np.hstack([
            labelled(thermal_bgr, "thermal (14-bit, auto gain)"), labelled(rgb_bgr, "RGB"),
            labelled(result.image, "SeAFusion fused")])),
    ]
    total = sum(result.timings.values())
    print(f"fused a {frame.rgb.shape[1]}x{frame.rgb.shape[0]} pair on {engine.device} in {total * 1000:.0f} ms "
          f"(weights: {engine.weights_path})")
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
