"""Geometric phase analysis (GPA): displacement, strain and rotation maps from two Bragg spots.

For each of two non-collinear reflections g1, g2 the image is demodulated at g and low-passed
(Gaussian of width ``sigma_A`` in real space, i.e. a Gaussian mask around the spot), giving the
geometric phase P_g(r) = -2 pi g . u(r). The displacement is u = -(1 / 2 pi) G^-1 (P1, P2) with
G the 2x2 matrix of rows g1, g2, and the distortion tensor is its gradient, computed from
wrap-free phase derivatives (dP = Im(conj(e) de), e = exp(iP)). The reference lattice is the
one that makes the mean phase gradient zero in the reference region (default: the whole image).

Axes: x along columns, y along rows (so ``exx`` is the strain along the image columns);
maps are dimensionless strain, rotation in degrees (counter-clockwise in (x, y)).

References
----------
Hytch, Snoeck & Kilaas, Ultramicroscopy 74, 131 (1998), doi:10.1016/S0304-3991(98)00035-7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cryomat.lattice.superlattice import lock_in


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

    def summary(self, mask=None) -> dict:
        m = np.ones(self.exx.shape, bool) if mask is None else mask
        out = {}
        for k in ("exx", "eyy", "exy", "rotation_deg"):
            v = getattr(self, k)[m]
            out[f"{k}_mean"] = float(np.mean(v))
            out[f"{k}_std"] = float(np.std(v))
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
    :class:`GPAResult`.
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
    b = int(min(2 * sigma / pixel_size, min(img.shape) // 4))
    inner = np.zeros(img.shape, bool)
    inner[b:img.shape[0] - b, b:img.shape[1] - b] = True
    ref = mask & inner if (mask & inner).any() else mask
    phases, amps, gs = [], [], []
    for g in (g1, g2):
        # refine g so the mean phase gradient vanishes in the reference region (two passes)
        for _ in range(2):
            amp, ph = lock_in(img, g, pixel_size=pixel_size, sigma_A=sigma)
            gx, gy = _grad_phase(ph, pixel_size)
            g = g + np.array([np.median(gx[ref]), np.median(gy[ref])]) / (2 * np.pi)
        amp, ph = lock_in(img, g, pixel_size=pixel_size, sigma_A=sigma)
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
    return GPAResult(exx=dux_dx, eyy=duy_dy, exy=0.5 * (dux_dy + duy_dx),
                     rotation_deg=np.degrees(0.5 * (duy_dx - dux_dy)), ux_A=u[0], uy_A=u[1],
                     g1_per_A=G[0], g2_per_A=G[1], amplitude1=amps[0], amplitude2=amps[1])
