"""Robust all-pairs registration of frame series (Savitzky et al. 2018).

Every pair of frames within a window is cross-correlated; the pairwise shifts d_ij = s_i - s_j are
solved for the per-frame shifts by iteratively re-weighted (Huber) least squares. A pair whose
shift disagrees with the transitive solution (d_ij != d_ik + d_kj) by more than a robust threshold
is flagged as an outlier and down-weighted. On lattice images a pair can lock onto a correlation
peak one lattice period away; we guard against that by searching every pair within 0.45 lattice
periods of the shift predicted by a continuity-tracked first trajectory.
"""

from __future__ import annotations

import numpy as np

from cryomat.registration.ccf import Spectra, ccf_peak, norm
from cryomat.registration.smooth import smooth_trajectory


def _pair_shifts(spec: Spectra, pairs, *, centers=None, radius=None):
    d = np.zeros((len(pairs), 2))
    q = np.zeros(len(pairs))
    norms = [norm(spec.data[i], spec) for i in range(spec.data.shape[0])]
    for p, (i, j) in enumerate(pairs):
        cross = spec.data[i] * np.conj(spec.data[j]) * spec.filt
        ctr = (0.0, 0.0) if centers is None else centers[p]
        d[p], v = ccf_peak(cross, spec, center_px=ctr, radius_px=radius)
        q[p] = v / max(norms[i] * norms[j], 1e-30)
    return d, q


def solve_pairs(n: int, pairs, d, weights=None, *, iterations: int = 10, huber: float = 1.5):
    """Robust least-squares frame shifts (n, 2) from pair shifts d_ij = s_i - s_j (gauge: s_0 = 0).

    Returns (shifts, residuals (n_pairs, 2), final weights, robust scale in px).
    """
    pairs = np.asarray(pairs, int)
    a = np.zeros((len(pairs), n))
    a[np.arange(len(pairs)), pairs[:, 0]] = 1.0
    a[np.arange(len(pairs)), pairs[:, 1]] = -1.0
    w0 = np.ones(len(pairs)) if weights is None else np.clip(np.asarray(weights, float), 1e-6, None)
    w = w0.copy()
    scale = 1.0
    s = np.zeros((n, 2))
    for _ in range(iterations):
        aw = a[:, 1:] * w[:, None]
        sol, *_ = np.linalg.lstsq(aw.T @ a[:, 1:], aw.T @ d, rcond=None)
        s = np.vstack([np.zeros((1, 2)), sol])
        res = d - a @ s
        r = np.hypot(res[:, 0], res[:, 1])
        scale = max(1.4826 * np.median(r), 0.02)
        u = r / (huber * scale)
        w = w0 * np.where(u <= 1, 1.0, 1.0 / np.maximum(u, 1e-12))
    res = d - a @ s
    return s, res, w, float(scale)


def estimate_drift_all_pairs(spec: Spectra, *, pixel_size=None, period_px=None, max_shift_px: float = 64.0,
                             window: int | None = None, smoothing="auto", outlier_px: float = 1.0):
    """All-pairs robust drift on prepared spectra; see the module docstring. Returns a DriftResult.

    References
    ----------
    Savitzky et al., Ultramicroscopy 191, 56 (2018), doi:10.1016/j.ultramic.2018.02.003.
    """
    from cryomat.registration.drift import DriftResult

    n = spec.data.shape[0]
    if window is None:
        window = n - 1 if n <= 40 else 10
    window = max(1, min(int(window), n - 1))
    guard = 0.45 * period_px if period_px else None
    pred = None
    if guard:
        from cryomat.registration.drift import _progressive

        # continuity-tracked first trajectory (each frame within 0.45 periods of its prediction)
        pred = _progressive(spec, radius=guard)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, min(n, i + window + 1))]
    centers = None if pred is None else [tuple(pred[i] - pred[j]) for i, j in pairs]
    d, q = _pair_shifts(spec, pairs, centers=centers, radius=guard if guard else max_shift_px)
    s, res, w, scale = solve_pairs(n, pairs, d, q)
    r = np.hypot(res[:, 0], res[:, 1])
    outliers = r > max(outlier_px, 4.0 * scale)
    # a frame's quality: mean normalised CCF peak over its inlier pairs
    peak = np.zeros(n)
    cnt = np.zeros(n)
    for (i, j), qq, bad in zip(pairs, q, outliers):
        if not bad:
            peak[i] += qq
            peak[j] += qq
            cnt[i] += 1
            cnt[j] += 1
    peak = peak / np.maximum(cnt, 1)
    raw = s - s[0]
    smoothed, lam = smooth_trajectory(raw, smoothing=smoothing)
    off = smoothed[0].copy()
    return DriftResult(shifts_px=smoothed - off, raw_shifts_px=raw - off, ccf_peak=peak, mode="all-pairs",
                       iterations=10, converged=True, lattice_period_px=period_px, smoothing=lam,
                       outlier_pairs=int(outliers.sum()), pixel_size=pixel_size,
                       extra={"n_pairs": len(pairs), "robust_scale_px": scale, "pairs": pairs,
                              "pair_outliers": outliers, "bfactor_px2": None})
