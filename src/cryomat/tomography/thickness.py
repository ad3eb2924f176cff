"""Local thickness of 3D structures with sub-voxel accuracy.

Local thickness at a point is the diameter of the largest ball that contains the point and lies
inside the structure (Hildebrand & Ruegsegger, J. Microsc. 185 (1997) 67,
doi:10.1046/j.1365-2818.1997.1340694.x). On a binary mask the classical estimate (ball radii = the
Euclidean distance map at voxel centres) is quantised: the boundary lies half a voxel beyond the last
foreground centre and, on oblique or curved walls, the distance to the nearest background *centre*
scatters by up to a voxel with the staircase. The sub-voxel estimate here:

1. The boundary is the 0.5 iso-surface of the mask smoothed by a Gaussian of 0.7 voxel, located
   by linear interpolation on every edge between face-adjacent inside/outside voxels (one point per
   boundary face, with the normal of the smoothed mask there). For axis-aligned walls this is the
   face midway between voxel centres, so axis slabs stay exact. Smoothing moves a curved iso-surface
   inwards by ``(sigma^2 / 2) (k1 + k2)`` (heat flow; k1 + k2 from the Hessian of the mask smoothed
   by 1.5 voxel, where finite differences of the staircase are no longer biased): the points are
   moved back out by that much (thin tubes and small balls; flat walls are unaffected).
2. The distance of each foreground voxel to the boundary is the distance to the tangent plane at its
   nearest boundary point (k-d tree), free of the point spacing.
3. The ridge (medial surface) height is refined by a tent model of the distance map across it:
   with the distance ``d0`` at a voxel, ``d1`` at a neighbour across the ridge and the neighbour's
   offset ``a`` along the wall normal, the height is ``(d0 + d1 + a) / 2``; the neighbours whose
   estimates lie within 0.1 voxel of the largest are averaged.
4. The painting step takes the largest ball covering each voxel, which would pick the upper tail of
   the estimation noise: the ridge radii are first median-filtered over the 3x3x3 neighbourhood of
   ridge voxels (a sheet's ridge is flat, so the median keeps the radius and drops the noise).
5. Balls, centred on the refined ridge points, are painted largest first (numba).

Measured (``benchmarks/bench_tomo.py thickness``): axis slabs 2-12 voxels exact; oblique slabs,
spherical and cylindrical shells and sinusoidal sheets 2-12 voxels thick: mean absolute error
< 0.1 voxel, |bias| < 0.06 voxel per phantom type. Solid balls and tubes read low on average
(voxels of the rim are only covered by smaller balls): tubes of diameter 3-9 voxels by 0.1-0.5,
balls of diameter 6-16 voxels by 0.4-1.8 voxel.
"""

from __future__ import annotations

import numpy as np

try:
    import numba

    _NB = True
except Exception:  # pragma: no cover
    numba = None
    _NB = False


def _edt(mask, sampling=None):
    try:  # the 'edt' package (a porespy dependency) is several times faster than scipy's
        import edt as _edtpkg

        return _edtpkg.edt(np.ascontiguousarray(mask, dtype=np.uint8), black_border=False, parallel=1).astype(np.float32)
    except Exception:
        from scipy import ndimage as ndi

        return ndi.distance_transform_edt(mask).astype(np.float32)


_OFFS = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1) if (a, b, c) != (0, 0, 0)])


def _shifted(a, o, fill):
    """``a`` shifted so that out[p] = a[p + o] (fill outside)."""
    out = np.full_like(a, fill)
    src = tuple(slice(max(0, k), a.shape[i] + min(0, k)) for i, k in enumerate(o))
    dst = tuple(slice(max(0, -k), a.shape[i] + min(0, -k)) for i, k in enumerate(o))
    out[dst] = a[src]
    return out


def ridge_radii(mask, *, subvoxel: bool = True):
    """Ball centres (k, 3) (float, voxel units) and radii (k,) of the ridge (medial surface).

    ``subvoxel=False``: the classical voxel-centre balls (EDT - 1/2 at voxels whose balls are not
    inside a neighbour's ball); ``True``: the sub-voxel estimate of the module docstring.
    """
    m = np.asarray(mask, bool)
    if subvoxel:
        bp, bn = _boundary_points(m)
        if len(bp):
            return _subvoxel_balls(m, bp, bn)
    d = _edt(m)
    if _NB:
        keep = _ridge_nb(d, m, _OFFS.astype(np.int64), np.linalg.norm(_OFFS, axis=1))
    else:  # pragma: no cover
        keep = m.copy()
        for o in _OFFS:
            L = float(np.linalg.norm(o))
            keep &= ~(_shifted(d, o, 0.0) >= d + L - 1e-4)
    return np.argwhere(keep).astype(np.float64), (d[keep] - 0.5).astype(np.float64)


