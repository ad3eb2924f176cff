"""Parallel-beam, single-tilt-axis projector and back-projector (numba, CPU, chunked over slices).

Geometry (used everywhere in :mod:`cryomat.tomography`)
-------------------------------------------------------
* A tilt series is ``(tilt, row, col)``. The tilt axis runs along the ``row`` axis (vertical in
  the displayed image), so image row ``y`` of every tilt is the projection of volume slice ``y``.
* A volume is ``(z, row, col)``: ``z`` is depth along the beam at zero tilt, ``row`` runs along
  the tilt axis, ``col`` is perpendicular to it; ``volume.sum(0)`` is the zero-tilt projection.
* Centres are geometric: ``c = (n - 1) / 2`` in index units for detector columns, volume columns
  and depth. A voxel at ``(z, x)`` (index units, relative to the centres) lands on detector
  column ``t = x cos(theta) + z sin(theta)``. Positive tilt therefore moves the top
  (``z`` above the centre, large index) of the specimen to larger column index; this is the
  handedness that :mod:`cryomat.tomography.conventions` maps to IMOD's.

The back-projector gathers with linear interpolation (pixel driven); the forward projector
is its exact adjoint (linear splatting), so SIRT built from the pair is a proper
Landweber/SIRT iteration. Both work on a transposed chunk ``(..., col, row)`` so that the
inner loop runs over contiguous rows (the slices), which vectorises well.
"""

from __future__ import annotations

import numpy as np

try:  # numba is a dependency of hyperspy; pure-numpy fall-back keeps the package importable
    import numba

    _HAVE_NUMBA = True
except Exception:  # pragma: no cover
    numba = None
    _HAVE_NUMBA = False


def _bp_py(proj, cos_a, sin_a, wts, nz, nx, out):
    """numpy fall-back of the gather kernel (slow but identical)."""
    n_a, n_t, ny = proj.shape
    ct, cx, cz = (n_t - 1) / 2.0, (nx - 1) / 2.0, (nz - 1) / 2.0
    xs = np.arange(nx) - cx
    for z in range(nz):
        for a in range(n_a):
            t = xs * cos_a[a] + (z - cz) * sin_a[a] + ct
            i0 = np.floor(t).astype(np.int64)
            w = (t - i0).astype(np.float32)
            ok0 = (i0 >= 0) & (i0 < n_t)
            ok1 = (i0 + 1 >= 0) & (i0 + 1 < n_t)
            v = np.zeros((nx, ny), np.float32)
            v[ok0] += ((1 - w[ok0]) * wts[a])[:, None] * proj[a, i0[ok0]]
            v[ok1] += (w[ok1] * wts[a])[:, None] * proj[a, i0[ok1] + 1]
            out[z] += v
    return out


def _fp_py(vol, cos_a, sin_a, n_t, out):
    nz, nx, ny = vol.shape
    ct, cx, cz = (n_t - 1) / 2.0, (nx - 1) / 2.0, (nz - 1) / 2.0
    xs = np.arange(nx) - cx
    for a in range(len(cos_a)):
        for z in range(nz):
            t = xs * cos_a[a] + (z - cz) * sin_a[a] + ct
            i0 = np.floor(t).astype(np.int64)
            w = (t - i0).astype(np.float32)
            ok0 = (i0 >= 0) & (i0 < n_t)
            ok1 = (i0 + 1 >= 0) & (i0 + 1 < n_t)
            np.add.at(out[a], i0[ok0], (1 - w[ok0])[:, None] * vol[z, ok0])
            np.add.at(out[a], i0[ok1] + 1, w[ok1][:, None] * vol[z, ok1])
    return out


