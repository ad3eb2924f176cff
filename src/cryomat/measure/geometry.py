"""Exact planar geometry of closed polygons: area, perimeter, moments, convex hull, Feret diameters;
and the ellipse (or circle) separating two point sets with the widest margin
(:func:`separating_ellipse`, used to read rasterised discs and ellipses).

Polygons are ``(n, 2)`` arrays of (row, col) vertices, closed implicitly (the last vertex
connects to the first). All quantities are in the polygon's own length unit (pixels here).
"""

from __future__ import annotations

import numpy as np


def _open(poly) -> np.ndarray:
    p = np.asarray(poly, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"poly must have shape (n, 2), got {p.shape}")
    if len(p) > 1 and np.allclose(p[0], p[-1]):
        p = p[:-1]
    return p


def polygon_area(poly) -> float:
    """Unsigned area by the shoelace formula."""
    p = _open(poly)
    if len(p) < 3:
        return 0.0
    r, c = p[:, 0], p[:, 1]
    return float(0.5 * abs(np.dot(r, np.roll(c, -1)) - np.dot(c, np.roll(r, -1))))


def polygon_perimeter(poly) -> float:
    """Sum of the edge lengths of the closed polygon."""
    p = _open(poly)
    if len(p) < 2:
        return 0.0
    return float(np.sum(np.hypot(*(np.roll(p, -1, axis=0) - p).T)))


def ellipse_perimeter(a: float, b: float) -> float:
    """Perimeter of the ellipse with semi-axes ``a``, ``b`` (Ramanujan's second approximation,
    relative error < 5e-5 at any aspect, a circle's 2 pi r exactly)."""
    h = ((a - b) / (a + b)) ** 2
    return float(np.pi * (a + b) * (1 + 3 * h / (10 + np.sqrt(4 - 3 * h))))


def _intersect_lines(lines: list, min_sin: float) -> list | None:
    """Corners of a closed polygon from its side lines ``(unit normal n, offset c)`` (points x with
    ``n . x = c``), in order: corner i is where side i meets side i + 1 (the last meets the first).
    None when two consecutive sides are closer to parallel than ``|sin(angle)| < min_sin``."""
    verts = []
    for (n1, c1), (n2, c2) in zip(lines, lines[1:] + lines[:1]):
        det = n1[0] * n2[1] - n1[1] * n2[0]
        if abs(det) < min_sin:
            return None
        verts.append(((c1 * n2[1] - c2 * n1[1]) / det, (n1[0] * c2 - n2[0] * c1) / det))
    return verts


def polygon_moments(poly) -> tuple[float, np.ndarray, np.ndarray]:
    """Area, centroid (row, col) and 2x2 central second-moment matrix per unit area.

    Exact integrals over the polygon's interior by Green's theorem (no pixel sampling).
    """
    p = _open(poly)
    x, y = p[:, 1], p[:, 0]  # col, row
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    a = 0.5 * cross.sum()
    if abs(a) < 1e-12:
        return 0.0, p.mean(axis=0), np.zeros((2, 2))
    cx = ((x + xn) * cross).sum() / (6 * a)
    cy = ((y + yn) * cross).sum() / (6 * a)
    ixx = ((x * x + x * xn + xn * xn) * cross).sum() / (12 * a)  # integral x^2 / A
    iyy = ((y * y + y * yn + yn * yn) * cross).sum() / (12 * a)
    ixy = ((x * yn + 2 * x * y + 2 * xn * yn + xn * y) * cross).sum() / (24 * a)
    mxx, myy, mxy = ixx - cx * cx, iyy - cy * cy, ixy - cx * cy
    # matrix in (row, col) order
    cov = np.array([[myy, mxy], [mxy, mxx]])
    return float(abs(a)), np.array([cy, cx]), cov


def convex_hull(points) -> np.ndarray:
    """Convex hull vertices in counter-clockwise order (Andrew's monotone chain)."""
    pts = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    if len(pts) < 3:
        return pts

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    for q in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], q) <= 0:
            lower.pop()
        lower.append(q)
    upper: list = []
    for q in pts[::-1]:
        while len(upper) >= 2 and cross(upper[-2], upper[-1], q) <= 0:
            upper.pop()
        upper.append(q)
    return np.array(lower[:-1] + upper[:-1])