#: Gaussian (voxels) smoothing the mask whose 0.5 iso-surface is the sub-voxel boundary
SMOOTH_SIGMA = 0.7
#: move the boundary points back out by the curvature shift of the smoothing's iso-surface
CURVATURE_CORRECTION = True
#: Gaussian (voxels) of the field whose iso-surface curvature is measured
CURVATURE_SIGMA = 1.5
#: tent estimates within this many voxels of the largest one are averaged
TENT_BAND = 0.2
#: ridge voxels: the tent refinement moves the centre at most this far (voxels)
MAX_SHIFT = 0.9
#: a voxel takes a ball's diameter when its centre lies within the ball's radius plus this (voxels)
PAINT_TOL = 0.0
#: ridge heights are median-filtered over neighbours within this many voxels of their own
MEDIAN_BAND = 0.3


def _boundary_points(m):
    """Sub-voxel boundary points (k, 3) and outward unit normals (k, 3): one per inside/outside face."""
    from scipy import ndimage as ndi

    f = ndi.gaussian_filter(m.astype(np.float32), SMOOTH_SIGMA, mode="nearest")
    hi_idx = np.array(m.shape) - 1

    def at(p):  # f at integer points, the array edge continued
        return f[tuple(np.clip(p, 0, hi_idx).T)]

    if CURVATURE_CORRECTION:  # curvature from a smoother field: finite differences of a sharp edge are biased
        fc = ndi.gaussian_filter(m.astype(np.float32), CURVATURE_SIGMA, mode="nearest")

        def at_c(p):
            return fc[tuple(np.clip(p, 0, hi_idx).T)]
    pts, nrm = [], []
    for ax in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        a, b = m[tuple(lo)], m[tuple(hi)]
        for face, sign in ((a & ~b, 1), (~a & b, -1)):
            pin = np.argwhere(face)
            if sign < 0:
                pin[:, ax] += 1
            pout = pin.copy()
            pout[:, ax] += sign
            fi, fo = f[tuple(pin.T)], f[tuple(pout.T)]
            den = fi - fo
            t = np.clip(np.where(den > 1e-6, (fi - 0.5) / np.maximum(den, 1e-6), 0.5), 0.0, 1.0)
            p = pin.astype(np.float64)
            p[:, ax] += sign * t
            g = np.zeros_like(p)
            for k in range(3):  # central-difference gradient of the smoothed mask, interpolated along the edge
                e = np.eye(3, dtype=np.int64)[k]
                gi = 0.5 * (at(pin + e) - at(pin - e))
                go = 0.5 * (at(pout + e) - at(pout - e))
                g[:, k] = (1 - t) * gi + t * go
            gn = np.linalg.norm(g, axis=1)
            bad = gn < 1e-9
            if CURVATURE_CORRECTION:
                # the smoothing moves a curved level set inwards by (sigma^2 / 2) (k1 + k2) (heat flow):
                # k1 + k2 = (g.H.g - |g|^2 lap f) / |g|^3 from the Hessian, interpolated along the edge
                if _NB:
                    kap = (1 - t) * _curvature_nb(fc, pin) + t * _curvature_nb(fc, pout)
                else:  # pragma: no cover
                    kap = (1 - t) * _curvature(at_c, pin) + t * _curvature(at_c, pout)
                shift = np.clip(0.5 * SMOOTH_SIGMA ** 2 * np.where(bad, 0.0, kap), -0.3, 0.3)
            g[bad] = 0.0
            g[bad, ax] = -sign  # degenerate gradient: the face normal
            gn[bad] = 1.0
            n_out = -g / gn[:, None]
            if CURVATURE_CORRECTION:
                p += shift[:, None] * n_out
            pts.append(p)
            nrm.append(n_out)
    if not pts:
        return np.zeros((0, 3)), np.zeros((0, 3))
    return np.concatenate(pts), np.concatenate(nrm)


