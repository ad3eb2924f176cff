"""Feature maps of a low-magnification atlas, each on the atlas pixel grid.

- relative thickness t/lambda = ln(I0 / I) from an empty-beam reference (Beer-Lambert for
  the inelastically scattered fraction, as in log-ratio EELS thickness; Rice et al. 2018,
  doi:10.1016/j.jsb.2018.06.007 for ice-thickness filtering on atlases),
- exclusion mask: opaque grid bars, contamination (far thicker than the film), image border,
- edges: gradient magnitude of the smoothed thickness map,
- crystallinity: peak-to-background ratio of local power spectra (tiles),
- object density: objects per um^2 in a field-of-view window, from the segmentation.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def estimate_reference(image, *, percentile: float = 99.5) -> float:
    """Empty-beam counts per pixel when no reference image is given: a high percentile of the
    smoothed atlas (the thinnest film), so thickness is relative to the thinnest area."""
    sm = ndi.uniform_filter(np.asarray(image, np.float64), 5)
    return float(np.percentile(sm, percentile))


def thickness_map(image, *, reference_counts: float, smooth_px: float = 2.0) -> np.ndarray:
    """t/lambda = ln(I0 / I) per pixel, smoothed by ``smooth_px`` (Gaussian sigma, px)."""
    if reference_counts <= 0:
        raise ValueError(f"reference_counts must be positive, got {reference_counts!r}")
    sm = np.asarray(image, np.float64)
    if smooth_px > 0:
        sm = ndi.gaussian_filter(sm, smooth_px)
    return np.log(reference_counts / np.clip(sm, 1e-3 * reference_counts, None))


def exclusion_mask(t_over_lambda, *, max_t_over_lambda: float = 2.0, border_px: int = 0,
                   grow_px: int = 2, min_area_px: float = 30) -> np.ndarray:
    """True where no target may lie: opaque or far too thick (bars, contamination; connected areas
    of at least ``min_area_px`` pixels) and the border."""
    bad = np.asarray(t_over_lambda) > max_t_over_lambda
    # contamination and bars are large: drop isolated dense particles from the mask
    lab, n = ndi.label(bad)
    if n:
        sizes = ndi.sum_labels(np.ones_like(lab), lab, index=np.arange(1, n + 1))
        big = np.zeros(n + 1, bool)
        big[1:] = sizes >= min_area_px
        bad = big[lab]
    if grow_px:
        bad = ndi.binary_dilation(bad, iterations=grow_px)
    if border_px:
        bad[:border_px] = bad[-border_px:] = True
        bad[:, :border_px] = bad[:, -border_px:] = True
    return bad


def background_thickness(t_over_lambda, exclude, *, scale_px: float) -> np.ndarray:
    """Film thickness without the particles: a large-window median-like smoothing (masked)."""
    t = np.where(exclude, np.nan, t_over_lambda)
    small = max(1, int(scale_px // 4))
    coarse = t[::small, ::small]
    fill = np.nanmedian(coarse) if np.isfinite(coarse).any() else 0.0
    coarse = np.where(np.isfinite(coarse), coarse, fill)
    med = ndi.median_filter(coarse, size=max(3, int(scale_px / small)))
    zoom = (t.shape[0] / med.shape[0], t.shape[1] / med.shape[1])
    return ndi.zoom(med, zoom, order=1)[: t.shape[0], : t.shape[1]]


def block_mean(image, factor: int) -> np.ndarray:
    """Mean over ``factor`` x ``factor`` pixel blocks (float32); a ragged last row/column of blocks
    averages the pixels it has."""
    a = np.asarray(image, np.float32)
    if factor <= 1:
        return a
    nr, nc = -(-a.shape[0] // factor), -(-a.shape[1] // factor)
    pr, pc = nr * factor - a.shape[0], nc * factor - a.shape[1]
    if pr or pc:
        a = np.pad(a, ((0, pr), (0, pc)), mode="edge")
    return a.reshape(nr, factor, nc, factor).mean(axis=(1, 3), dtype=np.float32)


def excess_mass(t_over_lambda, film_t_over_lambda, exclude, *, n_sigma: float = 3.0) -> np.ndarray:
    """Thickness above the film beyond ``n_sigma`` x the robust noise (t/lambda per pixel): a cheap
    proxy of where dense objects lie, used to decide which areas to segment."""
    ex = np.asarray(t_over_lambda) - np.asarray(film_t_over_lambda)
    vals = ex[~exclude] if (~exclude).any() else ex.ravel()
    vals = vals[:: max(1, vals.size // 200_000)]
    med = np.median(vals)
    sigma = 1.4826 * np.median(np.abs(vals - med))
    return np.where(exclude, 0.0, np.clip(ex - med - n_sigma * sigma, 0, None))


def edge_map(t_over_lambda, *, sigma_px: float = 3.0) -> np.ndarray:
    """Gradient magnitude of the thickness map (t/lambda per px)."""
    return ndi.gaussian_gradient_magnitude(np.asarray(t_over_lambda, np.float64), sigma_px)


def crystallinity_map(image, *, tile_px: int = 64, step_px: int | None = None, band=(0.08, 0.45),
                      out_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Peak-to-median ratio of local power spectra in an annulus of ``band`` cycles/px.

    Amorphous film gives ~ the ratio of an exponential maximum (~ln of the pixel count, 5-10);
    a lattice or periodic texture gives a strong isolated peak. Tiles of one row are transformed
    together (real FFT, half plane: the power spectrum of a real tile is symmetric). Returned
    interpolated to ``out_shape`` (default: the image's shape; pass the binned atlas grid to
    avoid a full-resolution map of a large atlas).
    """
    import scipy.fft as sfft
    from numpy.lib.stride_tricks import sliding_window_view

    from cryomat.fourier import window

    a = np.asarray(image, np.float32)
    step = step_px or tile_px // 2
    win = window((tile_px, tile_px), "hann").astype(np.float32)
    kr = np.fft.fftfreq(tile_px)[:, None]
    kc = np.fft.rfftfreq(tile_px)[None, :]
    k = np.hypot(kr, kc)
    ring = (k >= band[0]) & (k <= band[1])
    rows = range(0, max(1, a.shape[0] - tile_px + 1), step)
    n_cols = len(range(0, max(1, a.shape[1] - tile_px + 1), step))
    out = np.zeros((len(rows), n_cols))
    for i, r in enumerate(rows):
        strip = a[r:r + tile_px]
        if strip.shape[0] < tile_px or strip.shape[1] < tile_px:  # image smaller than one tile
            strip = np.pad(strip, ((0, max(0, tile_px - strip.shape[0])), (0, max(0, tile_px - strip.shape[1]))),
                           mode="reflect")
        tiles = sliding_window_view(strip, (tile_px, tile_px))[0, ::step][:n_cols]
        tiles = (tiles - tiles.mean(axis=(1, 2), keepdims=True)) * win
        ps = np.abs(sfft.rfft2(tiles, workers=-1)) ** 2
        ps = ps[:, ring]
        out[i] = ps.max(axis=1) / (np.median(ps, axis=1) + 1e-12)
    shape = tuple(out_shape) if out_shape is not None else a.shape
    zoom = (shape[0] / out.shape[0], shape[1] / out.shape[1])
    return ndi.zoom(out, zoom, order=1)[: shape[0], : shape[1]]


def density_map(points_rc, shape, *, window_px: float, pixel_size_A: float, weights=None) -> np.ndarray:
    """Objects per um^2 within a square window of ``window_px`` around each pixel."""
    m = np.zeros(shape)
    pts = np.asarray(points_rc, float).reshape(-1, 2)
    if pts.size:
        r = np.clip(np.rint(pts[:, 0]).astype(int), 0, shape[0] - 1)
        c = np.clip(np.rint(pts[:, 1]).astype(int), 0, shape[1] - 1)
        np.add.at(m, (r, c), 1.0 if weights is None else np.asarray(weights, float))
    w = max(1, int(round(window_px)))
    counts = ndi.uniform_filter(m, w, mode="constant") * w * w
    area_um2 = (w * pixel_size_A / 1e4) ** 2
    return counts / area_um2
