"""Drift between the frames of a dose series, for FRC/FRPR after alignment (``--align``).

Uses :mod:`cryomat.registration` when it provides ``estimate_drift`` (whole stack in memory);
otherwise, or for stacks too large to hold, a small streaming tracker:
each frame's spectrum is low-passed and Fourier-cropped to at most 512 px, and registered to the
running sum of the frames already aligned by sub-pixel cross-correlation (:func:`ccf_peak`).
"""

from __future__ import annotations

import numpy as np


def _crop_lowpass(spectrum, shape, size: int, lowpass_px: float) -> tuple[np.ndarray, tuple[float, float]]:
    """The low-passed rfft of a frame cropped to size x size (a downsampled image's spectrum)."""
    m, n = shape
    s = min(size, m, n)
    s -= s % 2
    h = s // 2
    top = spectrum[:h, : h + 1]
    bot = spectrum[m - h:, : h + 1]
    crop = np.concatenate([top, bot], axis=0)
    kr = np.fft.fftfreq(s)[:, None] * s / m
    kc = np.fft.rfftfreq(s)[None, :] * s / n
    sigma = 1.0 / max(lowpass_px, 1.0)
    crop = crop * np.exp(-0.5 * (kr**2 + kc**2) / sigma**2)
    return crop, (m / s, n / s)


class DriftTracker:
    """Estimates each frame's shift (row, col px) relative to the first, frame by frame.

    Parameters
    ----------
    shape : frame shape.
    lowpass_px : Gaussian low-pass length (px) applied before registration.
    size : working size of the cropped spectra (px).
    """

    def __init__(self, shape, *, lowpass_px: float = 6.0, size: int = 512):
        self.shape = tuple(shape)
        self.lowpass_px = float(lowpass_px)
        self.size = int(size)
        self._ref = None
        self.shifts: list[tuple[float, float]] = []

    def add(self, spectrum) -> tuple[float, float]:
        """Register a frame (its rfft) and return its shift (row, col) in px; apply ``-shift`` to align."""
        crop, scale = _crop_lowpass(spectrum, self.shape, self.size, self.lowpass_px)
        s = 2 * (crop.shape[1] - 1)
        if self._ref is None:
            shift = np.zeros(2)
            self._ref = crop.astype(np.complex128)
        else:
            shift = ccf_peak(crop * np.conj(self._ref), s)
            self._ref += shift_spectrum(crop.astype(np.complex128), (s, s), -shift)
        self.shifts.append((float(shift[0] * scale[0]), float(shift[1] * scale[1])))
        return self.shifts[-1]


def ccf_peak(cross, s: int) -> np.ndarray:
    """Sub-pixel position (row, col) of the maximum of the cross-correlation irfft2(cross).

    ``cross`` is the rfft-layout cross-power of two s x s images (moving x conj(reference)); the
    result is the displacement of the moving image. The integer peak is refined twice on local
    grids (0.1 then 0.01 px) by evaluating the band-limited correlation exactly with matrix DFTs
    (the approach of Guizar-Sicairos et al. 2008, doi:10.1364/OL.33.000156, on the half-plane).
    """
    import scipy.fft

    cc = scipy.fft.irfft2(cross, s=(s, s))
    peak = np.array(np.unravel_index(int(np.argmax(cc)), cc.shape), dtype=np.float64)
    kr = np.fft.fftfreq(s) * s
    kc = np.arange(cross.shape[1], dtype=np.float64)
    w = np.full(kc.size, 2.0)
    w[0] = 1.0
    if s % 2 == 0:
        w[-1] = 1.0
    for step in (0.1, 0.01):
        off = np.arange(-10, 11) * step
        xr, xc = peak[0] + off, peak[1] + off
        er = np.exp(2j * np.pi * np.outer(xr, kr) / s)              # (L, s)
        ec = w[:, None] * np.exp(2j * np.pi * np.outer(kc, xc) / s)  # (s/2+1, L)
        fine = np.real(er @ cross @ ec)
        i, j = np.unravel_index(int(np.argmax(fine)), fine.shape)
        peak = np.array([xr[i], xc[j]])
    return (peak + s / 2) % s - s / 2


def shift_spectrum(spectrum, shape, shift_rc) -> np.ndarray:
    """Apply a (row, col) px shift to a frame's rfft (Fourier shift theorem)."""
    m, n = shape
    kr = np.fft.fftfreq(m)[:, None]
    kc = np.fft.rfftfreq(n)[None, :]
    ph_r = np.exp(-2j * np.pi * kr * shift_rc[0]).astype(spectrum.dtype)
    ph_c = np.exp(-2j * np.pi * kc * shift_rc[1]).astype(spectrum.dtype)
    out = spectrum * ph_r
    out *= ph_c
    return out


def registration_available() -> bool:
    """Whether :func:`cryomat.registration.estimate_drift` can be imported."""
    try:
        from cryomat.registration import estimate_drift  # noqa: F401
    except ImportError:
        return False
    return True


def registration_drift(frames, *, pixel_size: float):
    """Drift (row, col px per frame) from :mod:`cryomat.registration` if it offers it, else ``None``."""
    try:
        from cryomat import registration  # noqa: F401
    except ImportError:
        return None
    fn = getattr(registration, "estimate_drift", None)
    if fn is None:
        return None
    out = fn(frames, pixel_size=pixel_size)
    shifts = getattr(out, "shifts_px", None)
    if shifts is None and hasattr(out, "to_frame"):
        tab = out.to_frame()
        cols = [c for c in tab.columns if c.startswith("shift_row")], [c for c in tab.columns if c.startswith("shift_col")]
        if cols[0] and cols[1]:
            shifts = np.stack([tab[cols[0][0]].to_numpy(), tab[cols[1][0]].to_numpy()], axis=1)
    if shifts is None and isinstance(out, np.ndarray):
        shifts = out
    if shifts is None:
        return None
    shifts = np.asarray(shifts, dtype=np.float64)
    return shifts if shifts.shape == (np.shape(frames)[0], 2) else None
