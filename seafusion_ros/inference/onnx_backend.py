"""ONNX export of the fusion network and an ONNX Runtime runner for the engine.

ONNX Runtime fuses the convolutions with their activations and runs the network about twice as fast
as PyTorch eager on a small CPU, in exact fp32. The export is done in memory when an engine starts
(a few seconds), or once to a file with ``seafusion-export-onnx`` for TensorRT or other runtimes.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

INPUT_NAMES = ("visible_y", "infrared")
OUTPUT_NAME = "fused_y"
OPSET = 17


def export_fusion_onnx(model: nn.Module, target: str | os.PathLike | io.BytesIO, height: int = 480,
                       width: int = 640) -> None:
    """Export with dynamic height and width (the network is fully convolutional)."""
    model = model.float().to("cpu", memory_format=torch.contiguous_format).eval()
    example = (torch.rand(1, 1, height, width), torch.rand(1, 1, height, width))
    axes = {name: {0: "batch", 2: "height", 3: "width"} for name in (*INPUT_NAMES, OUTPUT_NAME)}
    with torch.inference_mode():
        torch.onnx.export(model, example, target if isinstance(target, io.BytesIO) else str(Path(target)),
                          input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME], dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False)


class OnnxFusionRunner:
    """Runs the exported network with ONNX Runtime on the CPU (or CUDA when its provider is present)."""

    def __init__(self, model: nn.Module, device: torch.device, threads: int = 0) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ValueError("backend onnxruntime needs the onnxruntime package (pip install onnxruntime)") from exc
        try:
            buffer = io.BytesIO()
            export_fusion_onnx(model, buffer)
        except Exception as exc:  # the exporter needs the onnx package and raises many types
            raise ValueError(f"cannot export the fusion network to ONNX ({exc}); pip install onnx") from exc
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or torch.get_num_threads()
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError("backend onnxruntime on CUDA needs onnxruntime-gpu")
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(buffer.getvalue(), options, providers=providers)

    def __call__(self, visible_y: torch.Tensor, infrared: torch.Tensor) -> torch.Tensor:
        feeds = {INPUT_NAMES[0]: np.ascontiguousarray(visible_y.detach().cpu().float().numpy()),
                 INPUT_NAMES[1]: np.ascontiguousarray(infrared.detach().cpu().float().numpy())}
        (fused,) = self.session.run([OUTPUT_NAME], feeds)
        return torch.from_numpy(fused).to(visible_y.device)
