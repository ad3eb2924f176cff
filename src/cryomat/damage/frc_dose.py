"""FRC and FRPR of a dose series from each frame's FFT computed once.

Two conventions are in use in the literature and both are computed:

- ``"first"``: every frame against the first (least damaged) frame (Karuppasamy et al. 2011,
  doi:10.1107/S090904951102820X, who compare each image with the first exposure);
- ``"consecutive"``: each frame against the one before it (frame-to-frame loss of shared signal).

The ring sums are those of :func:`cryomat.fourier.fourier_ring_correlation` and
:func:`cryomat.fourier.fourier_ring_phase_residual` (same rings from
:func:`cryomat.fourier.ring_index`, same half-plane weights), evaluated on spectra that are
computed once per frame and reused for both conventions and for the Bragg intensities; the
results are :class:`cryomat.fourier.FRCResult` objects, so thresholds (0.5, 0.143, half-bit) and
resolutions come from the Fourier core. Tests check equality with the core functions.
"""

from __future__ import annotations

import numpy as np

from cryomat.fourier import FRCResult, ring_index


class RingSums:
    """Per-ring weighted sums on the rfft half-plane of a fixed frame shape.

    ``band_A`` = (low, high) resolution limits in A selects the band used for band averages.
    """

    def __init__(self, shape, *, pixel_size: float, band_A: tuple[float, float] | None = None):
        m, n = shape
        self.shape = (m, n)
        self.pixel_size = float(pixel_size)
        rings = ring_index((m, n), rfft=True)
        self.nmax = min(m, n) // 2
        w = np.full(n // 2 + 1, 2.0)
        w[0] = 1.0
        if n % 2 == 0:
            w[-1] = 1.0
        # pixels beyond the largest full ring (the corners) go to one extra bin that is dropped
        rings = np.minimum(rings, self.nmax + 1)
        self._rings = rings.ravel()
        # interior columns count twice; the columns of weight 1 are summed once more and subtracted
        self._single = np.nonzero(w == 1.0)[0]
        self._rings_single = rings[:, self._single].ravel()
        self._ncols = rings.shape[1]
        self.n_pixels = self.sums(np.ones(rings.size))
        self.freq_per_A = np.arange(self.nmax + 1) / (min(m, n) * self.pixel_size)
        self.band = None
        if band_A is not None:
            lo, hi = sorted(band_A, reverse=True)
            f = self.freq_per_A
            self.band = (f >= 1.0 / lo) & (f <= 1.0 / hi)
            if not self.band.any():
                raise ValueError(f"the resolution band {band_A} A holds no Fourier ring for this frame size "
                                 f"and pixel size {pixel_size} A")

    def sums(self, values) -> np.ndarray:
        """Weighted per-ring sums of ``values`` (a flattened half-plane array)."""
        v = np.asarray(values).ravel()
        k = self.nmax + 2
        total = 2.0 * np.bincount(self._rings, weights=v, minlength=k)
        edge = v.reshape(-1, self._ncols)[:, self._single].ravel()
        total -= np.bincount(self._rings_single, weights=edge, minlength=k)
        return total[: self.nmax + 1]

    def flat(self, spectrum) -> np.ndarray:
        """The half-plane spectrum as a flat array (a view, no copy) for :meth:`compare`."""
        return np.asarray(spectrum).reshape(-1)

    def power(self, fa) -> np.ndarray:
        """Ring sums of |F|^2 (pass :meth:`flat` spectra)."""
        return self.sums(fa.real**2 + fa.imag**2)

    def compare(self, fa, fb, pa=None, pb=None) -> tuple[FRCResult, np.ndarray, float, float]:
        """FRC, FRPR per ring (deg), and their band averages for two flattened spectra.

        Returns
        -------
        frc : FRCResult
        frpr_deg : (rings,) amplitude-weighted mean phase difference (deg)
        frc_band : FRC over the band (cross power summed over the band's rings / powers)
        frpr_band_deg : FRPR over the band (amplitude-weighted over all its pixels)
        """
        pa = self.power(fa) if pa is None else pa
        pb = self.power(fb) if pb is None else pb
        prod = fa * np.conj(fb)
        cross = self.sums(prod.real)
        amp = np.abs(fa) * np.abs(fb)
        dphi = np.abs(np.angle(prod, deg=True))
        wsum = self.sums(amp)
        psum = self.sums(amp * dphi)
        with np.errstate(invalid="ignore", divide="ignore"):
            frc = cross / np.sqrt(pa * pb)
            frpr = psum / wsum
            if self.band is not None:
                b = self.band
                frc_band = float(cross[b].sum() / np.sqrt(pa[b].sum() * pb[b].sum()))
                frpr_band = float(psum[b].sum() / wsum[b].sum())
            else:
                frc_band = frpr_band = float("nan")
        res = FRCResult(freq_per_A=self.freq_per_A, frc=frc, n_pixels=self.n_pixels.astype(np.int64),
                        pixel_size=self.pixel_size)
        return res, frpr, frc_band, frpr_band


def threshold_crossing(dose, values, threshold: float, *, falling: bool = True) -> float | None:
    """First fluence at which ``values`` cross ``threshold`` (linear interpolation in dose).

    ``falling=True``: first point below the threshold after having been at or above it (FRC);
    ``falling=False``: first point above it (phase residual). ``None`` if it never crosses, and
    also if it starts beyond the threshold (the series then says nothing about the threshold dose).
    """
    d = np.asarray(dose, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    d, v = d[ok], v[ok]
    if v.size == 0:
        return None
    s = (v - threshold) if falling else (threshold - v)
    if s[0] < 0:
        return None
    idx = np.nonzero(s < 0)[0]
    if idx.size == 0:
        return None
    i = int(idx[0])
    frac = s[i - 1] / (s[i - 1] - s[i])
    return float(d[i - 1] + frac * (d[i] - d[i - 1]))
