"""Composition profiles: along a line with a width, as depth from a surface, and interface positions.

Profiles sum the *counts* (intensity maps and their variances) of all pixels that fall in each
distance bin and quantify the summed counts, which keeps Poisson statistics honest at low dose
(averaging per-pixel at.% would bias low-count pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Profile:
    """Binned sums along a profile.

    Attributes
    ----------
    distance_px : (m,) bin centres along the profile (pixels).
    sums : (n, m) summed values of each input map in each bin.
    variance : (n, m) summed variances (or None).
    npix : (m,) number of pixels per bin.
    """

    distance_px: np.ndarray
    sums: np.ndarray
    variance: np.ndarray | None
    npix: np.ndarray


def _bin(values, variance, coord, valid, edges):
    idx = np.digitize(coord, edges) - 1
    m = len(edges) - 1
    ok = valid & (idx >= 0) & (idx < m)
    flat_idx = idx[ok]
    npix = np.bincount(flat_idx, minlength=m).astype(float)
    v = np.asarray(values, float).reshape(values.shape[0], -1) if values.ndim == 3 else np.asarray(values, float)[None]
    v = v.reshape(v.shape[0], -1)[:, ok.ravel()]
    sums = np.stack([np.bincount(flat_idx, weights=row, minlength=m) for row in v])
    var = None
    if variance is not None:
        w = np.asarray(variance, float).reshape(v.shape[0], -1)[:, ok.ravel()]
        var = np.stack([np.bincount(flat_idx, weights=row, minlength=m) for row in w])
    centres = 0.5 * (edges[:-1] + edges[1:])
    return Profile(distance_px=centres, sums=sums, variance=var, npix=npix)


def line_profile(maps, start, end, *, width_px: float = 1.0, step_px: float = 1.0, variance=None) -> Profile:
    """Sum maps over a rectangle around the segment ``start`` -> ``end``, in bins along it.

    Parameters
    ----------
    maps : (n, row, col) or (row, col) array (e.g. line counts).
    start, end : (row, col) end points in pixels.
    width_px : full width of the band across the line (pixels); each pixel whose centre lies within
        width/2 of the line is counted once, in the bin of its projection.
    step_px : bin length along the line (pixels).
    variance : optional array like ``maps`` of variances to sum alongside.
    """
    maps = np.asarray(maps)
    shape = maps.shape[-2:]
    p0, p1 = np.asarray(start, float), np.asarray(end, float)
    if p0.shape != (2,) or p1.shape != (2,):
        raise ValueError(f"start and end must be (row, col), got {start!r}, {end!r}")
    for p in (p0, p1):
        if not (0 <= p[0] <= shape[0] - 1 and 0 <= p[1] <= shape[1] - 1):
            raise ValueError(f"profile end point {tuple(p)} lies outside the {shape[0]} x {shape[1]} map")
    d = p1 - p0
    length = float(np.hypot(*d))
    if length < 1:
        raise ValueError("the profile must be at least one pixel long")
    if width_px <= 0 or step_px <= 0:
        raise ValueError(f"width_px and step_px must be positive, got {width_px}, {step_px}")
    u = d / length
    rr, cc = np.mgrid[0: shape[0], 0: shape[1]]
    t = (rr - p0[0]) * u[0] + (cc - p0[1]) * u[1]
    s = -(rr - p0[0]) * u[1] + (cc - p0[1]) * u[0]
    valid = np.abs(s) <= width_px / 2.0 + 1e-9
    nb = max(1, int(np.floor(length / step_px + 1e-9)) + 1)
    edges = -0.5 * step_px + step_px * np.arange(nb + 1)
    return _bin(maps, variance, t, valid, edges)


def depth_profile(maps, surface_mask, *, step_px: float = 1.0, max_depth_px: float | None = None,
                  variance=None, signed: bool = True) -> Profile:
    """Sum maps in bins of distance from a surface.

    Parameters
    ----------
    maps : (n, row, col) or (row, col).
    surface_mask : (row, col) bool, True on the reference side (e.g. the lithium metal or the vacuum).
        Depth is the Euclidean distance (pixels) from the mask's edge into the rest of the image;
        with ``signed`` the pixels inside the mask get negative depths.
    step_px : bin width (pixels).
    max_depth_px : ignore pixels deeper than this.
    """
    from scipy import ndimage

    mask = np.asarray(surface_mask).astype(bool)
    maps = np.asarray(maps)
    if mask.shape != maps.shape[-2:]:
        raise ValueError(f"surface mask {mask.shape} does not match the maps {maps.shape[-2:]}")
    if mask.all() or not mask.any():
        raise ValueError("the surface mask must contain both True (reference side) and False pixels")
    outside = ndimage.distance_transform_edt(~mask) - 0.5
    inside = ndimage.distance_transform_edt(mask) - 0.5
    depth = np.where(mask, -inside if signed else np.nan, outside)
    valid = np.isfinite(depth)
    if max_depth_px is not None:
        valid &= np.abs(depth) <= max_depth_px
    lo = np.nanmin(np.where(valid, depth, np.nan))
    hi = np.nanmax(np.where(valid, depth, np.nan))
    lo = np.floor(lo / step_px) * step_px
    nb = int(np.ceil((hi - lo) / step_px + 1e-9)) + 1
    edges = lo + step_px * np.arange(nb + 1)
    return _bin(maps, variance, depth, valid, edges)


def interface_positions(distance, composition, *, weights=None, smooth_px: float = 1.0,
                        min_step: float = 5.0) -> list[float]:
    """Positions where the composition changes fastest along a profile (interfaces).

    The composition vectors are smoothed with a Gaussian of ``smooth_px`` bins; interfaces are the
    local maxima of the Euclidean norm of their gradient, refined by a parabola through three bins,
    where the composition changes by at least ``min_step`` at.% across +-3 bins.

    Parameters
    ----------
    distance : (m,) positions of the bins.
    composition : (n, m) at.% along the profile (NaN allowed: treated as 0).
    weights : optional (m,) signal strength per bin (e.g. total net counts): the composition is
        multiplied by ``weights / max(weights)`` so that bins with almost no signal (e.g. lithium metal
        in EDS, vacuum) read as zero instead of noise, and the edge of the signal counts as an interface.

    Returns
    -------
    interface positions in the units of ``distance``, increasing.
    """
    from scipy import ndimage

    x = np.asarray(distance, float)
    c = np.nan_to_num(np.asarray(composition, float))
    if c.ndim == 1:
        c = c[None]
    if c.shape[1] != x.size or x.size < 5:
        raise ValueError("composition must be (n, m) with m == len(distance) >= 5")
    if weights is not None:
        wts = np.clip(np.nan_to_num(np.asarray(weights, float)), 0, None)
        if wts.shape != x.shape:
            raise ValueError(f"weights must have shape {x.shape}, got {wts.shape}")
        c = c * (wts / max(wts.max(), 1e-300))[None, :]
    cs = ndimage.gaussian_filter1d(c, smooth_px, axis=1, mode="nearest") if smooth_px > 0 else c
    g = np.sqrt(np.sum(np.gradient(cs, axis=1) ** 2, axis=0))
    out = []
    step = float(np.median(np.diff(x)))
    for i in range(1, x.size - 1):
        if g[i] >= g[i - 1] and g[i] > g[i + 1]:
            a, b = max(0, i - 3), min(x.size - 1, i + 3)
            jump = float(np.sqrt(np.sum((cs[:, b] - cs[:, a]) ** 2)))
            if jump < min_step:
                continue
            den = g[i - 1] - 2 * g[i] + g[i + 1]
            off = 0.5 * (g[i - 1] - g[i + 1]) / den if den < 0 else 0.0
            out.append(float(x[i] + np.clip(off, -0.5, 0.5) * step))
    return out
