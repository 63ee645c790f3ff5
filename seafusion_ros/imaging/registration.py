"""Thermal -> RGB registration, ROS-free: warp the thermal image into the RGB camera's pixel grid.

Thermal and RGB cameras differ in resolution and viewpoint. For a scene far away compared with the
camera baseline (or a dominant plane) one 3x3 homography ``H`` maps thermal pixels to RGB pixels:
``[u_rgb, v_rgb, 1]^T ~ H [u_th, v_th, 1]^T`` (full-resolution pixel coordinates of both cameras).
Without a homography the warp is scale-only (the two images cover the same field of view).

The output grid is the RGB image, optionally resized to ``output_size``; the visible image is resized
with it. The cv2.remap maps are computed once per (thermal size, RGB size) and reused for every frame;
only the most recently used size pairs are kept, so a source that keeps changing resolution cannot grow
memory without bound.

Getting ``H`` from a calibration (see :func:`homography_from_calibration`):

* stereo calibration of the pair (intrinsics ``K_th``, ``K_rgb``; rotation ``R`` and translation ``t``
  from thermal to RGB camera coordinates, e.g. ``cv2.stereoCalibrate`` on a heated checkerboard) gives
  ``H = K_rgb (R + t n^T / d) K_th^-1`` for the plane ``n^T X = d`` in thermal camera coordinates; for
  distant scenes use ``d = inf`` (``H = K_rgb R K_th^-1``);
* or four or more matched points seen by both cameras: ``H, _ = cv2.findHomography(pts_th, pts_rgb)``.

Pixels that fall outside the thermal image replicate its border: a constant fill would put fake
temperatures into the automatic thermal gain's percentiles.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import cv2
import numpy as np

REGISTRATION_MODES = ("none", "scale", "homography")
IDENTITY_HOMOGRAPHY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # default of the node and seafusion-replay
MAX_CACHED_MAPS = 4  # size pairs whose remap maps are kept: each holds two full-output-resolution maps


def homography_from_calibration(
    k_thermal: np.ndarray,
    k_rgb: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray | None = None,
    plane_normal: Sequence[float] = (0, 0, 1),
    plane_distance: float = float("inf"),
) -> np.ndarray:
    """Thermal -> RGB pixel homography ``K_rgb (R + t n^T / d) K_th^-1``, normalised so ``H[2, 2] = 1``.

    rotation/translation take thermal camera coordinates to RGB camera coordinates (X_rgb = R X_th + t);
    the plane is ``n^T X_th = d`` (d in the unit of t; inf = scene at infinity, t ignored).
    """
    k_thermal = np.asarray(k_thermal, np.float64).reshape(3, 3)
    k_rgb = np.asarray(k_rgb, np.float64).reshape(3, 3)
    rotation = np.asarray(rotation, np.float64).reshape(3, 3)
    planar = rotation.copy()
    if translation is not None and np.isfinite(plane_distance):
        if plane_distance <= 0:
            raise ValueError(f"plane distance must be positive, got {plane_distance}")
        t = np.asarray(translation, np.float64).reshape(3, 1)
        n = np.asarray(plane_normal, np.float64).reshape(1, 3)
        planar = planar + t @ n / plane_distance
    h = k_rgb @ planar @ np.linalg.inv(k_thermal)
    return h / h[2, 2]


def _check_homography(homography: np.ndarray | Sequence[float]) -> np.ndarray:
    h = np.asarray(homography, np.float64)
    if h.size != 9:
        raise ValueError(f"homography must have 9 values (3x3, row-major), got {h.size}")
    h = h.reshape(3, 3)
    if not np.isfinite(h).all():
        raise ValueError("homography contains NaN or infinite values")
    if abs(np.linalg.det(h)) < 1e-12:
        raise ValueError("homography is singular (determinant ~ 0)")
    return h


class Registration:
    """Warp thermal images into the (optionally resized) RGB frame.

    Args:
        mode: ``none`` (sizes must already match), ``scale`` (stretch thermal to the RGB size) or
            ``homography`` (use ``homography``).
        homography: 3x3 thermal -> RGB pixel mapping (9 values row-major), for mode ``homography``.
        output_size: (height, width) of the fused output; None = the RGB image's size.
    """

    def __init__(
        self,
        mode: str = "none",
        homography: np.ndarray | Sequence[float] | None = None,
        output_size: tuple[int, int] | None = None,
    ) -> None:
        if mode not in REGISTRATION_MODES:
            raise ValueError(f"registration mode must be one of {REGISTRATION_MODES}, got {mode!r}")
        if mode == "homography" and homography is None:
            raise ValueError("registration mode 'homography' needs a homography (9 values)")
        if output_size is not None and (len(output_size) != 2 or min(output_size) < 1):
            raise ValueError(f"output size must be (height, width) >= 1, got {output_size}")
        self.mode = mode
        self.homography = _check_homography(homography) if mode == "homography" else None
        self.output_size = tuple(output_size) if output_size is not None else None
        # (thermal size, RGB size) -> remap maps, least recently used first.
        self._maps: OrderedDict[tuple[tuple[int, int], tuple[int, int]], tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def output_shape(self, rgb_size: tuple[int, int]) -> tuple[int, int]:
        return self.output_size or rgb_size

    def _thermal_to_output(self, thermal_size: tuple[int, int], rgb_size: tuple[int, int]) -> np.ndarray:
        """3x3 matrix from thermal pixel centres to output pixel centres."""
        out_h, out_w = self.output_shape(rgb_size)
        rgb_to_out = np.diag([out_w / rgb_size[1], out_h / rgb_size[0], 1.0])
        if self.homography is not None:
            return rgb_to_out @ self.homography
        scale = np.diag([rgb_size[1] / thermal_size[1], rgb_size[0] / thermal_size[0], 1.0])
        return rgb_to_out @ scale

    def _remap_maps(
        self, thermal_size: tuple[int, int], rgb_size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        key = (thermal_size, rgb_size)
        if key in self._maps:
            self._maps.move_to_end(key)
        else:
            out_h, out_w = self.output_shape(rgb_size)
            # Pixel centres: x_cont = x + 0.5, so a pure scale maps centres onto centres as cv2.resize does.
            centre = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
            uncentre = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
            inverse = uncentre @ np.linalg.inv(self._thermal_to_output(thermal_size, rgb_size)) @ centre
            xs, ys = np.meshgrid(np.arange(out_w, dtype=np.float64), np.arange(out_h, dtype=np.float64))
            src = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ inverse.T
            with np.errstate(divide="ignore", invalid="ignore"):
                map_x = (src[..., 0] / src[..., 2]).astype(np.float32)
                map_y = (src[..., 1] / src[..., 2]).astype(np.float32)
            map_x[~np.isfinite(map_x)] = -1.0
            map_y[~np.isfinite(map_y)] = -1.0
            self._maps[key] = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)
            if len(self._maps) > MAX_CACHED_MAPS:
                self._maps.popitem(last=False)
        return self._maps[key]

    def warp_thermal(self, thermal: np.ndarray, rgb_size: tuple[int, int]) -> np.ndarray:
        """The thermal image (H x W uint8/uint16/float32) resampled onto the output grid."""
        thermal_size = (int(thermal.shape[0]), int(thermal.shape[1]))
        if self.mode == "none":
            if thermal_size != tuple(rgb_size):
                raise ValueError(
                    f"thermal {thermal_size} and RGB {tuple(rgb_size)} sizes differ and registration "
                    "mode is 'none': use 'scale' or 'homography' (node parameter registration.mode, "
                    "seafusion-replay --registration-mode)"
                )
            if self.output_size is None or self.output_size == thermal_size:
                return thermal
            return cv2.resize(
                thermal, (self.output_size[1], self.output_size[0]), interpolation=cv2.INTER_LINEAR
            )
        map_a, map_b = self._remap_maps(thermal_size, (int(rgb_size[0]), int(rgb_size[1])))
        return cv2.remap(thermal, map_a, map_b, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def resize_visible(self, visible: np.ndarray) -> np.ndarray:
        """The RGB image at the output size (unchanged when no output size is set)."""
        if self.output_size is None or self.output_size == visible.shape[:2]:
            return visible
        return cv2.resize(visible, (self.output_size[1], self.output_size[0]), interpolation=cv2.INTER_AREA)

    def apply(self, thermal: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(warped thermal, resized visible), both at the output size."""
        rgb_size = (int(visible.shape[0]), int(visible.shape[1]))
        return self.warp_thermal(thermal, rgb_size), self.resize_visible(visible)
