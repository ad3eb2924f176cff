"""Exponential decay of Bragg intensity with fluence: critical dose with bootstrap intervals.

Single stage:  I(D) = A exp(-D / Dc) + B          (I/I0 = exp(-D/Dc) + offset after normalising)
Two stage:     I(D) = A1 exp(-D / Dc1) + A2 exp(-D / Dc2) + B

Both are fitted by variable projection: for a given Dc (or pair) the amplitudes and offset are
linear and solved in closed form, so the profile sum of squares is scanned on a fine logarithmic
grid of Dc and refined by parabolic interpolation. This is exact, deterministic and fast enough to
refit hundreds of wild-bootstrap replicates at once (Wu 1986, doi:10.1214/aos/1176350142;
Mammen 1993, doi:10.1214/aos/1176349025). The critical dose is the fluence at which the decaying
part falls to 1/e of its zero-dose value (Glaeser 1971, doi:10.1016/S0022-5320(71)90039-6).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_N_GRID = 480


@dataclass(frozen=True)
class DecayFit:
    """A fitted decay curve.

    Attributes
    ----------
    critical_dose_e_per_A2 : fluence (e/A^2) where the decaying part falls to 1/e.
    ci_low_e_per_A2, ci_high_e_per_A2 : bootstrap interval of the critical dose.
    model : ``"single"`` or ``"two-stage"``.
    amplitude, offset : A (sum of A1 + A2 for two stages) and B, in the units of the intensities.
    offset_rel : B / (A + B), the non-decaying fraction of I0.
    i0 : fitted intensity at zero fluence, A + B.
    dc1_e_per_A2, dc2_e_per_A2, fraction_fast : two-stage parameters (``None`` for one stage).
    rms_residual_rel : rms residual / i0.
    n_points : frames used.
    bounded : True when the critical dose lies beyond the dose range (interval open upwards).
    offset_fitted : whether the offset B was a free parameter (see ``offset`` of :func:`fit_decay`).
    reliable : False when the fit hit the ends of the searched range, the amplitude is not
        positive, or the interval spans more than a factor 4 (a reflection too weak to fit).
    """

    critical_dose_e_per_A2: float
    ci_low_e_per_A2: float
    ci_high_e_per_A2: float
    model: str
    amplitude: float
    offset: float
    offset_rel: float
    i0: float
    rms_residual_rel: float
    n_points: int
    dc1_e_per_A2: float | None = None
    dc2_e_per_A2: float | None = None
    fraction_fast: float | None = None
    bounded: bool = False
    reliable: bool = True
    offset_fitted: bool = True
    confidence: float = 0.95
    bootstrap_samples: int = 0
    params: tuple = field(default=(), repr=False)

    def predict(self, dose) -> np.ndarray:
        """Model intensity at ``dose`` (e/A^2), same units as the fitted data."""
        d = np.asarray(dose, dtype=np.float64)
        if self.model == "single":
            a, dc, b = self.params
            return a * np.exp(-d / dc) + b
        a1, dc1, a2, dc2, b = self.params
        return a1 * np.exp(-d / dc1) + a2 * np.exp(-d / dc2) + b

    def to_dict(self) -> dict:
        out = {"critical_dose_e_per_A2": self.critical_dose_e_per_A2,
               "critical_dose_ci95_e_per_A2": [self.ci_low_e_per_A2, self.ci_high_e_per_A2],
               "model": self.model, "offset_rel": self.offset_rel, "i0": self.i0,
               "rms_residual_rel": self.rms_residual_rel, "n_points": self.n_points,
               "beyond_dose_range": self.bounded, "reliable": self.reliable, "offset_fitted": self.offset_fitted,
               "bootstrap_samples": self.bootstrap_samples}
        if self.model == "two-stage":
            out.update({"critical_dose_fast_e_per_A2": self.dc1_e_per_A2,
                        "critical_dose_slow_e_per_A2": self.dc2_e_per_A2, "fraction_fast": self.fraction_fast})
        return out


def _check(dose, intensity):
    d = np.asarray(dose, dtype=np.float64).ravel()
    y = np.asarray(intensity, dtype=np.float64)
    if y.ndim == 1:
        y = y[None, :]
    if d.size != y.shape[-1]:
        raise ValueError(f"dose has {d.size} values but intensity has {y.shape[-1]}")
    if d.size < 4:
        raise ValueError(f"a decay fit needs at least 4 frames, got {d.size}")
    if not np.all(np.isfinite(d)) or np.any(np.diff(d) <= 0):
        raise ValueError("dose must be finite and strictly increasing")
    if not np.all(np.isfinite(y)):
        raise ValueError("intensity contains NaN or infinite values")
    return d, y


def _grid(d: np.ndarray, n: int = _N_GRID) -> np.ndarray:
    span = d[-1] - d[0]
    step = np.min(np.diff(d))
    return np.geomspace(max(step * 0.05, span * 1e-3), span * 200.0, n)


def _profile_single(d, y, grid, with_offset=True):
    """SSE(replicate, Dc) of y = A e^(-D/Dc) + B (B = 0 without offset); returns sse, A, B (R, m)."""
    x = d - d[0]
    e = np.exp(-x[None, :] / grid[:, None])                 # (m, n)
    n = x.size
    se, see = e.sum(1), (e * e).sum(1)                      # (m,)
    sy, syy = y.sum(1), (y * y).sum(1)                      # (R,)
    sey = y @ e.T                                           # (R, m)
    if not with_offset:
        a = sey / see[None, :]
        return syy[:, None] - a * sey, a, np.zeros_like(a)
    det = n * see - se**2
    a = (n * sey - se[None, :] * sy[:, None]) / det
    b = (sy[:, None] - a * se[None, :]) / n
    sse = syy[:, None] - (a * sey + b * sy[:, None])
    return sse, a, b


def _refine(grid, sse):
    """Parabolic refinement of each row's minimum on the log grid; returns (Dc, index)."""
    lg = np.log(grid)
    j = np.argmin(sse, axis=1)
    jj = np.clip(j, 1, grid.size - 2)
    r = np.arange(sse.shape[0])
    s0, s1, s2 = sse[r, jj - 1], sse[r, jj], sse[r, jj + 1]
    den = s0 - 2 * s1 + s2
    with np.errstate(invalid="ignore", divide="ignore"):
        off = np.where(den > 0, 0.5 * (s0 - s2) / den, 0.0)
    off = np.clip(off, -1, 1)
    h = lg[1] - lg[0]
    dc = np.exp(lg[jj] + off * h)
    dc = np.where((j == 0) | (j == grid.size - 1), grid[j], dc)
    return dc, j