def feret_diameters(points) -> tuple[float, float, float]:
    """Maximum and minimum Feret (caliper) diameters by rotating calipers.

    Returns ``(feret_max, feret_min, angle_min)`` where ``angle_min`` is the direction (radians,
    in the (row, col) plane, from the col axis) of the edge normal giving the minimum width.
    The minimum width of a convex polygon is attained with one caliper flush with an edge
    and the maximum diameter at an antipodal vertex pair; both are evaluated over all hull
    edges and vertex pairs at once (vectorised, O(h^2) for h hull vertices).

    References
    ----------
    Shamos, Computational Geometry, PhD thesis, Yale (1978); Toussaint, "Solving geometric
    problems with the rotating calipers", Proc. IEEE MELECON (1983), doi:10.1109/MELECON.1983.
    """
    pts = np.asarray(points, dtype=np.float64)
    h = None
    if len(pts) >= 3:
        try:
            from scipy.spatial import ConvexHull

            h = pts[ConvexHull(pts).vertices]
        except Exception:  # degenerate (collinear) input: the exact monotone chain below
            h = None
    if h is None:
        h = convex_hull(pts)
    n = len(h)
    if n <= 1:
        return 0.0, 0.0, 0.0
    if n == 2:
        return float(np.hypot(*(h[1] - h[0]))), 0.0, 0.0
    # vectorised calipers: the width across each hull edge is the farthest vertex from its
    # line (the antipodal vertex); the diameter is the largest vertex-vertex distance
    e = np.roll(h, -1, axis=0) - h
    elen = np.hypot(e[:, 0], e[:, 1])
    width = np.full(n, np.inf)
    dmax2 = 0.0
    for a in range(0, n, 512):  # blocks of edges keep the n x n work small in memory
        b = min(n, a + 512)
        d = h[None, :, :] - h[a:b, None, :]  # d[i, j] = h[j] - h[i]
        cross = np.abs(e[a:b, None, 0] * d[:, :, 1] - e[a:b, None, 1] * d[:, :, 0]).max(axis=1)
        ok = elen[a:b] > 0
        width[a:b][ok] = cross[ok] / elen[a:b][ok]
        dmax2 = max(dmax2, float(np.max(np.sum(d * d, axis=2))))
    i = int(np.argmin(width))
    return float(np.sqrt(dmax2)), float(width[i]), float(np.arctan2(-e[i, 1], e[i, 0]))



def _direct_ellipse(u: np.ndarray, v: np.ndarray, w: np.ndarray | None = None) -> np.ndarray | None:
    """Conic ``(A, B, C, D, E, F)`` (``A u^2 + B uv + C v^2 + D u + E v + F = 0``, an ellipse) of
    the (weighted) least-squares direct fit of Fitzgibbon et al. in the numerically stable form
    of Halir & Flusser (1998); u, v should be centred and scaled to ~1. None when degenerate."""
    d1 = np.c_[u * u, u * v, v * v]
    d2 = np.c_[u, v, np.ones_like(u)]
    d1w, d2w = (d1, d2) if w is None else (d1 * w[:, None], d2 * w[:, None])
    s1, s2, s3 = d1w.T @ d1, d1w.T @ d2, d2w.T @ d2
    try:
        t = -np.linalg.solve(s3, s2.T)
    except np.linalg.LinAlgError:
        return None
    m = s1 + s2 @ t
    m = np.array([m[2] / 2, -m[1], m[0] / 2])  # inverse of the constraint matrix 4AC - B^2
    ev, evec = np.linalg.eig(m)
    evec = np.real(evec)
    ok = np.nonzero(4 * evec[0] * evec[2] - evec[1] ** 2 > 0)[0]
    if len(ok) == 0:
        return None
    a1 = evec[:, ok[0]]
    q = np.r_[a1, t @ a1]
    return q / (q[0] + q[2])


def conic_axes(q) -> tuple[np.ndarray, float, float, float] | None:
    """Centre ``(u, v)``, semi-axes ``a >= b`` and the major axis angle (radians from the u axis)
    of the ellipse ``A u^2 + B uv + C v^2 + D u + E v + F = 0``; None when it is no ellipse."""
    a_, b_, c_, d_, e_, f_ = q
    m = np.array([[a_, b_ / 2], [b_ / 2, c_]])
    if np.linalg.det(m) <= 0:
        return None
    cen = np.linalg.solve(2 * m, [-d_, -e_])
    fc = f_ + 0.5 * (d_ * cen[0] + e_ * cen[1])
    ev, evec = np.linalg.eigh(m)
    if fc == 0 or np.any(-fc / ev <= 0):
        return None
    ax = np.sqrt(-fc / ev)  # ascending eigenvalues: major axis first
    return cen, float(ax[0]), float(ax[1]), float(np.arctan2(evec[1, 0], evec[0, 0]))


