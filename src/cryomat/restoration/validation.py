"""Honest validation of a denoiser without clean ground truth.

- Binomial thinning splits counted data x into two independent half-dose images,
  a ~ Binomial(x, 1/2) and b = x - a (independent Poisson with mean lam/2 each). For a denoiser f,
  E mean((f(a) - b)^2) = MSE(f at half dose) + E mean(b), so mean((f(a) - b)^2) - mean(b) is an
  unbiased estimate of the half-dose MSE, with no truth needed. It is valid only for uncorrelated
  counts; for integrating or correlated data it is refused (``None`` plus a reason).
- FRC of the denoised half against the raw other half, compared with the FRC of the two raw
  halves: a denoiser must not lower the correlation where the data carry information.
- Hallucination probes on Welch-averaged power spectra (peaks measured against the azimuthal median at
  the same spatial frequency): no periodic peak in the denoised image
  that is not in the raw one (or, on a flat amorphous field, no peak at all above 3x the local
  median), and every real lattice peak keeps at least half of its power above background.

References
----------
Binomial thinning / Noisier2Noise style splitting: N. Moran et al., CVPR (2020), arXiv:2001.09228;
Topaz-Denoise even/odd validation: T. Bepler et al., Nat. Commun. 11, 5208 (2020),
doi:10.1038/s41467-020-18952-1; FRC: M. van Heel & M. Schatz, JSB 151, 250 (2005),
doi:10.1016/j.jsb.2005.05.009; Welch's method: doi:10.1109/TAU.1967.1161901.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def is_counted(image) -> bool:
    """True when ``image`` holds non-negative whole numbers (electron counts)."""
    x = np.asarray(image)
    if x.size == 0:
        return False
    if np.issubdtype(x.dtype, np.integer):
        return bool(x.min() >= 0)
    return bool(np.all(x >= 0) and np.all(x == np.round(x)))


def binomial_split(counts, *, rng: np.random.Generator, p: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Split counts into two independent Poisson images with fractions ``p`` and ``1 - p`` of the dose.

    Raises
    ------
    ValueError if the data are not non-negative whole numbers.
    """
    x = np.asarray(counts)
    if not is_counted(x):
        raise ValueError("binomial thinning needs non-negative integer counts (a counting detector)")
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    n = np.round(x).astype(np.int64)
    a = rng.binomial(n, p)
    return a.astype(np.float32), (n - a).astype(np.float32)


def thinning_mse(counts, denoise, *, rng: np.random.Generator, noise_model=None, halves=None) -> dict:
    """Unsupervised MSE of ``denoise`` at half dose by binomial thinning.

    Parameters
    ----------
    counts : (row, col) counted image.
    denoise : callable image -> image (same units).
    noise_model : optional :class:`~cryomat.restoration.noise.NoiseModel`; correlated noise is refused.
    halves : optional precomputed (a, b) split.

    Returns
    -------
    dict with ``mse_half_dose_est`` (counts^2 per pixel at half dose; None when refused),
    ``valid`` and ``reason``.
    """
    if noise_model is not None and (noise_model.kind != "counting" or noise_model.correlated):
        why = ("noise is correlated (lag-1 or row/column): halves would not be independent"
               if noise_model.correlated else "data are not counts (integrating detector)")
        return {"mse_half_dose_est": None, "valid": False, "reason": why}
    if not is_counted(counts):
        return {"mse_half_dose_est": None, "valid": False, "reason": "data are not non-negative integer counts"}
    a, b = halves if halves is not None else binomial_split(counts, rng=rng)
    fa = np.asarray(denoise(a), dtype=np.float64)
    est = float(np.mean((fa - b) ** 2) - np.mean(b))
    return {"mse_half_dose_est": est, "valid": True, "reason": "binomial thinning of uncorrelated counts"}


