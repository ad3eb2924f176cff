"""Image-formation physics shared by the simulators.

Units: lengths in A, spatial frequency in 1/A, voltage in kV, fluence in e/A^2.
"""

from __future__ import annotations

import numpy as np

from cryomat.fourier.grids import frequency_grid

# physical constants (CODATA)
_H = 6.62607015e-34
_ME = 9.1093837015e-31
_E = 1.602176634e-19
_C = 299792458.0


def electron_wavelength(voltage_kV: float) -> float:
    """Relativistic electron wavelength in A at ``voltage_kV`` (0.0197 A at 300 kV, 0.0251 at 200)."""
    v = float(voltage_kV) * 1e3
    if v <= 0:
        raise ValueError(f"voltage_kV must be positive, got {voltage_kV!r}")
    lam = _H / np.sqrt(2 * _ME * _E * v * (1 + _E * v / (2 * _ME * _C**2)))
    return float(lam * 1e10)


def interaction_constant(voltage_kV: float) -> float:
    """Relativistic interaction constant sigma in rad/(V A) (0.00065 at 300 kV, Kirkland 2010)."""
    v = float(voltage_kV) * 1e3
    lam = electron_wavelength(voltage_kV) * 1e-10
    gamma = 1 + _E * v / (_ME * _C**2)
    sigma = 2 * np.pi * gamma * _ME * _E * lam / _H**2  # rad / (V m)
    return float(sigma * 1e-10)


def ctf(shape: tuple[int, int], *, pixel_size: float, voltage_kV: float = 300.0, defocus_A: float = 5000.0,
        cs_mm: float = 2.7, amplitude_contrast: float = 0.07, b_factor_A2: float = 0.0,
        astigmatism_A: float = 0.0, astigmatism_angle_deg: float = 0.0, phase_shift_deg: float = 0.0) -> np.ndarray:
    """Contrast transfer function on an unshifted FFT grid.

    CTF(k) = -sin(chi(k) + phi_a) * exp(-B k^2 / 4), chi = pi lambda df k^2 - pi/2 Cs lambda^3 k^4,
    phi_a = arcsin(amplitude_contrast) + phase_shift. Positive ``defocus_A`` is underfocus.

    References
    ----------
    Kirkland, Advanced Computing in Electron Microscopy, 2nd ed. (2010), doi:10.1007/978-1-4419-6533-2;
    Rohou & Grigorieff, CTFFIND4 (2015), doi:10.1016/j.jsb.2015.08.008.
    """
    lam = electron_wavelength(voltage_kV)
    kr, kc = frequency_grid(shape, pixel_size)
    k2 = kr**2 + kc**2
    df = np.full(np.broadcast_shapes(kr.shape, kc.shape), float(defocus_A))
    if astigmatism_A:
        ang = np.arctan2(kr, kc) - np.deg2rad(astigmatism_angle_deg)
        df = defocus_A + 0.5 * astigmatism_A * np.cos(2 * ang)
    cs = cs_mm * 1e7
    chi = np.pi * lam * df * k2 - 0.5 * np.pi * cs * lam**3 * k2**2
    phase = np.arcsin(np.clip(amplitude_contrast, 0, 1)) + np.deg2rad(phase_shift_deg)
    out = -np.sin(chi + phase)
    if b_factor_A2:
        out = out * np.exp(-b_factor_A2 * k2 / 4.0)
    return out


def ctf_zero_frequencies(n_zeros: int = 1, *, voltage_kV: float = 300.0, defocus_A: float = 5000.0,
                         cs_mm: float = 2.7, amplitude_contrast: float = 0.07, phase_shift_deg: float = 0.0) -> np.ndarray:
    """Spatial frequencies (1/A) of the first ``n_zeros`` zeros of :func:`ctf` (no astigmatism).

    Zero m is where chi(k) + phi_a = m pi, i.e. with u = k^2
    (Cs lambda^3 / 2) u^2 - lambda df u + (m - phi_a / pi) = 0, on the branch where chi still rises
    (before the Scherzer turn-over). Zeros beyond that turn-over are not returned (fewer values).
    """
    lam = electron_wavelength(voltage_kV)
    phase = np.arcsin(np.clip(amplitude_contrast, 0, 1)) + np.deg2rad(phase_shift_deg)
    a = 0.5 * cs_mm * 1e7 * lam**3
    b = lam * float(defocus_A)
    out = []
    for m in range(1, int(n_zeros) + 1):
        c = m - phase / np.pi
        if a == 0:
            if b <= 0:
                break
            u = c / b
        else:
            disc = b * b - 4 * a * c
            if disc < 0:
                break
            u = (b - np.sqrt(disc)) / (2 * a)
        if u <= 0:
            break
        out.append(np.sqrt(u))
    return np.asarray(out)


