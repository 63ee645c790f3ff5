"""Automatic gain for 16-bit and float thermal images: map raw counts to [0, 1] for the network.

14-bit radiometric cameras use a small part of the 16-bit range, so a fixed /65535 makes them nearly
black. The gain is a (low, high) window chosen per frame by percentile, min-max, or fixed, and
optionally smoothed over time (exponential moving average) so video does not pump. uint8 thermal is
already display-scaled and is simply divided by 255.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GAIN_MODES = ("percentile", "fixed", "minmax")


@dataclass(frozen=True)
class ThermalGainConfig:
    """How raw thermal values become [0, 1].

    mode: ``percentile`` (window between the low/high percentiles of the frame), ``minmax``
    (frame min and max) or ``fixed`` (``fixed_low`` .. ``fixed_high`` in raw units).
    smoothing: 0 = every frame independent; s in (0, 1) = window_t = s * window_{t-1} + (1 - s) * new.
    """

    mode: str = "percentile"
    low_percentile: float = 1.0
    high_percentile: float = 99.0
    fixed_low: float = 0.0
    fixed_high: float = 65535.0
    smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in GAIN_MODES:
            raise ValueError(f"thermal gain mode must be one of {GAIN_MODES}, got {self.mode!r}")
        if not 0.0 <= self.low_percentile < self.high_percentile <= 100.0:
            raise ValueError("thermal gain percentiles must satisfy 0 <= low < high <= 100, got "
                             f"{self.low_percentile}, {self.high_percentile}")
        if not self.fixed_low < self.fixed_high:
            raise ValueError(f"thermal gain fixed range needs low < high, got {self.fixed_low}, {self.fixed_high}")
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"thermal gain smoothing must be in [0, 1), got {self.smoothing}")


class ThermalGain:
    """Stateful gain: remembers the last window for temporal smoothing. One instance per stream."""

    # Percentiles on every second row and column: 4x fewer pixels, same window to a fraction of a count.
    _STRIDE = 2

    def __init__(self, config: ThermalGainConfig | None = None) -> None:
        self.config = config or ThermalGainConfig()
        self._window: tuple[float, float] | None = None

    def reset(self) -> None:
        self._window = None

    @property
    def window(self) -> tuple[float, float] | None:
        """The (low, high) raw window used for the last frame."""
        return self._window

    def _frame_window(self, image: np.ndarray) -> tuple[float, float]:
        cfg = self.config
        if cfg.mode == "fixed":
            return cfg.fixed_low, cfg.fixed_high
        sample = image[:: self._STRIDE, :: self._STRIDE]
        if cfg.mode == "minmax":
            return float(sample.min()), float(sample.max())
        low, high = np.percentile(sample, (cfg.low_percentile, cfg.high_percentile))
        return float(low), float(high)

    def window_for(self, image: np.ndarray) -> tuple[float, float]:
        """Update the smoothed window with this frame and return it."""
        low, high = self._frame_window(image)
        s = self.config.smoothing
        if self._window is not None and s > 0.0:
            low = s * self._window[0] + (1.0 - s) * low
            high = s * self._window[1] + (1.0 - s) * high
        self._window = (low, high)
        return low, high

    def scale_and_offset(self, image: np.ndarray) -> tuple[float, float]:
        """(scale, offset) such that normalised = clip(raw * scale + offset, 0, 1)."""
        if image.dtype == np.uint8:
            return 1.0 / 255.0, 0.0
        low, high = self.window_for(image)
        span = max(high - low, 1e-6 if image.dtype.kind == "f" else 1.0)
        return 1.0 / span, -low / span
