"""seafusion-export-onnx: write the fusion network as an ONNX file (dynamic height and width).

Inputs ``visible_y`` and ``infrared`` (N x 1 x H x W float32 in [0, 1]), output ``fused_y``. For
TensorRT where it is installed: ``trtexec --onnx=fusion.onnx --fp16 --saveEngine=fusion.plan
--minShapes=visible_y:1x1x240x320,infrared:1x1x240x320 --optShapes=visible_y:1x1x480x640,infrared:1x1x480x640
--maxShapes=visible_y:1x1x1080x1920,infrared:1x1x1080x1920``.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from seafusion_ros.cli import interrupts
from seafusion_ros.cli.output_checks import check_output_file, claim_output_folder, os_error_message
from seafusion_ros.imaging.image_files import write_bytes_atomic
from seafusion_ros.inference.onnx_backend import INPUT_NAMES, OUTPUT_NAME, export_fusion_onnx
from seafusion_ros.models.checkpoint import load_fusion_model
from seafusion_ros.weights import default_fusion_weights

PROG = "seafusion-export-onnx"


@interrupts.command(PROG)
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=None, help="fusion checkpoint (default: bundled model)")
    p.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    args = p.parse_args(argv)
    try:
        check_output_file(args.out, "ONNX file")
        claim_output_folder(PROG, args.out.parent, names=(args.out.name,))
        model, _ = load_fusion_model(args.weights or default_fusion_weights())
    except (ValueError, FileNotFoundError) as exc:  # CheckpointError and OutputError are ValueErrors
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    buffer = io.BytesIO()  # in memory: a write error is then an OSError naming the file
    export_fusion_onnx(model, buffer)
    try:
        write_bytes_atomic(args.out, buffer.getvalue())
    except OSError as exc:
        print(f"{PROG}: error: {os_error_message(exc)}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} (inputs {', '.join(INPUT_NAMES)}; output {OUTPUT_NAME}; dynamic height and width)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
