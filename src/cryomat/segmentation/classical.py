"""Classical, dose-aware instance segmentation of particles in low-dose images.

Pipeline (:func:`segment_classical`):

1. Relative contrast: the image is divided by a smooth support background (estimated with the
   particles masked out, twice) so that particles read as a positive contrast ``y``
   (polarity ``auto`` from the sign of the skewness: dark in bright field, bright in HAADF).
2. Noise: per-pixel noise ``s`` from the Poisson expectation when the dose is known
   (``1/sqrt(counts per pixel)``), else from the median absolute deviation of a high-pass.
3. Detection: a Gaussian of width ``sigma_d`` chosen from ``s`` (dose-aware: more smoothing
   at lower dose) and hysteresis thresholding at ``k_high``/``k_low`` times the smoothed noise.
   Detection, and the background passes with the detected objects masked, run on the 2 x 2
   block-mean pyramid level when ``sigma_d >= 4`` px: a Gaussian that wide has no power left at
   that grid's Nyquist frequency, so nothing is lost and the cost drops 4x.
4. Boundary refinement per object: the threshold is placed at ``edge_fraction`` of the
   object's own contrast on a lighter Gaussian (the lightest one whose noise is small against
   that contrast), so faint plates and strong cubes both get their true edge. Narrow Gaussians
   are computed on the object's crop only, wide ones (>= 2 g px on level g = 2, 4, 8) once per
   image on the pyramid level where they are band-limited, and interpolated into the crop.
5. Instances: connected components; ``split_touching=True`` over-segments with a watershed of
   the smoothed contrast and merges regions back unless the contrast dips between them or the
   distance-map neck is narrow (:func:`split_touching_objects`): touching particles split,
   fused aggregates with thick necks and no dip stay one object. This runs on tiles of 256 px
   (one watershed per tile), not over the whole image. When the field is a monodisperse
   population of round particles (:func:`_monodisperse_area`), objects of >= 1.6 single areas
   are then split into ``round(area / single area)`` parts by k-means of their pixels
   (:func:`_split_by_size_prior`): clusters of spheres that overlap in projection (HAADF
   multilayers) have neither a neck nor a contrast dip. Mixed shapes or sizes never trigger it.

References
----------
Canny, A computational approach to edge detection (hysteresis), IEEE PAMI 8, 679 (1986),
doi:10.1109/TPAMI.1986.4767851; Anscombe, Biometrika 35, 246 (1948), doi:10.1093/biomet/35.3-4.246;
Beucher & Meyer, The morphological approach to segmentation: the watershed transformation (1993),
doi:10.1201/9781482277234-12; Vincent & Soille (1991), doi:10.1109/34.87344; Burt & Adelson,
The Laplacian pyramid as a compact image code, IEEE Trans. Commun. 31, 532 (1983),
doi:10.1109/TCOM.1983.1095851.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage as ndi

EDGE_FRACTIONS = tuple(np.round(np.arange(0.15, 0.76, 0.05), 2))
DOME_SHIFT = 0.45
SPLIT_SIGMA_MIN = 0.7
BOUNDARY_SMOOTH_PX = 1.5
REFINE_GROW_PER_SIGMA = 2.0  # an object may grow 2 sigma_d + 2 px beyond its detection mask (1.2: F1 -0.04 at 0.3 e/A^2)
SIGMAS_PX = (0.0, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
PYRAMID_SIGMA_PER_LEVEL = 2.0  # a Gaussian of >= 2 g px is computed on the 1/g grid
NOISE_SAMPLE_PX = 2**21  # noise and median estimated on about this many pixels


def _robust_noise(y: np.ndarray) -> float:
    """Per-pixel noise std from the MAD of a 4-neighbour Laplacian-like high-pass."""
    hp = y[1:-1, 1:-1] - 0.25 * (y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:])
    mad = np.median(np.abs(hp - np.median(hp)))
    return float(1.4826 * mad / np.sqrt(1.25))


def _gauss_noise_factor(sigma: float) -> float:
    """Std of white noise (unit variance) after a 2D Gaussian of ``sigma`` px."""
    if sigma <= 0:
        return 1.0
    return 1.0 / (2.0 * np.sqrt(np.pi) * sigma)


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


def _bg_blocks(xs: np.ndarray, ws: np.ndarray, s: float) -> np.ndarray:
    """Normalised convolution of block sums: the support level per block."""
    num = ndi.gaussian_filter(xs, s, mode="reflect")
    den = ndi.gaussian_filter(ws, s, mode="reflect")
    ok = den > 1e-3
    if ok.all():
        return num / den
    fill = float(np.median(xs[ws > 0] / ws[ws > 0])) if np.any(ws > 0) else float(np.median(xs))
    return np.where(ok, num / np.maximum(den, 1e-3), fill)


def _background(x: np.ndarray, mask: np.ndarray | None, scale: float) -> np.ndarray:
    """Smooth support level by normalised convolution with the objects masked out, computed on
    block means (``scale``/4 px blocks) and interpolated back."""
    k = max(1, int(scale // 4))
    if mask is None:
        xs, ws = _block_mean(x, k), np.ones(_block_mean(x[:, :1], k).shape[:1] + (-(-x.shape[1] // k),), x.dtype)
    else:
        w = (~mask).astype(x.dtype)
        xs, ws = _block_mean(x * w, k), _block_mean(w, k)
    bg = _bg_blocks(xs, ws, scale / k)
    if k == 1:
        return bg.astype(x.dtype, copy=False)
    return _upsample(bg, k, x.shape)


def _polarity_from(y_small: np.ndarray, sigma: float) -> str:
    ys = ndi.gaussian_filter(y_small, sigma)
    m, sd = float(ys.mean()), float(ys.std()) + 1e-12
    skew = float(np.mean(((ys - m) / sd) ** 3))
    return "dark" if skew < 0 else "bright"


def relative_contrast(image, *, polarity: str = "auto", mask=None, background_px: float = 64.0):
    """``(y, polarity)``: particle contrast relative to the support (positive on particles), float32.

    ``mask`` (bool, optional) marks the objects to leave out of the support estimate.
    """
    if polarity not in ("auto", "dark", "bright"):
        raise ValueError(f"polarity must be 'auto', 'dark' or 'bright', got {polarity!r}")
    x = np.asarray(image)
    x = x if x.dtype == np.float32 else x.astype(np.float64)
    bg = _background(x, mask, background_px)
    bg = np.where(np.abs(bg) < 1e-12, 1e-12, bg)
    y = (x / bg - 1.0 if np.median(bg[::4, ::4]) > 0 else x - bg).astype(np.float32, copy=False)
    if polarity == "auto":
        polarity = _polarity_from(_block_mean(y, 2), 1.0)
    return (-y if polarity == "dark" else y), polarity


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
        g = _pyramid_level(sigma)
        if g > 1:
            if sigma not in self._wide:
                self._wide[sigma] = ndi.gaussian_filter(self.level(g), _level_sigma(sigma, g), truncate=3.0)
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


def _label_quantile(values: np.ndarray, lab: np.ndarray, n: int, q: float) -> np.ndarray:
    """Per-label ``q`` quantile (linear interpolation, as ``np.percentile``) of ``values``
    over labels 1..n (index 0 and empty labels: NaN); one sort for all labels."""
    sel = lab > 0
    v, lv = values[sel], lab[sel]
    order = np.lexsort((v, lv))
    v = v[order]
    counts = np.bincount(lv, minlength=n + 1)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    out = np.full(n + 1, np.nan)
    ok = counts > 0
    ok[0] = False
    pos = q * (counts[ok] - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, counts[ok] - 1)
    t = pos - lo
    out[ok] = v[starts[ok] + lo] * (1 - t) + v[starts[ok] + hi] * t
    return out


def _pair_saddles(lab: np.ndarray, *values: np.ndarray):
    """For every pair of 4-adjacent regions: the highest min(value) across their shared boundary
    for each of ``values``. Returns ``(i, j, saddle_1, saddle_2, ...)`` with i < j."""
    ii, jj, vv = [], [], [[] for _ in values]
    for a_sl, b_sl in (((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
                       ((slice(None), slice(None, -1)), (slice(None), slice(1, None)))):
        a, b = lab[a_sl], lab[b_sl]
        sel = (a != b) & (a > 0) & (b > 0)
        ii.append(np.minimum(a[sel], b[sel]))
        jj.append(np.maximum(a[sel], b[sel]))
        for lst, v in zip(vv, values):
            lst.append(np.minimum(v[a_sl][sel], v[b_sl][sel]))
    i, j = np.concatenate(ii).astype(np.int64), np.concatenate(jj).astype(np.int64)
    if i.size == 0:
        return (np.zeros(0, np.int64), np.zeros(0, np.int64)) + tuple(np.zeros(0) for _ in values)
    key = i * (int(lab.max()) + 1) + j
    order = np.argsort(key, kind="stable")
    ks = key[order]
    first = np.r_[0, np.nonzero(np.diff(ks))[0] + 1]
    out = [i[order][first], j[order][first]]
    for lst in vv:
        out.append(np.maximum.reduceat(np.concatenate(lst)[order], first))
    return tuple(out)


def _label_max(values: np.ndarray, lab: np.ndarray, n: int) -> np.ndarray:
    """Maximum of ``values`` per label 0..n (no sorting)."""
    out = np.full(n + 1, -np.inf)
    m = lab > 0
    np.maximum.at(out, lab[m], values[m])
    return out


def _split_tile(sub: np.ndarray, comp: np.ndarray, c: np.ndarray, *, min_peak, neck_ratio, dip_ratio,
                dip_noise) -> np.ndarray:
    """Labels 1..k of the components marked in ``sub`` (a crop; ``comp`` their component ids)
    from the smoothed contrast ``c``: watershed from the contrast maxima, then merges."""
    from skimage.segmentation import watershed

    cm = np.where(sub, c, -np.inf)
    peaks = (cm == ndi.maximum_filter(cm, size=5, mode="nearest")) & sub & (c > min_peak)
    pr, pc = np.nonzero(peaks)
    npk = pr.size
    markers = np.zeros(sub.shape, np.int32)
    markers[pr, pc] = np.arange(1, npk + 1)
    # components without a maximum above min_peak: one marker each (they stay whole)
    ids = np.unique(comp[sub])
    has = np.isin(ids, comp[pr, pc])
    extra = 0
    if not has.all():
        for k in ids[~has]:
            r, cc = np.nonzero((comp == k) & sub)
            extra += 1
            markers[r[0], cc[0]] = npk + extra
    n = npk + extra
    lab = watershed(-c, markers, mask=sub)
    if npk < 2:
        return lab
    dist = ndi.distance_transform_edt(sub)
    peak_c = np.full(n + 1, -np.inf)
    peak_c[1:npk + 1] = c[pr, pc]  # a basin's highest contrast is its maximum
    peak_d = _label_max(dist, lab, n)
    i, j, sc, sd = _pair_saddles(lab, c, dist)
    low = np.minimum(peak_c[i], peak_c[j])
    dip = (sc < dip_ratio * low) & (low - sc > dip_noise)
    merge = ~dip & (sd >= neck_ratio * np.minimum(peak_d[i], peak_d[j]))
    if not merge.any():
        return lab
    parent = np.arange(n + 1)

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for k in np.argsort(-sc):
        if merge[k]:
            ri, rj = find(i[k]), find(j[k])
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    remap = np.array([find(k) for k in range(n + 1)])
    return remap[lab]


def _split_components(mask: np.ndarray, crop, tile_px: int = 256, **kw) -> np.ndarray:
    """:func:`split_touching_objects` on tiles of ``tile_px`` (each component belongs to the tile
    of its top-left corner; one watershed per tile); ``crop(rows, cols)`` returns the smoothed
    contrast on a crop."""
    comp, ncomp = ndi.label(mask)
    out = np.zeros(mask.shape, np.int32)
    if ncomp == 0:
        return out
    h, w = mask.shape
    sls = ndi.find_objects(comp)
    r0 = np.array([sl[0].start for sl in sls])
    c0 = np.array([sl[1].start for sl in sls])
    r1 = np.array([sl[0].stop for sl in sls])
    c1 = np.array([sl[1].stop for sl in sls])
    tile = (r0 // tile_px) * (-(-w // tile_px)) + c0 // tile_px
    owner = np.r_[-1, tile]  # tile of each component id (0: background)
    nxt = 0
    for t in np.unique(tile):
        sel = np.nonzero(tile == t)[0]
        rows = slice(max(int(r0[sel].min()) - 1, 0), min(int(r1[sel].max()) + 1, h))
        cols = slice(max(int(c0[sel].min()) - 1, 0), min(int(c1[sel].max()) + 1, w))
        cc = comp[rows, cols]
        sub = owner[cc] == t
        lab = _split_tile(sub, cc, crop(rows, cols), **kw)
        # consecutive global labels in order of first appearance in the tile
        used = np.unique(lab[sub])
        lut = np.zeros(int(lab.max()) + 1, np.int32)
        lut[used] = np.arange(nxt + 1, nxt + 1 + used.size, dtype=np.int32)
        view = out[rows, cols]
        view[sub] = lut[lab[sub]]
        nxt += used.size
    return out


def split_touching_objects(mask: np.ndarray, contrast: np.ndarray, *, min_peak: float, neck_ratio: float = 0.55,
                           dip_ratio: float = 0.8, dip_noise: float = 0.0) -> np.ndarray:
    """Split a foreground mask into touching particles; keep fused aggregates whole.

    Over-segments each connected component with a watershed of the smoothed ``contrast`` from
    its local maxima above ``min_peak``, then merges two adjacent regions back unless the contact
    is a real gap: the contrast saddle between them is below ``dip_ratio`` x the lower of the
    two peaks (projected thickness drops between separate particles) and more than ``dip_noise``
    below it (so that noise maxima on a flat particle do not split it), or the distance-map
    saddle is below ``neck_ratio`` x the thinner region's inscribed radius (a narrow neck).
    Fused spheres (centre distance < ~1.4 radii) fail both tests and stay one object.
    """
    contrast = np.asarray(contrast)
    return _split_components(np.asarray(mask, bool), lambda r, c: contrast[r, c], min_peak=min_peak,
                             neck_ratio=neck_ratio, dip_ratio=dip_ratio, dip_noise=dip_noise)


def _monodisperse_area(labels: np.ndarray, min_objects: int = 20):
    """Typical single-particle area (px) when the objects are a monodisperse population of round
    particles, else None (mixed shapes or sizes: no size prior applies).

    The single area is the median over round objects (bounding box filled > 60 %, box aspect
    < 1.35); the field counts as monodisperse when at least 55 % of all objects are round and
    within 35 % of it, with an equivalent-diameter spread below 10 %. (The 4-class simulated
    fields reach at most 43 %; monodisperse SiO2 spheres 63 %; clustered monodisperse spheres
    67-78 %.)
    """
    a = np.bincount(labels.ravel())[1:]
    objs = [o for o in ndi.find_objects(labels) if o is not None]
    a = a[a > 0]
    if a.size < min_objects:
        return None
    hh = np.array([o[0].stop - o[0].start for o in objs], float)
    ww = np.array([o[1].stop - o[1].start for o in objs], float)
    round_ = (a / (hh * ww) > 0.6) & (np.maximum(hh, ww) / np.minimum(hh, ww) < 1.35)
    if not round_.any():
        return None
    a1 = float(np.median(a[round_]))
    near = round_ & (np.abs(a / a1 - 1.0) < 0.35)
    d = np.sqrt(a[near])
    if near.mean() < 0.55 or d.std() > 0.10 * d.mean():
        return None
    return a1


def _split_by_size_prior(labels: np.ndarray, a1: float, min_ratio: float = 1.6) -> np.ndarray:
    """Split objects of at least ``min_ratio`` x the single-particle area ``a1`` into
    ``round(area / a1)`` parts: k-means of the pixel positions, seeded by farthest-point
    sampling among pixels deeper than half a particle radius (touching monodisperse spheres
    whose necks and contrast dips are lost in the blur, as in HAADF multilayer clusters)."""
    out = labels.copy()
    nxt = int(labels.max()) + 1
    r1 = np.sqrt(a1 / np.pi)
    areas = np.bincount(labels.ravel())
    for lab_id, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None or areas[lab_id] < min_ratio * a1:
            continue
        n = int(round(areas[lab_id] / a1))
        if n < 2:
            continue
        m = labels[sl] == lab_id
        rr, cc = np.nonzero(m)
        pts = np.c_[rr, cc].astype(float)
        depth = ndi.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1][rr, cc]
        cand = depth >= 0.5 * r1
        if cand.sum() < n:
            continue
        centres = [pts[np.argmax(depth)]]
        dmin = np.hypot(*(pts - centres[0]).T)
        for _ in range(n - 1):
            k = int(np.argmax(np.where(cand, dmin, -1.0)))
            centres.append(pts[k])
            dmin = np.minimum(dmin, np.hypot(*(pts - pts[k]).T))
        c = np.array(centres)
        for _ in range(10):  # Lloyd iterations
            assign = np.argmin(((pts[:, None, :] - c[None]) ** 2).sum(axis=2), axis=1)
            new = np.array([pts[assign == q].mean(axis=0) if np.any(assign == q) else c[q] for q in range(n)])
            if np.allclose(new, c):
                break
            c = new
        view = out[sl]
        ids = np.where(assign == 0, lab_id, nxt + assign - 1)
        view[rr, cc] = ids
        nxt += n - 1
    return _relabel(out)


def _relabel(lab: np.ndarray) -> np.ndarray:
    """Consecutive labels 1..N (0 stays background), in order of the old labels; O(pixels)."""
    lab = np.asarray(lab)
    present = np.bincount(lab.ravel()) > 0
    present[0] = False
    lut = np.zeros(present.size, np.int32)
    lut[present] = np.arange(1, int(present.sum()) + 1, dtype=np.int32)
    return lut[lab]


def _sampled_noise(x: np.ndarray, bgb: np.ndarray, k: int, stride: int, positive: bool) -> float:
    """:func:`_robust_noise` of the relative contrast on every ``stride``-th row triple (all rows
    when ``stride`` is 1), without forming the full-size contrast."""
    h = x.shape[0]
    if stride == 1:
        rows = [np.arange(0, h)]
    else:
        mid = np.arange(1, h - 1, stride)
        rows = [mid - 1, mid, mid + 1]
    ys = []
    for r in rows:
        bg = np.empty((r.size, x.shape[1]), np.float32)
        for a in range(0, r.size, 256):  # rows of the interpolated background, in chunks
            rr = r[a:a + 256]
            i0, i1, t = _interp_index(bgb.shape[0], k, 0, h)
            c0, c1, tc = _interp_index(bgb.shape[1], k, 0, x.shape[1])
            b = bgb[i0[rr]] * (1 - t[rr])[:, None] + bgb[i1[rr]] * t[rr][:, None]
            bg[a:a + rr.size] = b[:, c0] * (1 - tc) + b[:, c1] * tc
        bg = np.where(np.abs(bg) < 1e-12, 1e-12, bg)
        ys.append(x[r] / bg - 1.0 if positive else x[r] - bg)
    if stride == 1:
        return _robust_noise(ys[0])
    up, y, dn = ys
    hp = y[:, 1:-1] - 0.25 * (up[:, 1:-1] + dn[:, 1:-1] + y[:, :-2] + y[:, 2:])
    mad = np.median(np.abs(hp - np.median(hp)))
    return float(1.4826 * mad / np.sqrt(1.25))


def _dilate_square(m: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation by a (2r+1)^2 square (two running maxima)."""
    if r <= 0:
        return m
    u = m.view(np.uint8) if m.dtype == bool else m.astype(np.uint8)
    u = ndi.maximum_filter1d(ndi.maximum_filter1d(u, 2 * r + 1, axis=0), 2 * r + 1, axis=1)
    return u.astype(bool)