def _fit_single_rows(d, y, grid, with_offset=True):
    sse, _, _ = _profile_single(d, y, grid, with_offset)
    dc, j = _refine(grid, sse)
    # exact amplitudes at the refined Dc
    x = d - d[0]
    e = np.exp(-x[None, :] / dc[:, None])                   # (R, n)
    n = x.size
    se, see, sy = e.sum(1), (e * e).sum(1), y.sum(1)
    sey = (e * y).sum(1)
    if with_offset:
        det = n * see - se**2
        a = (n * sey - se * sy) / det
        b = (sy - a * se) / n
    else:
        a, b = sey / see, np.zeros_like(sey)
    resid = y - (a[:, None] * e + b[:, None])
    at_edge = (j == 0) | (j == grid.size - 1)
    return dc, a, b, resid, at_edge


def _two_stage_grid(d):
    g = _grid(d, 72)
    i1, i2 = np.triu_indices(g.size, k=3)   # Dc1 < Dc2 by at least ~3 grid steps
    return g, i1, i2


def _fit_two_rows(d, y):
    g, i1, i2 = _two_stage_grid(d)
    x = d - d[0]
    e = np.exp(-x[None, :] / g[:, None])                    # (m, n)
    basis = np.stack([e[i1], e[i2], np.ones((i1.size, x.size))], axis=1)   # (P, 3, n)
    gram = basis @ basis.transpose(0, 2, 1)                 # (P, 3, 3)
    ok = np.abs(np.linalg.det(gram)) > 1e-12 * np.max(np.abs(gram)) ** 3
    inv = np.zeros_like(gram)
    inv[ok] = np.linalg.inv(gram[ok])
    proj = (y @ basis.reshape(-1, x.size).T).reshape(y.shape[0], -1, 3)   # (R, P, 3), one BLAS call
    coef = (inv[None, :, :, 0] * proj[:, :, 0:1] + inv[None, :, :, 1] * proj[:, :, 1:2]
            + inv[None, :, :, 2] * proj[:, :, 2:3])                       # inv symmetric: (R, P, 3)
    sse = (y * y).sum(1)[:, None] - (coef * proj).sum(-1)
    sse[:, ~ok] = np.inf
    neg = (coef[..., 0] < 0) | (coef[..., 1] < 0)
    sse = np.where(neg, np.inf, sse)
    best = np.argmin(sse, axis=1)
    r = np.arange(y.shape[0])
    c = coef[r, best]
    dc1, dc2 = g[i1[best]], g[i2[best]]
    resid = y - (c[:, 0:1] * np.exp(-x / dc1[:, None]) + c[:, 1:2] * np.exp(-x / dc2[:, None]) + c[:, 2:3])
    return dc1, dc2, c, resid, np.isfinite(sse[r, best])


