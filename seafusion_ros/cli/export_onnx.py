"""seafusion-export-onnx: write the fusion network as an ONNX file (dynamic height and width).

Inputs ``visible_y`` and ``infrared`` (N x 1 x H x W float32 in [0, 1]), output ``fused_y``. For
TensorRT where it is installed: ``trtexec --onnx=fusion.onnx --fp16 --saveEngine=fusion.plan
--minShapes=visible_y:1x1x240x320,infrared:1x1x240x320 --optShapes=visible_y:1x1x480x640,infrared:1x1x480x640
--maxShapes=visible_y:1x1x1080x1920,infrared:1x1x1080x1920``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seafusion_ros.inference.onnx_backend import INPUT_NAMES, OUTPUT_NAME, export_fusion_onnx
from seafusion_ros.models.checkpoint import CheckpointError, load_fusion_model
from seafusion_ros.weights import default_fusion_weights


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="seafusion-export-onnx", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=None, help="fusion checkpoint (default: bundled model)")
    p.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    args = p.parse_args(argv)
    if args.out.is_dir():
        print(f"seafusion-export-onnx: error: --out {args.out} is a folder; give the path of the ONNX file",
              file=sys.stderr)
        return 2
    tmp = args.out.with_name(f".{args.out.name}.partial")
    try:
        model, _ = load_fusion_model(args.weights or default_fusion_weights())
        args.out.parent.mkdir(parents=True, exist_ok=True)
        export_fusion_onnx(model, tmp)
        tmp.replace(args.out)
    except (CheckpointError, OSError) as exc:  # a missing or unwritable folder, too
        print(f"seafusion-export-onnx: error: {exc}", file=sys.stderr)
        return 2
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {args.out} (inputs {', '.join(INPUT_NAMES)}; output {OUTPUT_NAME}; dynamic height and width)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
