"""What a binary mask admits: the ranges of descriptors over every analytic shape consistent with it.

A pixel is in the mask when its centre is inside the shape, so a mask does not fix the shape: a
whole set of ellipses (or squares, rectangles) rasterises to the same pixels. Over that set a
descriptor (aspect ratio, Feret diameter) spans a range ``[lo, hi]``; no estimator that sees
only the mask can have a worst-case error below half its width (the minimax estimator sits at
its middle). These functions compute the ranges, as an information limit against which
:func:`cryomat.measure.shape_descriptors` is measured (``benchmarks/bench_descriptors.py``);
they are analysis tools (tens of ms to seconds per object), not used by ``particle_table``.

- Ellipses: the conics ``A u^2 + B uv + C v^2 + D u + E v + F`` with ``A + C = 1`` that are
  <= 0 at the inside pixel centres and >= 0 at the outside ones form a convex polytope in
  ``x = (A - C, B, D, E, F)`` (the closure of the feasible set; only the boundary pixels and a
  2-pixel outside ring bind). The aspect ratio depends only on ``r = |(A - C, B)|``
  (``sqrt((1 + r) / (1 - r))``), so its range follows from the polytope's projection on that
  plane (support points by linear programmes in ``n_dir`` directions: exact up to the polygon's
  chord error, < 1e-4 here). The Feret diameters ``2a, 2b`` are not linear in ``x``: their range
  is bracketed from inside by local optimisation (SLSQP) from the projection's support points.
- Squares and rectangles at orientation ``theta``: the rotated coordinates ``(u, v)`` of the
  pixel centres; the shape is ``[o1, o1 + w1] x [o2, o2 + w2]``. Inside centres fix the
  smallest box, every outside centre must fall outside. For a square (``w1 = w2 = s``) and
  fixed ``(theta, o1, o2)`` the feasible sides are the interval
  ``[max(P1 - o1, P2 - o2), min_q max(u_q - o1, v_q - o2))`` over the outside centres ``q`` with
  ``u_q >= o1, v_q >= o2``; scanning ``theta`` and ``(o1, o2)`` on grids gives the range of
  ``s`` (an inner bracket up to the grid step). Rectangles add the pair of upper offsets.

The ellipse and square extremes are checked by rasterising the shape they stand for and comparing
with the mask (all pixels of the padded frame): an ellipse support point that fails is dropped,
a square extreme that fails is moved inwards by one grid step, so those ranges are inner
brackets of the true feasible ranges and half their width is a valid lower bound on any
estimator's worst-case error. :func:`rectangle_ranges` checks nothing: its ranges rest on the
inside boundary centres and a 1-px ring of outside centres only (a farther pixel is assumed not
to bind), an inner bracket only under that assumption.

References
----------
Boyd & Vandenberghe, Convex Optimization (2004), ch. 4 and 8.5 (polytopes, projections, centres);
Kiryati & Bruckstein, Gray levels can improve the performance of binary image digitizers, CVGIP:
Graphical Models and Image Processing 53, 31 (1991), doi:10.1016/1049-9652(91)90017-D (the
information a binary digitisation keeps about a shape's position and size).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

RING_PX = 2  # outside pixels within this many 8-steps of the object enter the constraints


def _centres(m: np.ndarray, ring: int = RING_PX) -> tuple[np.ndarray, np.ndarray]:
    """Inside boundary pixel centres and outside centres within ``ring`` px, (row, col) in the
    frame of ``m``."""
    p = np.pad(np.asarray(m, bool), ring + 1)
    k = np.ones((3, 3), bool)
    inner = p & ~ndi.binary_erosion(p, k)
    outer = ndi.binary_dilation(p, k, iterations=ring) & ~p
    off = ring + 1
    return (np.argwhere(inner).astype(np.float64) - off, np.argwhere(outer).astype(np.float64) - off)


def _frame_centres(m: np.ndarray, pad: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """All pixel centres of the padded frame (row, col) and whether each is in the mask."""
    p = np.pad(np.asarray(m, bool), pad)
    rr, cc = np.mgrid[:p.shape[0], :p.shape[1]]
    return np.c_[rr.ravel() - pad, cc.ravel() - pad].astype(np.float64), p.ravel()


# --------------------------------------------------------------------------------------------
# ellipses


class EllipseSet:
    """The polytope of conics (normalised ``A + C = 1``) consistent with a rasterised ellipse.

    ``x = (A - C, B, D, E, F)`` in coordinates ``u = (col - x0) / s``, ``v = (row - y0) / s``
    (``circle=True``: ``A = C = 1/2, B = 0``, ``x = (D, E, F)``); constraints ``G x <= h``
    (inside centres: conic <= 0, outside: >= 0).
    """

    def __init__(self, mask, ring: int = RING_PX, circle: bool = False):
        self.mask = np.asarray(mask, bool)
        self.circle = circle
        self.dim = 3 if circle else 5
        pin, pout = _centres(self.mask, ring)
        allp = np.r_[pin, pout]
        self.y0, self.x0 = allp.mean(axis=0)
        self.s = float(np.sqrt(np.mean(np.sum((allp - [self.y0, self.x0]) ** 2, axis=1))))
        g, h = [], []
        for pts, sg in ((pin, 1.0), (pout, -1.0)):
            a, c0 = self._rows(pts)
            g.append(sg * a)
            h.append(-sg * c0)
        self.G, self.h = np.concatenate(g), np.concatenate(h)

    def _rows(self, pts):
        u, v = (pts[:, 1] - self.x0) / self.s, (pts[:, 0] - self.y0) / self.s
        # conic = (u^2 + v^2) / 2 + x0 (u^2 - v^2) / 2 + x1 uv + x2 u + x3 v + x4
        lin = np.c_[u, v, np.ones_like(u)]
        if self.circle:
            return lin, (u * u + v * v) / 2
        return np.c_[(u * u - v * v) / 2, u * v, lin], (u * u + v * v) / 2

    def full(self, x) -> np.ndarray:
        """The five-parameter form of ``x``."""
        x = np.asarray(x, dtype=np.float64)
        return np.r_[0.0, 0.0, x] if self.circle else x

    def lp(self, c) -> np.ndarray | None:
        from scipy.optimize import linprog

        res = linprog(c, A_ub=self.G, b_ub=self.h, bounds=[(None, None)] * self.dim, method="highs")
        return res.x if res.status == 0 else None

    @staticmethod
    def aspect_of(x) -> float:
        r = float(np.hypot(x[0], x[1]))
        return float(np.sqrt((1 + r) / (1 - r))) if r < 1 else float("inf")

    def axes_of(self, x) -> tuple[float, float] | None:
        """Semi-axes ``(a, b)`` (px) of the conic ``x``; None when it is no real ellipse."""
        x = self.full(x)
        m = np.array([[(1 + x[0]) / 2, x[1] / 2], [x[1] / 2, (1 - x[0]) / 2]])
        ev = np.linalg.eigvalsh(m)
        if ev[0] <= 0:
            return None
        cen = np.linalg.solve(2 * m, -np.asarray(x[2:4]))
        fc = x[4] + 0.5 * float(np.dot(x[2:4], cen))
        if fc >= 0:
            return None
        ax = np.sqrt(-fc / ev) * self.s
        return float(ax[0]), float(ax[1])  # ascending eigenvalues: the major semi-axis first

    def consistent(self, x, tol: float = 1e-7) -> bool:
        """Whether the conic ``x`` rasterises to the mask over the whole padded frame (centres
        within ``tol`` of the curve count either way: the closure)."""
        pts, inside = _frame_centres(self.mask)
        a, c0 = self._rows(pts)
        f = a @ np.asarray(x) + c0
        return bool(np.all(f[inside] <= tol) and np.all(f[~inside] >= -tol))

    def support(self, n_dir: int = 32) -> np.ndarray | None:
        """Support points ``(n_dir, dim)``: in directions of the (A - C, B) plane for ellipses, of
        the (D, E) plane and +/- F for circles."""
        out = []
        for th in np.linspace(0, 2 * np.pi, n_dir, endpoint=False):
            c = np.r_[np.cos(th), np.sin(th), np.zeros(self.dim - 2)]
            x = self.lp(-c)
            if x is None:
                return None
            out.append(x)
        if self.circle:
            for sg in (1.0, -1.0):
                x = self.lp(np.r_[0.0, 0.0, sg])
                if x is not None:
                    out.append(x)
        return np.array(out)

    def aspect_range(self, n_dir: int = 32) -> tuple[float, float, np.ndarray] | None:
        """``(lo, hi, support points)`` of the aspect ratio a/b over the feasible ellipses."""
        x = self.support(n_dir)
        if x is None:
            return None
        if self.circle:
            return 1.0, 1.0, x
        p = x[:, :2]
        rmax = float(np.max(np.hypot(p[:, 0], p[:, 1])))
        # distance from the origin (a circle) to the projected polygon: 0 when a circle is feasible
        try:
            from scipy.spatial import ConvexHull

            hv = p[ConvexHull(p).vertices]
        except Exception:  # degenerate projection (a point or a segment)
            hv = p
        rmin = np.inf
        for i in range(len(hv)):
            a, b = hv[i], hv[(i + 1) % len(hv)]
            d = b - a
            t = np.clip(-a @ d / max(d @ d, 1e-30), 0.0, 1.0)
            rmin = min(rmin, float(np.hypot(*(a + t * d))))
        if len(hv) >= 3:
            e = np.roll(hv, -1, axis=0) - hv
            cross = e[:, 0] * (0 - hv[:, 1]) - e[:, 1] * (0 - hv[:, 0])
            if np.all(cross >= 0) or np.all(cross <= 0):
                rmin = 0.0
        return self.aspect_of([rmin, 0.0]), self.aspect_of([rmax, 0.0]), x

    def feret_range(self, starts) -> dict:
        """Inner brackets ``{"fmax": (lo, hi), "fmin": (lo, hi)}`` (px) of 2a and 2b over the
        feasible ellipses: SLSQP from each start (feasible points of the polytope), every
        optimum checked against the whole mask (:meth:`consistent`)."""
        from scipy.optimize import minimize

        cons = {"type": "ineq", "fun": lambda x: self.h - self.G @ x, "jac": lambda x: -self.G}
        out = {}
        for key, idx in (("fmax", 0), ("fmin", 1)):
            if self.circle and key == "fmin":
                out[key] = out["fmax"]
                continue
            vals = []
            for x0 in starts:
                ax = self.axes_of(x0)
                if ax is not None:
                    vals.append(2 * ax[idx])
            for sgn in (1.0, -1.0):
                def f(x):
                    ax = self.axes_of(x)
                    return 1e6 if ax is None else sgn * 2 * ax[idx]
                for x0 in starts:
                    r = minimize(f, x0, constraints=[cons], method="SLSQP",
                                 options={"maxiter": 100, "ftol": 1e-10})
                    ax = self.axes_of(r.x)
                    if ax is not None and np.min(self.h - self.G @ r.x) > -1e-9 and self.consistent(r.x):
                        vals.append(2 * ax[idx])
            out[key] = (min(vals), max(vals)) if vals else (float("nan"), float("nan"))
        return out


def ellipse_ranges(mask, *, circle: bool = False, n_dir: int = 32, feret: bool = True) -> dict | None:
    """Ranges over the ellipses (``circle=True``: the circles) consistent with ``mask``:
    ``{"aspect": (lo, hi), "fmax": (lo, hi), "fmin": (lo, hi), "circle_feasible": bool}`` (Feret
    in px); None when none is.

    The aspect range is that of the projected polytope (its support points are checked against
    the whole mask; one that fails, because a far pixel binds, is dropped, which only narrows the
    range); the Feret ranges are inner brackets (:meth:`EllipseSet.feret_range`).
    """
    es = EllipseSet(mask, circle=circle)
    got = es.aspect_range(n_dir)
    if got is None:
        return None
    lo, hi, sup = got
    ok = [x for x in sup if es.consistent(x)]
    if not ok:
        return None
    if len(ok) < len(sup) and not circle:  # a far pixel binds: the range from the checked points only
        hi = es.aspect_of([max(float(np.hypot(x[0], x[1])) for x in ok), 0.0])
    out = {"aspect": (lo, hi), "circle_feasible": bool(lo == 1.0)}
    if feret:
        starts = ok[:: max(1, len(ok) // 4)]
        out.update(es.feret_range(starts))
    return out


# --------------------------------------------------------------------------------------------
# squares and rectangles


def _rot(pts: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (u, v) along the rotated axes (theta counter-clockwise as displayed)."""
    y, x = -pts[:, 0], pts[:, 1]
    c, s = np.cos(theta), np.sin(theta)
    return x * c + y * s, -x * s + y * c


