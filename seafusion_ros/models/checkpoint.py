"""Reading and writing model checkpoints: the authors' released format and our own.

A checkpoint is untrusted input, so every load uses ``torch.load(weights_only=True)`` and every key,
shape and value is checked before it reaches a model: a NaN or infinite weight (a diverged training run,
a damaged file) would otherwise load and give black or garbage images without a word. Our own format is a plain dict::

    {"format": "seafusion_ros.checkpoint/1", "arch": "seafusion" | ..., "state_dict": {...},
     "model_card": {...}}

where the model card says what the weights are: architecture, training data, command, metrics.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from seafusion_ros.imaging.image_files import write_bytes_atomic
from seafusion_ros.models.seafusion import FusionNet, seafusion

FORMAT_TAG = "seafusion_ros.checkpoint/1"

# Authors' key prefix -> our module path, for one encoder branch (vis/inf) and the decoder.
_RELEASED_BLOCK_MAP = {
    "dense.conv1.conv": "dense_a",
    "dense.conv2.conv": "dense_b",
    "convdown.conv": "dense_out",
    "convup.conv": "edge_out",
}
_RELEASED_UNUSED = re.compile(r"^decode[1-4]\.bn\.")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used, with the reason in the message."""


def _released_to_ours(key: str) -> str | None:
    """Map one released key to our name; None for unknown keys."""
    m = re.fullmatch(r"(vis|inf)_conv\.conv\.(weight|bias)", key)
    if m:
        branch = "visible_encoder" if m[1] == "vis" else "infrared_encoder"
        return f"{branch}.stem.{m[2]}"
    m = re.fullmatch(r"(vis|inf)_rgbd([12])\.(.+)\.(weight|bias)", key)
    if m:
        branch = "visible_encoder" if m[1] == "vis" else "infrared_encoder"
        inner, leaf = m[3], m[4]
        if inner in _RELEASED_BLOCK_MAP:
            return f"{branch}.block{m[2]}.{_RELEASED_BLOCK_MAP[inner]}.{leaf}"
        if inner in ("sobelconv.convx", "sobelconv.convy") and leaf == "weight":
            return f"{branch}.block{m[2]}.edges.kernel_{inner[-1]}"
        return None
    m = re.fullmatch(r"decode([1-4])\.conv\.(weight|bias)", key)
    if m:
        index = 4 - int(m[1])  # decode4 is the first decoder layer, decode1 the output head
        return f"head.{m[2]}" if index == 3 else f"decoder.{index}.{m[2]}"
    return None


def is_released_state_dict(obj: Any) -> bool:
    """True when obj looks like the authors' plain state_dict (their key naming)."""
    return isinstance(obj, Mapping) and "vis_conv.conv.weight" in obj and "format" not in obj


def convert_released_state_dict(released: Mapping[str, Tensor], source: str = "checkpoint") -> dict[str, Tensor]:
    """Rename the authors' 72-key state_dict to ours; BatchNorm keys (declared, never applied) are dropped."""
    converted: dict[str, Tensor] = {}
    unknown = []
    for key, value in released.items():
        if _RELEASED_UNUSED.match(key):
            continue
        ours = _released_to_ours(key)
        if ours is None:
            unknown.append(key)
        else:
            converted[ours] = value
    if unknown:
        raise CheckpointError(f"{source}: unexpected keys for the released SeAFusion format: {unknown[:8]}")
    return converted


def load_state_dict_strict(model: nn.Module, state: Mapping[str, Any], source: str) -> None:
    """Copy state into model after checking that every key is present and every shape matches."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{source}: missing keys {missing[:8]}, unexpected keys {unexpected[:8]}")
    for key, ref in expected.items():
        value = state[key]
        if not isinstance(value, Tensor):
            raise CheckpointError(f"{source}: {key} is a {type(value).__name__}, not a tensor")
        if value.shape != ref.shape:
            raise CheckpointError(f"{source}: {key} has shape {tuple(value.shape)}, expected {tuple(ref.shape)}")
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})


def _check_finite(state: Any, source: str, skip: re.Pattern[str] | None = None) -> None:
    """Refuse a state_dict with a NaN or infinite value, naming the first such tensor as the file has it."""
    if not isinstance(state, Mapping):
        return  # not a state_dict at all: load_state_dict_strict says so
    for key, value in state.items():
        if skip is not None and skip.match(key):
            continue
        if isinstance(value, Tensor) and value.is_floating_point():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise CheckpointError(f"{source}: tensor {key} has {bad} NaN or infinite value(s) of {value.numel()}; "
                                      "the checkpoint is damaged or its training diverged")


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint file safely and return our format's dict (released files are converted)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        with open(path, "rb") as handle:
            pickled = handle.read(1) == b"\x80"  # the pre-1.6 format; newer files are zip archives
        if not (pickled or zipfile.is_zipfile(path)):
            raise CheckpointError(f"{path}: not a PyTorch checkpoint file (neither a zip archive nor a "
                                  "pickle)") from exc
        raise CheckpointError(f"{path}: not a loadable weights-only PyTorch checkpoint "
                              f"({type(exc).__name__}: {exc})") from exc
    if is_released_state_dict(obj):
        _check_finite(obj, str(path), skip=_RELEASED_UNUSED)
        return {
            "format": FORMAT_TAG,
            "arch": "seafusion",
            "state_dict": convert_released_state_dict(obj, str(path)),
            "model_card": {"name": "SeAFusion (authors' released weights)", "source": str(path)},
        }
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT_TAG and "state_dict" in obj:
        _check_finite(obj["state_dict"], str(path))
        return dict(obj)
    raise CheckpointError(f"{path}: neither the released SeAFusion state_dict nor a {FORMAT_TAG} checkpoint")


def load_fusion_model(path: str | os.PathLike) -> tuple[FusionNet, dict[str, Any]]:
    """Build a FusionNet from a released or own-format checkpoint; returns (model, model_card)."""
    ckpt = read_checkpoint(path)
    if ckpt.get("arch") != "seafusion":
        raise CheckpointError(f"{path}: holds a '{ckpt.get('arch')}' model, not a SeAFusion fusion network")
    model = seafusion()
    load_state_dict_strict(model, ckpt["state_dict"], str(path))
    return model.eval(), dict(ckpt.get("model_card", {}))


def save_checkpoint(path: str | os.PathLike, model: nn.Module, arch: str, model_card: Mapping[str, Any],
                    extra: Mapping[str, Any] | None = None) -> Path:
    """Write our format atomically (temporary file, then rename), so a crash never leaves half a file."""
    payload = {
        "format": FORMAT_TAG,
        "arch": arch,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "model_card": dict(model_card),
        **(dict(extra) if extra else {}),
    }
    buffer = io.BytesIO()  # serialised in memory: a full disk is then an OSError naming the file, not a zip error
    torch.save(payload, buffer)
    return write_bytes_atomic(path, buffer.getvalue())
