"""Post-training int8 quantisation of the fusion network for OpenVINO (NNCF), cached on disk.

NNCF inserts int8 quantise / dequantise pairs around the convolutions, with ranges measured on the network's
own inputs for a few real camera pairs (the calibration set), and OpenVINO's CPU plugin then runs those
convolutions in int8 (VNNI / AMX). On our 2-core CPU that fused 480 x 640 3-4x faster than OpenVINO f32 and,
with two threads, up to 1.5x faster than its bf16 (docs/results.md): int8 is for CPUs without native bf16 and
for rates bf16 does not reach, at a cost in fusion quality that ``seafusion-eval`` measures. A mode to
choose, not the default.

Quantising costs a few seconds per calibration pair, so the result is kept as an OpenVINO IR file
(``.xml`` + ``.bin``) in the user's cache folder, keyed by the fusion weights, the calibration frames and the
library versions: a node restart with the same settings loads it in well under a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from seafusion_ros.data.dataset_splits import dataset_pairs
from seafusion_ros.imaging.image_files import ImagePair

log = logging.getLogger(__name__)

NNCF_PACKAGE = "nncf"
DEFAULT_CALIBRATION_PAIRS = 16
CACHE_ENV = "SEAFUSION_CACHE_DIR"


def nncf_available() -> bool:
    """True when NNCF (the quantisation tool, an optional extra) can be imported."""
    return importlib.util.find_spec(NNCF_PACKAGE) is not None


def calibration_pairs(root: str | os.PathLike, count: int = DEFAULT_CALIBRATION_PAIRS) -> list[ImagePair]:
    """``count`` pairs spread evenly over the data folder ``root`` (ir/ + vi/, or the labelled layout), all of
    them when it has fewer. FileNotFoundError / ValueError naming the folder when it holds no pair."""
    if count < 1:
        raise ValueError(f"int8 calibration needs at least one pair, got {count}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"int8 calibration folder {root} does not exist")
    pairs = dataset_pairs(root)
    picks = np.linspace(0, len(pairs) - 1, min(count, len(pairs))).round().astype(int)
    return [pairs[i] for i in sorted(set(picks.tolist()))]


def cache_dir() -> Path:
    """``$SEAFUSION_CACHE_DIR``, else ``$XDG_CACHE_HOME/seafusion_ros``, else ``~/.cache/seafusion_ros``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "seafusion_ros"


def cache_key(weights: str | os.PathLike, pairs: Sequence[ImagePair], settings: str) -> str:
    """A digest of everything the quantised model depends on: the weights' bytes, each calibration file's name,
    size and modification time, the engine settings that shape the network's inputs, and the versions."""
    import nncf
    import openvino

    digest = hashlib.sha256(Path(weights).read_bytes())
    for pair in pairs:
        for path in (pair.ir, pair.visible):
            stat = path.stat()
            digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    digest.update(f"{settings}|nncf {nncf.__version__}|openvino {openvino.__version__}".encode())
    return digest.hexdigest()[:24]


def quantize(model, inputs: Sequence[tuple[np.ndarray, ...]]):
    """The OpenVINO model with int8 convolutions, calibrated on ``inputs`` (the network's own input arrays)."""
    import nncf

    return nncf.quantize(model, nncf.Dataset(list(inputs)), subset_size=len(inputs),
                         preset=nncf.QuantizationPreset.PERFORMANCE)


def cached_int8_model(key: str, build: Callable[[], object]):
    """The quantised model stored under ``key`` in the cache folder, or ``build()``'s result, saved there.

    The IR is written under temporary names and renamed (weights first), so a crash never leaves a model
    file that points at missing or partial weights; a cache folder that cannot be written only costs the
    next start another quantisation (logged).
    """
    import openvino as ov

    folder = cache_dir() / "int8"
    xml, binary = folder / f"fusion_{key}.xml", folder / f"fusion_{key}.bin"
    if xml.is_file() and binary.is_file():
        log.info("seafusion: int8 fusion model from the cache %s", xml)
        return ov.Core().read_model(str(xml))
    model = build()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp_xml = folder / f".fusion_{key}.{os.getpid()}.xml"
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        os.replace(tmp_xml.with_suffix(".bin"), binary)
        os.replace(tmp_xml, xml)
        log.info("seafusion: int8 fusion model cached in %s", xml)
    except OSError as exc:
        log.warning("seafusion: could not cache the int8 fusion model in %s (%s)", folder, exc)
    return model
