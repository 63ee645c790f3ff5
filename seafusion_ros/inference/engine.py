"""The inference engine: numpy images in, fused image (and optionally a class mask) out.

ROS-free; the node, the CLIs and the bag tools all call it. Data flows one way:
validate -> upload as uint8 -> normalise on the device (thermal gain, Y/Cr/Cb) -> fuse -> (segment)
-> recombine colour -> quantise on the device -> download. Models stay resident across calls and
everything after the upload runs under ``torch.inference_mode``.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seafusion_ros.inference.colour import rgb_to_ycrcb, ycrcb_to_rgb
from seafusion_ros.inference.device import auto_precision, resolve_device, resolve_precision
from seafusion_ros.inference.guided_upsampling import guided_upsample
from seafusion_ros.inference.thermal_gain import ThermalGain, ThermalGainConfig
from seafusion_ros.models.checkpoint import load_fusion_model
from seafusion_ros.weights import default_fusion_weights

NORMALIZATIONS = ("none", "minmax")
BACKENDS = ("torch", "onnxruntime")
COLOR_ORDERS = ("rgb", "bgr")
IR_DTYPES = (np.uint8, np.uint16, np.float32)

log = logging.getLogger("seafusion_ros")


@dataclass
class FusionOutput:
    """One fused frame. ``image`` is H x W x 3 uint8 in the requested order; ``luminance`` the network's
    fused Y (H x W float32 in [0, 1]); ``mono`` that Y as H x W uint8 under the engine's ``normalize`` rule
    (when asked for); ``mask`` the class ids (H x W uint8) when segmentation ran; ``timings`` seconds per
    stage (prepare, fuse, segment, finish)."""

    image: np.ndarray
    luminance: np.ndarray
    mask: np.ndarray | None = None
    mono: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _check_ir(ir: np.ndarray) -> np.ndarray:
    if not isinstance(ir, np.ndarray):
        raise ValueError(f"infrared image must be a numpy array, got {type(ir).__name__}")
    if ir.ndim == 3 and ir.shape[2] == 1:
        ir = ir[:, :, 0]
    if ir.ndim != 2:
        raise ValueError(f"infrared image must be single-channel H x W, got shape {ir.shape}")
    if ir.size == 0:
        raise ValueError(f"infrared image is empty (shape {ir.shape})")
    if ir.dtype not in IR_DTYPES:
        raise ValueError(f"infrared image dtype must be uint8, uint16 or float32, got {ir.dtype}")
    if ir.dtype == np.float32 and not np.isfinite(ir).all():
        raise ValueError("infrared image contains NaN or infinite values")
    return ir


def _check_visible(vis: np.ndarray) -> np.ndarray:
    if not isinstance(vis, np.ndarray):
        raise ValueError(f"visible image must be a numpy array, got {type(vis).__name__}")
    if vis.ndim == 3 and vis.shape[2] == 1:
        vis = vis[:, :, 0]
    if not (vis.ndim == 2 or (vis.ndim == 3 and vis.shape[2] == 3)):
        raise ValueError(f"visible image must be H x W (gray) or H x W x 3 (colour), got shape {vis.shape}")
    if vis.size == 0:
        raise ValueError(f"visible image is empty (shape {vis.shape})")
    if vis.dtype != np.uint8:
        raise ValueError(f"visible image dtype must be uint8, got {vis.dtype}")
    return vis


class FusionEngine:
    """SeAFusion inference with resident models.

    Args:
        weights: fusion checkpoint (released or own format); None = the bundled default model.
        device: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:N``.
        precision: ``auto`` (fp16 on CUDA, bf16 on CPUs with native bf16, else fp32), ``fp32``, ``bf16``
            or ``fp16`` (GPU only). Reduced precision stays within 2 grey levels of fp32 (bench/).
        backend: ``torch`` (eager, autocast for bf16/fp16) or ``onnxruntime`` (exact fp32, the fastest
            fp32 path on a CPU; exported in memory at start-up).
        internal_scale: run the network at this fraction of the input resolution (0 < s <= 1) and bring
            the fused luminance back with guided upsampling: about 1/s^2 faster, at a measured quality
            cost (docs/results.md). 1.0 = full resolution.
        normalize: ``none`` (stable across frames) or ``minmax`` (the authors' per-frame stretch).
        thermal_gain: how 16-bit / float thermal is mapped to [0, 1].
        channels_last: NHWC memory format for the convolutions (faster on CPU); None = on for CPU.
        segmenter: optional segmentation network taking the fused RGB (N x 3 x H x W in [0, 1]) and
            returning class logits (N x C x H x W); its argmax is the mask.
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        device: str = "auto",
        precision: str = "auto",
        normalize: str = "none",
        thermal_gain: ThermalGainConfig | None = None,
        channels_last: bool | None = None,
        segmenter: nn.Module | None = None,
        backend: str = "torch",
        internal_scale: float = 1.0,
    ) -> None:
        if not 0.0 < internal_scale <= 1.0:
            raise ValueError(f"internal_scale must be in (0, 1], got {internal_scale}")
        self.internal_scale = internal_scale
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.device = resolve_device(device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # camera frames have a fixed size: autotune once
        if backend == "onnxruntime":
            if precision not in ("auto", "fp32"):
                raise ValueError(f"backend onnxruntime runs fp32 only, got precision {precision!r}")
            precision = "fp32"
        self.autocast_dtype = resolve_precision(precision, self.device)
        self.precision = auto_precision(self.device) if precision == "auto" else precision
        self.backend = backend
        self.normalize = normalize
        self.gain = ThermalGain(thermal_gain)
        self.weights_path = weights if weights is not None else default_fusion_weights()
        model, self.model_card = load_fusion_model(self.weights_path)
        self.channels_last = self.device.type == "cpu" if channels_last is None else channels_last
        self._memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=self._memory_format).eval()
        self._network = self.model
        if backend == "onnxruntime":
            from seafusion_ros.inference.onnx_backend import OnnxFusionRunner

            self._network = OnnxFusionRunner(model, self.device)
        log.info("seafusion: fusion backend %s, precision %s", backend, self.precision)
        self.segmenter: nn.Module | None = None
        self.set_segmenter(segmenter)

    def set_segmenter(self, segmenter: nn.Module | None) -> None:
        """Attach (or with None, detach) the segmentation network, moved to the engine's device."""
        self.segmenter = None
        if segmenter is not None:
            self.segmenter = segmenter.to(self.device, memory_format=self._memory_format).eval()

    def _autocast(self):
        if self.autocast_dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _upload(self, array: np.ndarray) -> Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if self.device.type == "cuda":
            tensor = tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor

    def _prepare(self, ir: np.ndarray, vis: np.ndarray, visible_order: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Inputs as N x 1 x H x W float tensors on the device: infrared, Y, Cr, Cb."""
        scale, offset = self.gain.scale_and_offset(ir)
        ir_t = self._upload(ir).to(torch.float32).mul_(scale).add_(offset).clamp_(0.0, 1.0)[None, None]
        vis_t = self._upload(vis)
        if vis.ndim == 2:
            y = vis_t.to(torch.float32).div_(255.0)[None, None]
            half = torch.full_like(y, 0.5)
            return ir_t, y, half, half
        rgb = vis_t.permute(2, 0, 1)[None].to(torch.float32).div_(255.0)
        if visible_order == "bgr":
            rgb = rgb.flip(1)
        y, cr, cb = rgb_to_ycrcb(rgb)
        return ir_t, y, cr, cb

    def _quantise(self, rgb: Tensor) -> Tensor:
        if self.normalize == "minmax":
            lo, hi = rgb.amin(), rgb.amax()
            rgb = (rgb - lo) / (hi - lo).clamp_min(1e-12)
            return (rgb * 255.0).to(torch.uint8)  # truncation, as the authors' script does
        return (rgb * 255.0).round_().to(torch.uint8)

    def fuse(self, ir: np.ndarray, visible: np.ndarray, visible_order: str = "rgb", output_order: str = "rgb",
             segment: bool = False, mono: bool = False) -> FusionOutput:
        """Fuse one infrared / visible pair of the same size.

        ir: H x W uint8, uint16 or float32 (16-bit and float go through the thermal gain).
        visible: H x W gray or H x W x 3 uint8 in ``visible_order``.
        mono: also return the fused luminance as uint8 (``mono``), quantised like ``image``: for mono8
        outputs, so a per-frame ``minmax`` stretch is the same rule for gray and colour.
        Raises ValueError naming the problem for empty, non-finite, mis-typed or mismatched input.
        """
        if visible_order not in COLOR_ORDERS or output_order not in COLOR_ORDERS:
            raise ValueError(f"colour orders must be one of {COLOR_ORDERS}, got {visible_order!r}/{output_order!r}")
        if segment and self.segmenter is None:
            raise ValueError("segmentation requested but the engine has no segmentation model")
        ir = _check_ir(ir)
        visible = _check_visible(visible)
        if ir.shape[:2] != visible.shape[:2]:
            raise ValueError(f"infrared {ir.shape[:2]} and visible {visible.shape[:2]} sizes differ; "
                             "register (warp) the thermal image to the visible frame first")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        with torch.inference_mode():
            ir_t, y, cr, cb = self._prepare(ir, visible, visible_order)
            t1 = self._sync_time(timings, "prepare", t0)
            fused_y = self._fuse_luminance(y, ir_t)
            rgb = ycrcb_to_rgb(fused_y, cr, cb)
            t2 = self._sync_time(timings, "fuse", t1)
            mask_t = None
            if segment:
                with self._autocast():
                    logits = self.segmenter(rgb.contiguous(memory_format=self._memory_format))
                mask_t = logits.argmax(1)[0].to(torch.uint8)
                t2 = self._sync_time(timings, "segment", t2)
            out = self._quantise(rgb)[0]
            if output_order == "bgr":
                out = out.flip(0)
            image = out.permute(1, 2, 0).contiguous().cpu().numpy()
            luminance = fused_y[0, 0].cpu().numpy()
            gray = self._quantise(fused_y)[0, 0].cpu().numpy() if mono else None
            mask = mask_t.cpu().numpy() if mask_t is not None else None
            self._sync_time(timings, "finish", t2)
        return FusionOutput(image=image, luminance=luminance, mask=mask, mono=gray, timings=timings)

    def _fuse_luminance(self, y: Tensor, ir: Tensor) -> Tensor:
        """The network on (visible Y, infrared), at full or reduced internal resolution; fp32 result."""
        full_size = y.shape[-2:]
        if self.internal_scale < 1.0:
            size = [max(int(round(d * self.internal_scale)), 8) for d in full_size]
            y_low = F.interpolate(y, size=size, mode="area")
            ir_in = F.interpolate(ir, size=size, mode="area")
        else:
            y_low, ir_in = y, ir
        with self._autocast():
            fused = self._network(y_low.contiguous(memory_format=self._memory_format),
                                  ir_in.contiguous(memory_format=self._memory_format)).float()
        if self.internal_scale < 1.0:
            fused = guided_upsample(fused.contiguous(), y_low, ir_in, y, ir)
        return fused

    def _sync_time(self, timings: dict[str, float], stage: str, since: float) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        timings[stage] = now - since
        return now

    def warmup(self, height: int = 480, width: int = 640, segment: bool = False) -> None:
        """Run one dummy frame so the first real frame does not pay for kernel selection."""
        self.fuse(np.zeros((height, width), np.uint8), np.zeros((height, width, 3), np.uint8),
                  segment=segment and self.segmenter is not None)
