"""Per-object outline refinement: a smooth closed curve fitted to the unsmoothed contrast.

At low dose (0.3 e/A^2 at 5 A/px: 7.5 e per pixel, a particle's contrast about one noise std
per pixel) no pixel-level boundary is reliable, and a threshold of a smoothed image takes the
blur's shape (rounded corners, fattened rods) and a contrast-dependent offset. The whole
object's pixels still fix its outline well. The outline is written as the current (smoothed)
outline ``C0(s)`` moved along its normal by ``o(s) = c_0 + sum_k c_k cos(k phi) + s_k sin(k phi)``
(``phi = 2 pi s / L``, arc length ``s``), and every pixel near it is modelled from its distance
``d`` to ``C0`` (positive inside) as

``y = b + a_step T_step(d - o) + a_dome T_dome(d - o)``

a step (cube, plate: constant projected thickness) plus a dome ``1 - exp(-q h)`` of the
thickness ``h ~ sqrt(depth)`` of a circular cross-section (sphere, rod; ``q`` its mass-thickness
saturation), both integrated over the pixel box and blurred by a Gaussian of ``w`` px (:class:`_Profile`).

1. A scan of the global offset ``c_0`` (inwards up to 6 px or 0.75 of the inscribed radius: the
   detection's outline is often several px too large at 0.3 e/A^2; outwards 3 px), the blur
   ``w`` and ``q`` on the mean profile binned in ``d``; ``b, a_step, a_dome >= 0`` by linear
   least squares for each candidate.
2. The harmonics by damped Gauss-Newton from there, with a Gaussian prior of ``PRIOR_PX`` on
   each (maximum a posteriori under white noise of the known per-pixel std). How many: one
   coefficient's Fisher information is ``(a / noise)^2 L / (4 sqrt(pi) w)``, and ``k`` harmonics
   add ``2 k`` such variances to the outline's mean square wiggle, kept below ``WIGGLE_PX^2``
   (fewer harmonics at lower dose and for fainter or smaller objects; at most one per 4 pi px
   of outline, and ``MAX_HARMONICS``).
3. The mask is redrawn at ``d = o``, its outline re-traced and the fit repeated (``N_OUTER``
   passes, the later ones searching ``c_0`` within +/- 2 px).

Neighbouring objects' pixels (dilated by ``EXCLUDE_PX``) are left out of the fit, and a pixel of
another object is never taken, so touching particles do not pull each other. Objects cut by the
image border are continued beyond it without data (the fit closes them), then cut again.

References
----------
Kass, Witkin & Terzopoulos, Snakes: active contour models, IJCV 1, 321 (1988),
doi:10.1007/BF00133570; Staib & Duncan, Boundary finding with parametrically deformable models
(elliptic Fourier outlines), IEEE PAMI 14, 1061 (1992), doi:10.1109/34.166621; Golub & Pereyra,
variable projection, SIAM J. Numer. Anal. 10, 413 (1973), doi:10.1137/0710036.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from cryomat.segmentation.edge import signed_distance

SCAN_PX = 6.0  # the global offset is searched within this inwards (or 0.75 of the inscribed radius)
SCAN_OUT_PX = 3.0  # ... and this outwards of the detection outline (which is rarely too small)
SCAN_STEP_PX = 0.1
BIN_PX = 0.2
BAND_OUT_PX = 5.0  # pixels up to this far outside the (moved) outline are fitted
BAND_IN_PX = 6.0  # ... and up to this far inside (at most 0.8 of the inscribed radius)
EXCLUDE_PX = 2  # other objects' pixels, dilated by this, are left out
BLUR_PX = (0.25, 0.5)  # edge blur candidates beyond the pixel box (std, px); wider ones fit the
# simulator's phase-contrast fringes better but place domes' edges 1.5-2 % inside (10 e/A^2)
MAX_HARMONICS = 10
WIGGLE_PX = 0.5  # 0.35 or 0.8: within 0.01 of IoU and 0.001 of size at 0.3 e/A^2 (24 images)
PRIOR_PX = 3.0  # prior std of each harmonic's offset (px): the outline moves a few px at most
REFINE_SCAN_PX = 2.0
OUTLINE_SMOOTH_PX = 1.5
N_OUTER = 2  # 3: the same figures at 0.3 e/A^2 (24 images), 1.4x the time
DOME_Q = (0.0, 1.0)  # saturation of the dome template (per sqrt px); (0, 0.5, 1, 2): the same figures
N_GN = 5
GN_WIDE_PX = 2.0  # blur of the first Gauss-Newton pass: a sharp template gives no gradient to an
# outline that sits on one side of the true edge
GN_WIDE_PASSES = 1
PAD_PX = 12
MIN_AREA_PX = 100  # (equivalent diameter 11 px; the simulated particles are >= 20 px)


def _contour(sd: np.ndarray):
    """Longest closed iso-line ``sd = 0`` (row, col), resampled at ~0.5 px, and its length."""
    from skimage.measure import find_contours

    cs = find_contours(sd, 0.0)
    if not cs:
        return None, 0.0
    c = max(cs, key=len)
    if len(c) < 8 or np.hypot(*(c[0] - c[-1])) > 1.0:
        return None, 0.0
    seg = np.hypot(*np.diff(c, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    length = float(s[-1])
    if length < 6:
        return None, 0.0
    n = max(16, int(np.ceil(length / 0.5)))
    t = np.arange(n) * (length / n)
    return np.column_stack([np.interp(t, s, c[:, 0]), np.interp(t, s, c[:, 1])]), length


def _polygon_distance(poly: np.ndarray, pts: np.ndarray):
    """(distance, index of the nearest vertex) of points to a closed polygon: the nearest vertex
    by a k-d tree, then the exact distance to its two edges (the vertex distance alone is up to
    a quarter of the vertex spacing too large next to the outline, which biases domed edges)."""
    dist, j = cKDTree(poly).query(pts)
    n = len(poly)
    close = np.flatnonzero(dist < 2.0)  # further out the vertex distance is within 0.02 px
    p, jc = pts[close], j[close]
    best = dist[close]
    for nb in ((jc - 1) % n, (jc + 1) % n):
        a, b = poly[jc], poly[nb]
        ab = b - a
        t = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12), 0, 1)
        best = np.minimum(best, np.hypot(*(p - a - t[:, None] * ab).T))
    dist[close] = best
    return dist, j


def _basis(phi: np.ndarray, k: int) -> np.ndarray:
    """(n, 2k + 1) Fourier basis of the offset: 1, cos(phi), sin(phi), ..., cos(k phi), sin(k phi)."""
    cols = [np.ones_like(phi)]
    for j in range(1, k + 1):
        cols += [np.cos(j * phi), np.sin(j * phi)]
    return np.column_stack(cols)


_TABLES: dict = {}
_U = np.arange(-8.0, 40.0 + 1e-9, 0.02)  # depth inside the edge (px) of the template tables


class _Profile:
    """Edge templates over the depth ``x`` (px) inside the edge: a step and a dome
    ``1 - exp(-q h(x))`` (``q = 0``: ``h(x)`` itself), with ``h = sqrt(2 R x - x^2) / sqrt(2 R)``
    the thickness profile of a circular cross-section of radius ``R`` (~ sqrt(x) near the edge;
    ``q`` > 0: the saturation of mass-thickness contrast ``1 - exp(-t / mfp)``), each integrated
    over the 1 px pixel box and blurred by a Gaussian of ``w`` px (optics, drift). Tables cached
    (R in 5 % steps)."""

    def __init__(self, w: float, radius_px: float, q: float = 0.0):
        key_r = int(round(np.log(max(radius_px, 1.0)) / np.log(1.05)))
        key = (round(w, 3), round(q, 3), key_r)
        if key not in _TABLES:
            r = float(np.exp(key_r * np.log(1.05)))
            u = np.clip(_U, 0.0, r)
            h = np.sqrt(np.clip(2 * r * u - u * u, 0.0, None) / (2 * r))
            g = 1 - np.exp(-q * h) if q > 0 else h
            du = _U[1] - _U[0]
            box = np.ones(int(round(1.0 / du)) + 1)
            k = np.convolve(box / box.sum(), _gauss_taps(w, du)) if w > 0 else box / box.sum()
            n = k.size // 2
            out = []
            for prof in ((_U > 0).astype(float), g):
                pp = np.concatenate([np.zeros(n), prof, np.full(n, prof[-1])])
                t = np.convolve(pp, k, mode="valid")[:_U.size]
                out += [t, np.gradient(t, du)]
            _TABLES[key] = tuple(out)
        self.t1, self.d1, self.t2, self.d2 = _TABLES[key]

    def values(self, x):
        return np.interp(x, _U, self.t1), np.interp(x, _U, self.t2)

    def slopes(self, x):
        return np.interp(x, _U, self.d1), np.interp(x, _U, self.d2)


def _gauss_taps(w: float, du: float) -> np.ndarray:
    k = np.exp(-0.5 * (np.arange(-4 * w, 4 * w + du / 2, du) / w) ** 2)
    return k / k.sum()


def _amplitudes(t1, t2, p, n):
    """Weighted least squares ``p ~ b + a1 t1 + a2 t2`` with ``a1, a2 >= 0`` for every row of
    the templates ``t1, t2`` (candidates x samples) at once; ``n`` the samples' weights.
    Returns (b, a1, a2, rss reduction against the constant fit), one per candidate."""
    wsum = n.sum()
    mp = (n @ p) / wsum
    wp = n * (p - mp)
    m1, m2 = (t1 @ n) / wsum, (t2 @ n) / wsum
    s11 = (t1 * t1) @ n - wsum * m1 * m1
    s22 = (t2 * t2) @ n - wsum * m2 * m2
    s12 = (t1 * t2) @ n - wsum * m1 * m2
    s1p, s2p = t1 @ wp, t2 @ wp
    det = s11 * s22 - s12 * s12
    ok = det > 1e-12 * np.maximum(s11 * s22, 1e-30)
    a1 = np.where(ok, (s22 * s1p - s12 * s2p) / np.where(ok, det, 1), -1.0)
    a2 = np.where(ok, (s11 * s2p - s12 * s1p) / np.where(ok, det, 1), -1.0)
    red = np.where((a1 >= 0) & (a2 >= 0), a1 * s1p + a2 * s2p, -np.inf)
    b1 = np.where(s11 > 0, s1p / np.maximum(s11, 1e-30), -1.0)  # step alone
    r1 = np.where(b1 > 0, b1 * s1p, -np.inf)
    b2 = np.where(s22 > 0, s2p / np.maximum(s22, 1e-30), -1.0)  # dome alone
    r2 = np.where(b2 > 0, b2 * s2p, -np.inf)
    use1, use2 = (r1 > red) & (r1 >= r2), (r2 > red) & (r2 > r1)
    a1 = np.where(use1, b1, np.where(use2, 0.0, a1))
    a2 = np.where(use2, b2, np.where(use1, 0.0, a2))
    red = np.maximum(red, np.maximum(r1, r2))
    b = mp - a1 * m1 - a2 * m2
    return b, a1, a2, red


def _scan(db, pb, nw, radius, lo, hi, blurs=None, qs=None):
    """Best (reduction, edge offset e, blur, q) of the binned profile ``pb`` at distances ``db``
    (weights ``nw``) over offsets in [lo, hi] px: a coarse grid for every template, then a fine
    one around the best; None when no candidate has a positive amplitude."""
    best = None
    for step, span in ((SCAN_STEP_PX * 4, None), (SCAN_STEP_PX / 2, SCAN_STEP_PX * 4)):
        if span is None:
            es = np.arange(lo, hi + 1e-9, step)
        else:
            es = np.clip(best[1] + np.arange(-span, span + 1e-9, step), lo, hi)
        for w in blurs or BLUR_PX:
            x = db[None, :] - es[:, None]
            t1 = None
            for q in qs or DOME_Q:
                prof = _Profile(w, radius, q)
                if t1 is None:
                    t1 = np.interp(x, _U, prof.t1)
                t2 = np.interp(x, _U, prof.t2)
                _, a1, a2, red = _amplitudes(t1, t2, pb, nw)
                red = np.where(a1 + a2 > 0, red, -np.inf)
                jb = int(np.argmax(red))
                if np.isfinite(red[jb]) and (best is None or red[jb] > best[0]):
                    best = (float(red[jb]), float(es[jb]), w, q)
        if best is None:
            return None
    return best


def fit_outline(y: np.ndarray, mask: np.ndarray, noise: float, *, valid: np.ndarray | None = None,
                max_harmonics: int = MAX_HARMONICS) -> np.ndarray | None:
    """Refined mask of one object (crop ``mask`` of contrast crop ``y``), or None when no
    closed outline or too little signal.

    Parameters
    ----------
    y : (rows, cols) contrast, positive on the object, unsmoothed (per-pixel noise ``noise``).
    mask : bool, the object's current mask (padded so that its outline is closed in the crop).
    noise : per-pixel noise std of ``y``.
    valid : bool, pixels that may be fitted (False: other objects, outside the image).
    """
    valid = np.ones(mask.shape, bool) if valid is None else valid
    sd = signed_distance(mask)
    sd = ndi.gaussian_filter(sd.astype(np.float32), OUTLINE_SMOOTH_PX, mode="nearest")
    out = None
    for outer in range(N_OUTER):
        poly, length = _contour(sd)
        if poly is None:
            return out
        inscribed = float(sd.max())
        radius = max(inscribed, 1.0)
        # the first pass searches the global offset widely (a low-dose detection outline can be
        # several px off; inwards up to most of the inscribed radius), later ones near 0
        scan_in = max(SCAN_PX, 0.75 * inscribed) if outer == 0 else REFINE_SCAN_PX
        scan_out = SCAN_OUT_PX if outer == 0 else REFINE_SCAN_PX
        reach_out = BAND_OUT_PX + scan_out
        reach_in = min(BAND_IN_PX, 0.8 * radius) + scan_in
        near = (sd > -reach_out) & (sd < reach_in)
        rr, cc = np.nonzero(near)
        dist = _polygon_distance(poly, np.column_stack([rr, cc]).astype(np.float64))
        j = dist[1]
        dist = dist[0]
        d = np.where(sd[rr, cc] > 0, dist, -dist)
        bpoly = _basis((2 * np.pi / len(poly)) * np.arange(len(poly)), max_harmonics)
        fit = valid[rr, cc]
        if np.count_nonzero(fit) < 30:
            return out
        yv, dv, jv = y[rr, cc][fit].astype(np.float64), d[fit], j[fit]
        # scan of the global offset and the blur on the mean profile (0.2 px bins of d; every
        # near pixel is modelled, so that the candidates compare on one pixel set)
        kb = np.floor((dv - dv.min()) / BIN_PX).astype(np.intp)
        nb = np.bincount(kb)
        okb = nb > 0
        nw = nb[okb].astype(np.float64)
        pb = np.bincount(kb, yv)[okb] / nw
        db = np.bincount(kb, dv)[okb] / nw
        best = _scan(db, pb, nw, radius, -scan_out, scan_in, *((None, None) if outer == 0 else ((w,), (q,))))
        if best is None:
            return out
        _, e0, w, q = best
        prof = _Profile(w, radius, q)
        sel = (dv - e0 > -BAND_OUT_PX) & (dv - e0 < BAND_IN_PX)
        yv, dv, jv = yv[sel], dv[sel], jv[sel]
        t1, t2 = prof.values(dv - e0)
        b, a1, a2, _ = (float(v[0]) for v in _amplitudes(t1[None], t2[None], yv, np.ones_like(yv)))
        amp = a1 + a2 * float(prof.values(np.array([min(radius, BAND_IN_PX)]))[1][0])
        if amp <= 0:
            return out
        # harmonics: one coefficient's Fisher information ~ (amp/noise)^2 L / (4 sqrt(pi) w) (a step
        # of blur w); k harmonics add 2k such variances to the outline's mean square wiggle, kept
        # below WIGGLE_PX^2. (The information from the model's own slopes, smaller for domes, gave
        # spheres fewer harmonics (IoU +0.015) but plates and rods too few (-0.015, -0.005).)
        info = (amp / max(noise, 1e-9)) ** 2 * length / (4 * np.sqrt(np.pi) * w)
        k = int(np.clip(min(np.floor(info * WIGGLE_PX**2), np.floor(length / (4 * np.pi))), 0, max_harmonics))
        B = bpoly[jv, :2 * k + 1]
        c = np.zeros(B.shape[1])
        c[0] = e0
        prior = np.full(B.shape[1], (noise / PRIOR_PX) ** 2)
        prior[0] = 0.0
        # graduated: first with a wide blur (a basin of a few px: a detection outline that is
        # off on one side only has no gradient there with the sharp template), then the fitted one
        stages = [(_Profile(GN_WIDE_PX, radius, q), N_GN)] if (GN_WIDE_PX > w and outer < GN_WIDE_PASSES) else []
        for pr, n_it in stages + [(prof, N_GN)]:
            for _ in range(n_it if k > 0 else 0):
                z = dv - B @ c
                t1, t2 = pr.values(z)
                b, a1, a2, _ = (float(v[0]) for v in _amplitudes(t1[None], t2[None], yv, np.ones_like(yv)))
                if a1 + a2 <= 0:
                    break
                s1, s2 = pr.slopes(z)
                J = B * (-(a1 * s1 + a2 * s2))[:, None]  # d model / d coefficient
                r = yv - (b + a1 * t1 + a2 * t2)
                step = np.linalg.solve(J.T @ J + np.diag(prior) + 1e-9 * np.eye(len(c)), J.T @ r - prior * c)
                c = c + np.clip(step, -2.0, 2.0)
                if np.max(np.abs(step)) < 0.05:
                    break
        # rasterise: inside where d - o(phi) > 0 (pixels beyond the band keep their side)
        offset = np.full(mask.shape, -1.0, np.float32)
        offset[rr, cc] = d - (bpoly[:, :2 * k + 1] @ c)[j]
        new = np.where(near, offset > 0, sd >= reach_in)
        if not new.any():
            return out
        out = new
        sd = ndi.gaussian_filter(signed_distance(out).astype(np.float32), 0.7, mode="nearest")
    return out


def refine_outlines(labels: np.ndarray, y: np.ndarray, noise: float) -> np.ndarray:
    """Every object of ``labels`` refined by :func:`fit_outline` on the contrast ``y`` (per-pixel
    noise std ``noise``); objects whose fit fails keep their mask. Returns new labels (int32)."""
    h, w = labels.shape
    out = np.zeros(labels.shape, np.int32)
    claimed = np.zeros(labels.shape, bool)
    areas = np.bincount(labels.ravel())
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        r0, r1 = sl[0].start - PAD_PX, sl[0].stop + PAD_PX
        c0, c1 = sl[1].start - PAD_PX, sl[1].stop + PAD_PX
        rs, cs = slice(max(r0, 0), min(r1, h)), slice(max(c0, 0), min(c1, w))
        pr, pc = (rs.start - r0, r1 - rs.stop), (cs.start - c0, c1 - cs.stop)
        # objects cut by the image border are continued beyond it (no data there), then closed
        e4 = (tuple(max(v - 4, 0) for v in pr), tuple(max(v - 4, 0) for v in pc))
        lab = np.pad(np.pad(labels[rs, cs], e4, mode="edge"),
                     (tuple(a - b for a, b in zip(pr, e4[0])), tuple(a - b for a, b in zip(pc, e4[1]))))
        yc = np.pad(y[rs, cs], (pr, pc), mode="constant")
        inside_img = np.pad(np.ones((rs.stop - rs.start, cs.stop - cs.start), bool), (pr, pc))
        m = lab == i
        others = (lab > 0) & ~m
        if EXCLUDE_PX > 0 and others.any():
            others = ndi.binary_dilation(others, iterations=EXCLUDE_PX)
        # objects below MIN_AREA_PX keep their mask: too few pixels for a curve (the real SiO2
        # HAADF spheres, 7 px across in dense clusters, lost 20 % of their scribbled pixels)
        new = fit_outline(yc, m, noise, valid=inside_img & ~others) if areas[i] >= MIN_AREA_PX else None
        if new is None:
            new = m
        new = new[pr[0]:new.shape[0] - pr[1], pc[0]:new.shape[1] - pc[1]]
        cur = out[rs, cs]
        own = labels[rs, cs]
        put = new & ~claimed[rs, cs] & ((own == i) | (own == 0))
        cur[put] = i
        claimed[rs, cs] |= put
    return out