def _square_sides(pin, pout, theta, step):
    """Feasible side range ``(s_lo, s_hi)`` of squares at orientation ``theta`` (None when none),
    and the (o1, o2, s) of the extremes, scanning the lower offsets on a grid of ``step`` px."""
    ui, vi = _rot(pin, theta)
    uo, vo = _rot(pout, theta)
    p1, P1, p2, P2 = ui.min(), ui.max(), vi.min(), vi.max()
    inbox = (uo >= p1) & (uo <= P1) & (vo >= p2) & (vo <= P2)
    if np.any(inbox):
        return None
    # the lower offsets lie above the outside centres beside the box's low sides
    slab1, slab2 = (vo >= p2) & (vo <= P2) & (uo < p1), (uo >= p1) & (uo <= P1) & (vo < p2)
    l1 = uo[slab1].max() if np.any(slab1) else p1 - 1.5
    l2 = vo[slab2].max() if np.any(slab2) else p2 - 1.5
    # ``step`` px, or finer where the window is narrow (generic angles: a few hundredths of a px)
    k1, k2 = (max(int(np.ceil((p - lo) / step)), 24) for p, lo in ((p1, l1), (p2, l2)))
    o1 = p1 - (p1 - l1) * np.arange(k1) / k1
    o2 = p2 - (p2 - l2) * np.arange(k2) / k2
    g1, g2 = np.meshgrid(o1, o2, indexing="ij")
    g1, g2 = g1.ravel(), g2.ravel()
    du = uo[None, :] - g1[:, None]
    dv = vo[None, :] - g2[:, None]
    big = np.where((du >= 0) & (dv >= 0), np.maximum(du, dv), np.inf)
    smax = big.min(axis=1)
    smin = np.maximum(P1 - g1, P2 - g2)
    ok = smin < smax
    if not np.any(ok):
        return None
    i_lo = np.nonzero(ok)[0][np.argmin(smin[ok])]
    i_hi = np.nonzero(ok)[0][np.argmax(smax[ok])]
    return (float(smin[i_lo]), float(smax[i_hi]), (g1[i_lo], g2[i_lo], smin[i_lo]), (g1[i_hi], g2[i_hi], smax[i_hi]))


