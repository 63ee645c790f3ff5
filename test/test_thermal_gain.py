"""Automatic thermal gain: windows, smoothing, validation."""

from __future__ import annotations

import numpy as np
import pytest

from seafusion_ros.inference.thermal_gain import ThermalGain, ThermalGainConfig


def _ramp(low: int, high: int) -> np.ndarray:
    return np.linspace(low, high, 200 * 100).reshape(200, 100).astype(np.uint16)


def test_percentile_window_spans_the_used_range_of_14_bit_data():
    gain = ThermalGain()
    scale, offset = gain.scale_and_offset(_ramp(7000, 12000))
    low, high = gain.window
    assert 7000 < low < 7100 and 11900 < high < 12000
    assert 7000 * scale + offset < 0.0 + 0.02 and 12000 * scale + offset > 0.98


def test_fixed_and_minmax_modes():
    image = _ramp(1000, 3000)
    fixed = ThermalGain(ThermalGainConfig(mode="fixed", fixed_low=0, fixed_high=4000))
    fixed.scale_and_offset(image)
    assert fixed.window == (0, 4000)
    minmax = ThermalGain(ThermalGainConfig(mode="minmax"))
    minmax.scale_and_offset(image)
    assert minmax.window[0] == pytest.approx(1000, abs=1) and minmax.window[1] == pytest.approx(3000, abs=20)


def test_smoothing_damps_a_sudden_change():
    gain = ThermalGain(ThermalGainConfig(mode="minmax", smoothing=0.9))
    gain.scale_and_offset(_ramp(1000, 2000))
    gain.scale_and_offset(_ramp(5000, 6000))
    low, high = gain.window
    assert 1000 < low < 1500 and 2000 < high < 2500
    gain.reset()
    gain.scale_and_offset(_ramp(5000, 6000))
    assert gain.window[0] == pytest.approx(5000, abs=1)


def test_uint8_is_used_as_is():
    assert ThermalGain().scale_and_offset(np.zeros((4, 4), np.uint8)) == (1 / 255, 0.0)


def test_constant_frame_does_not_divide_by_zero():
    scale, offset = ThermalGain().scale_and_offset(np.full((8, 8), 9000, np.uint16))
    assert np.isfinite(scale) and np.isfinite(offset)


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "auto"}, "mode must be one of"),
    ({"low_percentile": 50, "high_percentile": 10}, "percentiles"),
    ({"fixed_low": 5, "fixed_high": 5}, "fixed range"),
    ({"smoothing": 1.0}, "smoothing"),
])
def test_invalid_configuration_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ThermalGainConfig(**kwargs)