def _one_over_e(a1, dc1, a2, dc2):
    """Fluence where a1 e^(-D/dc1) + a2 e^(-D/dc2) = (a1 + a2)/e (bisection in log D; vectorised)."""
    a1, dc1, a2, dc2 = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (a1, dc1, a2, dc2))
    target = (a1 + a2) / np.e
    lo = np.minimum(dc1, dc2) * 1e-3
    hi = np.maximum(dc1, dc2) * 10.0
    for _ in range(60):
        mid = np.sqrt(lo * hi)
        f = a1 * np.exp(-mid / dc1) + a2 * np.exp(-mid / dc2) - target
        lo = np.where(f > 0, mid, lo)
        hi = np.where(f > 0, hi, mid)
    return np.sqrt(lo * hi)


def _leverage_scale(d, terms, with_offset=True) -> np.ndarray:
    """1 / (1 - h_ii) from the Jacobian of the fitted model (HC3-style residual inflation)."""
    x = d - d[0]
    cols = []
    for amp, dc in terms:
        e = np.exp(-x / dc)
        cols += [e, amp * x * e / dc**2]
    if with_offset:
        cols.append(np.ones_like(x))
    jac = np.stack(cols, axis=1)
    q, _ = np.linalg.qr(jac)
    h = np.clip((q * q).sum(1), 0, 0.95)
    return 1.0 / (1.0 - h)


