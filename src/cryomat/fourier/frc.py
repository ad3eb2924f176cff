"""Fourier ring / shell correlation and phase residual, with the usual thresholds.

FRC(r) = Re sum F1 F2* / sqrt(sum |F1|^2 sum |F2|^2) over ring r (2D) or shell r (3D).
Thresholds: fixed 0.5 and 0.143 (Rosenthal & Henderson 2003, doi:10.1016/j.jmb.2003.07.013),
and the half-bit / one-bit curves of van Heel & Schatz 2005 (doi:10.1016/j.jsb.2005.05.009).
The Fourier ring phase residual follows Karuppasamy et al. 2011 (doi:10.1107/S090904951102820X).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryomat.fourier.grids import _check_pixel_size, ring_index


def half_bit_threshold(n_pixels) -> np.ndarray:
    """Half-bit information threshold for rings/shells of ``n_pixels`` Fourier pixels.

    T(n) = (0.2071 + 1.9102/sqrt(n)) / (1.2071 + 0.9102/sqrt(n))  (van Heel & Schatz 2005).
    """
    s = 1.0 / np.sqrt(np.asarray(n_pixels, dtype=np.float64))
    return (0.2071 + 1.9102 * s) / (1.2071 + 0.9102 * s)


def one_bit_threshold(n_pixels) -> np.ndarray:
    """One-bit threshold: T(n) = (0.5 + 2.4142/sqrt(n)) / (1.5 + 1.4142/sqrt(n))."""
    s = 1.0 / np.sqrt(np.asarray(n_pixels, dtype=np.float64))
    return (0.5 + 2.4142 * s) / (1.5 + 1.4142 * s)


@dataclass(frozen=True)
class FRCResult:
    """A Fourier ring/shell correlation curve.

    Attributes
    ----------
    freq_per_A : ring centre frequencies (1/A), ring r at r / (N pixel_size).
    frc : correlation per ring.
    n_pixels : Fourier pixels per ring (full rings, both half-planes).
    pixel_size : A.
    """

    freq_per_A: np.ndarray
    frc: np.ndarray
    n_pixels: np.ndarray
    pixel_size: float

    def resolution(self, threshold: float | str = 0.143, *, last: bool = False) -> float:
        """Resolution (A) where the curve first falls below ``threshold`` (number, ``"half-bit"``, ``"one-bit"``).

        The search starts at the first ring (after DC) that reaches the threshold, so the
        missing low-frequency transfer of phase-contrast images does not end it at once.
        Linear interpolation between rings; ``inf`` if no ring reaches the threshold, the
        Nyquist resolution (2 pixel_size) if it never falls below.

        ``last=True`` gives instead the outermost crossing: the highest frequency at which the
        curve is still at the threshold. Use it for single images under a CTF, whose FRC drops
        to zero at every CTF zero although information continues beyond.
        """
        return resolution_at(self, threshold, last=last)

    def to_dict(self) -> dict:
        """JSON-ready summary: resolutions (A) at 0.5, 0.143 and half-bit (first and outermost crossings)."""
        return {"resolution_05_A": self.resolution(0.5), "resolution_0143_A": self.resolution(0.143),
                "resolution_half_bit_A": self.resolution("half-bit"),
                "resolution_0143_outer_A": self.resolution(0.143, last=True), "pixel_size_A": self.pixel_size,
                "n_rings": int(self.frc.size)}

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame({"freq_per_A": self.freq_per_A, "frc": self.frc, "n_pixels": self.n_pixels,
                             "half_bit": half_bit_threshold(np.maximum(self.n_pixels, 1))})


def _ring_sums(a, b, shape):
    rfft = True
    fa = np.fft.rfftn(a)
    fb = np.fft.rfftn(b)
    rings = ring_index(shape, rfft=rfft)
    nmax = min(shape) // 2
    ok = rings <= nmax
    # weight the rfft half-plane: interior columns stand for two pixels of the full spectrum
    w = np.full(fa.shape[-1], 2.0)
    w[0] = 1.0
    if shape[-1] % 2 == 0:
        w[-1] = 1.0
    wfull = np.broadcast_to(w, fa.shape)
    r = rings[ok]
    ww = wfull[ok]
    cross = np.bincount(r, weights=ww * np.real(fa[ok] * np.conj(fb[ok])), minlength=nmax + 1)
    pa = np.bincount(r, weights=ww * np.abs(fa[ok]) ** 2, minlength=nmax + 1)
    pb = np.bincount(r, weights=ww * np.abs(fb[ok]) ** 2, minlength=nmax + 1)
    n = np.bincount(r, weights=ww, minlength=nmax + 1)
    return fa, fb, rings, ok, wfull, cross, pa, pb, n


def fourier_ring_correlation(a, b, *, pixel_size: float = 1.0) -> FRCResult:
    """FRC of two 2D images (or FSC of two 3D volumes) of the same shape.

    Parameters
    ----------
    a, b : arrays of identical shape, (row, col) or (plane, row, col).
    pixel_size : A per pixel.

    Returns
    -------
    FRCResult; ring 0 (DC) is included for completeness.
    """
    px = _check_pixel_size(pixel_size)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"the two images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"FRC needs 2D images or 3D volumes, got shape {a.shape}")
    _, _, _, _, _, cross, pa, pb, n = _ring_sums(a, b, a.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        frc = cross / np.sqrt(pa * pb)
    freq = np.arange(frc.size) / (min(a.shape) * px)
    return FRCResult(freq_per_A=freq, frc=frc, n_pixels=n.astype(np.int64), pixel_size=px)


def fourier_ring_phase_residual(a, b, *, pixel_size: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude-weighted mean phase difference per ring (deg), as in Karuppasamy et al. 2011.

    FRPR(r) = sum |F1||F2| |dphi| / sum |F1||F2| with dphi wrapped to [-180, 180] deg.
    Random phases give 90 deg; 45 deg is the usual reliability threshold.

    Returns
    -------
    freq_per_A, frpr_deg
    """
    px = _check_pixel_size(pixel_size)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"the two images differ in shape: {a.shape} vs {b.shape}")
    fa, fb, rings, ok, wfull, *_ = _ring_sums(a, b, a.shape)
    nmax = min(a.shape) // 2
    amp = np.abs(fa) * np.abs(fb)
    dphi = np.abs(np.angle(fa * np.conj(fb), deg=True))
    r = rings[ok]
    wsum = np.bincount(r, weights=(wfull * amp)[ok], minlength=nmax + 1)
    psum = np.bincount(r, weights=(wfull * amp * dphi)[ok], minlength=nmax + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frpr = psum / wsum
    return np.arange(frpr.size) / (min(a.shape) * px), frpr


def resolution_at(result: FRCResult, threshold: float | str = 0.143, *, last: bool = False) -> float:
    """Resolution in A where ``result.frc`` first drops below ``threshold`` (see FRCResult.resolution);
    with ``last=True`` the outermost frequency at which it is still at the threshold."""
    f = result.freq_per_A
    c = result.frc
    if isinstance(threshold, str):
        key = threshold.lower().replace("_", "-")
        if key == "half-bit":
            t = half_bit_threshold(np.maximum(result.n_pixels, 1))
        elif key == "one-bit":
            t = one_bit_threshold(np.maximum(result.n_pixels, 1))
        else:
            raise ValueError(f"threshold must be a number, 'half-bit' or 'one-bit', got {threshold!r}")
    else:
        t = np.full_like(c, float(threshold))
    above = np.nonzero(np.isfinite(c[1:]) & (c[1:] >= t[1:]))[0]
    if above.size == 0:
        return float("inf")
    if last:
        i = int(above[-1]) + 1
        if i + 1 >= c.size:
            return float(2.0 * result.pixel_size)
        c0, c1 = c[i] - t[i], c[i + 1] - t[i + 1]
        frac = c0 / (c0 - c1) if np.isfinite(c1) and c0 != c1 else 0.0
        fi = f[i] + frac * (f[i + 1] - f[i])
        return float(1.0 / fi) if fi > 0 else float("inf")
    start = int(above[0]) + 1  # skip a low-frequency dip (phase contrast transfers no low k)
    for i in range(start + 1, c.size):
        if not np.isfinite(c[i]) or c[i] < t[i]:
            c0, c1 = c[i - 1] - t[i - 1], c[i] - t[i]
            if not np.isfinite(c1):
                fi = f[i - 1]
            else:
                frac = c0 / (c0 - c1) if c0 != c1 else 0.0
                fi = f[i - 1] + frac * (f[i] - f[i - 1])
            return float(1.0 / fi) if fi > 0 else float("inf")
    return float(2.0 * result.pixel_size)
