"""Exact planar geometry of closed polygons: area, perimeter, moments, convex hull, Feret diameters.

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
    and the maximum diameter at an antipodal vertex pair; both are found in one O(h) sweep.

    References
    ----------
    Shamos, Computational Geometry, PhD thesis, Yale (1978); Toussaint, "Solving geometric
    problems with the rotating calipers", Proc. IEEE MELECON (1983), doi:10.1109/MELECON.1983.
    """
    h = convex_hull(points)
    n = len(h)
    if n == 0:
        return 0.0, 0.0, 0.0
    if n == 1:
        return 0.0, 0.0, 0.0
    if n == 2:
        return float(np.hypot(*(h[1] - h[0]))), 0.0, 0.0

    def area2(i, j, k):
        a, b, c = h[i % n], h[j % n], h[k % n]
        return abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))

    dmax2 = 0.0
    wmin = np.inf
    angle = 0.0
    j = 1
    for i in range(n):
        i1 = (i + 1) % n
        while area2(i, i1, j + 1) > area2(i, i1, j):
            j += 1
        e = h[i1] - h[i]
        elen = np.hypot(*e)
        if elen > 0:
            w = area2(i, i1, j) / elen
            if w < wmin:
                wmin, angle = w, float(np.arctan2(-e[1], e[0]))  # normal of the edge
        for a in (i, i1):
            d = h[a] - h[j % n]
            dmax2 = max(dmax2, float(d @ d))
    return float(np.sqrt(dmax2)), float(wmin), angle