def _square_mask_ok(m, theta, o1, o2, s1, s2) -> bool:
    pts, inside = _frame_centres(m)
    u, v = _rot(pts, theta)
    r = (u >= o1 - 1e-9) & (u <= o1 + s1 + 1e-9) & (v >= o2 - 1e-9) & (v <= o2 + s2 + 1e-9)
    return bool(np.array_equal(r, inside))


def square_ranges(mask, theta0: float, *, span_deg: float = 3.0, step_deg: float = 0.02,
                  step_px: float = 0.02) -> dict | None:
    """Range of the side ``s`` (px) over the squares consistent with ``mask`` whose orientation
    lies within ``span_deg`` of ``theta0`` (radians, counter-clockwise as displayed; any side's
    direction), scanned in ``step_deg`` and ``step_px``: ``{"side": (lo, hi), "theta_deg":
    (lo, hi)}``; None when none is found. Feret min = s, max = s sqrt 2. The extremes are
    checked against the mask (an extreme whose square does not reproduce it, e.g. by the
    strict/closed edge convention, is moved inwards by one grid step)."""
    m = np.asarray(mask, bool)
    pin, pout = _centres(m, ring=1)
    coarse = [th for th in theta0 + np.deg2rad(np.arange(-span_deg, span_deg + 1e-9, 5 * step_deg))
              if _square_sides(pin, pout, th, 2.5 * step_px) is not None]
    t_lo, t_hi = (min(coarse), max(coarse)) if coarse else (theta0, theta0)
    pad = np.deg2rad(5 * step_deg)
    best_lo, best_hi, th_ok = None, None, []
    for th in np.arange(t_lo - pad, t_hi + pad + 1e-12, np.deg2rad(step_deg)):
        got = _square_sides(pin, pout, th, step_px)
        if got is None:
            continue
        s_lo, s_hi, x_lo, x_hi = got
        th_ok.append(th)
        if best_lo is None or s_lo < best_lo[0]:
            best_lo = (s_lo, th, x_lo)
        if best_hi is None or s_hi > best_hi[0]:
            best_hi = (s_hi, th, x_hi)
    if best_lo is None:
        return None
    lo, th, (o1, o2, s) = best_lo
    if not _square_mask_ok(m, th, o1, o2, s, s):
        lo += step_px
    hi, th, (o1, o2, s) = best_hi
    hi_ok = s - 1e-6  # the supremum is strict: just below it the square fits
    if not _square_mask_ok(m, th, o1, o2, hi_ok, hi_ok):
        hi -= step_px
    return {"side": (lo, hi), "theta_deg": (float(np.rad2deg(min(th_ok))), float(np.rad2deg(max(th_ok))))}


