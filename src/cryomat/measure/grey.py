"""Sub-pixel outlines from grey levels: ``particle_table(..., edges="image")``.

:func:`grey_edge_points` turns the covered fraction of each boundary pixel of an area-coverage
image into a point on the edge; :func:`grey_outline` reads the circle, ellipse or polygon of
straight sides through those points (else None: the mask's outline is kept).

References
----------
Kiryati & Bruckstein, Gray levels can improve the performance of binary image digitizers,
CVGIP: Graphical Models and Image Processing 53, 31 (1991), doi:10.1016/1049-9652(91)90017-D;
Fitzgibbon, Pilu & Fisher, Direct least square fitting of ellipses (1999), doi:10.1109/34.765658;
Kasa, A circle fitting procedure and its error analysis, IEEE Trans. Instrum. Meas. 25, 8 (1976),
doi:10.1109/TIM.1976.6312298.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from cryomat.measure.geometry import (_direct_ellipse, _intersect_lines, conic_axes, feret_diameters, polygon_area,
                                      polygon_moments, polygon_perimeter)
from cryomat.measure.polygon import _straight_polygon

GREY_MIN_CONTRAST_SNR = 8.0  # the object/support step must exceed this many support noise sigmas
GREY_CORNER_PX = 1.5  # edge points this close to a polygon's corner are left out of its side fits


def _coverage_offset(c: np.ndarray, nr: np.ndarray, nc: np.ndarray) -> np.ndarray:
    """Signed distance ``t`` (px, > 0: the pixel centre inside) from a pixel centre to a straight
    edge with unit normal ``(nr, nc)`` that leaves the fraction ``c`` of the unit pixel inside.

    The pixel's extent along the normal is the sum of two uniform widths ``a = max(|nr|, |nc|)``
    and ``b = min(...)``: a trapezoidal density, so ``c = 1/2 + t / a`` for
    ``|t| <= (a - b) / 2`` and ``c = 1 - ((a + b) / 2 - t)^2 / (2 a b)`` beyond (mirrored for
    ``t < 0``); inverted here."""
    a = np.maximum(np.abs(nr), np.abs(nc))
    b = np.minimum(np.abs(nr), np.abs(nc))
    h = np.abs(np.clip(c, 0.0, 1.0) - 0.5)  # by symmetry: t(c) = -t(1 - c)
    lin = h <= (a - b) / (2 * a)
    t = np.where(lin, h * a, (a + b) / 2 - np.sqrt(np.clip(2 * a * b * (0.5 - h), 0.0, None)))
    return np.sign(c - 0.5) * t


def grey_edge_points(img: np.ndarray, lab: np.ndarray, label: int) -> tuple | None:
    """Points ``(n, 2)`` (row, col, in the frame of ``img``) on the outline of object ``label``
    from its grey levels, the pixel-centre raster of the shape they outline (the pixels at
    least half covered: for a straight edge, exactly those whose centre is inside), the covered
    area (px^2, the sum of the covered fractions) and its noise sigma; or None when
    the image does not carry them (contrast below ``GREY_MIN_CONTRAST_SNR`` support noise
    sigmas, no support ring, < 8 partial pixels).

    An image that records the area of each pixel covered by the object (a detector integrating
    over its pixels, an anti-aliased drawing) fixes, in every partly covered pixel, the distance
    from its centre to the edge: with the levels of the object (median of its core, 2 px in from
    the mask edge) and the support (median of a ring 3-4 px out, other objects left out), the
    covered fraction ``c`` and the local edge normal (the gradient of the lightly smoothed
    fraction) give the offset exactly for a straight edge (:func:`_coverage_offset`), and the
    point ``centre + t n`` lies on the edge (curved edges: within ~1 / (24 r) px). A binary mask
    fixes the same edge only to within +/- 0.5 px. Points of pixels near corners (two edges in one
    pixel) lie inside the corner; :func:`grey_outline` fits lines there instead.
    ``img`` and ``lab`` are crops around the object with at least 5 px of margin.

    References
    ----------
    Kiryati & Bruckstein (1991), doi:10.1016/1049-9652(91)90017-D (grey levels and the
    information of a digitised edge).
    """
    m = lab == label
    k = np.ones((3, 3), bool)
    core = ndi.binary_erosion(m, k, iterations=2)
    if core.sum() < 4:
        core = ndi.binary_erosion(m, k)
    ring = ndi.binary_dilation(m, k, iterations=4) & ~ndi.binary_dilation(m, k, iterations=2) & (lab == 0)
    if core.sum() < 4 or ring.sum() < 8:
        return None
    x = np.asarray(img, dtype=np.float64)
    fg, bg = float(np.median(x[core])), float(np.median(x[ring]))
    noise = 1.4826 * float(np.median(np.abs(x[ring] - bg))) + 1e-12 * max(abs(bg), 1.0)
    if abs(fg - bg) < GREY_MIN_CONTRAST_SNR * noise:
        return None
    c = (x - bg) / (fg - bg)
    band = ndi.binary_dilation(m, k) & ~ndi.binary_erosion(m, k) & ((lab == 0) | m)
    part = band & (c > 0.02) & (c < 0.98)
    if part.sum() < 8:
        return None
    cs = np.clip(c, 0.0, 1.0)
    cs[~ndi.binary_dilation(m, k, iterations=2)] = 0.0
    gr = ndi.gaussian_filter(cs, 1.0, order=(1, 0))
    gc = ndi.gaussian_filter(cs, 1.0, order=(0, 1))
    rr, cc = np.nonzero(part)
    g = np.hypot(gr[rr, cc], gc[rr, cc]) + 1e-12
    nr, nc = -gr[rr, cc] / g, -gc[rr, cc] / g  # outward: the covered fraction falls
    t = _coverage_offset(c[rr, cc], nr, nc)
    raster = (cs >= 0.5) | core
    lab_r, n_r = ndi.label(raster)
    if n_r > 1:  # the piece that holds the core
        raster = lab_r == np.bincount(lab_r[core]).argmax()
    # the covered area: the sum of the fractions (core 1) over the object and 2 px around it
    near = ndi.binary_dilation(m, k, iterations=2) & ((lab == 0) | m) & ~core
    area = float(core.sum() + np.sum(np.clip(c[near], -0.5, 1.5)))
    area_sigma = noise / abs(fg - bg) * float(np.sqrt(near.sum()))
    return np.c_[rr + t * nr, cc + t * nc], ndi.binary_fill_holes(raster), area, area_sigma


def _tls_line(p: np.ndarray) -> tuple[np.ndarray, float]:
    """Unit normal and offset of the total-least-squares line through points ``p``."""
    cen = p.mean(axis=0)
    _, _, vt = np.linalg.svd(p - cen, full_matrices=False)
    nv = vt[-1]
    return nv, float(nv @ cen)


GREY_CONIC_RMS_PX = 0.1  # edge points within this robust rms of a conic: the object is read as that conic


def _grey_conic(points: np.ndarray) -> tuple | None:
    """``(centre (row, col), a, b, angle)`` (px; angle of the major axis from the column axis,
    towards +row) of the circle or ellipse through grey-level edge points, or None when they
    do not lie on one (robust rms of the geometric residuals above ``GREY_CONIC_RMS_PX``).

    Direct least-squares ellipse (Fitzgibbon et al. 1999) and algebraic circle (Kasa 1976), each
    refitted twice without the points beyond 3 robust sigmas; the circle is taken when its
    residual sum of squares exceeds the ellipse's by less than a chi-square(2) margin
    (``1 + 10 / n``: the two extra parameters explain no more than noise)."""
    y0, x0 = points.mean(axis=0)
    sc = float(np.sqrt(np.mean(np.sum((points - [y0, x0]) ** 2, axis=1))))
    if not sc > 0:
        return None
    u, v = (points[:, 1] - x0) / sc, (points[:, 0] - y0) / sc
    fits = {}
    for kind in ("ellipse", "circle"):
        keep = np.ones(len(u), bool)
        geo, res = None, None
        for _ in range(3):
            if keep.sum() < 6:
                geo = None
                break
            if kind == "circle":
                sol = np.linalg.lstsq(np.c_[u, v, np.ones_like(u)][keep], -(u * u + v * v)[keep], rcond=None)[0]
                r2 = sol[0] ** 2 / 4 + sol[1] ** 2 / 4 - sol[2]
                if r2 <= 0:
                    geo = None
                    break
                geo = (np.array([-sol[0] / 2, -sol[1] / 2]), float(np.sqrt(r2)), float(np.sqrt(r2)), 0.0)
                res = np.hypot(u - geo[0][0], v - geo[0][1]) - geo[1]
            else:
                q = _direct_ellipse(u[keep], v[keep])
                geo = conic_axes(q) if q is not None else None
                if geo is None:
                    break
                f = q[0] * u * u + q[1] * u * v + q[2] * v * v + q[3] * u + q[4] * v + q[5]
                res = f / np.maximum(np.hypot(2 * q[0] * u + q[1] * v + q[3], q[1] * u + 2 * q[2] * v + q[4]), 1e-12)
            sig = 1.4826 * float(np.median(np.abs(res[keep]))) + 1e-9
            new = np.abs(res) <= 3 * sig
            if np.array_equal(new, keep):
                break
            keep = new
        if geo is not None:
            fits[kind] = (geo, keep, res)
    if "ellipse" not in fits:
        return None
    geo, keep, res = fits["ellipse"]
    if 1.4826 * np.median(np.abs(res[keep])) * sc > GREY_CONIC_RMS_PX:
        return None
    if "circle" in fits:
        rss_e = float(np.sum(res[keep] ** 2))
        rss_c = float(np.sum(fits["circle"][2][keep] ** 2))
        if rss_c <= rss_e * (1 + 10.0 / keep.sum()):
            geo = fits["circle"][0]
    cen, a, b, ang = geo
    return np.array([cen[1] * sc + y0, cen[0] * sc + x0]), a * sc, b * sc, ang


def grey_outline(points: np.ndarray, mask: np.ndarray, area: float | None = None, area_sigma: float = 0.0) -> dict | None:
    """Shape read from grey-level edge points and their raster (:func:`grey_edge_points`):
    ``{"outline": (n, 2) polygon, "feret_max", "feret_min", "moments": 2x2}`` (px), or None.

    The model: a disc or ellipse where the points lie on one (:func:`_grey_conic`; Feret = its
    axes, the outline sampled from it), else a polygon of straight sides where
    :func:`_straight_polygon` finds one in the half-covered raster, or :func:`_points_polygon` in
    the points' hull (noise flips raster pixels near 0.5) (each side the total-least-squares line of its points
    more than ``GREY_CORNER_PX`` from the corners, corners at their intersections; a side without
    partly covered pixels runs on pixel edges and keeps the mask's line); None for other shapes
    (their outline stays the mask's). Line fits are repeated without the points beyond 3 robust
    sigmas of their residuals (noise in the boundary band). With ``area`` (the covered area of
    :func:`grey_edge_points`) the shape read must enclose it, within 3 ``area_sigma`` plus
    0.05 px times its perimeter: an image whose grey levels are not area coverage (the projected
    thickness of a sphere in HAADF, Fresnel fringes) reads none, and the mask is kept.
    """
    out = _grey_shape(points, mask)
    if out is not None and area is not None:
        poly = out["outline"]
        if abs(polygon_area(poly) - area) > 3 * area_sigma + 0.05 * polygon_perimeter(poly):
            return None
    return out


GREY_SIDE_TOLERANCE_PX = 0.5  # hull vertices of the edge points within this of a chord: one straight side


def _points_polygon(points: np.ndarray, min_frac: float = 0.5, coverage: float = 0.7) -> np.ndarray | None:
    """Approximate vertices ``(k, 2)`` of the polygon of straight sides through grey-level edge
    points, or None: the hull of the points split into chains of vertices within
    ``GREY_SIDE_TOLERANCE_PX`` of their end-to-end chord (points lie on the edges to ~0.05 px; the
    corners, whose pixels hold two edges, are cut by up to ~1 px); chains at least ``min_frac`` of
    the smallest width long are sides when they make up ``coverage`` of the hull's perimeter;
    each side is the total-least-squares line of the points within the tolerance of its chord,
    the vertices the intersections of consecutive sides (the counterpart of
    :func:`cryomat.measure.polygon._straight_polygon` for points, used when noise leaves the
    raster no exact one)."""
    from scipy.spatial import ConvexHull

    try:
        h = points[ConvexHull(points).vertices]
    except Exception:  # degenerate
        return None
    n = len(h)
    if n < 4:
        return None
    e = np.roll(h, -1, axis=0) - h
    elen = np.hypot(e[:, 0], e[:, 1])
    nrm = np.c_[e[:, 1], -e[:, 0]] / np.maximum(elen, 1e-12)[:, None]
    proj = h @ nrm.T
    width = float(np.min(proj.max(axis=0) - proj.min(axis=0)))
    ang = np.arctan2(e[:, 0], e[:, 1])
    turn = np.abs((ang - np.roll(ang, 1) + np.pi) % (2 * np.pi) - np.pi)
    hv = np.roll(h, -int(np.argmax(turn)), axis=0)
    hv = np.r_[hv, hv[:1]]
    chains, i = [], 0
    while i < n:
        j = i + 1
        while j < n:
            d = hv[j + 1] - hv[i]
            ln = max(float(np.hypot(*d)), 1e-12)
            mid = hv[i + 1:j + 1] - hv[i]
            if np.max(np.abs(mid[:, 0] * d[1] - mid[:, 1] * d[0]) / ln) > GREY_SIDE_TOLERANCE_PX:
                break
            j += 1
        chains.append((i, j))
        i = j
    sides = [(a, b) for a, b in chains if np.hypot(*(hv[b] - hv[a])) >= max(3.0, min_frac * width)]
    perim = float(elen.sum())
    if len(sides) < 3 or sum(np.hypot(*(hv[b] - hv[a])) for a, b in sides) < coverage * perim:
        return None
    lines = []
    for a, b in sides:
        t = (hv[b] - hv[a]) / np.hypot(*(hv[b] - hv[a]))
        nv = np.array([t[1], -t[0]])
        along = (points - hv[a]) @ t
        near = (np.abs((points - hv[a]) @ nv) <= GREY_SIDE_TOLERANCE_PX) & (along >= 0) & (
            along <= float(np.hypot(*(hv[b] - hv[a]))))
        if near.sum() < 3:
            return None
        lines.append(_tls_line(points[near]))
    verts = _intersect_lines(lines, np.sin(np.deg2rad(20)))  # consecutive sides must meet at a corner
    return None if verts is None else np.array(verts)


def _grey_shape(points: np.ndarray, mask: np.ndarray) -> dict | None:
    """The circle, ellipse or polygon of :func:`grey_outline`, before its area check."""
    if points is None or len(points) < 8:
        return None
    filled = ndi.binary_fill_holes(mask)
    conic = _grey_conic(points)
    if conic is not None:
        cen, a, b, ang = conic
        tt = np.linspace(0, 2 * np.pi, 720, endpoint=False)
        xu = cen[1] + a * np.cos(tt) * np.cos(ang) - b * np.sin(tt) * np.sin(ang)
        yv = cen[0] + a * np.cos(tt) * np.sin(ang) + b * np.sin(tt) * np.cos(ang)
        poly = np.c_[yv, xu]
        return {"outline": poly, "feret_max": 2 * a, "feret_min": 2 * b, "moments": polygon_moments(poly)[2]}
    verts = _straight_polygon(filled)
    if verts is None:  # noise flips pixels near 0.5 in the raster: the sides from the points
        verts = _points_polygon(points)
    if verts is not None:
        k = len(verts)
        e = np.roll(verts, -1, axis=0) - verts
        ln = np.hypot(e[:, 0], e[:, 1])
        tan = e / ln[:, None]
        # each point to its nearest side, by distance to the side's segment
        rel = points[:, None, :] - verts[None, :, :]
        along = np.einsum("nkj,kj->nk", rel, tan)
        dist = np.abs(rel[:, :, 0] * tan[None, :, 1] - rel[:, :, 1] * tan[None, :, 0])
        dist = np.where((along >= 0) & (along <= ln[None, :]), dist, np.inf)
        side = np.argmin(dist, axis=1)
        lines = []
        for i in range(k):
            sel = (side == i) & (along[np.arange(len(points)), i] > GREY_CORNER_PX) & (
                along[np.arange(len(points)), i] < ln[i] - GREY_CORNER_PX) & np.isfinite(dist[:, i])
            if sel.sum() >= 3:
                nv, c0 = _tls_line(points[sel])
                res = points[sel] @ nv - c0
                ok = np.abs(res) <= 3 * 1.4826 * np.median(np.abs(res)) + 1e-9  # noise outliers out
                lines.append(_tls_line(points[sel][ok]) if ok.sum() >= 3 else (nv, c0))
            else:  # no partly covered pixel along it: the side runs on pixel edges, as the mask says
                nv = np.array([tan[i, 1], -tan[i, 0]])
                lines.append((nv, float(nv @ verts[i])))
        vv = _intersect_lines(lines, 0.2)
        if vv is not None:
            # the intersections are in the order side i / side i+1: vertex i+1 of the polygon
            poly = np.roll(np.array(vv), 1, axis=0)
            fmax, fmin, _ = feret_diameters(poly)
            return {"outline": poly, "feret_max": fmax, "feret_min": fmin, "moments": polygon_moments(poly)[2]}
    return None
