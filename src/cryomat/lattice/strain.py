"""Geometric phase analysis (GPA): displacement, strain and rotation maps from two Bragg spots.

For each of two non-collinear reflections g1, g2 the image is demodulated at g and low-passed
(Gaussian of width ``sigma_A`` in real space, i.e. a Gaussian mask around the spot), giving the
geometric phase P_g(r) = -2 pi g . u(r). The displacement is u = -(1 / 2 pi) G^-1 (P1, P2) with
G the 2x2 matrix of rows g1, g2, and the distortion tensor is its gradient, computed from
wrap-free phase derivatives (dP = Im(conj(e) de), e = exp(iP)). The reference lattice is the
one that makes the mean phase gradient zero in the reference region (default: the whole image).

Axes: x along columns, y along rows (so ``exx`` is the strain along the image columns);
maps are dimensionless strain, rotation in degrees (counter-clockwise in (x, y)).

Edges: the lock-in low-pass is a normalised convolution on a zero-padded field (image and its
support both filtered, then divided), so no part of the map mixes the opposite edge of the image in
the way a periodic FFT filter does; pixels closer than ``2 sigma`` to the border, where the filter
sees less than ~98 % of its footprint inside the image and becomes one-sided, are set to NaN
(``GPAResult.border_px``).
Knutsson & Westin, Proc. CVPR 1993, 515, doi:10.1109/CVPR.1993.341081 (normalised convolution).

References
----------
Hytch, Snoeck & Kilaas, Ultramicroscopy 74, 131 (1998), doi:10.1016/S0304-3991(98)00035-7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np



@dataclass(frozen=True)
class GPAResult:
    """GPA maps (rows, cols) and the reference reflections (kx, ky in 1/A)."""

    exx: np.ndarray
    eyy: np.ndarray
    exy: np.ndarray
    rotation_deg: np.ndarray
    ux_A: np.ndarray
    uy_A: np.ndarray
    g1_per_A: np.ndarray
    g2_per_A: np.ndarray
    amplitude1: np.ndarray
    amplitude2: np.ndarray
    border_px: int = 0  # maps are NaN within this many pixels of the image edge

    def summary(self, mask=None) -> dict:
        """Mean and standard deviation of each map over ``mask`` (default: all), NaN border left out."""
        m = np.ones(self.exx.shape, bool) if mask is None else mask
        out = {}
        for k in ("exx", "eyy", "exy", "rotation_deg"):
            v = getattr(self, k)[m]
            v = v[np.isfinite(v)]
            out[f"{k}_mean"] = float(np.mean(v)) if v.size else float("nan")
            out[f"{k}_std"] = float(np.std(v)) if v.size else float("nan")
        return out


def choose_reflections(image, *, pixel_size: float, d_min: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The two strongest non-collinear FFT spots (kx, ky) in 1/A, angle between them > 30 deg."""
    from cryomat.lattice.peaks import find_fft_peaks

    pk = find_fft_peaks(image, pixel_size=pixel_size, d_min=d_min, snr_min=8.0)
    if len(pk) < 2:
        raise ValueError("GPA needs two non-collinear lattice spots; fewer than two were found")
    P = pk[["kx_per_A", "ky_per_A"]].to_numpy()
    g1 = P[0]
    for g in P[1:]:
        ang = abs(math.degrees(math.atan2(g1[0] * g[1] - g1[1] * g[0], g1 @ g)))
        if 30 < ang < 150:
            return g1, g
    raise ValueError("all strong lattice spots are collinear; GPA needs two directions")


def lock_in_padded(image, k_per_A, *, pixel_size: float, sigma_A: float) -> tuple[np.ndarray, np.ndarray]:
    """Local amplitude and phase of the Fourier component ``k_per_A`` without wrap-around.

    As :func:`cryomat.lattice.superlattice.lock_in`, but the Gaussian low-pass of the demodulated
    image is a normalised convolution on a field zero-padded by 4 sigma: ``LP(d W) / LP(W)`` with
    W the image support, so a pixel near one edge averages only image pixels near it.
    """
    a = np.asarray(image, dtype=np.float64)
    a = a - a.mean()
    kx, ky = float(k_per_A[0]), float(k_per_A[1])
    pad = int(math.ceil(4.0 * sigma_A / pixel_size))
    nr, nc = a.shape[0] + 2 * pad, a.shape[1] + 2 * pad
    rows = np.arange(a.shape[0])[:, None] * pixel_size
    cols = np.arange(a.shape[1])[None, :] * pixel_size
    demod = np.zeros((nr, nc), complex)
    demod[pad:pad + a.shape[0], pad:pad + a.shape[1]] = a * np.exp(-2j * np.pi * (kx * cols + ky * rows))
    support = np.zeros((nr, nc))
    support[pad:pad + a.shape[0], pad:pad + a.shape[1]] = 1.0
    fr = np.fft.fftfreq(nr, pixel_size)[:, None]
    fc = np.fft.fftfreq(nc, pixel_size)[None, :]
    lp = np.exp(-2 * (np.pi * sigma_A) ** 2 * (fr**2 + fc**2))
    z = np.fft.ifft2(np.fft.fft2(demod) * lp)
    w = np.real(np.fft.ifft2(np.fft.fft2(support) * lp))
    crop = (slice(pad, pad + a.shape[0]), slice(pad, pad + a.shape[1]))
    z = z[crop] / np.maximum(w[crop], 1e-6)
    return 2 * np.abs(z), np.angle(z)


