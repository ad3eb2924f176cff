"""Outline geometry of one binary object: sub-pixel contour, rasterised-ellipse reading, Feret points.

Used by :mod:`cryomat.measure.descriptors` (see its module docstring for the conventions and
references): :func:`object_contour` (0.5 level set of the lightly smoothed mask),
:func:`boundary_ellipse` (the conic separating inside boundary pixel centres from their outside
neighbours, Feret = 2a, 2b), :func:`_straight_polygon` (polygon of straight sides, in
:mod:`cryomat.measure.polygon`, re-exported here), :func:`feret_contour` (curvature-corrected
contour with fitted tips, for rotating calipers). The grey-level path is in
:mod:`cryomat.measure.grey`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from cryomat.measure.geometry import feret_diameters, polygon_area, polygon_perimeter, separating_ellipse
from cryomat.measure.polygon import _hull, _straight_polygon  # noqa: F401 (_straight_polygon: re-exported)

CONTOUR_SIGMA_PX = 1.0


def object_contour(mask, *, sigma_px: float = CONTOUR_SIGMA_PX) -> np.ndarray:
    """Sub-pixel outer contour ``(n, 2)`` (row, col, px) of a binary mask (largest piece).

    Holes are filled first; the contour is the 0.5 level set of the mask smoothed with a
    Gaussian of ``sigma_px``. Coordinates are in the frame of ``mask``.
    """
    from skimage.measure import find_contours

    m = ndi.binary_fill_holes(np.asarray(mask, dtype=bool))
    pad = int(np.ceil(3 * sigma_px)) + 2
    f = np.pad(m.astype(np.float64), pad)
    if sigma_px > 0:
        f = ndi.gaussian_filter(f, sigma_px, mode="constant")
    cs = find_contours(f, 0.5)
    if not cs:
        # too small to survive the regularisation: the unsmoothed pixel outline
        cs = find_contours(np.pad(m.astype(np.float64), pad), 0.5)
        if not cs:
            return np.zeros((0, 2))
    c = max(cs, key=lambda a: polygon_area(a))
    return c - pad


FERET_SIGMA_PER_SQRT_RADIUS = 0.6  # Feret contour regularisation: 0.6 sqrt(radius of curvature) px, >= 1 px


def _right_angle_corners(m: np.ndarray) -> np.ndarray:
    """Pixel-edge corners ``(k, 2)`` (row, col) of convex right-angle corners of a mask whose two
    edges run straight (and axis-aligned) for at least 3 pixels: the exact corners of squares
    and rectangles on the grid. Digitised curves never have them (a staircase has 1-px runs on
    one side of every step), so discs and ellipses add no point."""
    p = np.pad(m, 3)
    n0, n1 = p.shape

    def sh(a, b):  # p shifted so that sh(a, b)[r, c] = p[r + a, c + b] (zeros outside)
        out = np.zeros_like(p)
        out[max(0, -a):n0 - max(0, a), max(0, -b):n1 - max(0, b)] = p[max(0, a):n0 - max(0, -a),
                                                                     max(0, b):n1 - max(0, -b)]
        return out

    pts = []
    for dr, dc in ((-1, -1), (-1, 1), (1, -1), (1, 1)):
        ok = p & ~sh(dr, 0) & ~sh(0, dc) & ~sh(dr, dc)
        for k in (1, 2):
            ok &= sh(0, -dc * k) & ~sh(dr, -dc * k)  # the edge along the row continues
            ok &= sh(-dr * k, 0) & ~sh(-dr * k, dc)  # the edge along the column continues
        rr, cc = np.nonzero(ok)
        pts.append(np.c_[rr - 3 + dr / 2, cc - 3 + dc / 2])
    return np.concatenate(pts)


def _lsq_poly(x: np.ndarray, y: np.ndarray, deg: int) -> np.ndarray:
    """Least-squares polynomial coefficients, highest power first (np.polyfit without its
    per-call overhead; x spans a few tens at most, so the normal equations are well posed)."""
    v = np.vander(x, deg + 1)
    return np.linalg.solve(v.T @ v, v.T @ y)


TIP_DEPTH_FRAC = 0.3  # lattice lines fitted per tip: the outer 30 % of the extent (chords of a conic obey the model at any depth)
TIP_DIRECTIONS = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def _lattice_tips(m: np.ndarray, *, min_lines: int = 6) -> list:
    """The tips of a rasterised smooth convex shape in the eight lattice directions, fitted: a
    list of ``(u, depth_px, points)`` with ``u`` the outward unit direction (row, col) and
    ``points`` (k, 2) (row, col) on the fitted tip outline from its apex down to ``depth_px``.

    Pixel centres lie on lattice lines across a lattice direction v (axes, diagonals), 1/|v|
    apart and |v| apart along each line, so the apex lies anywhere within 1/|v| beyond the
    outermost occupied line, and any smoothing of the pixel staircase leaves the outermost run
    flat (off the curve by up to half that, here and in the directions next to v). The run
    lengths fix it: the chord of a conic at depth d below its apex has a squared length quadratic
    in d, and a line's pixel count times |v| is an unbiased estimate of its chord, so a quadratic
    fit of the squared chords over the outermost lines gives the tip's chords, its root the apex
    depth; chord midpoints of a conic lie on a line (a conjugate diameter). Flat ends (squares)
    and tips with fewer than ``min_lines`` + 1 lines in their outer 15 % give nothing."""
    out = []
    if round(TIP_DEPTH_FRAC * (m.shape[0] + m.shape[1])) < min_lines:  # too small in every direction
        return out
    rr, cc = np.nonzero(m)
    for a, b in TIP_DIRECTIONS:
        if round(TIP_DEPTH_FRAC * (abs(a) * m.shape[0] + abs(b) * m.shape[1])) < min_lines:
            continue
        nv = float(np.hypot(a, b))
        lev = a * rr + b * cc
        top = int(lev.max())
        kmax = int(min(round(TIP_DEPTH_FRAC * (top - int(lev.min()))), 60))
        if kmax < min_lines:
            continue
        k = top - lev
        ok = False
        for _ in range(2):  # fit, then refit within the tip's own scale (0.6 x its radius of curvature)
            sel = k <= kmax
            t = (-b * rr[sel] + a * cc[sel]) / nv
            n = np.bincount(k[sel], minlength=kmax + 1).astype(np.float64)
            if np.any(n == 0):
                break
            mid = np.bincount(k[sel], weights=t, minlength=kmax + 1) / n
            d = np.arange(kmax + 1) / nv
            c2, c1, c0 = _lsq_poly(d, (n * nv) ** 2, 2)
            disc = c1 * c1 - 4 * c0 * c2
            if c1 <= 0 or disc < 0 or c2 > 0.5 * nv * nv:  # chords of a cap grow concavely (c2 = -4
                break  # for a disc); c2 > 0 is a wedge: a corner or a straight side at a small angle
            # not a conic tip (a rod's cap running into straight sides): the chords leave the model
            # by more than the count's quantisation (< 1 pixel, |v| px of chord)
            fit = np.sqrt(np.clip(c2 * d * d + c1 * d + c0, 0.0, None))
            if np.max(np.abs(fit - n * nv)) > 1.5 * nv:
                break
            ok = True
            kfit = int(round(0.6 * (c1 / 8.0) * nv))  # chord^2 ~ 8 rho d at the apex
            if kfit >= kmax:
                break
            if kfit < min_lines:
                ok = False
                break
            kmax, ok = kfit, False
        if not ok:
            continue
        delta = 2 * c0 / (c1 + np.sqrt(disc))  # apex height above the outermost line, px
        if not -0.5 / nv <= delta <= 1.5 / nv:  # not a smooth apex (a flat end or a spike)
            continue
        delta = float(np.clip(delta, 0.0, 1.0 / nv))
        beta, alpha = _lsq_poly(d, mid, 1)
        keep = 0.4 * d[-1]  # the outline where the fit is tight (its ends carry the run noise)
        dd = -delta + (keep + delta) * np.linspace(0.0, 1.0, kmax + 1) ** 2  # ~even along the outline, few: the hull stays small
        half = 0.5 * np.sqrt(np.clip(c2 * dd * dd + c1 * dd + c0, 0.0, None))
        half[0] = 0.0
        u, w = np.array([a, b]) / nv, np.array([-b, a]) / nv
        h = top / nv - np.r_[dd, dd]
        tt = np.r_[alpha + beta * dd - half, alpha + beta * dd + half]
        out.append((u, keep + delta, h[:, None] * u + tt[:, None] * w))
    return out


CIRCLE_FRAC = 0.6  # a circle is placed 60 % of the way from the nearest inside to the nearest outside centres
ELLIPSE_FRAC = 0.5  # a general ellipse midway (see boundary_ellipse)
SMALL_POLYGON_AREA_PX = 100
# objects below radius ~4 px (the range starts at 5) keep the contour logic: they are many
# in real images (SiO2 spheres of 7 px) and the linear programmes would cost a third more CPU there
MIN_AREA_PX = 50
LSQ_MISFIT_PX = 0.3
# lines 1-3 px wide are separable by thin ellipses whose sharp tips reach past the end pixels
# without covering a lattice point: not read as ellipses
MIN_SEMI_AXIS_PX = 2.0
ELLIPSE_TOLERANCE_PX = 0.05  # first-order margin error allowed when accepting a separating ellipse


def _crack_pairs(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(n, 2)`` (row, col) of the inside and the outside pixel of every 4-connected
    pair across the object's boundary (the midpoints of the pairs are the vertices of the
    0.5-level marching-squares contour of the unsmoothed mask)."""
    p = np.pad(m, 1)
    out_in, out_out = [], []
    for axis in (1, 0):
        a = p[:, :-1] if axis == 1 else p[:-1, :]
        b = p[:, 1:] if axis == 1 else p[1:, :]
        r, c = np.nonzero(a != b)
        first = a[r, c]  # the inside pixel is the first of the pair
        step = np.where(first, 0, 1)
        if axis == 1:
            out_in.append(np.c_[r, c + step])
            out_out.append(np.c_[r, c + 1 - step])
        else:
            out_in.append(np.c_[r + step, c])
            out_out.append(np.c_[r + 1 - step, c])
    return (np.concatenate(out_in).astype(np.float64) - 1.0, np.concatenate(out_out).astype(np.float64) - 1.0)