def _curvature(at, p):
    """Sum of principal curvatures (1/voxel, > 0 where convex) of the level set of ``f`` through the
    integer points ``p``, by central differences (``at(q)`` reads ``f`` at integer points)."""
    E = np.eye(3, dtype=np.int64)
    f0 = at(p)
    g = np.stack([0.5 * (at(p + E[k]) - at(p - E[k])) for k in range(3)], 1)
    H = np.empty((len(p), 3, 3))
    for i in range(3):
        H[:, i, i] = at(p + E[i]) - 2 * f0 + at(p - E[i])
        for j in range(i + 1, 3):
            H[:, i, j] = H[:, j, i] = 0.25 * (at(p + E[i] + E[j]) - at(p + E[i] - E[j]) - at(p - E[i] + E[j])
                                              + at(p - E[i] - E[j]))
    g2 = np.einsum("ij,ij->i", g, g)
    ghg = np.einsum("ij,ijk,ik->i", g, H, g)
    lap = np.trace(H, axis1=1, axis2=2)
    return np.where(g2 > 1e-12, (ghg - g2 * lap) / np.maximum(g2, 1e-12) ** 1.5, 0.0)


def _subvoxel_balls(m, bp, bn, chunk: int = 1 << 20):
    from scipy.spatial import cKDTree

    tree = cKDTree(bp)
    idx = np.argwhere(m).astype(np.int32)
    d = np.empty(len(idx), np.float32)
    nv = np.empty((len(idx), 3), np.float32)
    for s0 in range(0, len(idx), chunk):
        q = idx[s0:s0 + chunk].astype(np.float64)
        dd, j = tree.query(q, workers=2)
        n_out = bn[j]
        dpl = -np.einsum("ij,ij->i", q - bp[j], n_out)  # distance to the tangent plane at the nearest point
        d[s0:s0 + chunk] = np.where(dpl > 0, np.minimum(dd, dpl), dd)
        nv[s0:s0 + chunk] = -n_out  # inward: towards the ridge
    D = np.zeros(m.shape, np.float32)
    D[tuple(idx.T)] = d
    offs = _OFFS.astype(np.int64)
    if _NB:
        h = _tent_nb(D, m, idx, d, nv, offs, TENT_BAND)
    else:  # pragma: no cover
        h = _tent_np(D, m, idx, d, nv, offs, TENT_BAND)
    cand = h - d <= MAX_SHIFT
    ic, hc, dc, nc = idx[cand], h[cand], d[cand], nv[cand]
    H = D  # the distance map is no longer needed: its memory holds the ridge heights
    H.fill(np.nan)
    H[tuple(ic.T)] = hc
    if _NB:
        hs = _median_nb(H, ic, offs, MEDIAN_BAND)
    else:  # pragma: no cover
        Hp = np.pad(H, 1, constant_values=np.nan)
        nb = np.stack([Hp[tuple((ic + 1 + o).T)] for o in np.vstack([[0, 0, 0], offs])], 1)
        hs = np.nanmedian(nb, 1).astype(np.float32)
    shift = np.clip(hs - dc, 0.0, None)
    return ic + shift[:, None] * nc, hs.astype(np.float64)


def _tent_np(D, m, idx, d, nv, offs, band):  # pragma: no cover - numpy fallback of _tent_nb
    Dp = np.pad(D, 1, mode="edge")
    Dp[1:-1, 1:-1, 1:-1][~m] = 0.0
    c = idx + 1
    est = np.stack([np.where(nv @ o > 0.5 * np.linalg.norm(o), 0.5 * (d + Dp[tuple((c + o).T)] + nv @ o), -1.0)
                    for o in offs], 1)
    mx = est.max(1)
    w = est >= mx[:, None] - band
    return np.maximum(d, (est * w).sum(1) / np.maximum(w.sum(1), 1)).astype(np.float32)


