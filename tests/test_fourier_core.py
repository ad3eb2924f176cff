"""The Fourier core: edge-streak suppression, radial averages in 1/A, FRC and its thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from cryomat.fourier import (FRCResult, fourier_ring_correlation, fourier_ring_phase_residual, frequency_grid,
                             half_bit_threshold, one_bit_threshold, periodic_plus_smooth, power_spectrum,
                             radial_average, radial_frequency, ring_index)


def _nonperiodic_image(rng, n=256):
    """A smooth random texture on a strong ramp: opposite borders differ, as in every real micrograph."""
    kr, kc = frequency_grid((n, n), 1.0)
    tex = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * np.exp(-(kr**2 + kc**2) * 200)))
    rr, cc = np.mgrid[:n, :n]
    return tex / tex.std() + 0.3 * rng.standard_normal((n, n)) + 0.05 * rr + 0.03 * cc


def _axis_to_offaxis_power(ps):
    """Mean power on the two axes (the cross of edge streaks) / mean power off-axis, for 0.1 < |k| < 0.45 cyc/px."""
    n = ps.shape[0]
    k = radial_frequency(ps.shape, 1.0, shifted=True)
    c = n // 2
    band = (k > 0.1) & (k < 0.45)
    axis = np.zeros_like(band)
    axis[c, :] = axis[:, c] = True
    return ps[band & axis].mean() / ps[band & ~axis].mean()


def test_periodic_plus_smooth_removes_edge_streaks(rng):
    img = _nonperiodic_image(rng)
    raw = _axis_to_offaxis_power(power_spectrum(img, edge="none"))
    pps = _axis_to_offaxis_power(power_spectrum(img, edge="periodic"))
    han = _axis_to_offaxis_power(power_spectrum(img, edge="hann"))
    # the border jump puts 1/k^2 power on the axes: orders of magnitude above the texture at high k
    assert raw > 100
    # without the jump the axes carry about the texture's own power (ratio 1). Over 5 seeds the ratio
    # was 1.27-1.66 (periodic) and 1.13-1.58 (Hann): the ramp is 40x the noise and leaves a little
    # leakage on the axes; 2 is a >300-fold suppression of the streaks
    assert 0.8 < pps < 2.0
    assert 0.8 < han < 2.0
    assert raw / pps > 300


def test_periodic_plus_smooth_decomposition(rng):
    img = _nonperiodic_image(rng, 128)
    p, s = periodic_plus_smooth(img)
    assert np.allclose(p + s, img, atol=1e-10)
    # the periodic part has (nearly) no jump across the borders compared to the input's
    assert np.abs(p[0] - p[-1]).mean() < 0.2 * np.abs(img[0] - img[-1]).mean()
    # the smooth part is harmonic inside the image (Moisan 2011): its discrete Laplacian vanishes there
    lap = (np.roll(s, 1, 0) + np.roll(s, -1, 0) + np.roll(s, 1, 1) + np.roll(s, -1, 1) - 4 * s)[1:-1, 1:-1]
    assert np.abs(lap).max() < 1e-9 * np.abs(s).max()


def test_power_spectrum_rejects_nonfinite():
    a = np.ones((8, 8))
    a[2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        power_spectrum(a)


def test_radial_average_peaks_at_the_cosine_frequency_in_per_A():
    # a 4 A period at 0.5 A pixels: 0.25 1/A, independent of the pixel count
    px, period = 0.5, 4.0
    n = 200
    rr, cc = np.mgrid[:n, :n] * px
    img = np.cos(2 * np.pi * (rr * np.cos(0.4) + cc * np.sin(0.4)) / period)
    f, prof = radial_average(power_spectrum(img, edge="hann"), pixel_size=px)
    assert f[-1] < 0.5 / px and f[-1] > 0.5 / px - 2 / (n * px)  # up to Nyquist, 1/(2 px) = 1 1/A
    bin_w = f[1] - f[0]
    assert f[np.nanargmax(prof)] == pytest.approx(1 / period, abs=bin_w)


def test_radial_frequency_units():
    k = radial_frequency((64, 64), 2.0)
    assert k.max() == pytest.approx(np.sqrt(2) * 0.25)  # corner: Nyquist 1/(2*2 A) on both axes
    assert k[0, 1] == pytest.approx(1 / (64 * 2.0))


def test_ring_index_isotropic_for_rectangles():
    r = ring_index((64, 128))
    # same physical frequency, same ring: 1/32 cycles/px along rows (index 2) and along columns (index 4)
    assert r[2, 0] == r[0, 4] == 2  # ring r = |k| * min(shape) = (1/32) * 64


def test_frc_identical_is_one(rng):
    a = rng.standard_normal((128, 96))
    r = fourier_ring_correlation(a, a, pixel_size=1.3)
    assert np.allclose(r.frc[1:], 1.0, atol=1e-12)  # floating-point only
    assert r.freq_per_A[1] == pytest.approx(1 / (96 * 1.3))


def test_frc_independent_noise_within_3_over_sqrt_n(rng):
    a = rng.standard_normal((384, 384))
    b = rng.standard_normal((384, 384))
    r = fourier_ring_correlation(a, b, pixel_size=1.0)
    z = np.abs(r.frc[2:]) * np.sqrt(r.n_pixels[2:])
    # each ring's FRC ~ N(0, 1/n): 99.7 % of rings inside 3/sqrt(n); allow 2 % outside, none beyond 5
    assert np.mean(z < 3) > 0.98
    assert np.all(z < 5)


def test_frc_3d_is_fsc(rng):
    v = rng.standard_normal((32, 32, 32))
    noise = rng.standard_normal((32, 32, 32))
    r = fourier_ring_correlation(v, v + noise, pixel_size=1.0)
    # equal signal and noise power (white): FSC = S/sqrt(S (S+N)) = 1/sqrt(2) in every shell
    assert np.nanmean(r.frc[3:]) == pytest.approx(1 / np.sqrt(2), abs=0.03)


def test_half_bit_threshold_formula():
    n = np.array([1.0, 10.0, 100.0, 1e4, 1e12])
    expected = (0.2071 + 1.9102 / np.sqrt(n)) / (1.2071 + 0.9102 / np.sqrt(n))
    assert np.allclose(half_bit_threshold(n), expected, rtol=0, atol=1e-6)
    # van Heel & Schatz 2005: T(1) = 1 and T -> 0.2071/1.2071 = 0.1716 for large rings
    assert half_bit_threshold(1.0) == pytest.approx(1.0, abs=1e-6)
    assert half_bit_threshold(1e16) == pytest.approx(0.2071 / 1.2071, abs=1e-6)
    assert one_bit_threshold(1e16) == pytest.approx(0.5 / 1.5, abs=1e-6)


def test_resolution_interpolates_the_crossing():
    f = np.arange(11) / 20.0  # 0 .. 0.5 1/A at 1 A pixels
    frc = np.clip(1 - 2 * f, 0, 1)  # crosses 0.143 at f = 0.4285
    r = FRCResult(freq_per_A=f, frc=frc, n_pixels=np.full(11, 1000), pixel_size=1.0)
    assert r.resolution(0.143) == pytest.approx(1 / ((1 - 0.143) / 2), rel=1e-9)
    assert r.resolution(0.5) == pytest.approx(4.0, rel=1e-9)
    with pytest.raises(ValueError, match="threshold"):
        r.resolution("two-bit")


def test_frpr_random_phases_is_90_deg(rng):
    a = rng.standard_normal((256, 256))
    b = rng.standard_normal((256, 256))
    _, frpr = fourier_ring_phase_residual(a, b, pixel_size=1.0)
    # unrelated images: phase differences uniform on [0, 180] deg, mean 90; ring means of ~10^3 values
    assert np.nanmean(frpr[5:]) == pytest.approx(90.0, abs=2.0)
    _, same = fourier_ring_phase_residual(a, a, pixel_size=1.0)
    assert np.nanmax(same[1:]) < 1e-6


def test_resolution_last_crossing_skips_ctf_like_dips():
    f = np.arange(101) / 200.0
    frc = 0.9 * np.exp(-(f / 0.3) ** 2) * np.abs(np.cos(2 * np.pi * f / 0.1))  # CTF-like zeros every 0.05 1/A
    r = FRCResult(freq_per_A=f, frc=frc, n_pixels=np.full(101, 1000), pixel_size=1.0)
    first, outer = r.resolution(0.143), r.resolution(0.143, last=True)
    # the first dip (a zero at 0.025 1/A) ends the default search; the outer crossing is near where
    # the envelope would pass 0.143 (0.9 exp(-(f/0.3)^2) = 0.143 at f = 0.407), within one lobe (0.05)
    assert 1 / first < 0.03
    assert 0.357 < 1 / outer <= 0.407


def test_frc_to_dict_is_json_ready():
    import json

    f = np.arange(11) / 20.0
    r = FRCResult(freq_per_A=f, frc=np.clip(1 - 2 * f, 0, 1), n_pixels=np.full(11, 1000), pixel_size=1.0)
    d = r.to_dict()
    assert d["resolution_05_A"] == pytest.approx(4.0) and d["resolution_0143_A"] == pytest.approx(1 / 0.4285)
    json.dumps(d)
