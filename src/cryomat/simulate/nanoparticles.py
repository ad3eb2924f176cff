"""Crystalline nanoparticles on an amorphous support, recorded at a stated dose.

The scene is a set of round crystalline particles (Gaussian atomic columns on a 2D square or
hexagonal lattice, each particle with its own orientation, lattice constant and a spherical
thickness profile) lying on an amorphous film. Contrast is either HAADF-like (columns bright,
intensity ~ projected mass) or weak-phase bright field under the CTF. Electrons are counted
(Poisson) at ``dose_e_per_px`` (or ``dose_e_per_A2``) and passed through a counting or an
integrating detector (:func:`cryomat.simulate.physics.detector`): gain, offset, read noise,
row/column correlated read noise and MTF.

The clean truth written beside the noisy image is the detector's expected output (the same
units, gain, offset and MTF as the noisy image, without any noise), which is the target a
denoiser should reach.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryomat.simulate import physics
from cryomat.simulate.registry import register


def _lattice_patch(shape, *, a_A, angle_deg, sigma_A, pixel_size, kind, offset_rc, max_order=5):
    """Periodic sum of Gaussian atoms (peak ~1 per atom) evaluated by its Fourier series on a patch."""
    rows = (np.arange(shape[0]) + offset_rc[0])[:, None] * pixel_size
    cols = (np.arange(shape[1]) + offset_rc[1])[None, :] * pixel_size
    th = np.deg2rad(angle_deg)
    if kind == "hex":
        b1 = np.array([1.0, -1.0 / np.sqrt(3)]) / a_A
        b2 = np.array([0.0, 2.0 / np.sqrt(3)]) / a_A
        cell_area = a_A * a_A * np.sqrt(3) / 2
    else:
        b1 = np.array([1.0, 0.0]) / a_A
        b2 = np.array([0.0, 1.0]) / a_A
        cell_area = a_A * a_A
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    b1, b2 = rot @ b1, rot @ b2
    # Fourier coefficient of one Gaussian atom of unit peak: 2 pi sigma^2 exp(-2 pi^2 sigma^2 g^2) / cell area
    amp0 = 2 * np.pi * sigma_A**2 / cell_area
    out = np.full(shape, amp0)
    for h in range(0, max_order + 1):
        for k in range(-max_order, max_order + 1):
            if h == 0 and k <= 0:
                continue
            g = h * b1 + k * b2
            g2 = g @ g
            if g2 * pixel_size**2 > 0.25:  # beyond Nyquist: would alias
                continue
            w = amp0 * np.exp(-2 * np.pi**2 * sigma_A**2 * g2)
            if w < 1e-4 * amp0:
                continue
            out += 2 * w * np.cos(2 * np.pi * (g[0] * rows + g[1] * cols))
    return out


def nanoparticle_scene(shape=(512, 512), *, pixel_size: float = 0.5, rng: np.random.Generator,
                       n_particles: int | None = None, radius_A=(15.0, 45.0), lattice_A=(2.4, 4.2),
                       contrast: str = "haadf", support_thickness_A: float = 80.0, voltage_kV: float = 300.0,
                       defocus_A: float = 300.0):
    """Noise-free relative intensity (mean about 1) of crystalline particles on amorphous support.

    Parameters
    ----------
    shape : (row, col) in px.
    pixel_size : A per px.
    rng : random generator (positions, orientations, support).
    n_particles : number of particles; default fills about 30 % of the field.
    radius_A, lattice_A : ranges (A) of particle radius and lattice constant.
    contrast : ``"haadf"`` (bright columns on a dim support) or ``"phase"`` (weak-phase bright field).

    Returns
    -------
    intensity : (row, col) float64, relative intensity.
    particles : list of dicts (centre_rc_px, radius_A, lattice_A, angle_deg, kind).
    """
    nr, nc = shape
    if contrast not in ("haadf", "phase"):
        raise ValueError(f"contrast must be 'haadf' or 'phase', got {contrast!r}")
    area_A2 = nr * nc * pixel_size**2
    if n_particles is None:
        mean_r = 0.5 * (radius_A[0] + radius_A[1])
        n_particles = max(1, int(round(0.3 * area_A2 / (np.pi * mean_r**2))))
    columns = np.zeros(shape)
    particles = []
    for _ in range(int(n_particles)):
        r_A = rng.uniform(*radius_A)
        r_px = r_A / pixel_size
        cr, cc = rng.uniform(0, nr), rng.uniform(0, nc)
        a = rng.uniform(*lattice_A)
        ang = rng.uniform(0, 180)
        kind = "hex" if rng.random() < 0.5 else "square"
        r0, r1 = int(max(0, np.floor(cr - r_px - 2))), int(min(nr, np.ceil(cr + r_px + 2)))
        c0, c1 = int(max(0, np.floor(cc - r_px - 2))), int(min(nc, np.ceil(cc + r_px + 2)))
        if r1 <= r0 or c1 <= c0:
            continue
        rr = (np.arange(r0, r1)[:, None] - cr)
        ccg = (np.arange(c0, c1)[None, :] - cc)
        d2 = (rr**2 + ccg**2) / r_px**2
        thick = np.sqrt(np.clip(1 - d2, 0, None))  # spherical thickness profile, 0..1
        edge = np.clip((1 - np.sqrt(d2)) * r_px, 0, 1)  # one-pixel soft edge
        lat = _lattice_patch((r1 - r0, c1 - c0), a_A=a, angle_deg=ang, sigma_A=max(0.35, 0.6 * pixel_size),
                             pixel_size=pixel_size, kind=kind, offset_rc=(r0, c0))
        columns[r0:r1, c0:c1] += lat * thick * edge
        particles.append({"centre_rc_px": [cr, cc], "radius_A": r_A, "lattice_A": a, "angle_deg": ang,
                          "kind": kind})
    support = physics.amorphous_potential(shape, pixel_size=pixel_size, rng=rng, ring_A=2.1,
                                          thickness_A=support_thickness_A, mean_potential_V=9.0,
                                          molecular_volume_A3=9.0)
    field = (support - support.mean()) / (support.std() + 1e-12)
    if contrast == "haadf":
        inten = 0.3 * (1 + 0.15 * field) + 1.5 * columns
    else:
        # support phase rms ~0.05 rad; a column of ~8 heavy atoms ~0.3 rad at 300 kV
        vp = 0.05 / physics.interaction_constant(voltage_kV) * field + 450.0 * columns
        inten = physics.weak_phase_image(vp, pixel_size=pixel_size, voltage_kV=voltage_kV, defocus_A=defocus_A,
                                         cs_mm=1.2, b_factor_A2=5.0)
    inten = np.clip(inten, 0, None)
    return inten / inten.mean(), particles


def record(intensity, *, dose_e_per_px: float, rng: np.random.Generator, detector: str = "counting",
           gain: float = 1.0, offset: float = 0.0, read_noise: float = 0.0, row_noise: float = 0.0,
           col_noise: float = 0.0, mtf_a: float = 0.0, n_frames: int = 1):
    """Expose ``intensity`` (relative, mean ~1) at ``dose_e_per_px`` and read it out.

    Returns
    -------
    noisy : (row, col) float32 detector image (sum of frames).
    clean : (row, col) float64 expected detector output (no shot or read noise).
    frames : (n_frames, row, col) float32 or None when ``n_frames`` is 1.
    """
    lam = np.clip(np.asarray(intensity, np.float64), 0, None) * float(dose_e_per_px)
    det = dict(kind=detector, gain=gain, read_noise=read_noise, row_noise=row_noise, col_noise=col_noise,
               mtf_a=mtf_a)
    frames = []
    for _ in range(int(n_frames)):
        counts = rng.poisson(lam / n_frames)
        frames.append(physics.detector(counts, rng=rng, offset=offset / n_frames, **det))
    frames = np.stack(frames)
    noisy = frames.sum(axis=0, dtype=np.float64).astype(np.float32)
    clean_rng = np.random.default_rng(0)
    clean = physics.detector(lam, rng=clean_rng, kind=detector, gain=gain, offset=offset, mtf_a=mtf_a)
    return noisy, clean.astype(np.float64), (frames if n_frames > 1 else None)


@register("nanoparticles", help="crystalline nanoparticles on amorphous support at a given dose (noisy + clean)")
def write(out: Path, *, seed: int, size: int = 512, pixel_size_A: float = 0.5, dose_e_per_px: float = 32.0,
          dose_e_per_A2: float | None = None, contrast: str = "haadf", detector: str = "counting",
          gain: float = 1.0, offset: float = 0.0, read_noise: float = 0.0, row_noise: float = 0.0,
          col_noise: float = 0.0, mtf_a: float = 0.0, n_frames: int = 1, n_particles: int | None = None) -> dict:
    """Crystalline nanoparticles on amorphous support: noisy.mrc, clean.mrc (truth), movie.mrcs when n_frames > 1."""
    from cryomat.io import write_mrc

    rng = np.random.default_rng(seed)
    if dose_e_per_A2 is not None:
        dose_e_per_px = physics.counts_per_pixel(dose_e_per_A2, pixel_size_A)
    if dose_e_per_px <= 0:
        raise ValueError(f"dose_e_per_px must be positive, got {dose_e_per_px!r}")
    inten, parts = nanoparticle_scene((size, size), pixel_size=pixel_size_A, rng=rng, n_particles=n_particles,
                                      contrast=contrast)
    noisy, clean, frames = record(inten, dose_e_per_px=dose_e_per_px, rng=rng, detector=detector, gain=gain,
                                  offset=offset, read_noise=read_noise, row_noise=row_noise, col_noise=col_noise,
                                  mtf_a=mtf_a, n_frames=n_frames)
    write_mrc(out / "noisy.mrc", noisy, pixel_size=pixel_size_A)
    write_mrc(out / "clean.mrc", clean.astype(np.float32), pixel_size=pixel_size_A)
    files = ["noisy.mrc", "clean.mrc"]
    if frames is not None:
        write_mrc(out / "movie.mrcs", frames, pixel_size=pixel_size_A)
        files.append("movie.mrcs")
    return {"files": files, "dose_e_per_px": float(dose_e_per_px),
            "dose_e_per_A2": float(dose_e_per_px / pixel_size_A**2), "pixel_size_A": pixel_size_A,
            "particles": parts, "noise_model": {"detector": detector, "gain": gain, "offset": offset,
                                                "read_noise": read_noise, "row_noise": row_noise,
                                                "col_noise": col_noise, "mtf_a": mtf_a}}