def _max_margin(phi, rhs, sign, g, frac, keep, *, extra_rows=None):
    """max t subject to ``sign_i (phi_i . x - rhs_i) + w_i g_i t <= 0`` over the candidate rows
    ``keep`` (adding every violated row and solving again), ``w`` = 2 frac inside (sign +1) and
    2 (1 - frac) outside. Returns (x, t) or None."""
    from scipy.optimize import linprog

    w = np.where(sign > 0, 2.0 * frac, 2.0 * (1.0 - frac))
    a_all = np.c_[sign[:, None] * phi, w * g]
    b_all = sign * rhs
    nx = phi.shape[1]
    cost = np.r_[np.zeros(nx), -1.0]
    a_eq, b_eq = (None, None) if extra_rows is None else extra_rows
    for _ in range(4):
        res = linprog(cost, A_ub=a_all[keep], b_ub=b_all[keep], A_eq=a_eq, b_eq=b_eq,
                      bounds=[(None, None)] * nx + [(None, 1.0)], method="highs")
        if res.status != 0:
            return None
        viol = a_all @ res.x - b_all > 1e-9 * (1.0 + np.abs(b_all))
        if not np.any(viol & ~keep):
            return res.x[:nx], float(res.x[nx])
        keep = keep | viol
    return res.x[:nx], float(res.x[nx])


CENTRE_TAU = 0.5  # analytic centre over the conics that keep this fraction of the widest band


def _analytic_centre(a: np.ndarray, b: np.ndarray, x0: np.ndarray, wts: np.ndarray,
                     iters: int = 30) -> np.ndarray:
    """Maximiser of sum wts log(b - a x) over conics with A + C = 1 (damped Newton from the
    strictly feasible ``x0``): the (weighted) analytic centre of the polytope, a central point
    that every constraint pulls on (Boyd & Vandenberghe, Convex Optimization (2004), sec. 8.5.3).
    In one dimension, weights ``f`` and ``1 - f`` on two walls put it at the fraction f."""
    nb = np.array([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [-1, 0, 0, 0, 0], [0, 0, 1, 0, 0],
                   [0, 0, 0, 1, 0], [0, 0, 0, 0, 1]], dtype=np.float64)  # null space of A + C
    x = x0.copy()
    sl = b - a @ x
    if np.any(sl <= 0):
        return x0
    obj = -np.sum(wts * np.log(sl))
    an = a @ nb
    for _ in range(iters):
        inv = 1.0 / sl
        grad = an.T @ (wts * inv)
        hess = (an * (wts * inv * inv)[:, None]).T @ an
        try:
            dz = -np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            break
        dec = -float(grad @ dz)
        if dec < 1e-10:
            break
        dx = nb @ dz
        ad = a @ dx
        step = 1.0
        neg = ad > 0
        if np.any(neg):
            step = min(1.0, 0.99 * float(np.min(sl[neg] / ad[neg])))
        while step > 1e-6:
            sl_new = sl - step * ad
            if np.all(sl_new > 0):
                obj_new = -np.sum(wts * np.log(sl_new))
                if obj_new <= obj - 0.25 * step * dec:
                    break
            step *= 0.5
        else:
            break
        x, sl, obj = x + step * dx, sl_new, obj_new
    return x


