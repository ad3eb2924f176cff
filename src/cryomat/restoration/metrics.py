"""Image-quality metrics against a known truth (simulations and benchmarks only)."""

from __future__ import annotations

import numpy as np


def psnr(truth, estimate, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB: 10 log10(range^2 / MSE), range = ptp(truth) by default."""
    t = np.asarray(truth, dtype=np.float64)
    e = np.asarray(estimate, dtype=np.float64)
    if t.shape != e.shape:
        raise ValueError(f"truth and estimate differ in shape: {t.shape} vs {e.shape}")
    rng = float(np.ptp(t)) if data_range is None else float(data_range)
    mse = float(np.mean((t - e) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(rng**2 / mse))


def ssim(truth, estimate, *, data_range: float | None = None) -> float:
    """Structural similarity (Wang et al. 2004, doi:10.1109/TIP.2003.819861) via scikit-image."""
    from skimage.metrics import structural_similarity

    t = np.asarray(truth, dtype=np.float64)
    e = np.asarray(estimate, dtype=np.float64)
    rng = float(np.ptp(t)) if data_range is None else float(data_range)
    return float(structural_similarity(t, e, data_range=rng))


def best_gaussian(noisy, truth, sigmas=(0.5, 0.7, 1.0, 1.3, 1.6, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)):
    """The Gaussian low-pass with the best PSNR against the truth (an oracle-tuned baseline).

    Returns (psnr_dB, sigma_px, image).
    """
    from scipy import ndimage

    x = np.asarray(noisy, dtype=np.float64)
    best = None
    for s in sigmas:
        y = ndimage.gaussian_filter(x, s, mode="reflect")
        p = psnr(truth, y)
        if best is None or p > best[0]:
            best = (p, s, y)
    return best