def boundary_ellipse(mask) -> dict | None:
    """The ellipse (or circle) that was rasterised, when the object's pixel set is one: None when
    no conic separates its boundary pixels from their outside neighbours.

    A pixel is in the object when its centre is inside the shape, so a rasterised ellipse is a
    classification boundary between the inside boundary pixel centres and their outside
    4-neighbours. The widest empty band any conic leaves between them
    (:func:`cryomat.measure.geometry.separating_ellipse`) shrinks with the number of boundary
    pixels (to ~0.05 px for a 30 px disc), and the curve is placed in that band: a circle when a
    circle separates the sets (a disc's mask is consistent with ellipses of a few per cent
    eccentricity, which would bias the max and min Feret apart), else a general ellipse.
    A small rectangle can be separable by a conic too (3 x 20 px by an ellipse with b = 2; a
    square of side <= 5 by a circle): objects below ``SMALL_POLYGON_AREA_PX`` = 100 px with exact
    right-angle pixel corners are not tested (larger squares and rectangles are no conic's
    boundary: the corners stick out by ~0.15 x side; the straight-sides test of
    :func:`_straight_polygon` is not used here, as it takes 1 in ~200 small ellipses (b 5-6 px)
    for a polygon and misreads its Feret by 2 px), neither are objects smaller than
    ``MIN_AREA_PX`` = 50 px (radius 4) nor
    ellipses thinner than ``2 MIN_SEMI_AXIS_PX`` (4 px) wide. Returns
    ``{"centre", "a", "b", "angle_rad", "margin", "circle"}`` (px, semi-axes a >= b).

    Placement in the band, a trade-off: for shapes at random sub-pixel positions the true curve
    is anywhere in the band and its middle is unbiased. Shapes drawn with integer centre and
    radius put lattice points exactly on the curve (12 on a radius-5 circle), and the common
    strict ``< r^2`` test puts them outside, so the true curve is the band's outer edge: a
    radius-5 disc's band is (sqrt 20, 5] and its middle reads 9.47 px for 10. A circle is
    therefore placed ``CIRCLE_FRAC`` = 0.6 of the way from the inside to the outside centres:
    that disc reads 9.56 px, a ``<= r^2`` drawing (band [5, sqrt 26)) 10.12 px, and random-centre
    discs gain a mean bias of +0.007 px (r 5-100, the band being 0.05-0.3 px wide). A general
    ellipse, whose five parameters leave a wider band, is placed midway (``ELLIPSE_FRAC`` = 0.5):
    few lattice points lie exactly on an ellipse (the 4 axis ends for integer semi-axes), and 0.6
    would bias random small ellipses by +0.06 px (worst 0.51 px for b 5-8 px).
    """
    m = np.asarray(mask, dtype=bool)
    area = int(m.sum())
    if area < MIN_AREA_PX:
        return None
    if area < SMALL_POLYGON_AREA_PX and len(_right_angle_corners(m)):
        return None
    pin, pout = _crack_pairs(m)
    # the least-squares conic of a rasterised disc or ellipse misclassifies boundary pixels by at
    # most 0.14 / 0.20 px (inside and outside depths summed; 575 shapes of bench_descriptors);
    # beyond 0.3 px the margin programme is not tried (squares: corners 0.15 x side off any conic)
    # a circle only when it truly separates (discs: margin >= 0.01 px over 250 random r 4-12):
    # near-round ellipses (a - b ~ 0.5 px) are circle-separable within the tolerance
    for circle, frac, tol in ((True, CIRCLE_FRAC, 0.0), (False, ELLIPSE_FRAC, ELLIPSE_TOLERANCE_PX)):
        fit = separating_ellipse(pin, pout, frac=frac, circle=circle, max_violation=LSQ_MISFIT_PX)
        if fit is not None and fit["margin"] >= -tol:
            if fit["b"] < MIN_SEMI_AXIS_PX:
                return None
            fit["circle"] = circle
            return fit
    return None