def separating_ellipse(inside, outside, *, frac: float = 0.5, circle: bool = False,
                       band: float = 0.35, max_violation: float = np.inf) -> dict | None:
    """The ellipse (or circle) that best separates two point sets, with the largest margin.

    ``inside`` and ``outside`` are ``(n, 2)`` (row, col) points, typically the centres of the
    pixels on either side of a binary object's boundary. A least-squares direct ellipse (or
    Kasa circle) fit to the midpoints of the pairs starts; then the conic is moved to the centre
    of the set of separating conics in the sense of the margin: maximise t such that every inside
    point lies at least ``2 frac t`` inside and every outside point at least ``2 (1 - frac) t``
    outside (first-order geometric distances ``f / |grad f|`` with the gradients of the
    least-squares conic: a linear programme in the conic's coefficients). ``frac`` = 0.5 puts the
    boundary midway between the nearest inside and outside points; a larger value nearer the
    outside points. An ellipse has five parameters and the widest band often leaves one of them
    (the eccentricity) free along a thin optimal face, whose end the programme returns: the
    ellipse is then moved to the analytic centre of the conics that keep half of the band
    (weighted ``frac : 1 - frac``, so the curve keeps its place across the band). When the
    least-squares conic misclassifies points by more than ``max_violation`` (inside and outside
    depths summed, in the points' unit) the sets are taken as not conic-separable and None is
    returned early.

    Returns ``{"centre": (row, col), "a": , "b": , "angle_rad": , "margin": }`` (semi-axes a >= b,
    the major axis angle counter-clockwise from the column axis as displayed (rows down), in
    (-pi/2, pi/2], ``margin`` = 2 t, the width of the empty band around the curve; negative when
    no conic separates the sets: the largest misclassification depth, first order) or None.

    References
    ----------
    Fitzgibbon, Pilu & Fisher, Direct least square fitting of ellipses, IEEE TPAMI 21, 476 (1999),
    doi:10.1109/34.765658; Halir & Flusser, Numerically stable direct least squares fitting of
    ellipses, WSCG (1998); Vapnik, The Nature of Statistical Learning Theory (1995),
    doi:10.1007/978-1-4757-2440-0 (maximum-margin separation); Boyd & Vandenberghe, Convex
    Optimization (2004), sec. 8.5 (Chebyshev and analytic centres).
    """
    pin = np.asarray(inside, dtype=np.float64)
    pout = np.asarray(outside, dtype=np.float64)
    if len(pin) < 3 or len(pout) < 3:
        return None
    mid = 0.5 * (pin + pout) if len(pin) == len(pout) else np.r_[pin, pout]
    x0, y0 = mid[:, 1].mean(), mid[:, 0].mean()
    s = float(np.sqrt(np.mean((mid[:, 1] - x0) ** 2 + (mid[:, 0] - y0) ** 2)))
    if not s > 0:
        return None
    pts = np.r_[pin, pout]
    u, v = (pts[:, 1] - x0) / s, (pts[:, 0] - y0) / s
    um, vm = (mid[:, 1] - x0) / s, (mid[:, 0] - y0) / s
    sign = np.r_[np.ones(len(pin)), -np.ones(len(pout))]
    if circle:  # u^2 + v^2 + D u + E v + F = 0
        sol = np.linalg.lstsq(np.c_[um, vm, np.ones_like(um)], -(um * um + vm * vm), rcond=None)[0]
        phi, rhs = np.c_[u, v, np.ones_like(u)], -(u * u + v * v)
        q = sol
        eq = None
    else:
        q = _direct_ellipse(um, vm)
        if q is None:
            return None
        gx, gy = 2 * q[0] * um + q[1] * vm + q[3], q[1] * um + 2 * q[2] * vm + q[4]
        q = _direct_ellipse(um, vm, 1.0 / np.maximum(gx * gx + gy * gy, 1e-12))  # Sampson weights
        if q is None:
            return None
        phi, rhs = np.c_[u * u, u * v, v * v, u, v, np.ones_like(u)], np.zeros_like(u)
        eq = (np.array([[1.0, 0, 1.0, 0, 0, 0, 0]]), np.array([1.0]))
    # gradient norms at the least-squares conic: f / g is a signed distance to first order
    if circle:
        g = 2 * np.hypot(u + q[0] / 2, v + q[1] / 2)
        f = phi @ q - rhs
    else:
        g = np.hypot(2 * q[0] * u + q[1] * v + q[3], q[1] * u + 2 * q[2] * v + q[4])
        f = phi @ q
    g = np.maximum(g, 1e-12)
    slack = -sign * f / g  # distance on the correct side
    if slack[sign > 0].min() + slack[sign < 0].min() < -max_violation / s:
        return None
    keep = np.zeros(len(u), bool)  # the rows that can bind: near the least-squares curve
    for side in (sign > 0, sign < 0):
        keep |= side & (slack <= slack[side].min() + band / s)
    out = _max_margin(phi, rhs, sign, g, frac, keep, extra_rows=eq)
    if out is None:
        return None
    q, t = out
    if not circle and t > 0:
        # the widest band often leaves the eccentricity free (a long, thin optimal face; the LP
        # returns one of its ends): take the analytic centre of the conics that keep half of it,
        # weighted frac : 1 - frac so that the curve keeps its place across the band
        w = np.where(sign > 0, 2.0 * frac, 2.0 * (1.0 - frac))
        q = _analytic_centre(sign[:, None] * phi, -w * g * CENTRE_TAU * t, q, 0.5 * w)
    if circle:
        cu, cv = -q[0] / 2, -q[1] / 2
        r2 = cu * cu + cv * cv - q[2]
        if r2 <= 0:
            return None
        cen, a, b, ang = np.array([cu, cv]), float(np.sqrt(r2)), float(np.sqrt(r2)), 0.0
    else:
        geo = conic_axes(q)
        if geo is None:
            return None
        cen, a, b, ang = geo
    ang = -ang  # (u, v) = (col, row): counter-clockwise as displayed is -angle
    ang = (ang + np.pi / 2) % np.pi - np.pi / 2
    if ang <= -np.pi / 2:
        ang += np.pi
    return {"centre": (float(cen[1] * s + y0), float(cen[0] * s + x0)), "a": a * s, "b": b * s,
            "angle_rad": float(ang), "margin": 2.0 * t * s}
