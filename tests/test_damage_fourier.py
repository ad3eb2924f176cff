"""FRC/FRPR of the streaming path against the Fourier core; periodic-plus-smooth in Fourier space."""

from __future__ import annotations

import numpy as np
import pytest

from cryomat.damage.frc_dose import RingSums
from cryomat.damage.reflections import rfft_frame, smooth_spectrum
from cryomat.fourier import (fourier_ring_correlation, fourier_ring_phase_residual, half_bit_threshold,
                             periodic_plus_smooth)


def test_smooth_spectrum_equals_moisan_decomposition(rng):
    u = rng.normal(size=(96, 128)) + np.linspace(0, 8, 128)[None, :]
    _, smooth = periodic_plus_smooth(u)
    # analytic border formula vs the FFT-based decomposition: identical to round-off (1e-9 relative)
    ref = np.fft.rfft2(smooth)
    assert np.max(np.abs(smooth_spectrum(u) - ref)) < 1e-9 * np.max(np.abs(ref))


def test_streaming_frc_frpr_equal_core(rng):
    a = rng.normal(size=(128, 128))
    b = 0.6 * a + rng.normal(size=(128, 128))
    rs = RingSums(a.shape, pixel_size=1.3, band_A=(20.0, 4.0))
    fa, fb = rs.flat(rfft_frame(a.astype(np.float64))), rs.flat(rfft_frame(b.astype(np.float64)))
    res, frpr, _, _ = rs.compare(fa, fb)
    core = fourier_ring_correlation(a, b, pixel_size=1.3)
    _, core_frpr = fourier_ring_phase_residual(a, b, pixel_size=1.3)
    # same rings and weights; ring 0 differs only because the streaming path removes the mean
    assert np.allclose(res.frc[1:], core.frc[1:], atol=1e-10)
    assert np.allclose(frpr[1:], core_frpr[1:], atol=1e-8)
    assert np.allclose(res.freq_per_A, core.freq_per_A)


def test_frc_self_is_one_and_independent_noise_is_zero(rng):
    a = rng.normal(size=(256, 256))
    rs = RingSums(a.shape, pixel_size=1.0)
    fa = rs.flat(rfft_frame(a.astype(np.float64)))
    res, frpr, _, _ = rs.compare(fa, fa)
    assert np.allclose(res.frc[1:], 1.0, atol=1e-12) and np.allclose(frpr[1:], 0.0, atol=1e-6)
    means = []
    for _ in range(10):
        b = rs.flat(rfft_frame(rng.normal(size=a.shape)))
        c = rng.normal(size=a.shape)
        r2, _, _, _ = rs.compare(b, rs.flat(rfft_frame(c)))
        means.append(r2.frc[1:])
    n = rs.n_pixels[1:]
    # independent noise: FRC per ring has std ~ 1/sqrt(n); the mean of 10 pairs lies within 3/sqrt(n)
    assert np.all(np.abs(np.mean(means, axis=0)) < 3 / np.sqrt(n))


def test_half_bit_formula():
    n = np.array([10.0, 100.0, 1e4])
    t = (0.2071 + 1.9102 / np.sqrt(n)) / (1.2071 + 0.9102 / np.sqrt(n))
    assert np.max(np.abs(half_bit_threshold(n) - t)) < 1e-6