def _curvature_shift(c: np.ndarray, sigma: float, arm_px: float = 2.0) -> np.ndarray:
    """Undo the shrinkage of the 0.5 level of a Gaussian-blurred indicator: each point moves
    along the outward normal by ``sigma^2 kappa / 2`` (kappa from the turning angle over
    ``arm_px`` either side; clipped to 0.5 sigma, the limit where the expansion holds)."""
    seg = np.hypot(*np.diff(np.r_[c, c[:1]], axis=0).T)
    s = np.r_[0.0, np.cumsum(seg)]
    length = s[-1]
    if length <= 0:
        return c
    n = max(16, int(length / 0.5))
    t = np.linspace(0.0, length, n, endpoint=False)
    cc = np.r_[c, c[:1]]
    p = np.c_[np.interp(t, s, cc[:, 0]), np.interp(t, s, cc[:, 1])]
    h = length / n
    k = max(1, int(round(arm_px / h)))
    fwd, bwd = np.roll(p, -k, axis=0) - p, p - np.roll(p, k, axis=0)
    turn = (np.arctan2(fwd[:, 0], fwd[:, 1]) - np.arctan2(bwd[:, 0], bwd[:, 1]) + np.pi) % (2 * np.pi) - np.pi
    tan = np.roll(p, -1, axis=0) - np.roll(p, 1, axis=0)
    tan /= np.hypot(tan[:, 0], tan[:, 1])[:, None] + 1e-12
    nrm = np.c_[tan[:, 1], -tan[:, 0]]
    if np.sum((p - p.mean(axis=0)) * nrm) < 0:  # make the normal point outwards
        nrm = -nrm
    orient = np.sign(np.sum(p[:, 1] * np.roll(p[:, 0], -1) - np.roll(p[:, 1], -1) * p[:, 0]))
    kappa = np.clip(orient * turn / (k * h), 0.0, None)  # convex curvature, 1/px
    return p, nrm, np.clip(0.5 * sigma**2 * kappa, 0.0, 0.5 * sigma)


