"""Outline geometry of one binary object: sub-pixel contour, rasterised-ellipse reading, Feret points.

Used by :mod:`cryomat.measure.descriptors` (see its module docstring for the conventions and
references): :func:`object_contour` (0.5 level set of the lightly smoothed mask),
:func:`boundary_ellipse` (the conic separating inside boundary pixel centres from their outside
neighbours, Feret = 2a, 2b), :func:`_straight_polygon` (polygon of straight sides; a rectangle's
four sides placed jointly, :func:`_rectangle_lines`), :func:`feret_contour` (curvature-corrected
contour with fitted tips, for rotating calipers). The grey-level path is in
:mod:`cryomat.measure.grey`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from cryomat.measure.geometry import (_intersect_lines, convex_hull, feret_diameters, polygon_area, polygon_perimeter,
                                       separating_ellipse)

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

def _straight_polygon(m: np.ndarray, *, min_frac: float = 0.5, coverage: float = 0.7) -> np.ndarray | None:
    """Vertices ``(k, 2)`` (row, col) of the polygon that was rasterised, when the object is one:
    None when straight sides do not make up ``coverage`` of its outline.

    The hull of the inside pixel centres follows a straight side of the shape within one lattice
    spacing (all its vertices there lie within 1 px of the side's line), so a side is a chain of
    hull vertices within 1 px of its end-to-end chord, at least ``min_frac`` of the smallest
    width long (a disc's hull never has a chain that long: its 1-px sagitta chord is sqrt(8 r)).
    Each side's line lies between the hull line through the inside centres and the nearest
    outside centre beyond it: the midpoint of that bracket is taken (exact pixel edges for
    axis-aligned sides, within a small fraction of a pixel for generic angles, where centres
    approach the line from both sides). The corners are the intersections of consecutive side
    lines: a smoothed contour, or the hull of the centres, cuts a sharp corner short by ~1 px
    (the expected depth of the first lattice point in a 90 deg wedge is ~0.9 px), which the max
    Feret of a rotated square doubles."""
    rr, cc = np.nonzero(m)
    pts = np.c_[rr, cc].astype(np.float64)
    if len(pts) < 9:
        return None
    h = _hull(pts)
    n = len(h)
    if n < 3:
        return None
    e = np.roll(h, -1, axis=0) - h
    elen = np.hypot(e[:, 0], e[:, 1])
    perim = elen.sum()
    ang = np.arctan2(e[:, 0], e[:, 1])
    turn = np.abs((ang - np.roll(ang, 1) + np.pi) % (2 * np.pi) - np.pi)  # turn at each vertex
    start = int(np.argmax(turn))
    hv = np.roll(h, -start, axis=0)
    hv = np.r_[hv, hv[:1]]
    chains, i = [], 0
    while i < n:  # greedy: extend the chord from vertex i while all vertices stay within 1 px
        seg = hv[i:] - hv[i]  # seg[j]: vertex i + j
        d = seg[1:]  # chords to the candidate ends j = 1 ..
        ln = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-12)
        dev = np.abs(d[:, None, 0] * seg[None, :, 1] - d[:, None, 1] * seg[None, :, 0]) / ln[:, None]
        dev[np.arange(len(d))[:, None] < np.arange(len(seg))[None, :] - 1] = 0.0  # only vertices up to j
        bad = np.nonzero(dev.max(axis=1) > 1.0)[0]
        j = i + (int(bad[0]) if len(bad) else len(d))
        j = max(j, i + 1)
        chains.append((i, j))
        i = j
    width = np.inf
    cen = pts.mean(axis=0)
    sides = []
    for i, j in chains:
        d = hv[j] - hv[i]
        ln = np.hypot(*d)
        sides.append((i, j, ln, d / max(ln, 1e-12)))
    # smallest width of the hull, for the length threshold
    nrm_all = np.c_[e[:, 1], -e[:, 0]] / np.maximum(elen, 1e-12)[:, None]
    proj = h @ nrm_all.T
    width = float(np.min(proj.max(axis=0) - proj.min(axis=0)))
    long_ = [s_ for s_ in sides if s_[2] >= max(3.0, min_frac * width)]
    if len(long_) < 3 or sum(s_[2] for s_ in long_) < coverage * perim:
        return None
    ring = ndi.binary_dilation(np.pad(m, 1), np.ones((3, 3), bool)) & ~np.pad(m, 1)
    qr, qc = np.nonzero(ring)
    q = np.c_[qr - 1, qc - 1].astype(np.float64)
    lines, feas = [], []
    for i, j, ln, t in long_:
        nv = np.array([t[1], -t[0]])
        if np.dot(hv[i] - cen, nv) < 0:
            nv = -nv
        lo0 = float(np.max(pts @ nv))
        # centres next to the side, inside and outside (the corners excluded)
        tp, tq = (pts - hv[i]) @ t, (q - hv[i]) @ t
        ip = pts[(tp > 0.5) & (tp < ln - 0.5) & (pts @ nv > lo0 - 2.0)]
        oq = q[(tq > 0.5) & (tq < ln - 0.5) & (q @ nv > lo0 - 0.5)]
        if len(ip) < 2 or len(oq) < 2:
            return None
        # the side is one of the lines that separate them; the chord's direction is only known to
        # ~1/length rad. Take the centroid of the set of separating lines in (angle, offset):
        # the margin-weighted mean angle, and the middle of the margin at that angle
        th = np.arctan2(nv[0], nv[1]) + np.linspace(-3.0, 3.0, 121) / ln
        nn = np.c_[np.sin(th), np.cos(th)]
        margin = np.clip((oq @ nn.T).min(axis=0) - (ip @ nn.T).max(axis=0), 0.0, None)
        if margin.sum() <= 0:  # inside and outside not separable: not a straight side
            return None
        thc = float(np.sum(th * margin) / margin.sum())
        nc = np.array([np.sin(thc), np.cos(thc)])
        lines.append((nc, 0.5 * (float(np.max(ip @ nc)) + float(np.min(oq @ nc)))))
        # for the joint orientation (:func:`_rectangle_lines`) the corners are left out more widely:
        # near a corner an outside centre can be outside because of the next side
        ip2 = pts[(tp > 1.5) & (tp < ln - 1.5) & (pts @ nv > lo0 - 2.0)]
        oq2 = q[(tq > 1.5) & (tq < ln - 1.5) & (q @ nv > lo0 - 0.5)]
        feas.append((ip2, oq2) if len(ip2) >= 2 and len(oq2) >= 2 else (ip, oq))
    if len(lines) == 4:
        inner = np.argwhere(m & ~ndi.binary_erosion(m)).astype(np.float64)
        lines = _rectangle_lines(lines, feas, [s_[2] for s_ in long_], inner, q) or lines
    verts = _intersect_lines(lines, np.sin(np.deg2rad(20)))  # consecutive sides must meet at a corner
    if verts is None:
        return None
    verts = np.array(verts)
    # a rasterised polygon's pixel count is its area to well within 0.1 px per unit of perimeter;
    # a curved outline read as a polygon (tangent lines of a small disc) is larger
    if abs(polygon_area(verts) - len(pts)) > 0.1 * polygon_perimeter(verts):
        return None
    return verts

RECT_TOLERANCE_DEG = 10.0  # sides this close to right angles are tried as a rectangle (short sides' own
# directions scatter by a few deg; whether a rectangle fits is decided by the joint margin)


def _rectangle_lines(lines: list, feas: list, lengths: list, inner: np.ndarray, outer: np.ndarray) -> list | None:
    """The four side lines of a rasterised rectangle placed at the centre of the rectangles the
    pixels admit, or None when the sides are not at right angles or admit no common orientation.

    Each side alone admits an interval of directions (those in which a line separates its inside
    from its outside centres); a rectangle's sides share one orientation (modulo 90 deg), so the
    mask admits the directions where the smallest of the four separation margins is positive
    (a concave function of the angle: each margin is the lower envelope of the outside centres'
    projections minus the upper envelope of the inside ones, near linear in the angle over the
    +/- 3 / side length scanned): its two zeros are found by bisection, their middle is taken,
    and each side's offset is the middle of its separating band at that orientation (of the
    orientations in that interval whose rectangle reproduces the mask at every boundary pixel,
    corners included, the middle one is taken: near the axes the corner pixels carry most of
    what fixes the orientation). Placed
    side by side, the lines' own margin-weighted directions leave opposite sides a few 1e-3 rad
    from parallel, and the min Feret (measured flush with one side to the farthest corner) reads
    large by ~side x angle / 2 (+0.06 px for 40-50 px squares, outside the range of squares the
    mask admits, :func:`cryomat.measure.feasible.square_ranges`)."""
    base = float(np.arctan2(lines[0][0][0], lines[0][0][1]))
    shifts = []
    for nv, _ in lines:
        ang = float(np.arctan2(nv[0], nv[1]))
        k = np.round((ang - base) / (np.pi / 2))
        if abs(ang - base - k * np.pi / 2) > np.deg2rad(RECT_TOLERANCE_DEG):
            return None
        shifts.append(float(k * np.pi / 2))
    if sorted(int(round(sh / (np.pi / 2))) % 4 for sh in shifts) != [0, 1, 2, 3]:
        return None
    cen = np.mean(np.concatenate([ip for ip, _ in feas]), axis=0)
    sets = [(ip - cen, oq - cen) for ip, oq in feas]

    def margin(phi):  # smallest of the four separation margins at the orientations phi (array)
        out = np.full(np.shape(phi), np.inf)
        for sh, (ip, oq) in zip(shifts, sets):
            sn, cs = np.sin(phi + sh), np.cos(phi + sh)
            mo = (oq[:, :1] * sn + oq[:, 1:] * cs).min(axis=0)
            mi = (ip[:, :1] * sn + ip[:, 1:] * cs).max(axis=0)
            out = np.minimum(out, mo - mi)
        return out

    half = 3.0 / max(min(lengths), 1.0)
    grid = base + np.linspace(-half, half, 65)
    mg = margin(grid)
    i = int(np.argmax(mg))
    if mg[i] <= 0:  # the feasible directions can be narrower than the grid step: golden section
        a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        g = 0.5 * (np.sqrt(5.0) - 1.0)
        for _ in range(40):
            c, d = b - g * (b - a), a + g * (b - a)
            mc, md = margin(np.array([c, d]))
            if mc > 0 or md > 0:
                break
            a, b = (a, d) if mc > md else (c, b)
        else:
            return None
        best = c if mc > md else d
        grid = np.r_[grid[grid < best], best, grid[grid > best]]
        i = int(np.searchsorted(grid, best))

    pos = margin(grid) > 0
    j, k = i, i
    while j > 0 and pos[j - 1]:
        j -= 1
    while k < len(grid) - 1 and pos[k + 1]:
        k += 1
    # both zeros at once by bisection to 1e-5 rad (1e-3 px over 100 px): a inside, b outside
    a = np.array([grid[j], grid[k]])
    b = np.array([grid[j - 1] if j > 0 else grid[j], grid[k + 1] if k < len(grid) - 1 else grid[k]])
    for _ in range(30):
        if np.all(np.abs(b - a) < 1e-5):
            break
        c = 0.5 * (a + b)
        inside = margin(c) > 0
        a, b = np.where(inside, c, a), np.where(inside, b, c)
    lo, hi = float(a[0]), float(a[1])

    def box(phi):  # the four side lines at orientation phi, each in the middle of its band
        nn = np.array([[np.sin(phi + sh), np.cos(phi + sh)] for sh in shifts])
        c_in = (inner @ nn.T).max(axis=0)
        d = outer @ nn.T - c_in  # > 0: beyond that side of the smallest box
        out = []
        for k, (_, oq) in enumerate(feas):
            # the outside centres only side k can leave out (inside the other sides' smallest box)
            only = np.all(np.delete(d, k, axis=1) <= 0, axis=1) & (d[:, k] > 0)
            c_out = float(np.min(outer[only] @ nn[k])) if np.any(only) else float(np.min(oq @ nn[k]))
            out.append((nn[k], 0.5 * (float(c_in[k]) + c_out)))
        return out

    # the sides' point sets leave the corners out, and near the axes the few staircase steps that
    # fix the orientation sit there: keep the orientations at which the smallest box around the
    # inside centres leaves every outside ring centre out (a rectangle of that orientation
    # reproduces the mask), and take their middle
    grid = np.linspace(lo, hi, 33)
    nn = np.stack([np.sin(grid[:, None] + np.array(shifts)[None, :]),
                   np.cos(grid[:, None] + np.array(shifts)[None, :])], axis=-1)  # (phi, side, 2)
    c_in = np.einsum("pj,gkj->gpk", inner, nn).max(axis=1)  # (phi, side)
    beyond = np.einsum("qj,gkj->gqk", outer, nn) - c_in[:, None, :]
    ok = grid[np.all(beyond.max(axis=2) > 0, axis=1)]
    phi = 0.5 * (ok.min() + ok.max()) if len(ok) else 0.5 * (lo + hi)
    return box(phi)


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


def _hull(points: np.ndarray) -> np.ndarray:
    try:
        from scipy.spatial import ConvexHull

        return points[ConvexHull(points).vertices]
    except Exception:  # degenerate (collinear) input
        return convex_hull(points)