if _NB:

    @numba.njit(parallel=True, cache=True)
    def _ridge_nb(d, m, offs, lens):  # pragma: no cover - compiled
        """Voxels whose ball (radius d) is not inside a neighbour's ball: d[n] < d[c] + |o| for all n."""
        nz, ny, nx = d.shape
        keep = np.zeros(d.shape, np.bool_)
        for z in numba.prange(nz):
            for y in range(ny):
                for x in range(nx):
                    if not m[z, y, x]:
                        continue
                    dc = d[z, y, x]
                    ok = True
                    for k in range(offs.shape[0]):
                        zz, yy, xx = z + offs[k, 0], y + offs[k, 1], x + offs[k, 2]
                        if zz < 0 or zz >= nz or yy < 0 or yy >= ny or xx < 0 or xx >= nx:
                            continue
                        if d[zz, yy, xx] >= dc + lens[k] - 1e-4:
                            ok = False
                            break
                    keep[z, y, x] = ok
        return keep

    @numba.njit(parallel=True, cache=True)
    def _tent_nb(D, m, idx, d, nv, offs, band):  # pragma: no cover - compiled
        """Ridge height by the tent model (module docstring, step 3); the array border continues the
        structure (edge values), as the distance map assumes."""
        nz, ny, nx = D.shape
        n = idx.shape[0]
        K = offs.shape[0]
        h = np.empty(n, np.float32)
        for i in numba.prange(n):
            est = np.empty(K, np.float64)
            mx = -1.0
            for k in range(K):
                a = nv[i, 0] * offs[k, 0] + nv[i, 1] * offs[k, 1] + nv[i, 2] * offs[k, 2]
                L = np.sqrt(offs[k, 0] ** 2 + offs[k, 1] ** 2 + offs[k, 2] ** 2)
                if a <= 0.5 * L:  # only neighbours roughly along the normal, towards the ridge
                    est[k] = -1.0
                    continue
                z = min(max(idx[i, 0] + offs[k, 0], 0), nz - 1)
                y = min(max(idx[i, 1] + offs[k, 1], 0), ny - 1)
                x = min(max(idx[i, 2] + offs[k, 2], 0), nx - 1)
                d1 = D[z, y, x] if m[z, y, x] else 0.0
                est[k] = 0.5 * (d[i] + d1 + a)
                if est[k] > mx:
                    mx = est[k]
            s = 0.0
            c = 0
            for k in range(K):
                if est[k] >= 0 and est[k] >= mx - band:
                    s += est[k]
                    c += 1
            h[i] = max(d[i], s / c) if c else d[i]
        return h

    @numba.njit(parallel=True, cache=True)
    def _median_nb(H, ic, offs, band):  # pragma: no cover - compiled
        """Median of the ridge heights (NaN: not ridge) within ``band`` of each ridge voxel's own over its
        3x3x3 neighbourhood (a point or line ridge's peak keeps its height)."""
        nz, ny, nx = H.shape
        n = ic.shape[0]
        out = np.empty(n, np.float32)
        for i in numba.prange(n):
            buf = np.empty(offs.shape[0] + 1, np.float32)
            c = 0
            buf[c] = H[ic[i, 0], ic[i, 1], ic[i, 2]]
            c += 1
            for k in range(offs.shape[0]):
                z, y, x = ic[i, 0] + offs[k, 0], ic[i, 1] + offs[k, 1], ic[i, 2] + offs[k, 2]
                if z < 0 or z >= nz or y < 0 or y >= ny or x < 0 or x >= nx:
                    continue
                v = H[z, y, x]
                if not np.isnan(v) and abs(v - buf[0]) <= band:
                    buf[c] = v
                    c += 1
            out[i] = np.median(buf[:c])
        return out

    @numba.njit(inline="always")
    def _fc(f, z, y, x):  # pragma: no cover - compiled
        nz, ny, nx = f.shape
        return f[min(max(z, 0), nz - 1), min(max(y, 0), ny - 1), min(max(x, 0), nx - 1)]

    @numba.njit(parallel=True, cache=True)
    def _curvature_nb(f, p):  # pragma: no cover - compiled
        """:func:`_curvature` of ``f`` at the integer points ``p`` (k, 3), compiled."""
        n = p.shape[0]
        out = np.zeros(n)
        for i in numba.prange(n):
            z, y, x = p[i, 0], p[i, 1], p[i, 2]
            f0 = _fc(f, z, y, x)
            fzp, fzm = _fc(f, z + 1, y, x), _fc(f, z - 1, y, x)
            fyp, fym = _fc(f, z, y + 1, x), _fc(f, z, y - 1, x)
            fxp, fxm = _fc(f, z, y, x + 1), _fc(f, z, y, x - 1)
            gz, gy, gx = 0.5 * (fzp - fzm), 0.5 * (fyp - fym), 0.5 * (fxp - fxm)
            hzz, hyy, hxx = fzp - 2 * f0 + fzm, fyp - 2 * f0 + fym, fxp - 2 * f0 + fxm
            hzy = 0.25 * (_fc(f, z + 1, y + 1, x) - _fc(f, z + 1, y - 1, x) - _fc(f, z - 1, y + 1, x)
                          + _fc(f, z - 1, y - 1, x))
            hzx = 0.25 * (_fc(f, z + 1, y, x + 1) - _fc(f, z + 1, y, x - 1) - _fc(f, z - 1, y, x + 1)
                          + _fc(f, z - 1, y, x - 1))
            hyx = 0.25 * (_fc(f, z, y + 1, x + 1) - _fc(f, z, y + 1, x - 1) - _fc(f, z, y - 1, x + 1)
                          + _fc(f, z, y - 1, x - 1))
            g2 = gz * gz + gy * gy + gx * gx
            if g2 > 1e-12:
                ghg = (hzz * gz * gz + hyy * gy * gy + hxx * gx * gx
                       + 2 * (hzy * gz * gy + hzx * gz * gx + hyx * gy * gx))
                out[i] = (ghg - g2 * (hzz + hyy + hxx)) / g2 ** 1.5
        return out

    @numba.njit(cache=True)
    def _paint(cen, rad, mask, out, tol=0.0):  # pragma: no cover - compiled
        nz, ny, nx = mask.shape
        for k in range(cen.shape[0]):
            cz, cy, cx = cen[k, 0], cen[k, 1], cen[k, 2]
            v = 2.0 * rad[k]
            r = rad[k] + tol
            r2 = r * r + 1e-6
            z0, z1 = max(0, int(np.ceil(cz - r))), min(nz - 1, int(np.floor(cz + r)))
            for z in range(z0, z1 + 1):
                dz2 = (z - cz) ** 2
                remz = r2 - dz2
                if remz < 0:
                    continue
                hy = np.sqrt(remz)
                y0, y1 = max(0, int(np.ceil(cy - hy))), min(ny - 1, int(np.floor(cy + hy)))
                for y in range(y0, y1 + 1):
                    rem = remz - (y - cy) ** 2
                    if rem < 0:
                        continue
                    hx = np.sqrt(rem)
                    x0, x1 = max(0, int(np.ceil(cx - hx))), min(nx - 1, int(np.floor(cx + hx)))
                    for x in range(x0, x1 + 1):
                        if mask[z, y, x] and out[z, y, x] < v:
                            out[z, y, x] = v
        return out
