"""Applying shifts: aligned frames, aligned sums (plain, dose-weighted, even/odd)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from cryomat.registration.ccf import _workers
from cryomat.registration.dose import critical_exposure, frame_weight, weight_norm


def _ramp_full(shape, shift_rc) -> tuple[np.ndarray, np.ndarray]:
    """Separable factors of exp(+2 pi i k.s) on the rfft2 grid of ``shape`` (moves content by -s)."""
    er = np.exp(2j * np.pi * np.fft.fftfreq(shape[0]) * float(shift_rc[0])).astype(np.complex64)
    ec = np.exp(2j * np.pi * np.fft.rfftfreq(shape[1]) * float(shift_rc[1])).astype(np.complex64)
    return er, ec


def _check_shifts(frames, shifts) -> np.ndarray:
    s = np.asarray(shifts, dtype=np.float64)
    if s.shape != (frames.shape[0], 2):
        raise ValueError(f"shifts must have shape ({frames.shape[0]}, 2), got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("shifts contain NaN or infinite values")
    return s


def apply_shifts(frames, shifts_px, *, corrector=None) -> np.ndarray:
    """Frames moved by ``-shifts_px`` (so that they line up with frame 0), float32 (n, row, col).

    Subpixel shifts use the Fourier shift theorem (periodic at the borders). Reads one frame at a
    time; the output is a new in-memory array, so use :func:`aligned_sums` for large movies.

    Parameters
    ----------
    frames : (n, row, col) array.
    shifts_px : (n, 2) displacement of each frame's content (row, col) in px, as in
        :attr:`DriftResult.shifts_px`.
    corrector : optional per-frame detector correction.
    """
    s = _check_shifts(frames, shifts_px)
    shape = tuple(frames.shape[-2:])
    out = np.empty((frames.shape[0],) + shape, np.float32)
    for f in range(frames.shape[0]):
        a = corrector(frames[f]) if corrector is not None else np.asarray(frames[f], dtype=np.float32)
        spec = sfft.rfft2(np.asarray(a, np.float32), workers=_workers(shape[0] * shape[1]))
        er, ec = _ramp_full(shape, s[f])
        spec *= er[:, None]
        spec *= ec[None, :]
        out[f] = sfft.irfft2(spec, s=shape, workers=_workers(shape[0] * shape[1]))
    return out


@dataclass
class AlignedSums:
    """Sums of aligned frames (row, col) float32.

    Attributes
    ----------
    total : plain sum of all frames.
    even, odd : sums of frames 0, 2, 4, ... and 1, 3, 5, ... (independent halves for FRC / Noise2Noise).
    dose_weighted : dose-weighted sum (Grant & Grigorieff), or None without a dose.
    """

    total: np.ndarray
    even: np.ndarray
    odd: np.ndarray
    dose_weighted: np.ndarray | None = None


def aligned_sums(frames, shifts_px, *, corrector=None, pixel_size: float | None = None,
                 dose_per_frame: float | None = None, voltage_kV: float = 300.0, pre_exposure: float = 0.0,
                 frame_indices=None, local=None) -> AlignedSums:
    """Aligned sum, even/odd half sums and the dose-weighted sum in one pass over the frames.

    Every frame is read once, corrected, Fourier transformed, shifted by a phase ramp and added
    to the half-spectrum accumulators; memory is a few frame-sized arrays regardless of the number
    of frames. Dose weighting (when ``dose_per_frame`` and ``pixel_size`` are given) uses
    q_f(k) = exp(-N_f / (2 Ne(k))) with N_f the fluence at the middle of frame f, normalised per
    frequency so that sum_f q_f^2 = n (see :mod:`cryomat.registration.dose`).

    Parameters
    ----------
    frames : (n, row, col) array (memmap/dask fine).
    shifts_px : (n, 2) px, content displacement of each frame (as from :func:`estimate_drift`).
    pixel_size : A per pixel (needed for dose weighting).
    dose_per_frame : e/A^2 per frame.
    voltage_kV : kV (scales the critical exposure).
    pre_exposure : e/A^2 received before frame 0.
    frame_indices : optional subset/order of frames to use (e.g. to drop the first frames).
    local : optional :class:`cryomat.registration.local.LocalMotion`; each globally aligned frame is
        then also warped by the local model (cubic-spline interpolation) before it is summed.

    References
    ----------
    Grant & Grigorieff, eLife 4:e06980 (2015), doi:10.7554/eLife.06980.
    """
    from cryomat.progress import progress

    s = _check_shifts(frames, shifts_px)
    shape = tuple(int(v) for v in frames.shape[-2:])
    idx = list(range(frames.shape[0])) if frame_indices is None else [int(i) for i in frame_indices]
    half = (shape[0], shape[1] // 2 + 1)
    acc = [np.zeros(half, np.complex64), np.zeros(half, np.complex64)]
    dw = None
    ne = norm = None
    if dose_per_frame is not None:
        if pixel_size is None:
            raise ValueError("dose weighting needs the pixel size (A)")
        kr = np.fft.fftfreq(shape[0], d=pixel_size)[:, None]
        kc = np.fft.rfftfreq(shape[1], d=pixel_size)[None, :]
        ne = critical_exposure(np.sqrt(kr**2 + kc**2), voltage_kV=voltage_kV).astype(np.float32)
        norm = weight_norm(len(idx), ne, dose_per_frame=dose_per_frame, pre_exposure=pre_exposure)
        dw = np.zeros(half, np.complex64)
        # q_f = exp(-(p + (f + 1/2) d) / (2 Ne)) = q_0 r^f: one multiplication per frame instead of an exp
        wcur = frame_weight(0, len(idx), ne, dose_per_frame=dose_per_frame, pre_exposure=pre_exposure, norm=norm)
        with np.errstate(divide="ignore"):
            rstep = np.exp(-dose_per_frame / (2.0 * ne.astype(np.float64))).astype(np.float32)
    grid = np.stack(np.mgrid[0:shape[0], 0:shape[1]], -1).astype(np.float32) if local is not None else None
    for j, f in enumerate(progress(idx, total=len(idx), desc="sum")):
        a = corrector(frames[f]) if corrector is not None else np.asarray(frames[f], dtype=np.float32)
        spec = sfft.rfft2(np.asarray(a, np.float32), workers=_workers(shape[0] * shape[1]))
        er, ec = _ramp_full(shape, s[f])
        spec *= er[:, None]
        spec *= ec[None, :]
        if local is not None:
            spec = sfft.rfft2(_warp(sfft.irfft2(spec, s=shape, workers=_workers(shape[0] * shape[1])), local, f, grid), workers=_workers(shape[0] * shape[1]))
        acc[j % 2] += spec
        if dw is not None:
            spec *= wcur
            dw += spec
            wcur *= rstep
    even = sfft.irfft2(acc[0], s=shape, workers=_workers(shape[0] * shape[1])).astype(np.float32)
    odd = sfft.irfft2(acc[1], s=shape, workers=_workers(shape[0] * shape[1])).astype(np.float32)
    total = even + odd
    dws = sfft.irfft2(dw, s=shape, workers=_workers(shape[0] * shape[1])).astype(np.float32) if dw is not None else None
    return AlignedSums(total=total, even=even, odd=odd, dose_weighted=dws)


def _warp(img, local, frame, grid) -> np.ndarray:
    """Globally aligned frame resampled at p + d(p): undoes the local displacement d of the model."""
    from scipy import ndimage

    d = local.displacement(grid, frame)
    coords = [grid[..., 0] + d[..., 0], grid[..., 1] + d[..., 1]]
    return ndimage.map_coordinates(np.asarray(img, np.float32), coords, order=3, mode="reflect").astype(np.float32)
