"""Atomic columns: finding, vectorised 2D-Gaussian refinement, average-lattice fit, displacements, PLD.

All columns are refined at once: each column's patch (a disc of radius ~0.45 x the nearest-
neighbour distance) is fitted with an isotropic Gaussian plus a constant by batched
Levenberg-Marquardt (one stacked 5x5 normal-equation solve per iteration for all columns),
which is what makes it ~100x faster than fitting columns one by one.

Conventions: positions (row, col) in pixels; displacements in pm; lattice vectors (row, col).

References
----------
Nord et al., "Atomap: a new software tool for the automated analysis of atomic resolution images
using two-dimensional Gaussian fitting", Adv. Struct. Chem. Imaging 3, 9 (2017),
doi:10.1186/s40679-017-0042-5; Savitzky et al., Nat. Commun. 8, 1883 (2017),
doi:10.1038/s41467-017-02156-1 (PLD mapping from column positions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage


def estimate_separation(image) -> float:
    """Typical nearest-neighbour column spacing (px) from the strongest FFT spot (d >= 4 px)."""
    from cryomat.lattice.peaks import find_fft_peaks

    a = np.asarray(image, dtype=np.float64)
    pk = find_fft_peaks(a, pixel_size=1.0, d_min=4.0, d_max=min(a.shape) / 4.0, snr_min=8.0, refine=False)
    if len(pk) == 0:
        raise ValueError("no lattice periodicity found to estimate the column separation; pass separation_px")
    return float(pk.d_spacing_A.iloc[0])


def find_columns(image, *, separation_px: float | None = None, threshold_rel: float = 0.15,
                 border_px: int | None = None) -> pd.DataFrame:
    """Column candidates: local maxima of the Gaussian-smoothed image at least ~separation/2 apart.

    Parameters
    ----------
    image : (rows, cols), columns bright (invert ABF/BF images first).
    separation_px : smallest distance between two columns (px); default from the FFT.
    threshold_rel : a maximum must rise above the local background by this fraction of the image's
        (99.5th - 0.5th percentile) range.
    border_px : drop maxima closer than this to the edge (default separation / 4).

    Returns
    -------
    DataFrame ``row_px, col_px, height`` (height above the local background).
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"image must be 2D, got shape {img.shape}")
    sep = float(separation_px) if separation_px else estimate_separation(img)
    if not np.isfinite(sep) or sep < 2:
        raise ValueError(f"separation_px must be >= 2 px, got {separation_px!r}")
    sm = ndimage.gaussian_filter(img, max(sep / 8.0, 0.7))
    bg = ndimage.minimum_filter(ndimage.gaussian_filter(img, sep / 3.0), size=int(2 * sep) | 1)
    rad = max(int(sep * 0.35), 1)
    yy, xx = np.mgrid[-rad:rad + 1, -rad:rad + 1]
    fp = (yy**2 + xx**2) <= rad**2
    mx = ndimage.maximum_filter(sm, footprint=fp, mode="nearest")
    lo, hi = np.percentile(sm, [0.5, 99.5])
    height = sm - bg
    ok = (sm == mx) & (height > threshold_rel * (hi - lo))
    b = int(border_px) if border_px is not None else int(sep / 4)
    ok[:b, :] = ok[-b or None:, :] = False if b else ok[:0, :]
    if b:
        ok[:, :b] = False
        ok[:, -b:] = False
        ok[-b:, :] = False
    r, c = np.nonzero(ok)
    return pd.DataFrame({"row_px": r.astype(float), "col_px": c.astype(float), "height": height[r, c]})


