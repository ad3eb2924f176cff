"""Classical, dose-aware instance segmentation of particles in low-dose images.

Pipeline (:func:`segment_classical`):

1. Relative contrast: the image is divided by a smooth support background (estimated with the
   particles masked out, twice) so that particles read as a positive contrast ``y``
   (polarity ``auto`` from the sign of the skewness: dark in bright field, bright in HAADF).
2. Noise: per-pixel noise ``s`` from the Poisson expectation when the dose is known
   (``1/sqrt(counts per pixel)``), else from the median absolute deviation of a high-pass.
3. Detection: a Gaussian of width ``sigma_d`` chosen from ``s`` (dose-aware: more smoothing
   at lower dose) and hysteresis thresholding at ``k_high``/``k_low`` times the smoothed noise.
4. Boundary refinement per object: the threshold is placed at ``edge_fraction`` of the
   object's own contrast on a lighter Gaussian (the lightest one whose noise is small against
   that contrast), so faint plates and strong cubes both get their true edge.
5. Instances: connected components; ``split_touching=True`` over-segments with a watershed of
   the smoothed contrast and merges regions back unless the contrast dips between them or the
   distance-map neck is narrow (:func:`split_touching_objects`): touching particles split,
   fused aggregates with thick necks and no dip stay one object.

References
----------
Canny, A computational approach to edge detection (hysteresis), IEEE PAMI 8, 679 (1986),
doi:10.1109/TPAMI.1986.4767851; Anscombe, Biometrika 35, 246 (1948), doi:10.1093/biomet/35.3-4.246;
Beucher & Meyer, The morphological approach to segmentation: the watershed transformation (1993),
doi:10.1201/9781482277234-12; Vincent & Soille (1991), doi:10.1109/34.87344.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

EDGE_FRACTIONS = tuple(np.round(np.arange(0.15, 0.76, 0.05), 2))
DOME_SHIFT = 0.45
SPLIT_SIGMA_MIN = 0.7
BOUNDARY_SMOOTH_PX = 1.5
SIGMAS_PX = (0.0, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)


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
    h, w = a.shape
    ph, pw = (-h) % k, (-w) % k
    a = np.pad(a, ((0, ph), (0, pw)), mode="edge") if (ph or pw) else a
    return a.reshape(a.shape[0] // k, k, a.shape[1] // k, k).mean(axis=(1, 3))


def _background(x: np.ndarray, mask: np.ndarray | None, scale: float) -> np.ndarray:
    """Smooth support level by normalised convolution with the objects masked out, computed on
    block means (``scale``/4 px blocks) and interpolated back."""
    w = np.ones_like(x) if mask is None else (~mask).astype(x.dtype)
    k = max(1, int(scale // 4))
    xs, ws = _block_mean(x * w, k), _block_mean(w, k)
    s = scale / k
    num = ndi.gaussian_filter(xs, s, mode="reflect")
    den = ndi.gaussian_filter(ws, s, mode="reflect")
    fill = np.median(x[w > 0]) if np.any(w > 0) else np.median(x)
    bg = np.where(den > 1e-3, num / np.maximum(den, 1e-3), fill)
    if k == 1:
        return bg
    out = ndi.zoom(bg, k, order=1, grid_mode=True, mode="nearest")
    return out[: x.shape[0], : x.shape[1]]


def relative_contrast(image, *, polarity: str = "auto", mask=None, background_px: float = 64.0):
    """``(y, polarity)``: particle contrast relative to the support (positive on particles)."""
    x = np.asarray(image, dtype=np.float64)
    bg = _background(x, mask, background_px)
    bg = np.where(np.abs(bg) < 1e-12, 1e-12, bg)
    y = x / bg - 1.0 if np.median(bg) > 0 else x - bg
    if polarity == "auto":
        ys = ndi.gaussian_filter(y, 2.0)[::2, ::2]
        m, sd = ys.mean(), ys.std() + 1e-12
        skew = float(np.mean(((ys - m) / sd) ** 3))
        polarity = "dark" if skew < 0 else "bright"
    if polarity not in ("dark", "bright"):
        raise ValueError(f"polarity must be 'auto', 'dark' or 'bright', got {polarity!r}")
    return (-y if polarity == "dark" else y).astype(np.float32), polarity


def _pair_saddles(lab: np.ndarray, value: np.ndarray):
    """For every pair of 4-adjacent regions: the highest min(value) across their shared boundary.

    Returns arrays ``(i, j, saddle)`` with i < j."""
    import pandas as pd

    parts = []
    for axis in (0, 1):
        n = lab.shape[axis]
        a, b = lab.take(np.arange(n - 1), axis=axis), lab.take(np.arange(1, n), axis=axis)
        va, vb = value.take(np.arange(n - 1), axis=axis), value.take(np.arange(1, n), axis=axis)
        sel = (a != b) & (a > 0) & (b > 0)
        parts.append(pd.DataFrame({"i": np.minimum(a[sel], b[sel]), "j": np.maximum(a[sel], b[sel]),
                                   "v": np.minimum(va[sel], vb[sel])}))
    df = pd.concat(parts, ignore_index=True)
    if not len(df):
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    g = df.groupby(["i", "j"], sort=False)["v"].max().reset_index()
    return g["i"].to_numpy(), g["j"].to_numpy(), g["v"].to_numpy()


def split_touching_objects(mask: np.ndarray, contrast: np.ndarray, *, min_peak: float, neck_ratio: float = 0.55,
                           dip_ratio: float = 0.8, dip_noise: float = 0.0) -> np.ndarray:
    """Split a foreground mask into touching particles; keep fused aggregates whole.

    Over-segments with a watershed of the smoothed ``contrast`` from its local maxima above
    ``min_peak``, then merges two adjacent regions back unless the contact is a real gap:
    the contrast saddle between them is below ``dip_ratio`` x the lower of the two peaks
    (projected thickness drops between separate particles) and more than ``dip_noise`` below
    it (so that noise maxima on a flat particle do not split it), or the distance-map saddle is below
    ``neck_ratio`` x the thinner region's inscribed radius (a narrow neck). Fused spheres
    (centre distance < ~1.4 radii) fail both tests and stay one object.
    """
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    comp, ncomp = ndi.label(mask)
    if ncomp == 0:
        return comp.astype(np.int32)
    dist = ndi.distance_transform_edt(mask)
    coords = peak_local_max(np.where(mask, contrast, contrast.min()), min_distance=2, threshold_abs=min_peak,
                            labels=comp, exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(coords.T)] = np.arange(1, len(coords) + 1)
    # components without a maximum above min_peak keep one marker at their deepest point
    has = np.zeros(ncomp + 1, bool)
    has[comp[tuple(coords.T)]] = True
    for k in np.nonzero(~has[1:])[0] + 1:
        pos = ndi.maximum_position(dist, comp, k)
        markers[pos] = markers.max() + 1
    lab = watershed(-contrast, markers, mask=mask)
    n = int(lab.max())
    peak_c = _label_max(contrast, lab, n)
    peak_d = _label_max(dist, lab, n)
    i, j, sc = _pair_saddles(lab, contrast)
    _, _, sd = _pair_saddles(lab, dist)
    parent = np.arange(n + 1)

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    low = np.minimum(peak_c[i], peak_c[j])
    dip = (sc < dip_ratio * low) & (low - sc > dip_noise)
    merge = ~dip & (sd >= neck_ratio * np.minimum(peak_d[i], peak_d[j]))
    order = np.argsort(-sc)
    for k in order:
        if merge[k]:
            ri, rj = find(i[k]), find(j[k])
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    remap = np.array([find(k) for k in range(n + 1)])
    return _relabel(remap[lab])


def _relabel(lab: np.ndarray) -> np.ndarray:
    """Consecutive labels 1..N (0 stays background), in order of the old labels; O(pixels)."""
    lab = np.asarray(lab)
    present = np.bincount(lab.ravel()) > 0
    present[0] = False
    lut = np.zeros(present.size, np.int32)
    lut[present] = np.arange(1, int(present.sum()) + 1, dtype=np.int32)
    return lut[lab]


def _label_max(values: np.ndarray, lab: np.ndarray, n: int) -> np.ndarray:
    """Maximum of ``values`` per label 0..n (no sorting)."""
    out = np.full(n + 1, -np.inf)
    m = lab > 0
    np.maximum.at(out, lab[m], values[m])
    return out


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
    pixel_size : A per pixel.
    dose_e_per_A2 : fluence (e/A^2) of the image; sets the Poisson noise model. None: noise
        estimated from the image.
    min_size_nm : smallest equivalent diameter kept (nm); default 1.5 x the detection blur.
    split_touching : split touching particles at narrow necks (aggregates with thick necks
        stay whole); False keeps every connected object.
    polarity : ``"auto"``, ``"dark"`` (bright field) or ``"bright"`` (HAADF).
    k_high, k_low : hysteresis thresholds in units of the smoothed noise std.
    edge_fraction : boundary level as a fraction of each object's median contrast.
    neck_ratio : split when saddle distance < ``neck_ratio`` x the thinner side's radius.
    dip_ratio : split when the contrast saddle between two maxima is < ``dip_ratio`` x the
        lower peak (and significantly so against the noise); see :func:`split_touching_objects`.
    detect_noise : target relative noise std after detection smoothing (sets sigma_d).
    """
    x = np.asarray(image, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"image must be 2D, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        x = np.where(np.isfinite(x), x, np.nanmedian(x))
    px = float(pixel_size)
    if not np.isfinite(px) or px <= 0:
        raise ValueError(f"pixel_size must be a positive number of Angstrom, got {pixel_size!r}")
    if dose_e_per_A2 is not None and not (np.isfinite(dose_e_per_A2) and dose_e_per_A2 > 0):
        raise ValueError(f"dose_e_per_A2 must be positive, got {dose_e_per_A2!r}")
    if np.ptp(x) == 0:
        return np.zeros(x.shape, np.int32)
    y, pol = relative_contrast(x, polarity=polarity)
    s = _robust_noise(y)
    if dose_e_per_A2 is not None:
        s_pois = 1.0 / np.sqrt(max(dose_e_per_A2 * px * px * max(np.median(x) / (dose_e_per_A2 * px * px), 1e-6), 1e-6))
        s = max(s, s_pois) if np.isfinite(s_pois) else s
    s = max(s, 1e-6)
    sig_d = float(np.clip(s * _gauss_noise_factor(1.0) / detect_noise, 1.0, 10.0))
    yd = ndi.gaussian_filter(y, sig_d, truncate=3.0)
    nd = s * _gauss_noise_factor(sig_d)
    fg = yd > k_low * nd
    seeds = yd > k_high * nd
    lab0, n0 = ndi.label(fg)
    keep = np.zeros(n0 + 1, bool)
    keep[np.unique(lab0[seeds])] = True
    keep[0] = False
    fg = keep[lab0]
    # background passes with the objects masked, until the foreground stops growing (dense
    # fields bias the first estimate towards the particles)
    for _ in range(n_background_passes):
        y, _ = relative_contrast(x, polarity=pol, mask=ndi.binary_dilation(fg, iterations=int(2 * sig_d) + 1))
        yd = ndi.gaussian_filter(y, sig_d, truncate=3.0)
        fg_new = yd > k_low * nd
        seeds = yd > k_high * nd
        lab0, n0 = ndi.label(fg_new)
        keep = np.zeros(n0 + 1, bool)
        keep[np.unique(lab0[seeds])] = True
        keep[0] = False
        lab0 = np.where(keep[lab0], lab0, 0)
        fg_new = lab0 > 0
        changed = np.count_nonzero(fg_new ^ fg) / max(1, np.count_nonzero(fg_new))
        fg = fg_new
        if changed < 0.01:
            break
    refined = _refine(y, lab0, s, sig_d, edge_fraction, yd=yd)
    refined = ndi.binary_fill_holes(refined)
    refined = ndi.binary_opening(refined, iterations=1)
    if split_touching:
        sig_s = max(SPLIT_SIGMA_MIN, 0.5 * sig_d)
        ns = s * _gauss_noise_factor(sig_s)
        ysplit = ndi.gaussian_filter(y, sig_s)
        labels = split_touching_objects(refined, ysplit, min_peak=k_high * ns, neck_ratio=neck_ratio,
                                        dip_ratio=dip_ratio, dip_noise=k_low * 1.5 * ns)
    else:
        labels = ndi.label(refined)[0].astype(np.int32)
    d_min = (min_size_nm * 10.0 / px) if min_size_nm is not None else 1.5 * sig_d
    area_min = np.pi * (d_min / 2) ** 2
    areas = np.bincount(labels.ravel())
    small = areas < area_min
    small[0] = False
    labels[small[labels]] = 0
    labels = _relabel(labels)
    if return_details:
        return labels, {"polarity": pol, "noise_rel": s, "sigma_detect_px": sig_d}
    return labels


def _refine(y: np.ndarray, lab0: np.ndarray, s: float, sig_d: float, edge_fraction: float,
            noise_ratio: float = 8.0, yd: np.ndarray | None = None) -> np.ndarray:
    """Per-object boundary at ``edge_fraction`` of the object's contrast, on the lightest
    Gaussian whose noise is below a tenth of that contrast."""
    out = np.zeros(y.shape, bool)
    n = int(lab0.max())
    if n == 0:
        return out
    smoothed = {}
    grow = int(np.ceil(2 * sig_d)) + 2
    if yd is None:
        yd = ndi.gaussian_filter(y, sig_d, truncate=3.0)
    for i, sl in enumerate(ndi.find_objects(lab0)):
        if sl is None:
            continue
        sl = tuple(slice(max(a.start - grow, 0), min(a.stop + grow, dim)) for a, dim in zip(sl, y.shape))
        region = lab0[sl] == i + 1
        peak = float(np.percentile(yd[sl][region], 90))
        if peak <= 0:
            continue
        sig = SIGMAS_PX[-1]
        for cand in SIGMAS_PX:
            if s * _gauss_noise_factor(cand) <= peak / noise_ratio:
                sig = cand
                break
        sig = max(sig, 1.0)
        if sig not in smoothed:
            smoothed[sig] = ndi.gaussian_filter(y, sig)
        ys = smoothed[sig][sl]
        core = region & (ys > 0.5 * peak)
        level = float(np.median(ys[core])) if np.any(core) else peak
        zone = ndi.binary_dilation(region, iterations=grow)
        if edge_fraction is None:  # the iso-level of steepest mean gradient along its contour
            g = np.hypot(*np.gradient(ys))
            yz = np.where(zone, ys, -np.inf)
            # 4-neighbour pairs inside the zone, with their mean gradient
            pairs = []
            for a, b in ((yz[1:, :], yz[:-1, :]), (yz[:, 1:], yz[:, :-1])):
                ok = np.isfinite(a) & np.isfinite(b)
                pairs.append((np.minimum(a, b)[ok], np.maximum(a, b)[ok]))
            lo = np.concatenate([p[0] for p in pairs])
            hi = np.concatenate([p[1] for p in pairs])
            gp = np.concatenate([0.5 * (g[1:, :] + g[:-1, :])[np.isfinite(yz[1:, :]) & np.isfinite(yz[:-1, :])],
                                 0.5 * (g[:, 1:] + g[:, :-1])[np.isfinite(yz[:, 1:]) & np.isfinite(yz[:, :-1])]])
            best, frac = -1.0, 0.4
            for f in EDGE_FRACTIONS:  # mean gradient over the pixel pairs the iso-line crosses
                t = f * level
                cross = (lo <= t) & (hi > t)
                if cross.any():
                    score = float(gp[cross].mean())
                    if score > best:
                        best, frac = score, f
            # a domed profile (sphere, rod: contrast ~ sqrt of the distance to the edge) has its
            # steepest point ~0.55 sigma inside the true edge; flat ones (cube, plate) at it.
            # Move the contour out by that much, scaled by how domed the object is.
            inside = region & (ys > frac * level)
            flat = float(np.median(ys[inside]) / max(np.percentile(ys[inside], 95), 1e-12)) if inside.any() else 1.0
            dome = float(np.clip((0.92 - flat) / 0.2, 0.0, 1.0))
            shift = dome * DOME_SHIFT * float(np.hypot(sig, 1.0))
            thr = frac * level - shift * max(best, 0.0)
        else:
            thr = edge_fraction * level
        m = (ys > thr) & zone
        ml, _ = ndi.label(m)
        ids = np.unique(ml[region & m])
        ids = ids[ids > 0]
        m = np.isin(ml, ids)
        if BOUNDARY_SMOOTH_PX > 0:  # mean-curvature-like smoothing of pixel-scale boundary noise
            m = ndi.gaussian_filter(m.astype(np.float32), BOUNDARY_SMOOTH_PX) > 0.5
        out[sl] |= m
    return out