if _HAVE_NUMBA:

    @numba.njit(parallel=True, fastmath=True, cache=True)
    def _bp_nb(proj, cos_a, sin_a, wts, nz, nx, out):  # pragma: no cover - compiled
        n_a, n_t, ny = proj.shape
        ct = (n_t - 1) / 2.0
        cx = (nx - 1) / 2.0
        cz = (nz - 1) / 2.0
        for z in numba.prange(nz):
            for a in range(n_a):
                ca = cos_a[a]
                base = (z - cz) * sin_a[a] + ct
                wa = wts[a]
                for x in range(nx):
                    t = (x - cx) * ca + base
                    fi = np.floor(t)
                    i0 = int(fi)
                    w1 = np.float32((t - fi) * wa)
                    w0 = np.float32(wa) - w1
                    if i0 >= 0 and i0 + 1 < n_t:
                        for y in range(ny):
                            out[z, x, y] += w0 * proj[a, i0, y] + w1 * proj[a, i0 + 1, y]
                    elif i0 == n_t - 1:
                        for y in range(ny):
                            out[z, x, y] += w0 * proj[a, i0, y]
                    elif i0 == -1:
                        for y in range(ny):
                            out[z, x, y] += w1 * proj[a, 0, y]
        return out

    @numba.njit(parallel=True, fastmath=True, cache=True)
    def _fp_nb(vol, cos_a, sin_a, n_t, out):  # pragma: no cover - compiled
        nz, nx, ny = vol.shape
        n_a = cos_a.shape[0]
        ct = (n_t - 1) / 2.0
        cx = (nx - 1) / 2.0
        cz = (nz - 1) / 2.0
        for a in numba.prange(n_a):
            ca = cos_a[a]
            for z in range(nz):
                base = (z - cz) * sin_a[a] + ct
                for x in range(nx):
                    t = (x - cx) * ca + base
                    fi = np.floor(t)
                    i0 = int(fi)
                    w1 = np.float32(t - fi)
                    w0 = np.float32(1.0) - w1
                    if i0 >= 0 and i0 + 1 < n_t:
                        for y in range(ny):
                            v = vol[z, x, y]
                            out[a, i0, y] += w0 * v
                            out[a, i0 + 1, y] += w1 * v
                    elif i0 == n_t - 1:
                        for y in range(ny):
                            out[a, i0, y] += w0 * vol[z, x, y]
                    elif i0 == -1:
                        for y in range(ny):
                            out[a, 0, y] += w1 * vol[z, x, y]
        return out


def backproject_chunk(proj_t, angles_deg, *, nz: int, nx: int, weights=None, out=None) -> np.ndarray:
    """Back-project a transposed chunk of projections.

    Parameters
    ----------
    proj_t : float32 array (tilt, col, row_chunk): projections with columns before rows.
    angles_deg : (tilt,) tilt angles in degrees.
    nz, nx : depth and width of the volume (voxels).
    weights : (tilt,) weight of each projection (default 1).
    out : optional float32 (nz, nx, row_chunk) accumulator.

    Returns
    -------
    float32 array (nz, nx, row_chunk): sum over tilts of ``weight * p(x cos + z sin)``.
    """
    proj_t = np.ascontiguousarray(proj_t, dtype=np.float32)
    th = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    w = np.ones(th.size) if weights is None else np.asarray(weights, dtype=np.float64)
    if out is None:
        out = np.zeros((nz, nx, proj_t.shape[2]), np.float32)
    f = _bp_nb if _HAVE_NUMBA else _bp_py
    return f(proj_t, np.cos(th), np.sin(th), w, int(nz), int(nx), out)


def project_chunk(vol_t, angles_deg, *, n_t: int, out=None) -> np.ndarray:
    """Forward-project a transposed volume chunk (the adjoint of :func:`backproject_chunk`).

    Parameters
    ----------
    vol_t : float32 array (z, col, row_chunk).
    angles_deg : (tilt,) degrees.
    n_t : detector width (columns).

    Returns
    -------
    float32 array (tilt, n_t, row_chunk): line integrals in voxel units.
    """
    vol_t = np.ascontiguousarray(vol_t, dtype=np.float32)
    th = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    if out is None:
        out = np.zeros((th.size, int(n_t), vol_t.shape[2]), np.float32)
    f = _fp_nb if _HAVE_NUMBA else _fp_py
    return f(vol_t, np.cos(th), np.sin(th), int(n_t), out)


def row_chunks(n_rows: int, chunk: int):
    """Yield ``slice`` objects that cover ``range(n_rows)`` in steps of ``chunk``."""
    chunk = max(1, int(chunk))
    for r0 in range(0, n_rows, chunk):
        yield slice(r0, min(n_rows, r0 + chunk))


def forward_project(volume, angles_deg, *, n_cols: int | None = None, chunk_rows: int = 32) -> np.ndarray:
    """Project a volume ``(z, row, col)`` to a tilt series ``(tilt, row, col)`` (float32).

    Line integrals in voxel units along the beam direction at each tilt (geometry in the
    module docstring); ``n_cols`` is the detector width (default: the volume width).
    """
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise ValueError(f"volume must be 3D (z, row, col), got shape {vol.shape}")
    nz, ny, nx = vol.shape
    n_t = nx if n_cols is None else int(n_cols)
    angles = np.atleast_1d(np.asarray(angles_deg, float))
    out = np.empty((angles.size, ny, n_t), np.float32)
    for sl in row_chunks(ny, chunk_rows):
        vt = np.ascontiguousarray(np.asarray(vol[:, sl, :], np.float32).transpose(0, 2, 1))
        p = project_chunk(vt, angles, n_t=n_t)
        out[:, sl, :] = p.transpose(0, 2, 1)
    return out
