"""OpenVINO runner for the engine's networks (fusion and segmentation) on the CPU.

OpenVINO fuses the convolutions with their activations and, on CPUs with native bf16 (AVX-512 BF16 or
AMX), runs them in bf16 with f32 accumulation: several times faster than torch bf16 autocast on a small
CPU. Each network is converted from its torch module with ``openvino.convert_model`` (no file, no
export step) and compiled for the static input size it is called with, because static shapes let the
CPU plugin pick its fastest kernels. The fully convolutional fusion network is converted once with
dynamic height and width (a few seconds) and only reshaped and compiled per size (under a second); the
segmenter, whose forward branches on the input size, is converted per size (the engine calls it at its
fixed ``inference_size`` only, so once). ``prepare`` does this work at start-up. Compiled models sit in a
small LRU cache keyed by input shape, so a camera's frame size, ``internal_scale``'s reduced size and the
few tile sizes of a tiled frame each compile once, and an odd size cannot grow memory without bound.
Precision ``int8`` runs a quantised twin (:mod:`seafusion_ros.inference.int8_quantization`) given with
``use_model``; its remaining float operations run in bf16 where the CPU has it.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections import OrderedDict
from functools import cache

import numpy as np
import torch
from torch import Tensor, nn

CACHE_SIZE = 4
_HINTS = {"fp32": "f32", "bf16": "bf16"}


def openvino_available() -> bool:
    """True when the openvino package can be imported (it is an optional extra)."""
    return importlib.util.find_spec("openvino") is not None


@cache
def openvino_has_bf16() -> bool:
    """True when OpenVINO's CPU plugin has native bf16 kernels on this CPU."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def openvino_precision(precision: str) -> str:
    """``bf16`` where the CPU runs it natively (auto or asked for), else ``fp32``; OpenVINO would silently
    run f32 anyway, so the engine reports what actually runs. ``int8`` stays ``int8``."""
    if precision not in ("auto", "fp32", "bf16", "int8"):
        raise ValueError(f"backend openvino runs fp32, bf16 or int8, got precision {precision!r}")
    if precision == "int8":
        return precision
    return "bf16" if precision != "fp32" and openvino_has_bf16() else "fp32"


class OpenVinoRunner:
    """Calls a torch module's OpenVINO twin: float32 CPU tensors in, one float32 tensor out.

    Args:
        module: the network (eval mode, fp32 weights).
        dynamic: the module is shape-agnostic (convolutions only): convert it once with dynamic height and
            width; else convert it again for each new input shape.
        precision: ``fp32``, ``bf16`` (the inference precision hint) or ``int8`` (a quantised model given with
            ``use_model``; bf16 hint for the rest where the CPU has it).
        threads: CPU threads for inference; 0 = torch's thread count.
        cache_size: compiled input shapes kept (least recently used dropped first).
    """

    def __init__(self, module: nn.Module, precision: str, dynamic: bool = False, threads: int = 0,
                 cache_size: int = CACHE_SIZE) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise ValueError("backend openvino needs the openvino package (pip install openvino)") from exc
        self._ov = ov
        self._core = ov.Core()
        self._module = module
        self._dynamic = dynamic
        self._converted = None
        hint = _HINTS[openvino_precision("auto" if precision == "int8" else precision)]
        self._config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY",
                        "INFERENCE_NUM_THREADS": threads or torch.get_num_threads()}
        self._cache_size = cache_size
        self._requests: OrderedDict[tuple[tuple[int, ...], ...], object] = OrderedDict()

    @property
    def compiled_shapes(self) -> list[tuple[tuple[int, ...], ...]]:
        """Input shapes with a compiled model, least recently used first."""
        return list(self._requests)

    @property
    def converted(self) -> bool:
        """A dynamic module has been converted (its one conversion is done)."""
        return self._converted is not None

    def converted_model(self, *inputs: np.ndarray):
        """The module as an OpenVINO model for inputs like these (dynamic height and width when ``dynamic``)."""
        return self._converted_model(inputs)

    def prepare(self, *shapes: tuple[int, ...]) -> None:
        """Pay a first call's set-up now: convert the module (a few seconds; once for a dynamic one) and, for a
        static one, compile it for inputs of these shapes (for a dynamic one only the conversion is size-free)."""
        inputs = tuple(np.zeros(shape, np.float32) for shape in shapes)
        if self._dynamic:
            self._converted_model(inputs)
        else:
            self._request(inputs)

    def use_model(self, model) -> None:
        """Run this OpenVINO model (e.g. the int8 twin of ``converted_model``) instead; dynamic modules only."""
        if not self._dynamic:
            raise ValueError("use_model needs a runner made with dynamic=True")
        self._converted = model
        self._requests.clear()

    def _request(self, inputs: tuple[np.ndarray, ...]):
        """The infer request for these input shapes: cached, or converted and compiled now."""
        key = tuple(a.shape for a in inputs)
        request = self._requests.get(key)
        if request is not None:
            self._requests.move_to_end(key)
            return request
        model = self._converted_model(inputs).clone()
        model.reshape({port: list(a.shape) for port, a in zip(model.inputs, inputs, strict=True)})
        request = self._core.compile_model(model, "CPU", self._config).create_infer_request()
        self._requests[key] = request
        if len(self._requests) > self._cache_size:
            self._requests.popitem(last=False)
        return request

    def _converted_model(self, inputs: tuple[np.ndarray, ...]):
        """The module as an OpenVINO model: converted once (dynamic) or for these input shapes."""
        if self._dynamic and self._converted is not None:
            return self._converted
        shapes = [[*a.shape[:-2], -1, -1] if self._dynamic else list(a.shape) for a in inputs]
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # tracing warns about size-dependent branches and its own deprecation: conversion is per size
            # wherever the graph depends on it, so neither applies
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            example = tuple(torch.from_numpy(a.copy()) for a in inputs)
            model = self._ov.convert_model(self._module, example_input=example, input=shapes)
        if self._dynamic:
            self._converted = model
        return model

    def __call__(self, *inputs: Tensor) -> Tensor:
        """Inputs are shared with OpenVINO (no copy when already contiguous float32 on the CPU); the output is
        a fresh tensor, since the engine hands the fused luminance to its caller."""
        arrays = tuple(np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy()) for t in inputs)
        request = self._request(arrays)
        request.infer(arrays, share_inputs=True, share_outputs=True)
        return torch.from_numpy(request.get_output_tensor(0).data.copy())
