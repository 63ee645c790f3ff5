"""The embedded synthetic night scene: formats, determinism, and that each camera sees what it should."""

from __future__ import annotations

import numpy as np
import pytest

from seafusion_ros.data.synthetic_scene import CAR, PERSON, render_frame


def test_formats_and_determinism():
    a, b = render_frame(3), render_frame(3)
    assert a.thermal.dtype == np.uint16 and a.thermal.shape == (480, 640)
    assert a.rgb.dtype == np.uint8 and a.rgb.shape == (480, 640, 3)
    assert a.thermal.max() < 2**14  # 14-bit radiometric counts in a 16-bit container
    np.testing.assert_array_equal(a.thermal, b.thermal)
    np.testing.assert_array_equal(a.rgb, b.rgb)


def test_pedestrian_is_warm_in_thermal_and_dark_in_rgb():
    frame = render_frame(0)
    x0, y0, x1, y1 = frame.pedestrian_box
    person = frame.thermal[y0:y1, x0:x1]
    assert person.max() > np.percentile(frame.thermal, 95)
    assert frame.rgb.mean() < 40  # a night scene


@pytest.mark.parametrize("index", [0, 5, 10, 20])
def test_pedestrian_is_a_filled_human_silhouette(index):
    # Segmenters trained on real thermal people need a body, not a stick figure: a box about
    # a third to a half as wide as tall, mostly filled with warm pixels, the bare head warmest.
    frame = render_frame(index)
    x0, y0, x1, y1 = frame.pedestrian_box
    box = frame.thermal[y0:y1 + 1, x0:x1 + 1].astype(np.float32)
    road = float(np.median(frame.thermal[y1 + 5:y1 + 15, x0:x1 + 1]))
    warm = box > road + 800
    assert 0.25 <= (x1 - x0 + 1) / (y1 - y0 + 1) <= 0.6
    assert warm.mean() > 0.35
    head = box[: max((y1 - y0) // 8, 1)]
    assert head.max() > np.median(box[warm]) + 500


def test_car_is_a_saloon_seen_from_the_side():
    # A filled car shape, not a box: body and cabin fill half to three quarters of the box; in thermal the
    # glass is cooler than the body (it reflects the sky) and the exhaust is the car's hottest point.
    frame = render_frame(0)
    x0, y0, x1, y1 = frame.car_box
    car = frame.labels[y0:y1 + 1, x0:x1 + 1] == CAR
    assert 0.5 < car.mean() < 0.8
    thermal = frame.thermal[y0:y1 + 1, x0:x1 + 1].astype(np.float32)
    cabin = (slice(0, (y1 - y0) // 3), slice((x1 - x0) // 3, (x1 - x0) * 2 // 3))  # top third, middle third
    assert np.median(thermal[cabin][car[cabin]]) < np.median(thermal[car]) - 300
    assert np.unravel_index(thermal.argmax(), thermal.shape)[1] > (x1 - x0) * 0.85  # the exhaust, at the back


def test_labels_mark_the_drawn_objects():
    frame = render_frame(5)
    assert set(np.unique(frame.labels)) == {0, CAR, PERSON}
    x0, y0, x1, y1 = frame.pedestrian_box
    assert (frame.labels == PERSON).sum() == (frame.labels[y0:y1 + 1, x0:x1 + 1] == PERSON).sum()
    x0, y0, x1, y1 = frame.car_box
    assert (frame.labels == CAR).sum() == (frame.labels[y0:y1 + 1, x0:x1 + 1] == CAR).sum()


def test_pedestrian_walks():
    assert render_frame(10).pedestrian_box[0] > render_frame(0).pedestrian_box[0]


def test_tiny_size_is_refused():
    with pytest.raises(ValueError, match="at least 32 x 32"):
        render_frame(0, 16, 16)
