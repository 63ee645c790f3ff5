"""Image fusion quality metrics, defined as in the MATLAB suite of Tang et al. (SeAFusion line).

Notation: F fused, A infrared, B visible. Every function takes uint8 images, either gray (H x W) or
RGB (H x W x 3, R first); colour becomes gray with MATLAB ``rgb2gray`` weights rounded to uint8, so
numbers are comparable with the papers. EN and MI use the uint8 values, every other metric float64
on the 0..255 scale (VIF changes with scale). See ``shared/docs/metrics_reference.md``.

Undefined values are never NaN: a metric whose formula divides by zero for the given input (a
correlation with a constant image, VIF with a constant reference, Qabf with two all-black sources,
PSNR of a fused image equal to both sources) raises :class:`MetricUndefinedError` naming the metric.
:func:`fusion_scores` collects those as notes instead, so one degenerate pair never stops a report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

METRIC_NAMES = ("EN", "SD", "SF", "AG", "MI", "SCD", "CC", "VIF", "Qabf", "Nabf", "PSNR", "SSIM")
HIGHER_IS_BETTER = {name: name != "Nabf" for name in METRIC_NAMES}
METRIC_DESCRIPTIONS = {
    "EN": "Shannon entropy of F (bits)",
    "SD": "standard deviation of F",
    "SF": "spatial frequency of F",
    "AG": "average gradient of F (Tang divisor (M-1)(N-1))",
    "MI": "MI(F,A) + MI(F,B) in bits",
    "SCD": "sum of the correlations of differences",
    "CC": "mean correlation coefficient (corr(A,F) + corr(B,F)) / 2",
    "VIF": "VIF(A,F) + VIF(B,F), multiscale pixel-domain",
    "Qabf": "Xydeas-Petrovic gradient edge preservation",
    "Nabf": "Kumar's modified fusion artefact measure",
    "PSNR": "Tang's PSNR: 10 log10(255^2 / ((MSE(F,A) + MSE(F,B)) / 2)) in dB",
    "SSIM": "Wang et al. 2004 SSIM (Gaussian 11x11, sigma 1.5, K 0.01/0.03, L 255, valid window, "
            "no downsampling) as SSIM(F,A) + SSIM(F,B)",
}

# MATLAB rgb2gray: the first row of the inverse of the NTSC (YIQ) transform.
RGB2GRAY_WEIGHTS = np.array([0.298936021293776, 0.587043074451121, 0.114020904255103])
_VIF_EPS = 1e-10
_VIF_NOISE_VAR = 2.0


class MetricUndefinedError(ValueError):
    """A metric whose definition has no value for this input (e.g. a correlation with a constant image)."""

    def __init__(self, metric: str, reason: str) -> None:
        super().__init__(f"{metric} is undefined: {reason}")
        self.metric = metric
        self.reason = reason


def to_gray(image: np.ndarray, name: str = "image") -> np.ndarray:
    """uint8 H x W gray image: gray input as is, RGB through MATLAB rgb2gray with round-half-up.

    Raises ValueError for anything but a non-empty uint8 H x W, H x W x 1 or H x W x 3 (RGB) array.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (the metric definitions assume 0..255), got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        image = np.floor(image.astype(np.float64) @ RGB2GRAY_WEIGHTS + 0.5).astype(np.uint8)
    if image.ndim != 2:
        raise ValueError(f"{name} must be H x W gray or H x W x 3 RGB, got shape {image.shape}")
    if min(image.shape) < 2:
        raise ValueError(f"{name} must be at least 2 x 2 pixels, got shape {image.shape}")
    return image


def _gray_triplet(fused: np.ndarray, ir: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, ...]:
    f, a, b = to_gray(fused, "fused image"), to_gray(ir, "infrared image"), to_gray(visible, "visible image")
    if not f.shape == a.shape == b.shape:
        raise ValueError(f"image sizes differ: fused {f.shape}, infrared {a.shape}, visible {b.shape}")
    return f, a, b


