"""Camera intrinsics of a resized image: the K and P of sensor_msgs/CameraInfo, scaled. ROS-free.

The fused image lives in the RGB camera's frame; when the node resizes its output, the RGB camera's
calibration still applies once the pixel scale is folded in (as image_proc's resize node does): fx, cx
and P's Tx term scale with the width, fy and cy with the height. Distortion is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence


def scale_intrinsics(k: Sequence[float], p: Sequence[float], from_size: tuple[int, int],
                     to_size: tuple[int, int]) -> tuple[list[float], list[float]]:
    """(K, P) for an image resized from ``from_size`` to ``to_size`` (both height, width).

    K is the 3x3 row-major camera matrix, P the 3x4 row-major projection matrix.
    """
    if len(k) != 9 or len(p) != 12:
        raise ValueError(f"K needs 9 values and P 12, got {len(k)} and {len(p)}")
    (from_h, from_w), (to_h, to_w) = from_size, to_size
    if min(from_h, from_w, to_h, to_w) <= 0:
        raise ValueError(f"sizes must be positive, got {from_size} -> {to_size}")
    sx, sy = to_w / from_w, to_h / from_h
    k_scaled, p_scaled = [float(v) for v in k], [float(v) for v in p]
    for index in (0, 2):  # fx, cx
        k_scaled[index] *= sx
    for index in (4, 5):  # fy, cy
        k_scaled[index] *= sy
    for index in (0, 2, 3):  # fx', cx', Tx * fx'
        p_scaled[index] *= sx
    for index in (5, 6, 7):  # fy', cy', Ty * fy'
        p_scaled[index] *= sy
    return k_scaled, p_scaled
