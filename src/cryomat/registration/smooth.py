"""Smoothing of drift trajectories (Whittaker smoother, smoothing chosen by generalised cross-validation)."""

from __future__ import annotations

import numpy as np


def smooth_trajectory(shifts, *, smoothing="auto", weights=None) -> tuple[np.ndarray, float]:
    """Whittaker (penalised second-difference) smoothing of a trajectory (n, d) in px.

    Minimises sum_f w_f |s_f - y_f|^2 + lam sum_f |s_{f-1} - 2 s_f + s_{f+1}|^2; with
    ``smoothing="auto"`` lam is chosen by generalised cross-validation over 1e-3 .. 1e6
    (GCV picks little smoothing when the measurements are precise, a near-straight line when they
    are noisy). ``smoothing=0`` returns the input. Returns (smoothed, lam).

    References
    ----------
    Eilers, Anal. Chem. 75, 3631 (2003), doi:10.1021/ac034173t (Whittaker smoother);
    Craven & Wahba, Numer. Math. 31, 377 (1979), doi:10.1007/BF01404567 (GCV).
    """
    y = np.asarray(shifts, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    n = y.shape[0]
    if n < 4 or (not isinstance(smoothing, str) and float(smoothing) <= 0):
        return y.copy(), 0.0
    w = np.ones(n) if weights is None else np.clip(np.asarray(weights, dtype=np.float64), 1e-6, None)
    w = w / w.mean()
    d = np.diff(np.eye(n), 2, axis=0)
    p = d.T @ d
    wm = np.diag(w)

    def fit(lam):
        h = np.linalg.solve(wm + lam * p, wm)
        return h @ y, float(np.trace(h))

    if isinstance(smoothing, str):
        if smoothing != "auto":
            raise ValueError(f"smoothing must be 'auto' or a number >= 0, got {smoothing!r}")
        best = (np.inf, 0.0, y)
        for lam in np.logspace(-3, 6, 37):
            s, tr = fit(lam)
            rss = float(np.sum(w[:, None] * (y - s) ** 2))
            gcv = n * rss / max(n - tr, 1e-9) ** 2
            if gcv < best[0]:
                best = (gcv, float(lam), s)
        return best[2], best[1]
    s, _ = fit(float(smoothing))
    return s, float(smoothing)
