"""The inference engine: numpy images in, fused image (and optionally a class mask) out.

ROS-free; the node, the CLIs and the bag tools all call it. Data flows one way:
validate -> upload as uint8 -> normalise on the device (thermal gain, Y/Cr/Cb) -> fuse -> (segment)
-> recombine colour -> quantise on the device -> download. Models stay resident across calls and
everything after the upload runs under ``torch.inference_mode``.

Frames larger than the memory budget allows go through the same steps tile by tile (``tiling.py``):
the network on overlapping tiles whose cores stitch into the whole-frame result, everything else on
tiles or at a bounded size, so memory stays within the budget plus a few bytes per pixel for the
frame's inputs and outputs.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seafusion_ros.imaging.image_files import read_image
from seafusion_ros.inference.colour import rgb_to_ycrcb, ycrcb_to_rgb
from seafusion_ros.inference.device import PRECISIONS, auto_precision, resolve_device, resolve_precision
from seafusion_ros.inference.guided_upsampling import RADIUS, apply_coefficients, guided_coefficients, guided_upsample
from seafusion_ros.inference.int8_quantization import DEFAULT_CALIBRATION_PAIRS, NNCF_PACKAGE, nncf_available
from seafusion_ros.inference.memory_probe import peak_tensor_bytes
from seafusion_ros.inference.resampling import fit_within, output_tile_pixels, resample_tile
from seafusion_ros.inference.thermal_gain import ThermalGain, ThermalGainConfig
from seafusion_ros.inference.tiling import Tile, plan_tiles, receptive_radius
from seafusion_ros.models.checkpoint import load_fusion_model
from seafusion_ros.models.segmentation_blocks import at_inference_size
from seafusion_ros.weights import default_fusion_weights

NORMALIZATIONS = ("none", "minmax")
BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
ENGINE_PRECISIONS = (*PRECISIONS, "int8")
# int8 calibration reads at most this much of each pair (its top-left corner): ranges, not whole frames, matter
CALIBRATION_MAX_SIZE = (480, 640)
COLOR_ORDERS = ("rgb", "bgr")
IR_DTYPES = (np.uint8, np.uint16, np.float32)
DEFAULT_MEMORY_BUDGET_MB = 2048
MIN_MEMORY_BUDGET_MB = 16
PREPARE_SIDE = 64  # example input side for converting the shape-agnostic fusion network at start-up

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


def class_ids(logits: Tensor) -> Tensor:
    """The H x W uint8 class of each pixel of 1 x C x H x W logits (the first of equal maxima). ``max`` rather than
    ``argmax``: over the channels of a planar tensor torch's argmax is a strided reduction, about 10x slower on a
    CPU (57 against 5 ms for 9 classes at 480 x 640), with the same result."""
    return logits.max(1).indices[0].to(torch.uint8)


def resolve_backend(backend: str, device: torch.device) -> str:
    """``auto`` = openvino on a CPU when it is installed (several times faster there), else torch (CUDA, and
    the fallback); any other name is checked and returned."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    from seafusion_ros.inference.openvino_backend import openvino_available

    return "openvino" if device.type == "cpu" and openvino_available() else "torch"


def _gather(tensor: Tensor, rows: np.ndarray, cols: np.ndarray) -> Tensor:
    """``tensor[..., rows, :][..., cols]`` of an N x C x H x W tensor, for index arrays."""
    rows_t = torch.from_numpy(rows).to(tensor.device)
    cols_t = torch.from_numpy(cols).to(tensor.device)
    return tensor.index_select(2, rows_t).index_select(3, cols_t)


