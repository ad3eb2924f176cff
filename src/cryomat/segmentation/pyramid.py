"""Gaussian pyramids and crop-wise filtering for the classical segmentation.

Wide Gaussians (``sigma >= 2 g`` px) are band-limited enough to be computed on the ``g x g``
block-mean level and linearly interpolated back (within 0.4 % of the field's range for g = 2,
once the block mean's and the interpolation's own blur are taken off); narrow ones are
computed on the crops where they are needed, with their exact ``ndi.gaussian_filter`` weights.

References
----------
Burt & Adelson, The Laplacian pyramid as a compact image code, IEEE Trans. Commun. 31, 532
(1983), doi:10.1109/TCOM.1983.1095851.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

PYRAMID_SIGMA_PER_LEVEL = 2.0  # a Gaussian of >= 2 g px is computed on the 1/g grid



def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Means of ``k`` x ``k`` blocks (edge-padded to a multiple of ``k``); float32 stays float32."""
    if k == 1:
        return a
    h, w = a.shape
    ph, pw = (-h) % k, (-w) % k
    a = np.pad(a, ((0, ph), (0, pw)), mode="edge") if (ph or pw) else a
    if k in (2, 4, 8):  # pairwise sums of strided views: several times faster than a 4D mean
        while k > 1:
            a = (a[0::2, 0::2] + a[1::2, 0::2]) + (a[0::2, 1::2] + a[1::2, 1::2])
            a *= a.dtype.type(0.25)
            k //= 2
        return a
    return a.reshape(a.shape[0] // k, k, a.shape[1] // k, k).mean(axis=(1, 3), dtype=a.dtype)



def _interp_index(n_in: int, k: float, start: int, stop: int):
    """Linear-interpolation indices and weights of output pixels ``start..stop-1`` of a grid
    ``k`` times finer than ``n_in`` samples (block centres; clamped at the ends, as
    ``ndi.zoom(order=1, grid_mode=True, mode="nearest")``)."""
    c = np.clip((np.arange(start, stop) + 0.5) / k - 0.5, 0.0, n_in - 1)
    i0 = np.minimum(np.floor(c).astype(np.intp), max(n_in - 2, 0))
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (c - i0).astype(np.float32)



def _upsample(a: np.ndarray, k: float, shape, rows=None, cols=None) -> np.ndarray:
    """Bilinear upsampling of block values ``a`` by ``k`` to ``shape`` (float32), or of the crop
    ``rows``, ``cols`` (slices) of that output only."""
    rows = rows or slice(0, shape[0])
    cols = cols or slice(0, shape[1])
    r0, r1, tr = _interp_index(a.shape[0], k, rows.start, rows.stop)
    c0, c1, tc = _interp_index(a.shape[1], k, cols.start, cols.stop)
    rmin, rmax = int(r0.min(initial=0)), int(r1.max(initial=0)) + 1
    a = np.asarray(a[rmin:rmax], dtype=np.float32)
    tmp = a[:, c0] * (1 - tc) + a[:, c1] * tc
    out = tmp[r0 - rmin]
    out *= (1 - tr)[:, None]
    out += tmp[r1 - rmin] * tr[:, None]
    return out



def _pyramid_level(sigma: float, max_level: int = 8) -> int:
    """Largest power of two ``g`` (<= ``max_level``) with ``sigma >= 2 g`` (g = 1 below 4 px)."""
    g = 1
    while 2 * g * PYRAMID_SIGMA_PER_LEVEL <= sigma and 2 * g <= max_level:
        g *= 2
    return g



def _level_sigma(sigma: float, g: int) -> float:
    """Gaussian width on the ``g``-block-mean grid that gives ``sigma`` px in total (the block
    mean is a box of variance (g^2 - 1)/12 px^2)."""
    return float(np.sqrt(max(sigma**2 - (g * g - 1) / 12.0, 0.25))) / g



class _Smoother:
    """Gaussian smoothings of one image, evaluated on crops: narrow ones (< 4 px) exactly on
    the crop plus a 4-sigma margin, wide ones once per image on a coarser pyramid level where
    they are band-limited, and interpolated into the crop."""

    def __init__(self, y: np.ndarray):
        self.y = y
        self._levels: dict = {1: y}
        self._wide: dict = {}

    def level(self, g: int) -> np.ndarray:
        if g not in self._levels:
            self._levels[g] = _block_mean(self.y, g)
        return self._levels[g]

    def crop(self, sigma: float, rows: slice, cols: slice) -> np.ndarray:
        y = self.y
        g = _pyramid_level(sigma, max_level=2)  # level 4 interpolates a 2-sample-wide Gaussian: 3 % off
        if g > 1:
            if sigma not in self._wide:
                # the linear interpolation back adds g^2/6 px^2 of blur on average: take it off
                s_g = _level_sigma(float(np.sqrt(max(sigma**2 - g * g / 6.0, 0.25))), g)
                self._wide[sigma] = ndi.gaussian_filter(self.level(g), s_g, truncate=3.0)
            return _upsample(self._wide[sigma], g, y.shape, rows, cols)
        if sigma <= 0:
            return y[rows, cols]
        m = int(np.ceil(4 * sigma))
        r0, r1 = max(rows.start - m, 0), min(rows.stop + m, y.shape[0])
        c0, c1 = max(cols.start - m, 0), min(cols.stop + m, y.shape[1])
        out = _gauss(y[r0:r1, c0:c1], sigma)
        return out[rows.start - r0:rows.stop - r0, cols.start - c0:cols.stop - c0]



_CROSS = ndi.generate_binary_structure(2, 1)

_KERNELS: dict = {}



def _gauss_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """The 1D Gaussian weights ``ndi.gaussian_filter`` uses (cached)."""
    key = (float(sigma), float(truncate))
    if key not in _KERNELS:
        r = int(truncate * float(sigma) + 0.5)
        x = np.arange(-r, r + 1, dtype=np.float64)
        k = np.exp(-0.5 * (x / sigma) ** 2)
        _KERNELS[key] = k / k.sum()
    return _KERNELS[key]



def _gauss(a: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """``ndi.gaussian_filter(a, sigma, truncate=truncate)`` (mode reflect) without its per-call
    set-up: two ``correlate1d`` with cached weights (the refinement calls it once per object)."""
    k = _gauss_kernel(sigma, truncate)
    return ndi.correlate1d(ndi.correlate1d(a, k, axis=0, mode="reflect"), k, axis=1, mode="reflect")



def _quantiles(v: np.ndarray, qs) -> list:
    """Quantiles (linear interpolation, as ``np.percentile(v, 100 q)``) of a small 1D array."""
    v = np.sort(v, axis=None)
    n = v.size
    out = []
    for q in qs:
        pos = q * (n - 1)
        lo = int(pos)
        hi = min(lo + 1, n - 1)
        out.append(float(v[lo] + (v[hi] - v[lo]) * (pos - lo)))
    return out



def _open_cross(m: np.ndarray) -> np.ndarray:
    """Binary opening by the 4-neighbour cross (as ``ndi.binary_opening(m)``, outside = False)."""
    e = m.copy()
    e[1:] &= m[:-1]
    e[:-1] &= m[1:]
    e[:, 1:] &= m[:, :-1]
    e[:, :-1] &= m[:, 1:]
    e[0] = e[-1] = False
    e[:, 0] = e[:, -1] = False
    d = e.copy()
    d[1:] |= e[:-1]
    d[:-1] |= e[1:]
    d[:, 1:] |= e[:, :-1]
    d[:, :-1] |= e[:, 1:]
    return d



def _fill_holes(m: np.ndarray) -> np.ndarray:
    """Holes (background not 4-connected to the border) filled; as ``ndi.binary_fill_holes``."""
    bg, n = ndi.label(~m)
    if n == 0:
        return m
    border = np.zeros(n + 1, bool)
    for edge in (bg[0], bg[-1], bg[:, 0], bg[:, -1]):
        border[edge] = True
    border[0] = True
    return ~border[bg] | m



def _dilate_square(m: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation by a (2r+1)^2 square (two running maxima)."""
    if r <= 0:
        return m
    u = m.view(np.uint8) if m.dtype == bool else m.astype(np.uint8)
    u = ndi.maximum_filter1d(ndi.maximum_filter1d(u, 2 * r + 1, axis=0), 2 * r + 1, axis=1)
    return u.astype(bool)
