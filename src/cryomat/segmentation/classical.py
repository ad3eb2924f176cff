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
   Then the edge fit (:mod:`cryomat.segmentation.edge`): the mean contrast profile across the
   outline is fitted with a blurred step (cube, plate) or a blurred circular dome (sphere, rod)
   and the outline moved to the fitted edge, which removes the threshold's shape-dependent size
   bias (domes came out 3-5 % small, flat objects 1-2 % large); flat objects' corners are then
   redrawn at their step's half height on a 1.5 px Gaussian. With the fit, the first threshold is
   a fixed ``INITIAL_EDGE_FRACTION`` of the contrast (the fit places the edge; a low level keeps
   faint parts connected); without it (``EDGE_FIT = False``) the iso-level of steepest gradient.
5. Instances: connected components; ``split_touching=True`` over-segments with a watershed of
   the smoothed contrast and merges regions back unless the contrast dips between them or the
   distance-map neck is narrow (:mod:`cryomat.segmentation.split`): touching particles split,
   fused aggregates with thick necks and no dip stay one object. This runs on tiles of 256 px
   (one watershed per tile), not over the whole image. When the field is a monodisperse
   population of round particles, objects of >= 1.6 single-particle areas are then split into
   ``round(area / single area)`` parts by k-means of their pixels: clusters of spheres that
   overlap in projection (HAADF multilayers) have neither a neck nor a contrast dip. Mixed
   shapes or sizes never trigger it. Before that, objects whose outline has two lobes are split
   along the contrast valley between them when the contrast along the whole contact line is low
   (:func:`cryomat.segmentation.split.split_contacts`: touching particles whose 1 px gap the
   splitting Gaussian had blurred away; fused aggregates are thick at the junction).