def _rect_widths(pin, pout, theta, k):
    """Feasible rectangles at orientation ``theta``: arrays ``(w1, w2_lo, w2_hi)`` (px) over a
    ``k^3`` grid of the two lower offsets and the upper offset along u (for each, the widths
    along v form the interval ``[w2_lo, w2_hi)``); None when none is found."""
    ui, vi = _rot(pin, theta)
    uo, vo = _rot(pout, theta)
    p1, P1, p2, P2 = ui.min(), ui.max(), vi.min(), vi.max()
    if np.any((uo >= p1) & (uo <= P1) & (vo >= p2) & (vo <= P2)):
        return None
    in2, in1 = (vo >= p2) & (vo <= P2), (uo >= p1) & (uo <= P1)
    l1 = uo[in2 & (uo < p1)].max() if np.any(in2 & (uo < p1)) else p1 - 1.5
    l2 = vo[in1 & (vo < p2)].max() if np.any(in1 & (vo < p2)) else p2 - 1.5
    u1 = uo[in2 & (uo > P1)].min() if np.any(in2 & (uo > P1)) else P1 + 1.5
    o1 = p1 - (p1 - l1) * np.arange(k) / k
    o2 = p2 - (p2 - l2) * np.arange(k) / k
    x = P1 + (u1 - P1) * np.arange(k) / k
    g1, g2, gx = (a.ravel() for a in np.meshgrid(o1, o2, x, indexing="ij"))
    sel = (uo[None, :] >= g1[:, None]) & (vo[None, :] >= g2[:, None]) & (uo[None, :] <= gx[:, None])
    ymax = np.where(sel, vo[None, :], np.inf).min(axis=1)
    ok = ymax > P2
    if not np.any(ok):
        return None
    ymax = np.minimum(ymax, P2 + 1.5)  # no outside centre above: the ring's edge (never binding in practice)
    return gx[ok] - g1[ok], P2 - g2[ok], ymax[ok] - g2[ok]


