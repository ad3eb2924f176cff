"""Straight-sided polygon reading of one binary object (:func:`_straight_polygon`; a rectangle's
four sides placed jointly, :func:`_rectangle_lines`).

Used by :mod:`cryomat.measure.descriptors` (through :mod:`cryomat.measure.outline`, which
re-exports it) and :mod:`cryomat.measure.grey`; see the descriptors module docstring for the
conventions and references.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from cryomat.measure.geometry import _intersect_lines, convex_hull, polygon_area, polygon_perimeter


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


def _hull(points: np.ndarray) -> np.ndarray:
    try:
        from scipy.spatial import ConvexHull

        return points[ConvexHull(points).vertices]
    except Exception:  # degenerate (collinear) input
        return convex_hull(points)