def refine_columns(image, positions, *, radius_px: float, iterations: int = 10, poisson: bool | None = None,
                   sigma_px=None) -> pd.DataFrame:
    """Refine column positions by fitting A exp(-|r - r0|^2 / 2 s^2) + B to each column's disc.

    Parameters
    ----------
    image : (rows, cols).
    positions : (n, 2) initial (row, col) px, or a DataFrame with ``row_px, col_px``.
    radius_px : radius of the fitted disc (about 0.4-0.5 x the nearest-neighbour distance).
    iterations : Levenberg-Marquardt iterations (all columns in parallel).
    sigma_px : fix the Gaussian width (px; scalar or one per column) instead of fitting it, e.g.
        the median width of the sublattice from a first pass: fewer free parameters, better
        precision at low dose.
    poisson : finish with Poisson maximum-likelihood (Fisher scoring, weights 1/model), right for
        counted electrons; default: when the image holds non-negative whole numbers.

    Returns
    -------
    DataFrame ``row_px, col_px, amplitude, sigma_px, background, rms_residual, converged``.
    """
    img = np.asarray(image, dtype=np.float64)
    p0 = positions[["row_px", "col_px"]].to_numpy(float) if isinstance(positions, pd.DataFrame) else \
        np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    if len(p0) == 0:
        return pd.DataFrame(columns=["row_px", "col_px", "amplitude", "sigma_px", "background", "rms_residual",
                                     "converged"])
    if radius_px < 1.5:
        raise ValueError(f"radius_px must be >= 1.5, got {radius_px!r}")
    R = int(math.ceil(radius_px))
    off = np.arange(-R, R + 1)
    dy, dx = np.meshgrid(off, off, indexing="ij")
    disc = (dy**2 + dx**2) <= radius_px**2
    dy, dx = dy[disc].astype(float), dx[disc].astype(float)  # (m,)
    ctr = np.rint(p0).astype(int)
    rr = np.clip(ctr[:, :1] + dy[None, :].astype(int), 0, img.shape[0] - 1)
    cc = np.clip(ctr[:, 1:] + dx[None, :].astype(int), 0, img.shape[1] - 1)
    valid = (ctr[:, :1] + dy[None, :] >= 0) & (ctr[:, :1] + dy[None, :] < img.shape[0]) & \
            (ctr[:, 1:] + dx[None, :] >= 0) & (ctr[:, 1:] + dx[None, :] < img.shape[1])
    z = img[rr, cc]  # (n, m)
    w = valid.astype(float)
    y = dy[None, :] + ctr[:, :1] - p0[:, :1]  # pixel coords relative to the initial position
    x = dx[None, :] + ctr[:, 1:] - p0[:, 1:]
    # initial guesses: background = low percentile, amplitude = max - background, centroid shift
    bkg = np.nanpercentile(np.where(valid, z, np.nan), 10, axis=1)
    zz = np.clip(z - bkg[:, None], 0, None) * w
    inner = (dy**2 + dx**2) <= (0.6 * radius_px) ** 2
    m0 = zz[:, inner].sum(1) + 1e-12
    r0 = (zz[:, inner] * y[:, inner]).sum(1) / m0
    c0 = (zz[:, inner] * x[:, inner]).sum(1) / m0
    amp = np.max(z * w, axis=1) - bkg
    s0 = np.full(len(p0), radius_px / 2.5)
    fix = sigma_px is not None
    if fix:
        s0 = np.broadcast_to(np.asarray(sigma_px, dtype=np.float64), (len(p0),)).copy()
    P = np.stack([amp, r0, c0, s0, bkg], axis=1)
    sig_on = 0.0 if fix else 1.0
    lam = np.full(len(p0), 1e-3)

    def residual_and_jac(P):
        A, pr, pc, s, B = (P[:, i:i + 1] for i in range(5))
        d2 = (y - pr) ** 2 + (x - pc) ** 2
        g = np.exp(-0.5 * d2 / s**2)
        model = B + A * g
        res = (z - model) * w
        J = np.stack([g, A * g * (y - pr) / s**2, A * g * (x - pc) / s**2, sig_on * A * g * d2 / s**3,
                      np.ones_like(g)], axis=2) * w[:, :, None]
        return res, J

    res, J = residual_and_jac(P)
    cost = np.sum(res**2, axis=1)
    for _ in range(iterations):
        JTJ = np.einsum("nmi,nmj->nij", J, J)
        JTr = np.einsum("nmi,nm->ni", J, res)
        diag = np.einsum("nii->ni", JTJ)
        A_ = JTJ + lam[:, None, None] * (diag[:, :, None] * np.eye(5)[None] + 1e-12 * np.eye(5)[None])
        if fix:
            A_[:, 3, 3] += 1.0  # sigma held: its row/column of J is zero
        try:
            step = np.linalg.solve(A_, JTr[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = np.zeros_like(P)
        Pn = P + step
        Pn[:, 3] = np.clip(np.abs(Pn[:, 3]), 0.3, 2.0 * radius_px)
        Pn[:, 1:3] = np.clip(Pn[:, 1:3], -radius_px, radius_px)
        rn, Jn = residual_and_jac(Pn)
        cn = np.sum(rn**2, axis=1)
        better = np.isfinite(cn) & (cn < cost) & np.all(np.isfinite(Pn), axis=1)
        P[better], res[better], J[better], cost[better] = Pn[better], rn[better], Jn[better], cn[better]
        lam = np.where(better, lam * 0.3, lam * 10.0)
    if poisson is None:
        poisson = bool(np.all(z >= 0) and np.allclose(z, np.rint(z)))
    if poisson:
        def deviance(P):
            A, pr, pc, s, B = (P[:, i:i + 1] for i in range(5))
            mu = np.clip(B + A * np.exp(-0.5 * ((y - pr) ** 2 + (x - pc) ** 2) / s**2), 1e-6, None)
            return np.sum(w * (mu - z * np.log(mu)), axis=1), mu

        dev, mu = deviance(P)
        for _ in range(6):
            res, J = residual_and_jac(P)
            wt = 1.0 / np.maximum(mu, 0.5)
            JTJ = np.einsum("nmi,nm,nmj->nij", J, wt, J) + 1e-9 * np.eye(5)[None]
            if fix:
                JTJ[:, 3, 3] += 1.0
            JTr = np.einsum("nmi,nm,nm->ni", J, wt, res)
            try:
                step = np.linalg.solve(JTJ, JTr[:, :, None])[:, :, 0]
            except np.linalg.LinAlgError:
                break
            Pn = P + step
            Pn[:, 3] = np.clip(np.abs(Pn[:, 3]), 0.3, 2.0 * radius_px)
            Pn[:, 1:3] = np.clip(Pn[:, 1:3], -radius_px, radius_px)
            dn, mun = deviance(Pn)
            better = np.isfinite(dn) & (dn < dev) & np.all(np.isfinite(Pn), axis=1)
            P[better], dev[better], mu[better] = Pn[better], dn[better], mun[better]
        res, _ = residual_and_jac(P)
        cost = np.sum(res**2, axis=1)
    npx = np.maximum(w.sum(1), 1)
    conv = (np.abs(P[:, 1]) < radius_px * 0.9) & (np.abs(P[:, 2]) < radius_px * 0.9) & (P[:, 0] > 0) & \
        np.all(np.isfinite(P), axis=1)
    return pd.DataFrame({"row_px": p0[:, 0] + P[:, 1], "col_px": p0[:, 1] + P[:, 2], "amplitude": P[:, 0],
                         "sigma_px": P[:, 3], "background": P[:, 4], "rms_residual": np.sqrt(cost / npx),
                         "converged": conv})


@dataclass(frozen=True)
class LatticeFit:
    """An average 2D lattice p = origin + i a1 + j a2 fitted to column positions (px, (row, col))."""

    origin: np.ndarray
    a1: np.ndarray
    a2: np.ndarray
    ij: np.ndarray          # (n, 2) integer (or half-integer) indices of each column
    residual_px: np.ndarray  # (n, 2) measured - ideal
    on_lattice: np.ndarray   # (n,) bool: indices within 0.25 of integers

    def ideal(self, ij=None) -> np.ndarray:
        ij = self.ij if ij is None else np.asarray(ij, dtype=np.float64)
        return self.origin + ij[:, :1] * self.a1 + ij[:, 1:] * self.a2

    def to_dict(self, pixel_size: float | None = None) -> dict:
        px = pixel_size or 1.0
        unit = "A" if pixel_size else "px"
        ang = math.degrees(math.acos(np.clip(self.a1 @ self.a2 / (np.linalg.norm(self.a1) * np.linalg.norm(self.a2)),
                                             -1, 1)))
        return {f"a1_{unit}": float(np.linalg.norm(self.a1) * px), f"a2_{unit}": float(np.linalg.norm(self.a2) * px),
                "angle_a1_a2_deg": ang, "a1_rowcol_px": self.a1.tolist(), "a2_rowcol_px": self.a2.tolist(),
                "origin_rowcol_px": self.origin.tolist()}


def _basis_from_neighbours(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.spatial import cKDTree

    tree = cKDTree(pos)
    k = min(9, len(pos))
    d, idx = tree.query(pos, k=k)
    v = (pos[idx[:, 1:]] - pos[:, None, :]).reshape(-1, 2)
    v = v[np.linalg.norm(v, axis=1) > 0]
    # fold into one half-plane so v and -v cluster together
    flip = (v[:, 0] < 0) | ((np.abs(v[:, 0]) < 1e-9) & (v[:, 1] < 0))
    v[flip] *= -1
    nn = np.median(d[:, 1])
    cand = v[np.linalg.norm(v, axis=1) < 1.8 * nn]

    def mode(vs):
        dd = np.linalg.norm(vs[:, None, :] - vs[None, :, :], axis=2)
        cnt = (dd < 0.15 * nn).sum(1)
        best = np.argmax(cnt - 1e-3 * np.linalg.norm(vs, axis=1) / nn)
        sel = dd[best] < 0.15 * nn
        return vs[sel].mean(0), cnt[best]

    sub = cand if len(cand) <= 3000 else cand[np.random.default_rng(0).choice(len(cand), 3000, replace=False)]
    a1, _ = mode(sub)
    ang = np.abs(np.degrees(np.arctan2(sub[:, 0] * a1[1] - sub[:, 1] * a1[0], sub @ a1)))
    ang = np.minimum(ang, 180 - ang)
    rest = sub[ang > 20]
    if len(rest) == 0:
        raise ValueError("the columns form no 2D lattice (all neighbour vectors are parallel)")
    # a2: the shortest well-populated direction not parallel to a1 (not merely the most populated,
    # which can be a diagonal with as many neighbours)
    dd = np.linalg.norm(rest[:, None, :] - rest[None, :, :], axis=2)
    cnt = (dd < 0.15 * nn).sum(1)
    good = cnt >= 0.5 * cnt.max()
    cand2 = np.flatnonzero(good)
    best = cand2[np.argmin(np.linalg.norm(rest[cand2], axis=1))]
    a2 = rest[dd[best] < 0.15 * nn].mean(0)
    # Lagrange-Gauss reduction to the shortest basis of the same lattice
    for _ in range(10):
        if np.linalg.norm(a2) < np.linalg.norm(a1):
            a1, a2 = a2, a1
        m = np.rint(a1 @ a2 / (a1 @ a1))
        if m == 0:
            break
        a2 = a2 - m * a1
    return a1, a2


def fit_lattice(positions, *, a1=None, a2=None, iterations: int = 3) -> LatticeFit:
    """Least-squares average lattice of column positions (px), basis from nearest-neighbour vectors.

    Columns whose fractional indices are not within 0.25 of integers (another sublattice, or
    defects) are flagged ``on_lattice = False`` and excluded from the fit.
    """
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    if len(pos) < 4:
        raise ValueError(f"need at least 4 columns to fit a lattice, got {len(pos)}")
    if a1 is None or a2 is None:
        a1, a2 = _basis_from_neighbours(pos)
    a1, a2 = np.asarray(a1, float), np.asarray(a2, float)
    centre = pos.mean(0)
    origin = pos[np.argmin(np.linalg.norm(pos - centre, axis=1))]
    for _ in range(iterations):
        B = np.stack([a1, a2], axis=1)  # columns a1, a2
        f = np.linalg.solve(B, (pos - origin).T).T
        ij = np.rint(f)
        on = np.all(np.abs(f - ij) < 0.25, axis=1)
        X = np.column_stack([np.ones(on.sum()), ij[on]])
        coef, *_ = np.linalg.lstsq(X, pos[on], rcond=None)
        origin, a1, a2 = coef[0], coef[1], coef[2]
    B = np.stack([a1, a2], axis=1)
    f = np.linalg.solve(B, (pos - origin).T).T
    ij = np.rint(f)
    on = np.all(np.abs(f - ij) < 0.25, axis=1)
    ideal = origin + ij[:, :1] * a1 + ij[:, 1:] * a2
    return LatticeFit(origin=origin, a1=a1, a2=a2, ij=ij, residual_px=pos - ideal, on_lattice=on)


def fit_modulation(ij, displacement, *, q=None, n_grid: int = 64) -> dict:
    """Fit a periodic lattice displacement u(ij) = Re[U exp(2 pi i q . ij)] to per-column displacements.

    Parameters
    ----------
    ij : (n, 2) lattice indices.
    displacement : (n, 2) displacements (any unit; the amplitude comes out in the same unit).
    q : (2,) modulation vector in reciprocal-lattice units; found by a DFT over ``ij`` if None.

    Returns
    -------
    dict with ``q_rlu`` (2,), ``amplitude`` (peak displacement along the polarisation),
    ``polarization`` (unit 2-vector, (row, col)), ``phase_deg``, and ``residual_rms``.
    """
    ij = np.asarray(ij, dtype=np.float64)
    u = np.asarray(displacement, dtype=np.float64)
    u = u - u.mean(0)
    if q is None:
        g = np.arange(n_grid // 2 + 1) / n_grid
        g2 = np.concatenate([-g[:0:-1], g])
        Q1, Q2 = np.meshgrid(g, g2, indexing="ij")
        qs = np.stack([Q1.ravel(), Q2.ravel()], axis=1)
        qs = qs[np.linalg.norm(qs, axis=1) > 1.0 / n_grid]
        ph = np.exp(-2j * np.pi * (ij @ qs.T))  # (n, nq)
        pw = np.abs(u[:, 0] @ ph) ** 2 + np.abs(u[:, 1] @ ph) ** 2
        q = qs[np.argmax(pw)]
        # local refinement on a fine grid
        for step in (0.5 / n_grid, 0.1 / n_grid, 0.02 / n_grid):
            d = np.arange(-3, 4) * step
            cand = np.stack(np.meshgrid(q[0] + d, q[1] + d, indexing="ij"), -1).reshape(-1, 2)
            ph = np.exp(-2j * np.pi * (ij @ cand.T))
            pw = np.abs(u[:, 0] @ ph) ** 2 + np.abs(u[:, 1] @ ph) ** 2
            q = cand[np.argmax(pw)]
    q = np.asarray(q, dtype=np.float64)
    arg = 2 * np.pi * ij @ q
    X = np.column_stack([np.cos(arg), np.sin(arg)])
    coef, *_ = np.linalg.lstsq(X, u, rcond=None)  # (2, 2): rows cos/sin, cols row/col
    # u = C cos + S sin with C, S 2-vectors; the polarisation is the principal axis of the ellipse
    M = coef.T  # (2 comps, 2 [cos, sin])
    U, s, Vt = np.linalg.svd(M)
    amp = float(s[0])
    pol = U[:, 0]
    phase = math.degrees(math.atan2(Vt[0, 1], Vt[0, 0]))  # u ~ amp pol cos(arg - phase)
    if pol[np.argmax(np.abs(pol))] < 0:
        pol, phase = -pol, phase + 180.0
    resid = u - X @ coef
    return {"q_rlu": q.tolist(), "amplitude": amp, "polarization_rowcol": pol.tolist(),
            "phase_deg": float((phase + 90.0 + 180.0) % 360.0 - 180.0),  # as a sine: amp sin(arg + phase)
            "residual_rms": float(np.sqrt(np.mean(np.sum(resid**2, axis=1))))}


def analyse_columns(image, *, pixel_size: float | None = None, separation_px: float | None = None,
                    radius_frac: float = 0.5, threshold_rel: float = 0.15, n_sublattices: int = 2) -> dict:
    """Find, refine and classify columns; fit the lattice of the brightest sublattice; displacements in pm.

    Returns
    -------
    dict with ``columns`` (DataFrame: row_px, col_px, amplitude, sigma_px, sublattice, i, j,
    on_lattice, dr_pm, dc_pm, displacement_pm), ``lattice`` (:class:`LatticeFit` of sublattice 0,
    the brightest), ``separation_px``.
    """
    img = np.asarray(image, dtype=np.float64)
    sep = float(separation_px) if separation_px else estimate_separation(img)
    cand = find_columns(img, separation_px=sep, threshold_rel=threshold_rel)
    if len(cand) < 4:
        raise ValueError(f"found only {len(cand)} columns; check the image contrast (columns must be bright)")
    from scipy.spatial import cKDTree

    d, _ = cKDTree(cand[["row_px", "col_px"]].to_numpy()).query(cand[["row_px", "col_px"]].to_numpy(), k=2)
    nn = float(np.median(d[:, 1]))
    cols = refine_columns(img, cand, radius_px=max(radius_frac * nn, 1.5))
    cols = cols[cols.converged].reset_index(drop=True)
    # sublattices by column intensity (amplitude): split at the widest gap of the sorted log-amplitudes
    amp = np.log(np.clip(cols.amplitude.to_numpy(), 1e-12, None))
    sub = np.zeros(len(cols), int)
    if n_sublattices >= 2 and len(cols) >= 8:
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=2, n_init=5, random_state=0).fit(amp.reshape(-1, 1))
        centres = km.cluster_centers_.ravel()
        lab = km.labels_
        sep_ok = abs(centres[0] - centres[1]) > 2 * max(np.std(amp[lab == 0]), np.std(amp[lab == 1]), 1e-3)
        if sep_ok:
            sub = np.where(lab == int(np.argmax(centres)), 0, 1)
    cols["sublattice"] = sub
    # second pass: each sublattice's columns share one width (its median), one parameter fewer per
    # column; with the Poisson likelihood this reaches the Cramer-Rao bound on simulated data
    for s_ in np.unique(sub):
        m = sub == s_
        if m.sum() >= 4:
            ref = refine_columns(img, cols.loc[m, ["row_px", "col_px"]].to_numpy(), radius_px=max(radius_frac * nn, 1.5),
                                 sigma_px=float(np.median(cols.sigma_px[m])))
            ok = ref.converged.to_numpy()
            idx = np.flatnonzero(m)[ok]
            for c in ("row_px", "col_px", "amplitude", "background", "rms_residual"):
                cols.loc[idx, c] = ref[c].to_numpy()[ok]
    main = cols[cols.sublattice == 0]
    lat = fit_lattice(main[["row_px", "col_px"]].to_numpy())
    B = np.stack([lat.a1, lat.a2], axis=1)
    f = np.linalg.solve(B, (cols[["row_px", "col_px"]].to_numpy() - lat.origin).T).T
    half = np.rint(f * 2) / 2
    cols["i"], cols["j"] = half[:, 0], half[:, 1]
    cols["on_lattice"] = np.all(np.abs(f - half) < 0.2, axis=1)
    ideal = lat.origin + half[:, :1] * lat.a1 + half[:, 1:] * lat.a2
    disp = cols[["row_px", "col_px"]].to_numpy() - ideal
    # remove each sublattice's mean offset (the basis position is not exactly (0.5, 0.5) in general)
    for s in np.unique(sub):
        m = (sub == s) & cols.on_lattice.to_numpy()
        if m.any():
            disp[sub == s] -= disp[m].mean(0)
    scale = (pixel_size or 1.0) * 100.0
    cols["dr_pm" if pixel_size else "dr_px"] = disp[:, 0] * (scale if pixel_size else 1.0)
    cols["dc_pm" if pixel_size else "dc_px"] = disp[:, 1] * (scale if pixel_size else 1.0)
    return {"columns": cols, "lattice": lat, "separation_px": sep, "nn_distance_px": nn}