def rectangle_ranges(mask, theta0: float, *, span_deg: float = 3.0, step_deg: float = 0.02, k: int = 12) -> dict | None:
    """Ranges of the min and max Feret diameters (px) and the aspect ratio (long / short side)
    over the rectangles consistent with ``mask`` whose orientation is within ``span_deg`` of
    ``theta0`` (radians, counter-clockwise as displayed): ``{"fmin": (lo, hi), "fmax": (lo, hi),
    "aspect": (lo, hi)}``, an inner bracket (grids of ``step_deg`` and ``k`` offsets per window);
    None when none is found."""
    m = np.asarray(mask, bool)
    pin, pout = _centres(m, ring=1)
    coarse = [th for th in theta0 + np.deg2rad(np.arange(-span_deg, span_deg + 1e-9, 5 * step_deg))
              if _rect_widths(pin, pout, th, 5) is not None]
    t_lo, t_hi = (min(coarse), max(coarse)) if coarse else (theta0, theta0)
    pad = np.deg2rad(5 * step_deg)
    fmin, fmax, asp = [np.inf, -np.inf], [np.inf, -np.inf], [np.inf, -np.inf]
    for th in np.arange(t_lo - pad, t_hi + pad + 1e-12, np.deg2rad(step_deg)):
        got = _rect_widths(pin, pout, th, k)
        if got is None:
            continue
        w1, a2, b2 = got
        fmin = [min(fmin[0], float(np.min(np.minimum(w1, a2)))), max(fmin[1], float(np.max(np.minimum(w1, b2))))]
        fmax = [min(fmax[0], float(np.min(np.hypot(w1, a2)))), max(fmax[1], float(np.max(np.hypot(w1, b2))))]
        r_a, r_b = np.maximum(w1 / a2, a2 / w1), np.maximum(w1 / b2, b2 / w1)
        lo = np.where((a2 <= w1) & (w1 <= b2), 1.0, np.minimum(r_a, r_b))
        asp = [min(asp[0], float(lo.min())), max(asp[1], float(np.max(np.maximum(r_a, r_b))))]
    if not np.isfinite(fmin[0]):
        return None
    return {"fmin": tuple(fmin), "fmax": tuple(fmax), "aspect": tuple(asp)}