def _entropy_of_counts(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _entropy(f: np.ndarray) -> float:
    return _entropy_of_counts(np.bincount(f.ravel(), minlength=256))


def _mutual_information(f: np.ndarray, x: np.ndarray) -> float:
    joint = np.bincount(f.ravel().astype(np.int64) * 256 + x.ravel(), minlength=256 * 256)
    joint = joint.reshape(256, 256)
    return (_entropy_of_counts(joint.sum(axis=1)) + _entropy_of_counts(joint.sum(axis=0))
            - _entropy_of_counts(joint.ravel()))


def _spatial_frequency(f: np.ndarray) -> float:
    row = np.mean(np.diff(f, axis=1) ** 2)
    col = np.mean(np.diff(f, axis=0) ** 2)
    return float(np.sqrt(row + col))


def _average_gradient(f: np.ndarray) -> float:
    gy, gx = np.gradient(f)
    m, n = f.shape
    return float(np.sqrt((gx ** 2 + gy ** 2) / 2.0).sum() / ((m - 1) * (n - 1)))


def _corr2(x: np.ndarray, y: np.ndarray, metric: str) -> float:
    xc = x - x.mean()
    yc = y - y.mean()
    denominator = np.sqrt((xc * xc).sum() * (yc * yc).sum())
    if denominator == 0.0:
        raise MetricUndefinedError(metric, "correlation with a constant image")
    return float((xc * yc).sum() / denominator)


def _gaussian_1d(size: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB fspecial('gaussian', size, sigma): the 2-D window is its outer product."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(image: np.ndarray, kernel_1d: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation with the outer product of a symmetric 1-D kernel (two 1-D passes)."""
    h = len(kernel_1d) // 2
    out = cv2.sepFilter2D(image, cv2.CV_64F, kernel_1d, kernel_1d, borderType=cv2.BORDER_REFLECT)
    return out[h:image.shape[0] - h, h:image.shape[1] - h]


def vif_windows() -> list[np.ndarray]:
    """The four 1-D Gaussian factors of the VIF scales: sizes 17, 9, 5, 3 with sigma = size / 5."""
    return [_gaussian_1d(2 ** (5 - s) + 1, (2 ** (5 - s) + 1) / 5.0) for s in range(1, 5)]


def _vif_terms(mu1: np.ndarray, s1_sq: np.ndarray, mu2: np.ndarray, s2_sq: np.ndarray,
               s12: np.ndarray) -> tuple[float, float]:
    """Numerator and denominator of one VIF scale, from local moments (ref 1, distorted 2)."""
    s1_sq = np.maximum(s1_sq - mu1 * mu1, 0.0)
    s2_sq = np.maximum(s2_sq - mu2 * mu2, 0.0)
    s12 = s12 - mu1 * mu2
    g = s12 / (s1_sq + _VIF_EPS)
    sv_sq = s2_sq - g * s12
    flat1 = s1_sq < _VIF_EPS
    g[flat1] = 0.0
    sv_sq[flat1] = s2_sq[flat1]
    s1_sq[flat1] = 0.0
    flat2 = s2_sq < _VIF_EPS
    g[flat2] = 0.0
    sv_sq[flat2] = 0.0
    negative = g < 0
    sv_sq[negative] = s2_sq[negative]
    g[negative] = 0.0
    sv_sq = np.maximum(sv_sq, _VIF_EPS)
    num = np.log10(1.0 + g * g * s1_sq / (sv_sq + _VIF_NOISE_VAR)).sum()
    den = np.log10(1.0 + s1_sq / _VIF_NOISE_VAR).sum()
    return float(num), float(den)


def vif_float64(f: np.ndarray, a: np.ndarray, b: np.ndarray,
                filter_valid: Callable[[np.ndarray, np.ndarray], np.ndarray] = _filter_valid) -> float:
    """VIF(A,F) + VIF(B,F) of float64 gray images on 0..255; F's pyramid and moments serve both.

    ``filter_valid(image, kernel_1d)`` is the 'valid' Gaussian window filter; the default is separable,
    ``bench/bench_vif.py`` passes a direct 2-D convolution of the same window to compare.
    """
    nums = [0.0, 0.0]
    dens = [0.0, 0.0]
    refs = [a, b]
    for scale, window in enumerate(vif_windows(), start=1):
        if scale > 1:
            f = filter_valid(f, window)[::2, ::2]
            refs = [filter_valid(r, window)[::2, ::2] for r in refs]
        if min(f.shape) < len(window):
            raise ValueError(f"image too small for VIF: scale {scale} needs at least {len(window)} pixels "
                             f"per side and has {f.shape}")
        mu_f = filter_valid(f, window)
        sq_f = filter_valid(f * f, window)
        for i, r in enumerate(refs):
            num, den = _vif_terms(filter_valid(r, window), filter_valid(r * r, window), mu_f, sq_f,
                                  filter_valid(r * f, window))
            nums[i] += num
            dens[i] += den
    for den, which in zip(dens, ("infrared", "visible"), strict=True):
        if den == 0.0:
            raise MetricUndefinedError("VIF", f"the {which} image is constant (no information to preserve)")
    return nums[0] / dens[0] + nums[1] / dens[1]


def _convolve_same_zero(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """True 2-D convolution, output the size of the input, zero padding (MATLAB conv2 'same')."""
    return cv2.filter2D(image, cv2.CV_64F, kernel[::-1, ::-1].copy(), borderType=cv2.BORDER_CONSTANT)


_QABF_SX = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
_QABF_SY = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=np.float64)


def _qabf_gradients(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sx = _convolve_same_zero(x, _QABF_SX)
    sy = _convolve_same_zero(x, _QABF_SY)
    alpha = np.full_like(sx, np.pi / 2)
    nonzero = sx != 0
    alpha[nonzero] = np.arctan(sy[nonzero] / sx[nonzero])
    return np.hypot(sx, sy), alpha


def _qabf_preservation(g_x: np.ndarray, a_x: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    """Q_XF per pixel; relative strength follows the suite exactly, gF (sic) where gX == gF."""
    strength = g_f.copy()
    larger = g_x > g_f
    smaller = g_x < g_f
    strength[larger] = g_f[larger] / g_x[larger]
    strength[smaller] = g_x[smaller] / g_f[smaller]
    orientation = 1.0 - np.abs(a_x - a_f) / (np.pi / 2)
    q_g = 0.9994 / (1.0 + np.exp(-15.0 * (strength - 0.5)))
    q_a = 0.9879 / (1.0 + np.exp(-22.0 * (orientation - 0.8)))
    return q_g * q_a


def _qabf(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    g_f, a_f = _qabf_gradients(f)
    g_a, a_a = _qabf_gradients(a)
    g_b, a_b = _qabf_gradients(b)
    weight = (g_a + g_b).sum()
    if weight == 0.0:
        raise MetricUndefinedError("Qabf", "both source images are black (no edges to preserve)")
    q_af = _qabf_preservation(g_a, a_a, g_f, a_f)
    q_bf = _qabf_preservation(g_b, a_b, g_f, a_f)
    return float((q_af * g_a + q_bf * g_b).sum() / weight)


_NABF_GV = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64) / 8.0
_NABF_GH = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64) / 8.0


def _nabf_gradients(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # BORDER_REFLECT_101 is numpy's 'reflect' padding (edge pixel not repeated).
    gv = cv2.filter2D(x, cv2.CV_64F, _NABF_GV, borderType=cv2.BORDER_REFLECT_101)
    gh = cv2.filter2D(x, cv2.CV_64F, _NABF_GH, borderType=cv2.BORDER_REFLECT_101)
    alpha = np.zeros_like(gv)
    nonzero = gh != 0
    alpha[nonzero] = np.arctan(gv[nonzero] / gh[nonzero])
    alpha[~nonzero & (gv != 0)] = np.pi / 2  # atan(+-inf); the sign does not change a_XF below
    return np.hypot(gv, gh), alpha


def _nabf_preservation(g_x: np.ndarray, a_x: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    high = np.maximum(g_x, g_f)
    ratio = np.zeros_like(g_x)
    both = (g_x != 0) & (g_f != 0)
    ratio[both] = np.minimum(g_x, g_f)[both] / high[both]
    orientation = np.abs(np.abs(a_x - a_f) - np.pi / 2) * (2.0 / np.pi)
    q_g = 0.9999 / (1.0 + np.exp(-19.0 * (ratio - 0.5)))
    q_a = 0.9995 / (1.0 + np.exp(-22.0 * (orientation - 0.5)))
    return np.sqrt(q_g * q_a)


def _nabf(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    g_f, a_f = _nabf_gradients(f)
    g_a, a_a = _nabf_gradients(a)
    g_b, a_b = _nabf_gradients(b)
    w_a = np.where(g_a >= 2.0, g_a ** 1.5, 0.001)
    w_b = np.where(g_b >= 2.0, g_b ** 1.5, 0.001)
    artefact = (g_f > g_a) & (g_f > g_b)
    loss = ((1.0 - _nabf_preservation(g_a, a_a, g_f, a_f)) * w_a
            + (1.0 - _nabf_preservation(g_b, a_b, g_f, a_f)) * w_b)
    return float((loss * artefact).sum() / (w_a + w_b).sum())


def _psnr(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    mse = (np.mean((f - a) ** 2) + np.mean((f - b) ** 2)) / 2.0
    if mse == 0.0:
        raise MetricUndefinedError("PSNR", "the fused image equals both sources (infinite PSNR)")
    return float(10.0 * np.log10(255.0 ** 2 / mse))


_SSIM_WINDOW = _gaussian_1d(11, 1.5)
_SSIM_C1 = (0.01 * 255.0) ** 2
_SSIM_C2 = (0.03 * 255.0) ** 2


def _ssim(x: np.ndarray, y: np.ndarray) -> float:
    if min(x.shape) < len(_SSIM_WINDOW):
        raise ValueError(f"image too small for SSIM: needs at least 11 x 11 pixels, has {x.shape}")
    mu_x = _filter_valid(x, _SSIM_WINDOW)
    mu_y = _filter_valid(y, _SSIM_WINDOW)
    var_x = _filter_valid(x * x, _SSIM_WINDOW) - mu_x * mu_x
    var_y = _filter_valid(y * y, _SSIM_WINDOW) - mu_y * mu_y
    cov = _filter_valid(x * y, _SSIM_WINDOW) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + _SSIM_C1) * (2 * cov + _SSIM_C2)
                / ((mu_x * mu_x + mu_y * mu_y + _SSIM_C1) * (var_x + var_y + _SSIM_C2)))
    return float(ssim_map.mean())


def entropy(fused: np.ndarray) -> float:
    """EN: Shannon entropy (bits) of the 256-bin histogram of F. 0 for a constant image."""
    return _entropy(to_gray(fused, "fused image"))


def standard_deviation(fused: np.ndarray) -> float:
    """SD: population standard deviation of F. 0 for a constant image."""
    return float(np.std(to_gray(fused, "fused image").astype(np.float64)))


def spatial_frequency(fused: np.ndarray) -> float:
    """SF = sqrt(RF^2 + CF^2) from horizontal and vertical first differences. 0 for a constant image."""
    return _spatial_frequency(to_gray(fused, "fused image").astype(np.float64))


def average_gradient(fused: np.ndarray) -> float:
    """AG with numpy.gradient differences and Tang's divisor (M-1)(N-1). 0 for a constant image."""
    return _average_gradient(to_gray(fused, "fused image").astype(np.float64))


def mutual_information(fused: np.ndarray, ir: np.ndarray, visible: np.ndarray) -> float:
    """MI = MI(F,A) + MI(F,B) in bits (256-bin histograms). 0 when F is constant."""
    f, a, b = _gray_triplet(fused, ir, visible)
    return _mutual_information(f, a) + _mutual_information(f, b)


def scd(fused: np.ndarray, ir: np.ndarray, visible: np.ndarray) -> float:
    """SCD = corr(F-B, A) + corr(F-A, B). Raises MetricUndefinedError when a term is constant."""
    f, a, b = (x.astype(np.float64) for x in _gray_triplet(fused, ir, visible))
    return _corr2(f - b, a, "SCD") + _corr2(f - a, b, "SCD")


def correlation_coefficient(fused: np.ndarray, ir: np.ndarray, visible: np.ndarray) -> float:
    """CC = (corr(A,F) + corr(B,F)) / 2. Raises MetricUndefinedError when any image is constant."""
    f, a, b = (x.astype(np.float64) for x in _gray_triplet(fused, ir, visible))
    return (_corr2(a, f, "CC") + _corr2(b, f, "CC")) / 2.0


def vif(fused: np.ndarray, ir: np.ndarray, visible: np.ndarray) -> float:
    """VIF = VIF(A,F) + VIF(B,F), 4-scale pixel-domain VIF with separable Gaussian windows.

    Raises MetricUndefinedError when a source is constant, ValueError when smaller than about 40 x 40.
    """
    f, a, b = (x.astype(np.float64) for x in _gray_triplet(fused, ir, visible))
    return vif_float64(f, a, b)


def qabf(fused: np.ndarray, ir: np.ndarray, visible: np.ndarray) -> float:
    """Qabf, Xydeas-Petrovic edge preservation. Raises MetricUndefinedError when both sources are black."""
    f, a, b = (x.astype(np.float64) for x in _gray_triplet(fused, ir, visible))
    return _qabf(f, a, b)


def nabf(fused: np.ndarray, ir: np.ndarray, visible: np.ndarray) -> float:
    """Nabf, Kumar's fusion artefact measure (lower is better). Always defined (weights are >= 0.001)."""
    f, a, b = (x.astype(np.float64) for x in _gray_triplet(fused, ir, visible))
    return _nabf(f, a, b)


def psnr(fused: np.ndarray, ir: np.ndarray, visible: np.ndarray) -> float:
    """PSNR as in Tang's suite: 10 log10(255^2 / mean(MSE(F,A), MSE(F,B))) dB.

    Raises MetricUndefinedError when F equals both sources (the value would be infinite).
    """
    f, a, b = (x.astype(np.float64) for x in _gray_triplet(fused, ir, visible))
    return _psnr(f, a, b)


def ssim(fused: np.ndarray, ir: np.ndarray, visible: np.ndarray) -> float:
    """SSIM(F,A) + SSIM(F,B), Wang et al. 2004 (``ssim_index``: Gaussian 11x11 sigma 1.5, K1 0.01,
    K2 0.03, L 255, 'valid' window mean, no downsampling). Always defined thanks to C1, C2."""
    f, a, b = (x.astype(np.float64) for x in _gray_triplet(fused, ir, visible))
    return _ssim(f, a) + _ssim(f, b)


@dataclass
class FusionScores:
    """All metrics of one fused image: ``values`` for defined ones, ``undefined`` metric -> reason."""

    values: dict[str, float] = field(default_factory=dict)
    undefined: dict[str, str] = field(default_factory=dict)


def fusion_scores(fused: np.ndarray, ir: np.ndarray, visible: np.ndarray,
                  metrics: tuple[str, ...] = METRIC_NAMES) -> FusionScores:
    """Compute the named metrics at once (gray conversion done once); undefined ones become notes.

    Raises ValueError for invalid input (dtype, shape, size mismatch, unknown metric name).
    """
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {list(METRIC_NAMES)}")
    f8, a8, b8 = _gray_triplet(fused, ir, visible)
    f, a, b = (x.astype(np.float64) for x in (f8, a8, b8))
    compute = {
        "EN": lambda: _entropy(f8),
        "SD": lambda: float(np.std(f)),
        "SF": lambda: _spatial_frequency(f),
        "AG": lambda: _average_gradient(f),
        "MI": lambda: _mutual_information(f8, a8) + _mutual_information(f8, b8),
        "SCD": lambda: _corr2(f - b, a, "SCD") + _corr2(f - a, b, "SCD"),
        "CC": lambda: (_corr2(a, f, "CC") + _corr2(b, f, "CC")) / 2.0,
        "VIF": lambda: vif_float64(f, a, b),
        "Qabf": lambda: _qabf(f, a, b),
        "Nabf": lambda: _nabf(f, a, b),
        "PSNR": lambda: _psnr(f, a, b),
        "SSIM": lambda: _ssim(f, a) + _ssim(f, b),
    }
    scores = FusionScores()
    for name in metrics:
        try:
            value = compute[name]()
        except MetricUndefinedError as err:
            scores.undefined[name] = err.reason
            continue
        if np.isfinite(value):
            scores.values[name] = value
        else:
            scores.undefined[name] = f"non-finite result {value}"
    return scores