else:  # pragma: no cover
    def _paint(cen, rad, mask, out, tol=0.0):
        for c, r0 in zip(cen, rad):
            r = r0 + tol
            lo = np.maximum(np.ceil(c - r).astype(int), 0)
            hi = np.minimum(np.floor(c + r).astype(int) + 1, mask.shape)
            sl = tuple(slice(a, b) for a, b in zip(lo, hi))
            zz, yy, xx = np.ogrid[sl]
            ball = ((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r + 1e-6) & mask[sl]
            o = out[sl]
            o[ball] = np.maximum(o[ball], 2 * r0)
        return out


def local_thickness(mask, *, voxel_size: float = 1.0, subvoxel: bool = True) -> np.ndarray:
    """Local thickness map (diameters) of a 2D or 3D binary structure.

    Parameters
    ----------
    mask : bool array (z, row, col) (a 2D mask is treated as one plane).
    voxel_size : length per voxel (e.g. nm); the output is in the same unit.
    subvoxel : refine ridge radii between voxel centres (see module docstring); ``False`` gives the
        classical voxel-centre estimate.

    Returns
    -------
    float32 array like ``mask``: local thickness (diameter) inside, 0 outside.
    """
    m = np.asarray(mask, bool)
    squeeze = m.ndim == 2
    if squeeze:
        m = m[None]
    if m.ndim != 3:
        raise ValueError(f"mask must be 2D or 3D, got shape {np.shape(mask)}")
    if voxel_size <= 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
    out = np.zeros(m.shape, np.float32)
    if m.any():
        idx, r = ridge_radii(m, subvoxel=subvoxel)
        order = np.argsort(-r, kind="stable")
        _paint(np.ascontiguousarray(idx[order], dtype=np.float64), np.ascontiguousarray(r[order], dtype=np.float64),
               m, out, PAINT_TOL if subvoxel else 0.0)
    out *= voxel_size
    return out[0] if squeeze else out