def binned_frc(a, b, *, pixel_size: float = 1.0, ring_width: int | None = None):
    """FRC with rings grouped ``ring_width`` at a time (default min(shape) / 128), which lowers the
    per-ring scatter (about 1/sqrt(pixels per ring)) so that two curves can be compared to 0.02.

    Returns (freq_per_A, frc) at the group centres.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = min(a.shape)
    w = int(ring_width or max(1, round(n / 128)))
    fa, fb = np.fft.fft2(a - a.mean()), np.fft.fft2(b - b.mean())
    kr = np.fft.fftfreq(a.shape[0])[:, None]
    kc = np.fft.fftfreq(a.shape[1])[None, :]
    ring = np.floor(np.hypot(kr, kc) * n + 0.5).astype(np.int64)
    ok = ring <= n // 2
    grp = ring[ok] // w
    cross = np.bincount(grp, np.real(fa[ok] * np.conj(fb[ok])))
    pa = np.bincount(grp, np.abs(fa[ok]) ** 2)
    pb = np.bincount(grp, np.abs(fb[ok]) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        frc = cross / np.sqrt(pa * pb)
    freq = (np.arange(frc.size) * w + 0.5 * (w - 1)) / (n * pixel_size)
    return freq, frc


def frc_check(half_a, half_b, denoise, *, pixel_size: float = 1.0, tolerance: float = 0.02) -> dict:
    """FRC(denoised half a, raw half b) against FRC(raw a, raw b) inside the raw 0.143 cut-off.

    Returns
    -------
    dict: ``raw_frc_0143_A`` (where the raw halves' FRC first falls below 0.143, A), ``max_drop``
    (largest FRC(raw) - FRC(denoised) over ring groups inside that cut-off), ``passed``
    (drop <= tolerance), and the two curves (freq_per_A, frc_raw, frc_denoised).
    """
    a = np.asarray(half_a, dtype=np.float64)
    b = np.asarray(half_b, dtype=np.float64)
    f, raw = binned_frc(a, b, pixel_size=pixel_size)
    _, den = binned_frc(np.asarray(denoise(half_a), dtype=np.float64), b, pixel_size=pixel_size)
    below = np.nonzero((raw < 0.143) & (f > 0))[0]
    cut = int(below[0]) if below.size else raw.size
    res = float(1.0 / f[cut]) if cut < raw.size and f[cut] > 0 else float(2 * pixel_size)
    inside = np.arange(raw.size) < cut
    inside[0] = False
    drop = float(np.max(raw[inside] - den[inside])) if inside.any() else 0.0
    return {"raw_frc_0143_A": res, "max_drop": drop, "passed": bool(drop <= tolerance),
            "tolerance": tolerance, "freq_per_A": f, "frc_raw": raw, "frc_denoised": den}


def welch_spectrum(image, *, tile: int = 128) -> np.ndarray:
    """Welch-averaged power spectrum (Hann tiles, 50 % overlap), zero frequency centred, (tile, tile)."""
    x = np.asarray(image, dtype=np.float64)
    tile = int(min(tile, *x.shape))
    tile -= tile % 2
    step = tile // 2
    win = np.outer(np.hanning(tile), np.hanning(tile))
    acc = np.zeros((tile, tile))
    n = 0
    for r in range(0, x.shape[0] - tile + 1, step):
        for c in range(0, x.shape[1] - tile + 1, step):
            t = x[r:r + tile, c:c + tile]
            acc += np.abs(np.fft.fft2((t - t.mean()) * win)) ** 2
            n += 1
    return np.fft.fftshift(acc / max(n, 1))


def _local_median(ps: np.ndarray) -> np.ndarray:
    """Azimuthal median of the spectrum at each radius (1-px rings about the centre).

    The median over the whole ring at the same spatial frequency is the background a periodic
    peak must stand out of; it follows the radial fall-off of the spectrum (and of a denoiser's
    transfer) exactly, so a steep but smooth spectral edge is not mistaken for a peak.
    """
    n0, n1 = ps.shape
    rr, cc = np.indices(ps.shape)
    r = np.hypot(rr - n0 // 2, cc - n1 // 2).round().astype(np.int64)
    order = np.argsort(r.ravel(), kind="stable")
    rs = r.ravel()[order]
    vals = ps.ravel()[order]
    edges = np.flatnonzero(np.diff(rs)) + 1
    meds = np.array([np.median(v) for v in np.split(vals, edges)])
    return meds[r]


def _peak_ratio(ps: np.ndarray) -> np.ndarray:
    """Spectrum over its azimuthal median at the same radius, with the central disc masked to 0."""
    ratio = ps / np.maximum(_local_median(ps), 1e-30)
    n = ps.shape[0]
    rr, cc = np.indices(ps.shape) - n // 2
    ratio[np.hypot(rr, cc) < max(3, 0.04 * n)] = 0.0
    return ratio


def spectral_peaks(image, *, threshold: float = 3.0, tile: int = 128) -> list[tuple[int, int, float]]:
    """Local maxima of the Welch spectrum above ``threshold`` times the local median: (row, col, ratio)."""
    ratio = _peak_ratio(welch_spectrum(image, tile=tile))
    mx = ndimage.maximum_filter(ratio, size=3, mode="wrap")
    rr, cc = np.nonzero((ratio == mx) & (ratio > threshold))
    return [(int(r), int(c), float(ratio[r, c])) for r, c in zip(rr, cc)]


def hallucination_probes(raw, denoised, *, tile: int = 128, threshold: float = 3.0, max_gain: float = 1.25,
                         strong: float = 5.0, min_retained: float = 0.5) -> dict:
    """Spectral probes that fail when a denoiser invents or flattens periodic structure.

    - invented: peaks of the denoised Welch spectrum above ``threshold`` x local median where the
      output has more power than the input (by more than ``max_gain``, which covers the scatter of the
      Welch estimate): the data cannot support a reflection stronger than the data themselves, while
      a weak but real reflection hidden under the raw noise floor is not flagged;
    - flattened: strong raw peaks (above ``strong`` x local median, clearly real lattice) whose excess
      power over the local median keeps less than ``min_retained`` of its raw value.

    Returns
    -------
    dict with counts, the worst ratios and ``passed``.
    """
    pr = welch_spectrum(raw, tile=tile)
    pd = welch_spectrum(denoised, tile=tile)
    rr_ = _peak_ratio(pr)
    rd_ = _peak_ratio(pd)
    raw_mx = ndimage.maximum_filter(rr_, size=3, mode="wrap")
    mxd = ndimage.maximum_filter(rd_, size=3, mode="wrap")
    cand = (rd_ == mxd) & (rd_ > threshold)
    gain = pd / np.maximum(pr, 1e-30)
    invented = cand & (gain > max_gain)
    medr = _local_median(pr)
    medd = _local_median(pd)
    raw_peaks = (rr_ == raw_mx) & (rr_ > strong)
    retained = []
    for r, c in zip(*np.nonzero(raw_peaks)):
        exc_r = pr[r, c] - medr[r, c]
        exc_d = pd[r, c] - medd[r, c]
        # the denoiser's transfer at this frequency is judged on the signal's excess, normalised by
        # the raw excess: a lattice reflection should keep most of its power
        retained.append(float(exc_d / exc_r) if exc_r > 0 else 1.0)
    min_ret = float(min(retained)) if retained else None
    n_flat = int(sum(v < min_retained for v in retained))
    return {"n_invented_peaks": int(invented.sum()), "max_invented_ratio": float(rd_[invented].max()) if
            invented.any() else 0.0, "n_raw_peaks": int(raw_peaks.sum()), "n_flattened_peaks": n_flat,
            "min_retained_fraction": min_ret, "passed": bool(invented.sum() == 0 and n_flat == 0),
            "threshold_x_median": threshold, "strong_x_median": strong}


def flat_field_probe(denoised, raw=None, *, tile: int = 128, threshold: float = 3.0,
                     max_freq: float = 0.5) -> dict:
    """On an amorphous (lattice-free) field: the largest Welch-spectrum value of the denoised image
    over the local spectrum median (the azimuthal median at the same frequency, of the ``raw`` image
    when given, which is what the data support), inside ``max_freq`` cycles/px (lattice frequencies).

    A denoiser that invents a periodic component puts power there that stands above the raw floor;
    the pass-through of a little noise, far below the raw floor, is not a peak.
    """
    pd = welch_spectrum(denoised, tile=tile)
    ref = pd if raw is None else welch_spectrum(raw, tile=tile)
    ratio = pd / np.maximum(_local_median(ref), 1e-30)
    n = pd.shape[0]
    rr, cc = np.indices(pd.shape) - n // 2
    rad = np.hypot(rr, cc)
    ratio[(rad < max(3, 0.04 * n)) | (rad > max_freq * n)] = 0.0
    worst = float(ratio.max())
    return {"max_peak_ratio": worst, "passed": bool(worst <= threshold), "threshold_x_median": threshold,
            "reference": "raw" if raw is not None else "denoised"}


def residual_stats(raw_vst, denoised_vst) -> dict:
    """Residual in the variance-stabilised domain: mean, std (1 for pure noise), lag-1 correlations."""
    r = np.asarray(raw_vst, dtype=np.float64) - np.asarray(denoised_vst, dtype=np.float64)
    r = r - r.mean()
    v = float(np.mean(r * r)) or 1e-30
    return {"residual_mean": float(np.mean(np.asarray(raw_vst) - np.asarray(denoised_vst))),
            "residual_std": float(np.sqrt(v)),
            "residual_lag1_row": float(np.mean(r[1:] * r[:-1]) / v),
            "residual_lag1_col": float(np.mean(r[:, 1:] * r[:, :-1]) / v)}