def weak_phase_image(projected_potential_VA, *, pixel_size: float, voltage_kV: float = 300.0,
                     defocus_A: float = 5000.0, cs_mm: float = 2.7, amplitude_contrast: float = 0.07,
                     b_factor_A2: float = 20.0) -> np.ndarray:
    """Bright-field intensity (mean 1) of a weak-phase object under the CTF.

    Phase phi = sigma V_p (V_p in V A); I = 1 + 2 F^-1[CTF F[phi]] to first order. Positive
    phase with positive CTF gives dark atoms, as in HRTEM at Scherzer-like underfocus.
    """
    vp = np.asarray(projected_potential_VA, dtype=np.float64)
    phi = interaction_constant(voltage_kV) * vp
    phi = phi - phi.mean()
    t = ctf(vp.shape, pixel_size=pixel_size, voltage_kV=voltage_kV, defocus_A=defocus_A, cs_mm=cs_mm,
            amplitude_contrast=amplitude_contrast, b_factor_A2=b_factor_A2)
    img = 1.0 + 2.0 * np.real(np.fft.ifft2(np.fft.fft2(phi) * t))
    return np.clip(img, 0.0, None)


def amorphous_potential(shape: tuple[int, int], *, pixel_size: float, rng: np.random.Generator,
                        ring_A: float = 3.7, ring_width_per_A: float = 0.08, thickness_A: float = 100.0,
                        mean_potential_V: float = 4.5, molecular_volume_A3: float = 30.0) -> np.ndarray:
    """Projected potential (V A) of an amorphous film with its diffuse ring.

    Gaussian random field whose power spectrum peaks at 1/``ring_A`` (3.7 A for vitreous ice,
    about 2.1 A for amorphous carbon) with a width ``ring_width_per_A`` plus a weak low-frequency
    part. The rms per pixel is that of counting independent molecules of volume
    ``molecular_volume_A3`` (30 A^3 for H2O) in a column of ``thickness_A``:
    V0 sqrt(v_m t) / pixel_size. Mean = mean inner potential V0 x thickness.
    """
    kr, kc = frequency_grid(shape, pixel_size)
    k = np.sqrt(kr**2 + kc**2)
    k0 = 1.0 / ring_A
    spec = np.exp(-0.5 * ((k - k0) / ring_width_per_A) ** 2) + 0.15 * np.exp(-k / (0.5 * k0))
    spec[0, 0] = 0.0
    noise = rng.standard_normal(shape)
    field = np.real(np.fft.ifft2(np.fft.fft2(noise) * np.sqrt(spec)))
    field /= field.std() + 1e-12
    rms = mean_potential_V * np.sqrt(molecular_volume_A3 * thickness_A) / pixel_size
    return mean_potential_V * thickness_A + rms * field


def counts_per_pixel(dose_e_per_A2: float, pixel_size: float) -> float:
    """Expected electrons per pixel for a fluence in e/A^2 and a pixel size in A."""
    return float(dose_e_per_A2) * float(pixel_size) ** 2


def shot_noise(intensity, *, dose_e_per_A2: float, pixel_size: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson counts for a relative intensity (mean ~1) at fluence ``dose_e_per_A2`` (e/A^2)."""
    lam = np.clip(np.asarray(intensity, dtype=np.float64), 0, None) * counts_per_pixel(dose_e_per_A2, pixel_size)
    return rng.poisson(lam).astype(np.float32)


def detector(counts, *, rng: np.random.Generator, kind: str = "counting", gain: float = 1.0, offset: float = 0.0,
             read_noise: float = 0.0, row_noise: float = 0.0, col_noise: float = 0.0, gain_variation: float = 0.0,
             mtf_a: float = 0.0) -> np.ndarray:
    """Detector response to electron counts.

    ``counting``: counts pass through (optionally blurred by a detector MTF with
    MTF(k) = sinc(k) / (1 + mtf_a k^2 / 0.25), k in cycles/px).
    ``integrating``: output = gain x counts + offset + Gaussian read noise, with per-pixel
    gain variation (fraction), and row/column correlated read noise (std per row / per column).
    """
    c = np.asarray(counts, dtype=np.float64)
    if mtf_a:
        shape = c.shape[-2:]
        kr, kc = frequency_grid(shape, 1.0)
        mtf = np.sinc(kr) * np.sinc(kc) / (1 + mtf_a * (kr**2 + kc**2) / 0.25)
        c = np.real(np.fft.ifft2(np.fft.fft2(c) * mtf))
    if kind == "counting":
        out = c
    elif kind == "integrating":
        g = gain * (1 + gain_variation * rng.standard_normal(c.shape[-2:])) if gain_variation else gain
        out = g * c + offset
        if read_noise:
            out = out + rng.normal(0, read_noise, c.shape)
    else:
        raise ValueError(f"detector kind must be 'counting' or 'integrating', got {kind!r}")
    if row_noise:
        out = out + rng.normal(0, row_noise, c.shape[:-1] + (1,))
    if col_noise:
        out = out + rng.normal(0, col_noise, c.shape[:-2] + (1, c.shape[-1]))
    return out.astype(np.float32)


def fourier_shift(image, shift_rc: tuple[float, float]) -> np.ndarray:
    """Shift a 2D image by (row, col) pixels (subpixel, periodic) with the Fourier shift theorem."""
    a = np.asarray(image, dtype=np.float64)
    kr, kc = frequency_grid(a.shape, 1.0)
    ph = np.exp(-2j * np.pi * (kr * shift_rc[0] + kc * shift_rc[1]))
    return np.real(np.fft.ifft2(np.fft.fft2(a) * ph))
