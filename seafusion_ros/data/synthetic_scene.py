"""A synthetic night street scene seen by a 14-bit thermal camera and a dark RGB camera.

It is the package's embedded sample: no data set needed for the demo or the tests of the node.
A warm pedestrian (human proportions, clothed, warmest at the bare face and hands, so that
segmenters trained on real thermal people recognise it) crosses in front of a parked car with a hot
engine and exhaust, under one street lamp; in RGB the scene is dark and noisy (the pedestrian is
barely visible), in thermal the people and the engine stand out but the road markings and the
lamp-lit facade texture are absent. Frames are deterministic in (index, seed), and the pedestrian
walks with the frame index, so a frame sequence is a short video.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

THERMAL_BITS = 14
_AMBIENT, _ROAD, _CLOTHED, _SKIN, _ENGINE = 7600.0, 7900.0, 9600.0, 10400.0, 12800.0  # raw 14-bit counts


@dataclass(frozen=True)
class SceneFrame:
    """thermal: H x W uint16 (14-bit counts); rgb: H x W x 3 uint8 in RGB order."""

    thermal: np.ndarray
    rgb: np.ndarray
    pedestrian_box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels
    car_box: tuple[int, int, int, int]


def _pedestrian_masks(shape: tuple[int, int], cx: int, feet_y: int, height: int,
                      phase: float) -> tuple[np.ndarray, np.ndarray]:
    """(whole body, bare skin) of a walking person with human proportions: head, shoulders wider than
    the hips, swinging arms and striding legs as thick limbs, face and hands bare."""
    body, skin = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    top = feet_y - height

    def at(dx: float, dy: float) -> tuple[int, int]:
        return int(round(cx + dx * height)), int(round(top + dy * height))

    head_axes = (max(int(height * 0.055), 1), max(int(height * 0.07), 1))
    cv2.ellipse(skin, at(0, 0.07), head_axes, 0, 0, 360, 255, -1)
    torso = np.array([at(-0.12, 0.16), at(0.12, 0.16), at(0.09, 0.53), at(-0.09, 0.53)], np.int32)
    cv2.fillConvexPoly(body, torso, 255)
    swing, stride = np.sin(phase) * 0.1, np.sin(phase) * 0.12
    limb = max(int(height * 0.06), 2)
    for side, arm in ((-1, swing), (1, -swing)):
        hand = at(side * 0.13 + arm, 0.5)
        cv2.line(body, at(side * 0.11, 0.18), hand, 255, limb)
        cv2.circle(skin, hand, max(limb // 2, 1), 255, -1)
    for side, leg in ((-1, stride), (1, -stride)):
        cv2.line(body, at(side * 0.05, 0.52), at(side * 0.04 + leg, 1.0), 255, int(limb * 1.3))
    skin_mask = skin > 0
    return (body > 0) | skin_mask, skin_mask


def render_frame(index: int = 0, height: int = 480, width: int = 640, seed: int = 0) -> SceneFrame:
    """Render frame ``index`` of the scene at the given size."""
    if height < 32 or width < 32:
        raise ValueError(f"scene size must be at least 32 x 32, got {height} x {width}")
    rng = np.random.default_rng(seed * 100_003 + index)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = int(height * 0.45)
    road = ys >= horizon

    # Thermal: cool sky, warmer road, facade with warm windows, car with a hot engine, a walking person.
    thermal = np.full((height, width), _AMBIENT, np.float32) - (horizon - ys).clip(0) * 3.0
    thermal[road] = _ROAD + (ys[road] - horizon) * 1.5
    facade = (~road) & (ys > height * 0.12) & (xs < width * 0.55)
    thermal[facade] = _AMBIENT + 250.0
    visible = np.zeros((height, width, 3), np.float32)
    visible[~road] = (10, 12, 20)
    visible[road] = (22, 22, 24)
    visible[facade] = (35, 30, 28)
    for wx in range(int(width * 0.05), int(width * 0.5), max(width // 12, 4)):
        for wy in range(int(height * 0.18), horizon - height // 20, max(height // 10, 4)):
            w, h = max(width // 32, 2), max(height // 24, 2)
            lit = rng.random() < 0.45
            thermal[wy:wy + h, wx:wx + w] += 500.0 if lit else 120.0
            visible[wy:wy + h, wx:wx + w] = (120, 100, 55) if lit else (18, 18, 22)

    # Road markings: visible only (same temperature as the asphalt).
    for mx in range(0, width, max(width // 8, 4)):
        cv2.rectangle(visible, (mx, int(height * 0.78)), (mx + width // 16, int(height * 0.79) + 1),
                      (90, 90, 85), -1)

    # Street lamp pool of light on the road, right side.
    lamp_x, lamp_y = int(width * 0.8), int(height * 0.85)
    pool = np.exp(-(((xs - lamp_x) / (width * 0.18)) ** 2 + ((ys - lamp_y) / (height * 0.12)) ** 2))
    visible += pool[..., None] * np.array([70, 60, 30], np.float32)

    # Parked car with a hot engine bay and exhaust, headlights dark.
    cx0, cy0 = int(width * 0.58), int(height * 0.55)
    cx1, cy1 = int(width * 0.92), int(height * 0.75)
    car_box = (cx0, cy0, cx1, cy1)
    cv2.rectangle(thermal, (cx0, cy0 + (cy1 - cy0) // 3), (cx1, cy1), _AMBIENT + 900.0, -1)
    cv2.rectangle(thermal, (cx0 + (cx1 - cx0) // 5, cy0), (cx1 - (cx1 - cx0) // 4, cy0 + (cy1 - cy0) // 3),
                  _AMBIENT + 600.0, -1)
    cv2.rectangle(thermal, (cx0, cy0 + (cy1 - cy0) // 3), (cx0 + (cx1 - cx0) // 4, cy1 - (cy1 - cy0) // 4),
                  _ENGINE, -1)
    for wheel_x in (cx0 + (cx1 - cx0) // 5, cx1 - (cx1 - cx0) // 5):
        cv2.circle(thermal, (wheel_x, cy1), max((cy1 - cy0) // 6, 2), _AMBIENT + 1500.0, -1)
    cv2.rectangle(visible, (cx0, cy0 + (cy1 - cy0) // 3), (cx1, cy1), (40, 18, 16), -1)
    cv2.rectangle(visible, (cx0 + (cx1 - cx0) // 5, cy0), (cx1 - (cx1 - cx0) // 4, cy0 + (cy1 - cy0) // 3),
                  (28, 30, 36), -1)

    # Pedestrian walking left to right across the road, 3 px per frame at 640 wide.
    ped_h = int(height * 0.3)
    ped_x = int((width * 0.1 + index * 3 * width / 640) % (width * 0.5)) + int(width * 0.05)
    feet_y = int(height * 0.8)
    body, skin = _pedestrian_masks((height, width), ped_x, feet_y, ped_h, index * 0.5)
    thermal[body] = _CLOTHED
    thermal[skin] = _SKIN
    visible[body] = (30, 26, 24)
    visible[skin] = (48, 38, 32)
    body_ys, body_xs = np.nonzero(body)
    ped_box = (int(body_xs.min()), int(body_ys.min()), int(body_xs.max()), int(body_ys.max()))

    thermal = cv2.GaussianBlur(thermal, (0, 0), max(width / 640, 0.5) * 1.5)
    thermal += rng.normal(0.0, 25.0, thermal.shape).astype(np.float32)
    visible += rng.normal(0.0, 4.0, visible.shape).astype(np.float32)
    thermal_u16 = np.clip(thermal, 0, 2**THERMAL_BITS - 1).astype(np.uint16)
    rgb = np.clip(visible, 0, 255).astype(np.uint8)
    return SceneFrame(thermal_u16, rgb, ped_box, car_box)