class FusionEngine:
    """SeAFusion inference with resident models.

    Args:
        weights: fusion checkpoint (released or own format); None = the bundled default model.
        device: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:N``.
        precision: ``auto`` (fp16 on CUDA, bf16 on CPUs with native bf16, else fp32), ``fp32``, ``bf16``
            or ``fp16`` (GPU only); ``int8`` with backend ``openvino`` and ``int8_calibration`` (the fusion
            network quantised with NNCF; segmentation stays bf16 / fp32). bf16 and fp16 stay within 2-3 grey
            levels of fp32; int8 costs fusion quality (docs/results.md).
        backend: ``torch`` (eager, autocast for bf16/fp16), ``onnxruntime`` (exact fp32; exported in memory at
            start-up), ``openvino`` (CPU only: bf16 where the CPU has it, else fp32; both networks converted
            at start-up and compiled once per input size) or ``auto`` (openvino on a CPU when installed,
            else torch; the default of the tools and the node, while this class defaults to torch).
        internal_scale: run the network at this fraction of the input resolution (0 < s <= 1) and bring
            the fused luminance back with guided upsampling: about 1/s^2 faster, at a measured quality
            cost (docs/results.md). 1.0 = full resolution.
        normalize: ``none`` (stable across frames) or ``minmax`` (the authors' per-frame stretch).
        thermal_gain: how 16-bit / float thermal is mapped to [0, 1].
        channels_last: NHWC memory format for the torch convolutions (faster on CPU); None = on for CPU unless
            the backend is openvino (which takes plain NCHW inputs without a copy).
        segmenter: optional segmentation network taking the fused RGB (N x 3 x H x W in [0, 1]) and
            returning class logits (N x C x H x W); its argmax is the mask.
        memory_budget_mb: working memory of one tile (MB). A frame whose network pass needs more (measured
            at start-up: 1864 bytes per pixel in fp32, 968 in bf16 on a CPU) is fused in overlapping tiles
            with the same result; the segmenter then sees the fused image at its ``inference_size`` or
            resized to fit the budget. The frame's inputs and outputs (12-16 bytes per pixel) come on top.
        int8_calibration: with precision ``int8``: a data folder (ir/ + vi/, or the labelled layout) whose pairs
            calibrate the quantisation; the quantised model is cached (``int8_quantization.cache_dir``).
        int8_calibration_pairs: how many of its pairs, spread evenly over it.
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
        memory_budget_mb: int = DEFAULT_MEMORY_BUDGET_MB,
        int8_calibration: str | os.PathLike | None = None,
        int8_calibration_pairs: int = DEFAULT_CALIBRATION_PAIRS,
    ) -> None:
        if (isinstance(memory_budget_mb, bool) or not isinstance(memory_budget_mb, (int, float))
                or not math.isfinite(memory_budget_mb) or memory_budget_mb < MIN_MEMORY_BUDGET_MB):
            raise ValueError(f"memory_budget_mb must be a number of megabytes >= {MIN_MEMORY_BUDGET_MB}, "
                             f"got {memory_budget_mb!r}")
        if not 0.0 < internal_scale <= 1.0:
            raise ValueError(f"internal_scale must be in (0, 1], got {internal_scale}")
        self.internal_scale = internal_scale
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        self.device = resolve_device(device)
        backend = resolve_backend(backend, self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # camera frames have a fixed size: autotune once
        if precision == "int8" and backend != "openvino":
            raise ValueError(f"precision int8 runs on backend openvino (CPU, pip install openvino nncf), "
                             f"got backend {backend}")
        if precision == "int8" and int8_calibration is None:
            raise ValueError("precision int8 needs int8_calibration: a folder of real camera pairs (ir/ + vi/) "
                             "to calibrate the quantisation on")
        if precision == "int8" and not nncf_available():
            raise ValueError(f"precision int8 needs the {NNCF_PACKAGE} package (pip install {NNCF_PACKAGE})")
        if backend == "onnxruntime":
            if precision not in ("auto", "fp32"):
                raise ValueError(f"backend onnxruntime runs fp32 only, got precision {precision!r}")
            precision = "fp32"
        if backend == "openvino":
            if self.device.type != "cpu":
                raise ValueError(f"backend openvino runs on the CPU, got device {self.device}")
            from seafusion_ros.inference.openvino_backend import openvino_precision

            self.precision = openvino_precision(precision)
            self.autocast_dtype = torch.float32  # the networks run in OpenVINO; torch only prepares and finishes
        else:
            self.autocast_dtype = resolve_precision(precision, self.device)
            self.precision = auto_precision(self.device) if precision == "auto" else precision
        self.backend = backend
        self.normalize = normalize
        self.int8_calibration: list[str] | None = None
        self.gain = ThermalGain(thermal_gain)
        self.weights_path = weights if weights is not None else default_fusion_weights()
        model, self.model_card = load_fusion_model(self.weights_path)
        if channels_last is None:
            channels_last = self.device.type == "cpu" and backend != "openvino"
        self.channels_last = channels_last
        self._memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=self._memory_format).eval()
        self._network = self.model
        if backend == "onnxruntime":
            from seafusion_ros.inference.onnx_backend import OnnxFusionRunner

            self._network = OnnxFusionRunner(model, self.device)
        elif backend == "openvino":
            from seafusion_ros.inference.openvino_backend import OpenVinoRunner

            self._network = OpenVinoRunner(model, self.precision, dynamic=True)
            if self.precision == "int8":
                self._quantize_fusion(int8_calibration, int8_calibration_pairs)
            self._network.prepare(*[(1, 1, PREPARE_SIDE, PREPARE_SIDE)] * 2)  # so the first frame only compiles
        self.memory_budget_mb = memory_budget_mb
        self.halo = receptive_radius(self.model)
        self.tile_bytes_per_pixel = self._tile_bytes_per_pixel()
        self.tile_pixels = int(memory_budget_mb * 2**20 / self.tile_bytes_per_pixel)
        log.info("seafusion: fusion backend %s, precision %s; frames over %.1f MP are fused in tiles "
                 "(memory budget %g MB)", backend, self.precision, self.tile_pixels / 1e6, memory_budget_mb)
        self.segmenter: nn.Module | None = None
        self._segment_network: Callable[[Tensor], Tensor] | None = None
        self.set_segmenter(segmenter)

    def set_segmenter(self, segmenter: nn.Module | None) -> None:
        """Attach (or with None, detach) the segmentation network, moved to the engine's device."""
        self.segmenter = self._segment_network = None
        if segmenter is not None:
            self.segmenter = segmenter.to(self.device, memory_format=self._memory_format).eval()
            self._segment_network = self.segmenter
            if self.backend == "openvino":
                from seafusion_ros.inference.openvino_backend import OpenVinoRunner

                # int8 quantises the fusion network only: the segmenter runs at the CPU's best float precision
                precision = "auto" if self.precision == "int8" else self.precision
                self._segment_network = OpenVinoRunner(self.segmenter, precision)
                inference_size = getattr(self.segmenter, "inference_size", None)
                if inference_size:  # the only size it is called at (_segment_mask): convert and compile it now
                    self._segment_network.prepare((1, 3, *inference_size))

    def _quantize_fusion(self, root: str | os.PathLike, count: int) -> None:
        """Swap the OpenVINO fusion network for its int8 twin, calibrated on ``count`` pairs of ``root`` under this
        engine's own input preparation (thermal gain, Y of the visible image), or loaded from the cache."""
        from seafusion_ros.inference import int8_quantization

        pairs = int8_quantization.calibration_pairs(root, count)
        gain = ThermalGain(self.gain.config)  # its own: calibration frames must not steer the frames' smoothing

        def network_inputs() -> list[tuple[np.ndarray, np.ndarray]]:
            height, width = CALIBRATION_MAX_SIZE
            inputs = []
            with torch.inference_mode():
                for pair in pairs:
                    ir = _check_ir(read_image(pair.ir, color=False))[:height, :width]
                    visible = _check_visible(read_image(pair.visible, color=True))[:height, :width]
                    y, _, _ = self._visible_ycrcb(visible, "bgr")
                    ir_t = self._infrared(ir, gain.scale_and_offset(ir))
                    inputs.append((y.numpy().copy(), ir_t.numpy().copy()))
            return inputs

        def build():
            inputs = network_inputs()
            log.info("seafusion: quantising the fusion network to int8 on %d pairs of %s", len(inputs), root)
            return int8_quantization.quantize(self._network.converted_model(*inputs[0]), inputs)

        key = int8_quantization.cache_key(self.weights_path, pairs, repr(self.gain.config))
        self._network.use_model(int8_quantization.cached_int8_model(key, build))
        self.int8_calibration = [pair.stem for pair in pairs]

    def _autocast(self):
        if self.autocast_dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _upload(self, array: np.ndarray) -> Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if self.device.type == "cuda":
            tensor = tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor

    def _infrared(self, ir: np.ndarray, gain: tuple[float, float]) -> Tensor:
        """Thermal as 1 x 1 x H x W float32 in [0, 1] on the device, under the frame's gain."""
        scale, offset = gain
        return self._upload(ir).to(torch.float32).mul_(scale).add_(offset).clamp_(0.0, 1.0)[None, None]

    def _visible_ycrcb(self, vis: np.ndarray, visible_order: str) -> tuple[Tensor, Tensor, Tensor]:
        """Visible as Y, Cr, Cb (each 1 x 1 x H x W float32) on the device; gray has neutral chroma."""
        vis_t = self._upload(vis)
        if vis.ndim == 2:
            y = vis_t.to(torch.float32).div_(255.0)[None, None]
            half = torch.full_like(y, 0.5)
            return y, half, half
        rgb = vis_t.permute(2, 0, 1)[None].to(torch.float32).div_(255.0)
        if visible_order == "bgr":
            rgb = rgb.flip(1)
        return rgb_to_ycrcb(rgb)

    def _quantise(self, values: Tensor, value_range: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """uint8 of values in [0, 1]; ``minmax`` stretches (low, high): ``value_range`` when ``values`` is one
        tile of a frame (the frame's range), else the values' own."""
        if self.normalize == "minmax":
            lo, hi = value_range if value_range is not None else (values.amin(), values.amax())
            values = (values - lo) / (hi - lo).clamp_min(1e-12)
            return (values * 255.0).to(torch.uint8)  # truncation, as the authors' script does
        return (values * 255.0).round_().to(torch.uint8)

    def _run_network(self, network: Callable[[Tensor, Tensor], Tensor], y: Tensor, ir: Tensor) -> Tensor:
        """The fusion network (or its ONNX / OpenVINO runner) on visible Y and infrared; fp32 result."""
        with self._autocast():
            return network(y.contiguous(memory_format=self._memory_format),
                           ir.contiguous(memory_format=self._memory_format)).float()

    def _tile_bytes_per_pixel(self) -> float:
        """Peak tensor bytes per pixel of one tile's network pass, its normalised inputs included.

        Measured on a 64 x 64 tile through the torch model at the engine's precision: the peak is linear in
        the pixel count (the weights are resident), so this holds for any tile size.
        """
        side = 64
        ir, visible = np.zeros((side, side), np.uint16), np.zeros((side, side, 3), np.uint8)

        def one_tile() -> None:
            y = self._visible_ycrcb(visible, "rgb")[0]
            self._run_network(self.model, y, self._infrared(ir, (1.0, 0.0)))

        with torch.inference_mode():
            return peak_tensor_bytes(one_tile) / side**2

    def tile_plan(self, height: int, width: int) -> list[Tile]:
        """The tiles the fusion network runs on for a height x width frame (one: the frame fits the budget)."""
        if height * width <= self.tile_pixels:
            return plan_tiles(height, width, self.tile_pixels, self.halo)
        return plan_tiles(*self._network_size(height, width), self.tile_pixels, self.halo)

    def _network_size(self, height: int, width: int) -> tuple[int, int]:
        if self.internal_scale == 1.0:
            return height, width
        return max(int(round(height * self.internal_scale)), 8), max(int(round(width * self.internal_scale)), 8)

    def fuse(self, ir: np.ndarray, visible: np.ndarray, visible_order: str = "rgb", output_order: str = "rgb",
             segment: bool = False, mono: bool = False) -> FusionOutput:
        """Fuse one infrared / visible pair of the same size.

        ir: H x W uint8, uint16 or float32 (16-bit and float go through the thermal gain).
        visible: H x W gray or H x W x 3 uint8 in ``visible_order``.
        mono: also return the fused luminance as uint8 (``mono``), quantised like ``image``: for mono8
        outputs, so a per-frame ``minmax`` stretch is the same rule for gray and colour.
        Frames over ``tile_pixels`` are fused in tiles (``tile_plan``), with the same result up to float
        rounding (at most one grey level).
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
            gain = self.gain.scale_and_offset(ir)
            if ir.shape[0] * ir.shape[1] > self.tile_pixels:
                return self._fuse_tiled(ir, visible, gain, visible_order, output_order, segment, mono, timings, t0)
            ir_t = self._infrared(ir, gain)
            y, cr, cb = self._visible_ycrcb(visible, visible_order)
            t1 = self._sync_time(timings, "prepare", t0)
            fused_y = self._fuse_luminance(y, ir_t)
            rgb = ycrcb_to_rgb(fused_y, cr, cb)
            t2 = self._sync_time(timings, "fuse", t1)
            mask_t = None
            if segment:
                mask_t = self._segment_mask(rgb)
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

    def _segment_mask(self, rgb: Tensor) -> Tensor:
        """The class mask (H x W uint8) of ``rgb`` (1 x 3 x H x W). A segmenter with an ``inference_size`` is called
        at that size and its logits resized back here, as its own forward would do: the same mask, and an
        OpenVINO twin then needs one compiled size, made while the engine is built, whatever the frame size."""
        with self._autocast():
            return class_ids(at_inference_size(
                lambda x: self._segment_network(x.contiguous(memory_format=self._memory_format)), rgb,
                getattr(self.segmenter, "inference_size", None)))

    def _fuse_luminance(self, y: Tensor, ir: Tensor) -> Tensor:
        """The network on (visible Y, infrared), at full or reduced internal resolution; fp32 result."""
        if self.internal_scale == 1.0:
            return self._run_network(self._network, y, ir)
        size = self._network_size(*y.shape[-2:])
        y_low = F.interpolate(y, size=size, mode="area")
        ir_low = F.interpolate(ir, size=size, mode="area")
        fused = self._run_network(self._network, y_low, ir_low)
        return guided_upsample(fused.contiguous(), y_low, ir_low, y, ir)

    def _fuse_tiled(self, ir: np.ndarray, visible: np.ndarray, gain: tuple[float, float], visible_order: str,
                    output_order: str, segment: bool, mono: bool, timings: dict[str, float],
                    t0: float) -> FusionOutput:
        """``fuse`` for a frame over the budget: each step on tiles, only inputs and outputs at full size."""
        height, width = ir.shape[:2]
        luminance = np.empty((height, width), np.float32)
        t1 = self._sync_time(timings, "prepare", t0)
        if self.internal_scale == 1.0:
            for tile in plan_tiles(height, width, self.tile_pixels, self.halo):
                y = self._visible_ycrcb(visible[tile.read], visible_order)[0]
                fused = self._run_network(self._network, y, self._infrared(ir[tile.read], gain))
                luminance[tile.core] = fused[0, 0][tile.crop].cpu().numpy()
        else:
            self._fuse_reduced_tiled(ir, visible, gain, visible_order, luminance)
        t2 = self._sync_time(timings, "fuse", t1)
        mask = None
        if segment:
            mask = self._segment_tiled(luminance, visible, visible_order)
            t2 = self._sync_time(timings, "segment", t2)
        colour_tiles = plan_tiles(height, width, self.tile_pixels, 0)

        def fused_rgb(tile: Tile) -> tuple[Tensor, Tensor]:
            _, cr, cb = self._visible_ycrcb(visible[tile.core], visible_order)
            fused_y = self._upload(luminance[tile.core])[None, None]
            return fused_y, ycrcb_to_rgb(fused_y, cr, cb)

        rgb_range = luminance_range = None
        if self.normalize == "minmax":
            ranges = [(rgb.amin(), rgb.amax()) for _, rgb in map(fused_rgb, colour_tiles)]
            rgb_range = torch.stack([lo for lo, _ in ranges]).amin(), torch.stack([hi for _, hi in ranges]).amax()
            luminance_range = (torch.tensor(luminance.min(), device=self.device),
                               torch.tensor(luminance.max(), device=self.device))
        image = np.empty((height, width, 3), np.uint8)
        gray = np.empty((height, width), np.uint8) if mono else None
        for tile in colour_tiles:
            fused_y, rgb = fused_rgb(tile)
            out = self._quantise(rgb, rgb_range)[0]
            if output_order == "bgr":
                out = out.flip(0)
            image[tile.core] = out.permute(1, 2, 0).cpu().numpy()
            if gray is not None:
                gray[tile.core] = self._quantise(fused_y, luminance_range)[0, 0].cpu().numpy()
        self._sync_time(timings, "finish", t2)
        return FusionOutput(image=image, luminance=luminance, mask=mask, mono=gray, timings=timings)

    def _fuse_reduced_tiled(self, ir: np.ndarray, visible: np.ndarray, gain: tuple[float, float],
                            visible_order: str, luminance: np.ndarray) -> None:
        """``_fuse_luminance`` at internal_scale < 1, step by step on tiles, into ``luminance``.

        The reduced inputs, the network's output and the guided filter's coefficients are held at the
        reduced size (6 floats per reduced pixel); the network and the coefficients run on tiles with
        their halos, the resizing on tiles of its output.
        """
        size = (height, width) = luminance.shape
        low_size = self._network_size(height, width)

        def read_inputs(rows: np.ndarray, cols: np.ndarray) -> Tensor:
            grid = np.ix_(rows, cols)
            y = self._visible_ycrcb(visible[grid], visible_order)[0]
            return torch.cat((y, self._infrared(ir[grid], gain)), dim=1)

        inputs_low = torch.empty(1, 2, *low_size)
        for tile in plan_tiles(*low_size, output_tile_pixels(size, low_size, self.tile_pixels), 0):
            inputs_low[(..., *tile.core)] = resample_tile(read_inputs, size, low_size, "area", tile, self.device).cpu()
        fused_low = torch.empty(1, 1, *low_size)
        for tile in plan_tiles(*low_size, self.tile_pixels, self.halo):
            inputs = inputs_low[(..., *tile.read)].to(self.device)
            fused = self._run_network(self._network, inputs[:, :1], inputs[:, 1:])
            fused_low[(..., *tile.core)] = fused[(..., *tile.crop)].cpu()
        coefficients = torch.empty(1, 3, *low_size)
        for tile in plan_tiles(*low_size, self.tile_pixels, 2 * RADIUS):  # two 3 x 3 box filters in sequence
            inputs = inputs_low[(..., *tile.read)].to(self.device)
            tile_coefficients = guided_coefficients(fused_low[(..., *tile.read)].to(self.device), inputs[:, :1],
                                                    inputs[:, 1:])
            coefficients[(..., *tile.core)] = tile_coefficients[(..., *tile.crop)].cpu()
        for tile in plan_tiles(height, width, self.tile_pixels, 0):
            full = resample_tile(lambda rows, cols: _gather(coefficients, rows, cols).to(self.device), low_size,
                                 size, "bilinear", tile, self.device)
            y = self._visible_ycrcb(visible[tile.core], visible_order)[0]
            luminance[tile.core] = apply_coefficients(full, y, self._infrared(ir[tile.core], gain))[0, 0].cpu().numpy()

    def _segment_tiled(self, luminance: np.ndarray, visible: np.ndarray, visible_order: str) -> np.ndarray:
        """Class mask of a frame over the budget, segmented as a whole at a bounded size.

        The segmenter's global context would differ between tiles, so it sees the whole fused image: at
        its ``inference_size`` when it has one (bilinear, as it would resize it itself: the same mask as
        the whole-frame path up to float rounding), else area-resized to fit the budget. Its logits are
        resized back to the frame and arg-maxed tile by tile.
        """
        size = (height, width) = luminance.shape
        inference_size = getattr(self.segmenter, "inference_size", None)
        seg_size, mode = (tuple(inference_size), "bilinear") if inference_size else (
            fit_within(height, width, self.tile_pixels), "area")

        def read_rgb(rows: np.ndarray, cols: np.ndarray) -> Tensor:
            grid = np.ix_(rows, cols)
            _, cr, cb = self._visible_ycrcb(visible[grid], visible_order)
            return ycrcb_to_rgb(self._upload(luminance[grid])[None, None], cr, cb)

        seg_input = torch.empty(1, 3, *seg_size, device=self.device)
        for tile in plan_tiles(*seg_size, output_tile_pixels(size, seg_size, self.tile_pixels), 0):
            seg_input[(..., *tile.core)] = resample_tile(read_rgb, size, seg_size, mode, tile, self.device)
        with self._autocast():
            logits = self._segment_network(seg_input.contiguous(memory_format=self._memory_format)).float()
        mask = np.empty((height, width), np.uint8)
        for tile in plan_tiles(height, width, self.tile_pixels, 0):
            full = resample_tile(lambda rows, cols: _gather(logits, rows, cols), seg_size, size, "bilinear", tile,
                                 self.device)
            mask[tile.core] = class_ids(full).cpu().numpy()
        return mask

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