6. Outline fit at low dose (``outline_fit``; by default when the detection blur is >= 7 px,
   ~0.5 e/A^2 and below at 5 A/px): every object's outline is refitted as a smooth closed curve
   to the unsmoothed contrast (:mod:`cryomat.segmentation.contour`): at 0.3 e/A^2 the steps
   above leave sizes 4-7 % off (the wide Gaussian's shape and offset), the fit ~2 %.

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

from cryomat.segmentation.pyramid import (_CROSS, _Smoother, _block_mean, _dilate_square, _fill_holes, _gauss,
                                          _interp_index, _level_sigma, _open_cross, _pyramid_level, _quantiles,
                                          _upsample)
from cryomat.segmentation.split import (_monodisperse_area, _relabel, _split_by_size_prior,  # noqa: F401
                                        _split_components, split_contacts, split_touching_objects)

EDGE_FRACTIONS = tuple(np.round(np.arange(0.15, 0.76, 0.05), 2))
DOME_SHIFT = 0.45
SPLIT_SIGMA_MIN = 0.7
BOUNDARY_SMOOTH_PX = 1.5
REFINE_GROW_PER_SIGMA = 2.0  # an object may grow 2 sigma_d + 2 px beyond its detection mask (1.2: F1 -0.04 at 0.3 e/A^2)
SIGMAS_PX = (0.0, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
EDGE_FIT = True
# the outline fit (:mod:`cryomat.segmentation.contour`) runs by default (``outline_fit=None``)
# when the detection blur is at least this wide: at 0.3 e/A^2 (9 px) threshold outlines miss the
# size by 4-7 % and the fit brings that to ~2 %; at 1 e/A^2 (5 px) they are within 2 % and the
# fit (~10 ms per object) would cost 6x the rest of the segmentation
OUTLINE_FIT_MIN_SIGMA_PX = 7.0
INITIAL_EDGE_FRACTION = 0.3  # with the edge fit (0.3-0.45 within 0.01 F1; 0.3 keeps faint plates whole)
# ... while the detection blur is below this: wider (0.3 e/A^2: 9 px), the 0.3 iso-line of the
# blurred contrast lies beyond the fit's search range and the steepest-gradient level is kept
INITIAL_FRACTION_MAX_SIGMA_PX = 7.0  # (1 e/A^2: 5 px)
EDGE_BLUR_PX = 0.4
EDGE_FIT_SIGMA_MAX = 8.0
CONTACT_DIP_RATIO = 0.75
CONTACT_SIGMA_PX = 1.0
CORNER_SIGMA_PX = 1.5
CORNER_NOISE_RATIO = 6.0
CORNER_BAND_PX = 2.0
CORNER_SMOOTH_PX = 1.0
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
        xs = _block_mean(x, k)
        ws = np.ones_like(xs)
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
    i0, i1, t = _interp_index(bgb.shape[0], k, 0, h)
    c0, c1, tc = _interp_index(bgb.shape[1], k, 0, x.shape[1])
    for r in rows:
        bg = np.empty((r.size, x.shape[1]), np.float32)
        for a in range(0, r.size, 256):  # rows of the interpolated background, in chunks
            rr = r[a:a + 256]
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


def segment_classical(image, *, pixel_size: float, dose_e_per_A2: float | None = None,
                      min_size_nm: float | None = None, split_touching: bool = False,
                      polarity: str = "auto", k_high: float = 6.0, k_low: float = 3.0,
                      edge_fraction: float | None = None, neck_ratio: float = 0.55, dip_ratio: float = 0.9,
                      detect_noise: float = 0.012, n_background_passes: int = 4,
                      outline_fit: bool | None = None, return_details: bool = False):
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
    edge_fraction : first boundary level as a fraction of each object's median contrast; None:
        ``INITIAL_EDGE_FRACTION`` when the edge fit is on (default) and the detection blur is
        below ``INITIAL_FRACTION_MAX_SIGMA_PX``, else the level of steepest gradient along the
        outline.
    neck_ratio : split when saddle distance < ``neck_ratio`` x the thinner side's radius.
    dip_ratio : split when the contrast saddle between two maxima is < ``dip_ratio`` x the
        lower peak (and significantly so against the noise); see :func:`split_touching_objects`.
    detect_noise : target relative noise std after detection smoothing (sets sigma_d).
    outline_fit : fit each object's outline as a smooth closed curve to the unsmoothed contrast
        (:func:`cryomat.segmentation.contour.refine_outlines`); None (default): when the
        detection blur is >= ``OUTLINE_FIT_MIN_SIGMA_PX`` (low dose, ~0.5 e/A^2 and below at 5 A/px).
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
    if edge_fraction is None and EDGE_FIT and sig_d < INITIAL_FRACTION_MAX_SIGMA_PX:
        edge_fraction = INITIAL_EDGE_FRACTION
    refined = _refine(smoother, lab_c, f, yd, s, sig_d, edge_fraction)
    tick("refine")
    if split_touching:
        sig_s = max(SPLIT_SIGMA_MIN, 0.5 * sig_d)
        ns = s * _gauss_noise_factor(sig_s)
        multi = np.zeros(refined.shape, bool)
        labels = _split_components(refined, lambda r, c: smoother.crop(sig_s, r, c), min_peak=k_high * ns,
                                   multi_out=multi,
                                   neck_ratio=neck_ratio, dip_ratio=dip_ratio, dip_noise=k_low * 1.5 * ns)
    else:
        labels = ndi.label(refined)[0].astype(np.int32)
    if split_touching and CONTACT_DIP_RATIO > 0:
        labels = split_contacts(labels, lambda r, c: smoother.crop(CONTACT_SIGMA_PX, r, c),
                                s * _gauss_noise_factor(CONTACT_SIGMA_PX), dip_ratio=CONTACT_DIP_RATIO,
                                candidates=multi)
    a1 = _monodisperse_area(labels) if split_touching else None
    if a1 is not None:  # a monodisperse field of round particles: clusters split by the size prior
        labels = _split_by_size_prior(labels, a1)
    if outline_fit is None:
        outline_fit = sig_d >= OUTLINE_FIT_MIN_SIGMA_PX
    if outline_fit:
        from cryomat.segmentation.contour import refine_outlines

        labels = refine_outlines(labels, y, s)
        tick("outline_fit")
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
                        "background_passes": n_passes, "size_prior_area_px": a1, "outline_fit": bool(outline_fit),
                        "cpu_seconds": timings}
    return labels


def _edge_fit(m, ys, sig, lab_c, i, f, rows, cols, smoother=None, noise=0.0):
    """Move the outline of ``m`` (a crop) to the edge fitted to the mean contrast profile across
    it (:func:`cryomat.segmentation.edge.fit_edge`), leaving other objects' pixels out."""
    from cryomat.segmentation.edge import EDGE_SEARCH_PX, fit_edge, offset_outline, signed_distance

    se = float(np.hypot(sig, EDGE_BLUR_PX))
    # work on the object's box plus the fitted band only
    pad = int(np.ceil(3 * se + EDGE_SEARCH_PX + 2))
    rr, cc = np.nonzero(np.any(m, axis=1))[0], np.nonzero(np.any(m, axis=0))[0]
    a0, a1 = max(rr[0] - pad, 0), min(rr[-1] + 1 + pad, m.shape[0])
    b0, b1 = max(cc[0] - pad, 0), min(cc[-1] + 1 + pad, m.shape[1])
    mb, ysb = m[a0:a1, b0:b1], ys[a0:a1, b0:b1]
    rows_b = slice(rows.start + a0, rows.start + a1)
    cols_b = slice(cols.start + b0, cols.start + b1)
    sd = signed_distance(mb)
    rc = slice(rows_b.start // f, -(-rows_b.stop // f))
    ccs = slice(cols_b.start // f, -(-cols_b.stop // f))
    lc = lab_c[rc, ccs]
    if f > 1:
        lc = np.repeat(np.repeat(lc, f, axis=0), f, axis=1)
    r0, c0 = rows_b.start - rc.start * f, cols_b.start - ccs.start * f
    lc = lc[r0:r0 + mb.shape[0], c0:c0 + mb.shape[1]]
    use = ~((lc > 0) & (lc != i)) | mb
    e, shape, b, a = fit_edge(ysb[use], sd[use], se, radius=float(sd.max()) + 0.5, return_levels=True)
    if shape == "none":
        return _gauss(m.astype(np.float32), BOUNDARY_SMOOTH_PX) > 0.5 if BOUNDARY_SMOOTH_PX > 0 else m
    new = offset_outline(sd, e)
    if (shape == "step" and smoother is not None and CORNER_SIGMA_PX > 0 and sig > CORNER_SIGMA_PX
            and CORNER_NOISE_RATIO * noise * _gauss_noise_factor(CORNER_SIGMA_PX) <= a):
        # a flat object's corners, rounded by the wide Gaussian's iso-line: near the outline the
        # half-height of its step on a light Gaussian instead (when its noise is small against
        # the step: at 0.3 e/A^2 noise pixels would grow the outline)
        band = max(CORNER_BAND_PX, se)
        yl = smoother.crop(CORNER_SIGMA_PX, rows_b, cols_b)
        near = (sd > e - band) & (sd <= e + band) & use
        new = (sd > e + band) | (near & (yl > b + 0.5 * a))
        new = _gauss(new.astype(np.float32), CORNER_SMOOTH_PX) > 0.5
    out = np.zeros_like(m)
    out[a0:a1, b0:b1] = new
    return out


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
        if BOUNDARY_SMOOTH_PX > 0 and not EDGE_FIT:  # mean-curvature-like smoothing of pixel-scale noise
            m = _gauss(m.astype(np.float32), BOUNDARY_SMOOTH_PX) > 0.5
        if EDGE_FIT and m.any():  # (the edge fit's offset smooths the outline as well)
            sf = min(sig, EDGE_FIT_SIGMA_MAX)
            m = _edge_fit(m, ys if sf == sig else smoother.crop(sf, rows, cols), sf, lab_c, i, f, rows, cols,
                          smoother, s)
        out[rows, cols] |= m
    return _open_cross(_fill_holes(out))