def _clip_to_convex(points: np.ndarray, hull: np.ndarray) -> np.ndarray:
    """Move points lying outside the convex polygon ``hull`` (counter-clockwise or clockwise)
    back onto it along the normal of the most violated edge (good enough for widths)."""
    e = np.roll(hull, -1, axis=0) - hull
    nrm = np.c_[e[:, 1], -e[:, 0]] / (np.hypot(e[:, 0], e[:, 1])[:, None] + 1e-12)
    if np.sum((hull - hull.mean(axis=0)) * nrm) < 0:
        nrm = -nrm
    dist = points @ nrm.T - np.sum(hull * nrm, axis=1)[None, :]
    worst = np.argmax(dist, axis=1)
    over = np.clip(dist[np.arange(len(points)), worst], 0.0, None)
    return points - nrm[worst] * over[:, None]


def feret_contour(mask, *, contour: np.ndarray | None = None) -> np.ndarray:
    """Points ``(n, 2)`` (row, col, px) whose convex hull has the Feret diameters of the
    rasterised continuous shape (see the module docstring).

    ``contour`` (the sigma = 1 px contour, when already computed) is reused for objects with an
    equivalent radius below 8 px.
    """
    m = ndi.binary_fill_holes(np.asarray(mask, dtype=bool))
    area = float(m.sum())
    c1 = contour if contour is not None else object_contour(m)
    if len(c1) < 3:
        return c1
    # regularise over the staircase runs (~sqrt of the radius of curvature long), but keep the
    # smoothing below the sharpest tip (radius of curvature ~ R_min^2 / R_max for an ellipse)
    fmax1, fmin1, _ = feret_diameters(_hull(c1))
    rho = (0.5 * fmin1) ** 2 / max(0.5 * fmax1, 1e-6)
    sigma = max(CONTOUR_SIGMA_PX, FERET_SIGMA_PER_SQRT_RADIUS * np.sqrt(rho))
    c = c1 if sigma == CONTOUR_SIGMA_PX else object_contour(m, sigma_px=sigma)
    if len(c) < 3:
        return c
    p, nrm, shift = _curvature_shift(c, sigma)
    c = p + nrm * shift[:, None]
    # what the smoothing still removed, as a uniform outward offset (a disc loses pi sigma^2)
    a1, p1 = polygon_area(c), polygon_perimeter(c)
    da = area - a1
    offset = ((-p1 + np.sqrt(p1 * p1 + 4 * np.pi * da)) / (2 * np.pi)) if da > 0 else da / max(p1, 1e-12)
    # the curvature shift must not push the ends of straight edges (next to a rounded corner)
    # past the outer pixel edges: keeps the widths of squares and rectangles exact
    rr, cc = np.nonzero(m)
    edge = np.concatenate([np.c_[rr + a, cc + b] for a in (-0.5, 0.5) for b in (-0.5, 0.5)])
    c = _clip_to_convex(c, _hull(edge)) + nrm * offset
    for u, depth, tip in _lattice_tips(m):  # the fitted tips replace the contour's flat runs
        top = float(np.max(tip @ u))
        c = np.r_[c[c @ u < top - depth], tip]
    return np.r_[c, _right_angle_corners(m)]