def _cluster_replicates(components, n, n_boot, rng):
    """Bootstrap sums over reflections resampled with replacement, (n_boot, n); None if k < 4."""
    if components is None or not n_boot:
        return None
    c = np.asarray(components, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != n:
        raise ValueError(f"components must have shape (n_frames={n}, k), got {c.shape}")
    k = c.shape[1]
    if k < 4:
        return None
    counts = np.stack([np.bincount(rng.integers(0, k, k), minlength=k) for _ in range(n_boot)])
    return counts @ c.T


def fit_decay(dose, intensity, *, model: str = "auto", offset: str = "auto", n_boot: int = 400,
              confidence: float = 0.95, seed: int = 0, components=None,
              systematic_rel: float = 0.005) -> DecayFit:
    """Fit the critical dose to a Bragg-intensity decay, with a wild-bootstrap interval.

    Parameters
    ----------
    dose : (n,) cumulative fluence of each frame (e/A^2), strictly increasing. Any constant
        offset (pre-exposure, start vs middle of the frame) changes I0 but not Dc.
    intensity : (n,) integrated Bragg intensity above background (any units).
    model : ``"single"``, ``"two-stage"`` or ``"auto"`` (two stages only where the data call for
        it: BIC lower by more than 10, both amplitudes positive, time constants 3x apart).
    offset : ``"free"`` (fit B), ``"zero"`` (B = 0) or ``"auto"``: B = 0 unless a free offset lowers
        the BIC by more than 2. A series that ends long before the decay does cannot tell an offset
        from a slower decay; the offset is then left out rather than making Dc unbounded.
    n_boot : bootstrap replicates (Rademacher wild bootstrap of the residuals, which keeps the
        frame-to-frame change of the noise level).
    confidence : interval level (0.95 gives the 95 % interval).
    seed : seed of the bootstrap generator (results are reproducible).
    components : optional (n, k) intensities of the k reflections whose sum is ``intensity``. With
        k >= 4, a second bootstrap resamples the reflections (a cluster bootstrap, which carries the
        reflection-to-reflection spread: interference with diffuse scattering, local background
        errors) and the reported interval is the union of both intervals, each widened by the
        Student-t factor of its degrees of freedom.

    systematic_rel : relative standard uncertainty of Dc that no bootstrap sees (1 sigma, default
        0.5 %): coherent diffuse scattering of a static amorphous film under the Bragg peaks and
        residual background curvature bias Dc by a few 0.1 % (measured in ``benchmarks/bench_damage.py``).
        It is added in quadrature to the bootstrap half-widths (in log Dc), so it matters only for
        very high-SNR series whose bootstrap interval would be narrower than about +-1 %.

    Returns
    -------
    DecayFit
    """
    if not (np.isfinite(systematic_rel) and systematic_rel >= 0):
        raise ValueError(f"systematic_rel must be >= 0, got {systematic_rel!r}")
    if model not in ("auto", "single", "two-stage"):
        raise ValueError(f"model must be 'auto', 'single' or 'two-stage', got {model!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, got {confidence!r}")
    if offset not in ("auto", "free", "zero"):
        raise ValueError(f"offset must be 'auto', 'free' or 'zero', got {offset!r}")
    d, y = _check(dose, intensity)
    y = y[0]
    n = d.size
    grid = _grid(d)
    dc, a, b, resid, edge = _fit_single_rows(d, y[None, :], grid)
    sse1 = float((resid**2).sum())
    with_offset = offset == "free"
    if offset != "free":
        dc0, a0_, b0_, resid0, edge0 = _fit_single_rows(d, y[None, :], grid, with_offset=False)
        sse0 = float((resid0**2).sum())
        bic_free = n * np.log(max(sse1, 1e-300) / n) + 3 * np.log(n)
        bic_zero = n * np.log(max(sse0, 1e-300) / n) + 2 * np.log(n)
        with_offset = offset == "auto" and bic_free < bic_zero - 2.0
        if not with_offset:
            dc, a, b, resid, edge, sse1 = dc0, a0_, b0_, resid0, edge0, sse0
    use_two = False
    if model in ("auto", "two-stage") and n >= 8:
        t1, t2, c2, r2, ok2 = _fit_two_rows(d, y[None, :])
        sse2 = float((r2**2).sum())
        bic1 = n * np.log(max(sse1, 1e-300) / n) + 3 * np.log(n)
        bic2 = n * np.log(max(sse2, 1e-300) / n) + 5 * np.log(n)
        sep = t2[0] / t1[0] >= 3.0
        step = float(np.min(np.diff(d)))
        inside = t1[0] >= step and t2[0] <= 2.0 * (d[-1] - d[0])   # both stages seen by several frames
        use_two = bool(ok2[0]) and (model == "two-stage" or (bic2 < bic1 - 10 and sep and inside
                                                             and c2[0, 0] > 0 and c2[0, 1] > 0))
    elif model == "two-stage":
        raise ValueError(f"a two-stage fit needs at least 8 frames, got {n}")
    rng = np.random.default_rng(seed)
    x0 = d[0]
    if not use_two:
        fit_curve = y - resid[0]
        lev = _leverage_scale(d, [(float(a[0]), float(dc[0]))], with_offset)
        v = rng.choice([-1.0, 1.0], size=(n_boot, n))
        yb = fit_curve[None, :] + resid[0][None, :] * lev * v
        dcb = _fit_single_rows(d, yb, grid, with_offset)[0] if n_boot else np.array([])
        yc = _cluster_replicates(components, n, n_boot, rng)
        dcc = _fit_single_rows(d, yc, grid, with_offset)[0] if yc is not None else None
        # report I0 at zero fluence (not at the first frame)
        a0 = float(a[0] * np.exp(x0 / dc[0]))
        i0 = a0 + float(b[0])
        crit = float(dc[0])
        params = (a0, crit, float(b[0]))
        n_par = 3 if with_offset else 2
        extra = {}
        amp = a0
    else:
        fit_curve = y - r2[0]
        lev = _leverage_scale(d, [(float(c2[0, 0]), float(t1[0])), (float(c2[0, 1]), float(t2[0]))])
        v = rng.choice([-1.0, 1.0], size=(n_boot, n))
        yb = fit_curve[None, :] + r2[0][None, :] * lev * v
        tb1, tb2, cb, _, okb = _fit_two_rows(d, yb)
        dcb = _one_over_e(cb[:, 0] * np.exp(x0 / tb1), tb1, cb[:, 1] * np.exp(x0 / tb2), tb2)
        dcb = dcb[okb]
        yc = _cluster_replicates(components, n, n_boot, rng)
        dcc = None
        if yc is not None:
            cb1, cb2, ccb, _, okc = _fit_two_rows(d, yc)
            dcc = _one_over_e(ccb[:, 0] * np.exp(x0 / cb1), cb1, ccb[:, 1] * np.exp(x0 / cb2), cb2)[okc]
        a1 = float(c2[0, 0] * np.exp(x0 / t1[0]))
        a2 = float(c2[0, 1] * np.exp(x0 / t2[0]))
        crit = float(_one_over_e(a1, t1[0], a2, t2[0])[0])
        i0 = a1 + a2 + float(c2[0, 2])
        params = (a1, float(t1[0]), a2, float(t2[0]), float(c2[0, 2]))
        n_par = 5
        extra = {"dc1_e_per_A2": float(t1[0]), "dc2_e_per_A2": float(t2[0]), "fraction_fast": a1 / (a1 + a2)}
        amp = a1 + a2
        resid = r2
        b = c2[:, 2]
    alpha = 1 - confidence
    if dcb.size:
        from scipy.stats import norm, t as student_t

        # percentile interval in log fluence, widened by t(n - p) / z for the few frames of a series
        widen = student_t.ppf(1 - alpha / 2, max(n - n_par, 1)) / norm.ppf(1 - alpha / 2)
        qlo, qhi = np.quantile(np.log(dcb), [alpha / 2, 1 - alpha / 2])
        lc = np.log(crit)
        lo, hi = np.exp(lc - widen * (lc - qlo)), np.exp(lc + widen * (qhi - lc))
        if dcc is not None and dcc.size:
            k = np.shape(components)[1]
            wc = student_t.ppf(1 - alpha / 2, k - 1) / norm.ppf(1 - alpha / 2)
            clo, chi = np.quantile(np.log(dcc), [alpha / 2, 1 - alpha / 2])
            lo = min(lo, np.exp(lc - wc * max(lc - clo, 0.0)))
            hi = max(hi, np.exp(lc + wc * max(chi - lc, 0.0)))
        if systematic_rel > 0:
            zs = norm.ppf(1 - alpha / 2) * np.log1p(systematic_rel)
            lo = np.exp(lc - np.hypot(lc - np.log(lo), zs))
            hi = np.exp(lc + np.hypot(np.log(hi) - lc, zs))
    else:
        lo = hi = float("nan")
    beyond = bool(edge[0]) or crit > 3 * (d[-1] - d[0]) or hi >= grid[-1] * 0.99
    rms = float(np.sqrt(np.mean(resid[0] ** 2)) / abs(i0)) if i0 else float("nan")
    reliable = bool(np.isfinite(lo) and np.isfinite(hi) and lo > 0 and hi / lo < 4.0 and amp > 0
                    and grid[0] * 1.01 < crit < grid[-1] * 0.99)
    return DecayFit(critical_dose_e_per_A2=crit, ci_low_e_per_A2=float(lo), ci_high_e_per_A2=float(hi),
                    model="two-stage" if use_two else "single", amplitude=float(amp), offset=float(b[0]),
                    offset_rel=float(b[0] / i0) if i0 else float("nan"), i0=float(i0),
                    rms_residual_rel=rms, n_points=n, bounded=beyond, reliable=reliable,
                    offset_fitted=bool(with_offset or use_two), confidence=confidence,
                    bootstrap_samples=int(dcb.size), params=params, **extra)