def segment_classical(image, *, pixel_size: float, dose_e_per_A2: float | None = None,
                      min_size_nm: float | None = None, split_touching: bool = False,
                      polarity: str = "auto", k_high: float = 6.0, k_low: float = 3.0,
                      edge_fraction: float | None = None, neck_ratio: float = 0.55, dip_ratio: float = 0.9,
                      detect_noise: float = 0.012, n_background_passes: int = 4,
                      return_details: bool = False):
    """Instance labels (int32, 0 = background) from one image; see the module docstring.

    Parameters
    ----------
    image : (rows, cols) array, counts (when ``dose_e_per_A2`` is given) or any intensity.
        float32 input is processed in float32 (other types in float64, then float32).
    pixel_size : A per pixel.
    dose_e_per_A2 : fluence (e/A^2) of the image; sets the Poisson noise model. None: noise
        estimated from the image.
    min_size_nm : smallest equivalent diameter kept (nm); default 1.5 x the detection blur.
    split_touching : split touching particles at narrow necks or contrast dips (aggregates
        with thick necks stay whole), and, in a monodisperse field of round particles, clusters
        by the single-particle size; False keeps every connected object.
    polarity : ``"auto"``, ``"dark"`` (bright field) or ``"bright"`` (HAADF).
    k_high, k_low : hysteresis thresholds in units of the smoothed noise std.
    edge_fraction : boundary level as a fraction of each object's median contrast.
    neck_ratio : split when saddle distance < ``neck_ratio`` x the thinner side's radius.
    dip_ratio : split when the contrast saddle between two maxima is < ``dip_ratio`` x the
        lower peak (and significantly so against the noise); see :func:`split_touching_objects`.
    detect_noise : target relative noise std after detection smoothing (sets sigma_d).
    """
    x = np.asarray(image)
    if x.ndim != 2:
        raise ValueError(f"image must be 2D, got shape {x.shape}")
    x = x if x.dtype == np.float32 else x.astype(np.float64)
    if polarity not in ("auto", "dark", "bright"):
        raise ValueError(f"polarity must be 'auto', 'dark' or 'bright', got {polarity!r}")
    if not np.all(np.isfinite(x)):
        x = np.where(np.isfinite(x), x, np.nanmedian(x))
    px = float(pixel_size)
    if not np.isfinite(px) or px <= 0:
        raise ValueError(f"pixel_size must be a positive number of Angstrom, got {pixel_size!r}")
    if dose_e_per_A2 is not None and not (np.isfinite(dose_e_per_A2) and dose_e_per_A2 > 0):
        raise ValueError(f"dose_e_per_A2 must be positive, got {dose_e_per_A2!r}")
    if np.ptp(x) == 0:
        return (np.zeros(x.shape, np.int32), {}) if return_details else np.zeros(x.shape, np.int32)
    timings: dict = {}
    clock = [time.process_time()]

    def tick(stage):  # CPU seconds per stage (reported with return_details)
        now = time.process_time()
        timings[stage] = now - clock[0]
        clock[0] = now

    h, w = x.shape
    kb = 16  # background blocks (64 px Gaussian on 16 px blocks)
    stride = max(1, int(h * w // NOISE_SAMPLE_PX))  # every stride-th row
    xb = _block_mean(x, kb)
    bgb = _bg_blocks(xb, np.ones_like(xb), 64.0 / kb)
    positive = bool(np.median(bgb) > 0)
    s = _sampled_noise(x, bgb, kb, stride, positive)
    if dose_e_per_A2 is not None:
        med = float(np.median(x[::stride]))
        s_pois = 1.0 / np.sqrt(max(med, 1e-6))
        s = max(s, s_pois) if np.isfinite(s_pois) else s
    s = max(s, 1e-6)
    sig_d = float(np.clip(s * _gauss_noise_factor(1.0) / detect_noise, 1.0, 10.0))
    tick("noise")
    # detection on the pyramid level where the detection Gaussian is band-limited
    f = _pyramid_level(sig_d, max_level=2)  # level 4 at 0.3 e/A^2 costs ~1 % F1: stop at 2
    kc = kb // f
    xc = _block_mean(x, f)

    def contrast_c(bg_blocks):
        bgc = _upsample(bg_blocks, kc, xc.shape)
        bgc = np.where(np.abs(bgc) < 1e-12, 1e-12, bgc)
        return (xc / bgc - 1.0 if positive else xc - bgc).astype(np.float32, copy=False)

    yc = contrast_c(bgb)
    if polarity == "auto":
        polarity = _polarity_from(_block_mean(yc, 2), 1.0 if f == 1 else 0.5)
    sign = np.float32(-1.0 if polarity == "dark" else 1.0)
    yc *= sign
    sig_c = _level_sigma(sig_d, f)
    nd = (s / f) * _gauss_noise_factor(sig_c)

    def detect(ycur):
        yd = ndi.gaussian_filter(ycur, sig_c, truncate=3.0)
        lab, n = ndi.label(yd > k_low * nd)
        keep = np.bincount(lab[yd > k_high * nd], minlength=n + 1) > 0
        keep[0] = False
        return yd, np.where(keep[lab], lab, 0)

    yd, lab_c = detect(yc)
    fg = lab_c > 0
    # background passes with the objects masked, until the foreground stops growing (dense
    # fields bias the first estimate towards the particles)
    grow_bg = int(np.ceil((int(2 * sig_d) + 1) / f))
    n_passes = 0
    for _ in range(n_background_passes):
        wc = (~_dilate_square(fg, grow_bg)).astype(xc.dtype)
        bgb = _bg_blocks(_block_mean(xc * wc, kc), _block_mean(wc, kc), 64.0 / kb)
        yc = contrast_c(bgb) * sign
        yd, lab_c = detect(yc)
        fg_new = lab_c > 0
        changed = np.count_nonzero(fg_new ^ fg) / max(1, np.count_nonzero(fg_new))
        fg = fg_new
        n_passes += 1
        if changed < 0.01:
            break
    tick("detect")
    # full-resolution contrast with the final support, in bands of rows (cache-sized temporaries)
    y = np.empty(x.shape, np.float32)
    for a in range(0, h, 256):
        rows = slice(a, min(a + 256, h))
        bg = _upsample(bgb, kb, x.shape, rows=rows)
        bg[np.abs(bg) < 1e-12] = 1e-12
        y[rows] = (x[rows] / bg - 1.0) if positive else (x[rows] - bg)
    y *= sign
    lab_c, _ = ndi.label(lab_c > 0)
    smoother = _Smoother(y)
    tick("contrast")
    refined = _refine(smoother, lab_c, f, yd, s, sig_d, edge_fraction)
    tick("refine")
    if split_touching:
        sig_s = max(SPLIT_SIGMA_MIN, 0.5 * sig_d)
        ns = s * _gauss_noise_factor(sig_s)
        labels = _split_components(refined, lambda r, c: smoother.crop(sig_s, r, c), min_peak=k_high * ns,
                                   neck_ratio=neck_ratio, dip_ratio=dip_ratio, dip_noise=k_low * 1.5 * ns)
    else:
        labels = ndi.label(refined)[0].astype(np.int32)
    a1 = _monodisperse_area(labels) if split_touching else None
    if a1 is not None:  # a monodisperse field of round particles: clusters split by the size prior
        labels = _split_by_size_prior(labels, a1)
    d_min = (min_size_nm * 10.0 / px) if min_size_nm is not None else 1.5 * sig_d
    area_min = np.pi * (d_min / 2) ** 2
    areas = np.bincount(labels.ravel())
    small = areas < area_min
    small[0] = False
    labels[small[labels]] = 0
    labels = _relabel(labels)
    tick("instances")
    if return_details:
        return labels, {"polarity": polarity, "noise_rel": s, "sigma_detect_px": sig_d, "pyramid_level": f,
                        "background_passes": n_passes, "size_prior_area_px": a1, "cpu_seconds": timings}
    return labels


def _refine(smoother: _Smoother, lab_c: np.ndarray, f: int, yd: np.ndarray, s: float, sig_d: float,
            edge_fraction: float | None, noise_ratio: float = 8.0) -> np.ndarray:
    """Per-object boundary at ``edge_fraction`` of the object's contrast, on the lightest
    Gaussian whose noise is below ``1/noise_ratio`` of that contrast; objects ``lab_c`` are on
    the ``f``-block grid (with the detection image ``yd``), the result at full resolution."""
    y = smoother.y
    h, w = y.shape
    out = np.zeros(y.shape, bool)
    n = int(lab_c.max())
    if n == 0:
        return out
    grow = int(np.ceil(REFINE_GROW_PER_SIGMA * sig_d)) + 2
    fracs = np.asarray(EDGE_FRACTIONS)
    for i, sl in enumerate(ndi.find_objects(lab_c), start=1):
        if sl is None:
            continue
        reg = lab_c[sl] == i
        peak = _quantiles(yd[sl][reg], (0.9,))[0]
        if not peak > 0:
            continue
        r0, r1 = sl[0].start * f, min(sl[0].stop * f, h)
        c0, c1 = sl[1].start * f, min(sl[1].stop * f, w)
        rows = slice(max(r0 - grow, 0), min(r1 + grow, h))
        cols = slice(max(c0 - grow, 0), min(c1 + grow, w))
        if f > 1:
            reg = np.repeat(np.repeat(reg, f, axis=0), f, axis=1)[:r1 - r0, :c1 - c0]
        region = np.zeros((rows.stop - rows.start, cols.stop - cols.start), bool)
        region[r0 - rows.start:r1 - rows.start, c0 - cols.start:c1 - cols.start] = reg
        sig = SIGMAS_PX[-1]
        for cand in SIGMAS_PX:
            if s * _gauss_noise_factor(cand) <= peak / noise_ratio:
                sig = cand
                break
        sig = max(sig, 1.0)
        ys = smoother.crop(sig, rows, cols)
        core = region & (ys > 0.5 * peak)
        level = _quantiles(ys[core], (0.5,))[0] if core.any() else peak
        # the zone the object may grow into: its box grown by ``grow`` px
        if edge_fraction is None:  # the iso-level of steepest mean gradient along its contour
            gr, gc = np.gradient(ys)
            g = np.hypot(gr, gc)
            lo = np.concatenate([np.minimum(ys[1:], ys[:-1]).ravel(), np.minimum(ys[:, 1:], ys[:, :-1]).ravel()])
            hi = np.concatenate([np.maximum(ys[1:], ys[:-1]).ravel(), np.maximum(ys[:, 1:], ys[:, :-1]).ravel()])
            gp = 0.5 * np.concatenate([(g[1:] + g[:-1]).ravel(), (g[:, 1:] + g[:, :-1]).ravel()])
            # mean gradient over the 4-neighbour pixel pairs each candidate iso-line t_k crosses
            # (lo <= t_k < hi: k in [first t >= lo, first t >= hi)), by difference arrays
            nk = len(fracs) + 1
            f0, df = fracs[0] * level, (fracs[1] - fracs[0]) * level
            k_lo = np.clip(np.ceil((lo - f0) / df), 0, nk - 1).astype(np.intp)
            k_hi = np.clip(np.ceil((hi - f0) / df), 0, nk - 1).astype(np.intp)
            cnt = np.cumsum(np.bincount(k_lo, minlength=nk) - np.bincount(k_hi, minlength=nk))[:-1]
            gsum = np.cumsum(np.bincount(k_lo, gp, minlength=nk) - np.bincount(k_hi, gp, minlength=nk))[:-1]
            score = np.where(cnt > 0, gsum / np.maximum(cnt, 1), -np.inf)
            if np.isfinite(score).any():
                kbest = int(np.argmax(score))
                best, frac = float(score[kbest]), float(EDGE_FRACTIONS[kbest])
            else:
                best, frac = -1.0, 0.4
            # a domed profile (sphere, rod: contrast ~ sqrt of the distance to the edge) has its
            # steepest point ~0.55 sigma inside the true edge; flat ones (cube, plate) at it.
            # Move the contour out by that much, scaled by how domed the object is.
            inside = region & (ys > frac * level)
            if inside.any():
                p50, p95 = _quantiles(ys[inside], (0.5, 0.95))
                flat = float(p50 / max(p95, 1e-12))
            else:
                flat = 1.0
            dome = float(np.clip((0.92 - flat) / 0.2, 0.0, 1.0))
            shift = dome * DOME_SHIFT * float(np.hypot(sig, 1.0))
            thr = frac * level - shift * max(best, 0.0)
        else:
            thr = edge_fraction * level
        m = ys > thr
        ml, nl = ndi.label(m, _CROSS)
        keep = np.bincount(ml[region & m], minlength=nl + 1) > 0
        keep[0] = False
        m = keep[ml]
        if BOUNDARY_SMOOTH_PX > 0:  # mean-curvature-like smoothing of pixel-scale boundary noise
            m = _gauss(m.astype(np.float32), BOUNDARY_SMOOTH_PX) > 0.5
        out[rows, cols] |= m
    return _open_cross(_fill_holes(out))