def _grad_phase(phase: np.ndarray, pixel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """(dP/dx, dP/dy) in rad/A without phase wrapping."""
    e = np.exp(1j * phase)
    dy, dx = np.gradient(e, pixel_size)
    return np.imag(np.conj(e) * dx), np.imag(np.conj(e) * dy)


def gpa(image, *, pixel_size: float, g1=None, g2=None, sigma_A: float | None = None,
        reference_mask: np.ndarray | None = None) -> GPAResult:
    """Geometric phase analysis of a lattice image.

    Parameters
    ----------
    image : (rows, cols).
    pixel_size : A per pixel.
    g1, g2 : reflections (kx, ky) in 1/A; default the two strongest non-collinear FFT spots.
    sigma_A : real-space resolution of the maps (A); default 2 lattice periods of the longer g.
    reference_mask : bool (rows, cols) region of unstrained lattice (default: the whole image).

    Returns
    -------
    :class:`GPAResult`; maps are NaN within ``border_px`` = ceil(2 sigma / pixel_size) of the edge
    (less on images narrower than 4 border widths).
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"image must be 2D, got shape {img.shape}")
    if g1 is None or g2 is None:
        g1, g2 = choose_reflections(img, pixel_size=pixel_size)
    g1, g2 = np.asarray(g1, float), np.asarray(g2, float)
    G = np.stack([g1, g2])
    if abs(np.linalg.det(G)) < 1e-9:
        raise ValueError("g1 and g2 must not be collinear")
    sigma = sigma_A or 2.0 / min(np.linalg.norm(g1), np.linalg.norm(g2))
    mask = np.ones(img.shape, bool) if reference_mask is None else np.asarray(reference_mask, bool)
    # keep well clear of the borders, where the low-pass reaches outside the image
    b = int(min(math.ceil(2 * sigma / pixel_size), min(img.shape) // 4))
    inner = np.zeros(img.shape, bool)
    inner[b:img.shape[0] - b, b:img.shape[1] - b] = True
    ref = mask & inner if (mask & inner).any() else mask
    phases, amps, gs = [], [], []
    for g in (g1, g2):
        # refine g so the mean phase gradient vanishes in the reference region (two passes)
        for _ in range(2):
            amp, ph = lock_in_padded(img, g, pixel_size=pixel_size, sigma_A=sigma)
            gx, gy = _grad_phase(ph, pixel_size)
            g = g + np.array([np.median(gx[ref]), np.median(gy[ref])]) / (2 * np.pi)
        amp, ph = lock_in_padded(img, g, pixel_size=pixel_size, sigma_A=sigma)
        phases.append(ph)
        amps.append(amp)
        gs.append(g)
    G = np.stack(gs)
    Ginv = np.linalg.inv(G)
    d1 = _grad_phase(phases[0], pixel_size)
    d2 = _grad_phase(phases[1], pixel_size)
    # distortion: du_i/dx_j = -(1/2pi) sum_k Ginv[i,k] dP_k/dx_j
    dux_dx = -(Ginv[0, 0] * d1[0] + Ginv[0, 1] * d2[0]) / (2 * np.pi)
    dux_dy = -(Ginv[0, 0] * d1[1] + Ginv[0, 1] * d2[1]) / (2 * np.pi)
    duy_dx = -(Ginv[1, 0] * d1[0] + Ginv[1, 1] * d2[0]) / (2 * np.pi)
    duy_dy = -(Ginv[1, 0] * d1[1] + Ginv[1, 1] * d2[1]) / (2 * np.pi)
    P = np.stack([phases[0], phases[1]])
    u = -np.einsum("ij,jrc->irc", Ginv, P) / (2 * np.pi)
    maps = [dux_dx, duy_dy, 0.5 * (dux_dy + duy_dx), np.degrees(0.5 * (duy_dx - dux_dy)), u[0], u[1]]
    edge = np.zeros(img.shape, bool)
    edge[:b] = edge[img.shape[0] - b:] = True
    edge[:, :b] = edge[:, img.shape[1] - b:] = True
    for m in maps:
        m[edge] = np.nan
    return GPAResult(exx=maps[0], eyy=maps[1], exy=maps[2], rotation_deg=maps[3], ux_A=maps[4], uy_A=maps[5],
                     g1_per_A=G[0], g2_per_A=G[1], amplitude1=amps[0], amplitude2=amps[1], border_px=b)
