"""Choosing the compute device and numeric precision, with one log line saying what was picked."""

from __future__ import annotations

import logging

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

log = logging.getLogger("seafusion_ros")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` = CUDA when available, else CPU; otherwise any torch device string (``cuda:1``)."""
    if name == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        reason = "CUDA available" if device.type == "cuda" else "no CUDA device found"
        log.info("seafusion: using device %s (auto: %s)", device, reason)
        return device
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
    log.info("seafusion: using device %s", device)
    return device


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bf16 arithmetic (AVX-512 BF16 or AMX), where bf16 autocast pays."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def auto_precision(device: torch.device) -> str:
    """fp16 on CUDA, bf16 on CPUs with native bf16, else fp32 (all within 2 grey levels of fp32)."""
    if device.type == "cuda":
        return "fp16"
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The autocast dtype for a precision name; fp16 is refused on CPU where it has no fast kernels."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        precision = auto_precision(device)
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs a CUDA device; on CPU use bf16 or fp32")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("precision bf16 is not supported by this GPU; use fp16 or fp32")
    return _DTYPES[precision]
