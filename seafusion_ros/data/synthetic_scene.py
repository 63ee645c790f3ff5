"""A synthetic night street scene seen by a 14-bit thermal camera and a dark RGB camera.

It is the package's embedded sample: no data set needed for the demo or the tests of the node.
A warm pedestrian (human proportions, clothed, warmest at the bare face and hands) crosses in front
of a parked saloon (body, cabin and wheels in side view; warm bonnet and tyres, hot exhaust, glass
cooler than the body), under one street lamp: both drawn as real thermal and RGB cameras see them,
so that segmenters trained on real road scenes recognise them. In RGB the scene is dark and noisy
(the pedestrian is barely visible), in thermal the people and the engine stand out but the road
markings and the lamp-lit facade texture are absent. Frames are deterministic in (index, seed), and
the pedestrian walks with the frame index, so a frame sequence is a short video.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

THERMAL_BITS = 14
CAR, PERSON = 1, 2  # the MSRS / MFNet class ids of the scene's objects
_AMBIENT, _ROAD, _CLOTHED, _SKIN, _ENGINE = 7600.0, 7900.0, 9600.0, 10400.0, 12800.0  # raw 14-bit counts


@dataclass(frozen=True)
class SceneFrame:
    """thermal: H x W uint16 (14-bit counts); rgb: H x W x 3 uint8 in RGB order; labels: H x W uint8 class ids
    of the drawn objects in the MSRS / MFNet label set (``CAR``, ``PERSON``; 0 elsewhere)."""

    thermal: np.ndarray
    rgb: np.ndarray
    pedestrian_box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels
    car_box: tuple[int, int, int, int]
    labels: np.ndarray


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


def _draw_car(thermal: np.ndarray, visible: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Draw a parked saloon (side view, front left) filling ``box`` (x0, y0, x1, y1) into both images; returns
    its silhouette (H x W bool)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0

    def pts(*xy: tuple[float, float]) -> np.ndarray:
        return np.array([(x0 + fx * w, y0 + fy * h) for fx, fy in xy], np.int32)

    wheel_r = max(int(h * 0.17), 2)
    wheels = [(x0 + int(w * 0.18), y1 - wheel_r), (x1 - int(w * 0.19), y1 - wheel_r)]
    body = pts((0.0, 0.50), (0.04, 0.40), (0.27, 0.36), (0.36, 0.04), (0.47, 0.0), (0.74, 0.0), (0.86, 0.34),
               (0.98, 0.38), (1.0, 0.52), (0.99, 0.80), (0.01, 0.80))
    glass = [pts((0.31, 0.37), (0.39, 0.08), (0.55, 0.06), (0.55, 0.37)),
             pts((0.58, 0.37), (0.58, 0.06), (0.72, 0.06), (0.81, 0.36))]
    bonnet = pts((0.02, 0.42), (0.27, 0.37), (0.30, 0.52), (0.02, 0.55))
    silhouette = np.zeros(thermal.shape, np.uint8)
    cv2.fillPoly(silhouette, [body], 1)
    for centre in wheels:
        cv2.circle(silhouette, centre, wheel_r, 1, -1)
    ys, xs = np.nonzero(silhouette)
    shade = np.clip((ys.astype(np.float32) - y0) / max(h, 1), 0.0, 1.0)  # paint warmer towards the road
    thermal[ys, xs] = _AMBIENT + 350.0 + 500.0 * shade
    visible[ys, xs] = (58, 60, 66)
    cv2.fillPoly(thermal, [bonnet], _AMBIENT + 1300.0)
    for pane in glass:
        cv2.fillPoly(thermal, [pane], _AMBIENT - 400.0)
        cv2.fillPoly(visible, [pane], (14, 16, 22))
    cv2.line(visible, tuple(pts((0.02, 0.62))[0]), tuple(pts((0.98, 0.62))[0]), (80, 82, 88), max(h // 40, 1))
    for centre in wheels:
        cv2.circle(thermal, centre, wheel_r, _AMBIENT + 1100.0, -1)
        cv2.circle(thermal, centre, max(wheel_r // 2, 1), _AMBIENT + 1700.0, -1)
        cv2.circle(visible, centre, wheel_r, (8, 8, 9), -1)
        cv2.circle(visible, centre, max(wheel_r // 2, 1), (70, 70, 72), -1)
    cv2.fillPoly(visible, [pts((0.95, 0.40), (0.99, 0.42), (0.99, 0.56), (0.95, 0.56))], (170, 25, 20))
    cv2.ellipse(thermal, tuple(pts((0.95, 0.80))[0]), (max(w // 30, 1), max(h // 20, 1)), 0, 0, 360,
                _ENGINE, -1)
    return silhouette > 0


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

    # Parked car, side view, front to the left: a saloon's body and cabin, glass cooler than the body (it
    # reflects the night sky), a warm bonnet over the engine, warm tyres, a hot exhaust; in RGB dark
    # paint and glass, black tyres, lit tail light.
    cx0, cy0 = int(width * 0.58), int(height * 0.55)
    cx1, cy1 = int(width * 0.92), int(height * 0.75)
    car_box = (cx0, cy0, cx1, cy1)
    car = _draw_car(thermal, visible, car_box)

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
    labels = np.zeros((height, width), np.uint8)
    labels[car] = CAR
    labels[body] = PERSON  # in front of the car
    return SceneFrame(thermal_u16, rgb, ped_box, car_box, labels)
