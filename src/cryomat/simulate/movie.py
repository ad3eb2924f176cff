"""Simulator kind ``movie``: low-dose TEM movie frames with a known drift trajectory.

Image formation (:mod:`cryomat.simulate.physics`): the projected potential of an amorphous film
(and optionally a crystalline patch or a whole-field crystal made of Gaussian atom columns on a
2D lattice) is imaged as a weak-phase object through the CTF; each frame is that image displaced
by a smooth drift trajectory (plus an optional local "doming" field), sampled with Poisson
counts at the dose per frame, and recorded by a counting detector with optional gain variation,
hot pixels and a dead column. The crystal can fade with dose (critical dose).

Truth convention: frame ``f`` shows the specimen displaced by ``drift_px[f]`` (row, col) pixels
relative to frame 0 (``drift_px[0] = (0, 0)``); local motion adds ``local_displacement(...)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryomat.simulate import physics
from cryomat.simulate.registry import register


def drift_trajectory(n_frames: int, *, total_px: float, rng: np.random.Generator, tau_frames: float | None = None,
                     stage_fraction: float = 0.3, jitter_px: float = 0.0) -> np.ndarray:
    """Smooth drift (n_frames, 2) in px: a decaying beam-induced jump plus linear stage drift.

    d(t) = A (1 - exp(-t / tau)) u1 + B t u2, with random directions u1, u2 and the path length
    scaled to ``total_px`` (``stage_fraction`` of it linear). ``jitter_px`` adds white per-frame
    noise (not smooth). ``drift[0] = 0``.
    """
    t = np.arange(n_frames, dtype=np.float64)
    tau = tau_frames if tau_frames else max(n_frames / 4.0, 1.0)
    a1, a2 = rng.uniform(0, 2 * np.pi, 2)
    u1 = np.array([np.sin(a1), np.cos(a1)])
    u2 = np.array([np.sin(a2), np.cos(a2)])
    beam = (1 - np.exp(-t / tau))[:, None] * u1[None]
    stage = (t / max(n_frames - 1, 1))[:, None] * u2[None]

    def path(d):
        return float(np.sum(np.hypot(*np.diff(d, axis=0).T))) if len(d) > 1 else 0.0

    lb, ls = path(beam), path(stage)
    d = (1 - stage_fraction) * total_px * beam / max(lb, 1e-12) + stage_fraction * total_px * stage / max(ls, 1e-12)
    d *= total_px / max(path(d), 1e-12)
    if jitter_px:
        d[1:] += rng.normal(0, jitter_px, (n_frames - 1, 2))
    return d - d[0]


def local_displacement(coords_rc, frame, *, n_frames: int, center_rc, width_px: float, amplitude_px: float,
                       tau_frames: float) -> np.ndarray:
    """Doming displacement (..., 2) px at positions ``coords_rc`` (..., 2) and frame index ``frame``.

    A radial Gaussian bulge u(p, t) = g(t) A (p - c)/w exp(-|p - c|^2 / (2 w^2)), with
    g(t) = (1 - exp(-t/tau)) / (1 - exp(-(n-1)/tau)) (0 at frame 0, 1 at the last frame).
    ``amplitude_px`` is the peak-to-peak of each component at the last frame (2 A exp(-1/2) = p-p).
    """
    p = np.asarray(coords_rc, dtype=np.float64)
    c = np.asarray(center_rc, dtype=np.float64)
    g = (1 - np.exp(-frame / tau_frames)) / (1 - np.exp(-(n_frames - 1) / tau_frames)) if n_frames > 1 else 0.0
    a = amplitude_px / (2 * np.exp(-0.5))
    d = (p - c) / width_px
    r2 = np.sum(d**2, axis=-1, keepdims=True)
    return g * a * d * np.exp(-0.5 * r2)


def crystal_potential(shape, *, pixel_size: float, period_A: float, angle_deg: float, column_phase_rad: float,
                      voltage_kV: float, sigma_A: float = 0.5, offset_A=(0.0, 0.0)) -> np.ndarray:
    """Projected potential (V A) of a square lattice of Gaussian atom columns (sum of Gaussians).

    Each column has peak phase ``column_phase_rad`` (phi = sigma V); columns are Gaussians of
    width ``sigma_A`` on a square lattice of spacing ``period_A`` rotated by ``angle_deg``.
    Each pixel takes the Gaussian of its nearest column (neighbours beyond add less than
    exp(-(a / 2 sigma)^2 / 2), negligible for a >= 4 sigma).
    """
    th = np.deg2rad(angle_deg)
    a1 = period_A * np.array([np.cos(th), np.sin(th)])
    a2 = period_A * np.array([-np.sin(th), np.cos(th)])
    # real-space lattice via sum over atoms of Gaussians, computed directly (small arrays)
    rows = np.arange(shape[0]) * pixel_size
    cols = np.arange(shape[1]) * pixel_size
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    pos = np.stack([rr, cc], -1) - np.asarray(offset_A)
    inv = np.linalg.inv(np.stack([a1, a2], 1))
    frac = pos @ inv.T
    frac -= np.round(frac)
    dr = frac @ np.stack([a1, a2], 1).T
    v = np.exp(-0.5 * np.sum(dr**2, -1) / sigma_A**2)
    return v * column_phase_rad / physics.interaction_constant(voltage_kV)


def render_movie(*, n_frames: int = 20, shape=(512, 512), pixel_size: float = 1.0, voltage_kV: float = 300.0,
                 dose_per_frame: float = 0.5, defocus_A: float = 15000.0, film_thickness_A: float = 300.0,
                 specimen: str = "film+crystal", lattice_period_A: float = 6.0, lattice_angle_deg: float = 12.0,
                 column_phase_rad: float = 0.6, crystal_radius_frac: float = 0.3,
                 crystal_critical_dose: float | None = None, drift_total_px: float = 10.0, jitter_px: float = 0.0,
                 local_motion_px: float = 0.0, gain_variation: float = 0.0, n_hot_pixels: int = 0,
                 dead_column: bool = False, pre_exposure: float = 0.0, seed: int = 0):
    """Frames (n, row, col) float32 counts and a truth dict (see module docstring)."""
    from scipy import ndimage

    if specimen not in ("film", "film+crystal", "crystal"):
        raise ValueError(f"specimen must be 'film', 'film+crystal' or 'crystal', got {specimen!r}")
    rng = np.random.default_rng(seed)
    shape = (int(shape[0]), int(shape[1]))
    drift = drift_trajectory(n_frames, total_px=drift_total_px, rng=rng, jitter_px=jitter_px)
    margin = int(np.ceil(np.abs(drift).max() + 2 * abs(local_motion_px) + 16))
    big = (shape[0] + 2 * margin, shape[1] + 2 * margin)
    film_img = np.zeros(big)
    crys_img = np.zeros(big)
    kw = dict(pixel_size=pixel_size, voltage_kV=voltage_kV, defocus_A=defocus_A)
    if specimen != "crystal":
        vp = physics.amorphous_potential(big, pixel_size=pixel_size, rng=rng, thickness_A=film_thickness_A)
        film_img = physics.weak_phase_image(vp, **kw) - 1.0
    if specimen != "film":
        vc = crystal_potential(big, pixel_size=pixel_size, period_A=lattice_period_A, angle_deg=lattice_angle_deg,
                               column_phase_rad=column_phase_rad, voltage_kV=voltage_kV)
        if specimen == "film+crystal":
            rr, cc = np.mgrid[0:big[0], 0:big[1]]
            r = np.hypot(rr - big[0] / 2, cc - big[1] / 2)
            rad = crystal_radius_frac * min(shape)
            vc = vc * np.clip((rad - r) / 4.0 + 0.5, 0, 1)
        crys_img = physics.weak_phase_image(vc, **kw) - 1.0
    width = 0.3 * min(shape)
    center = ((shape[0] - 1) / 2, (shape[1] - 1) / 2)
    tau = max(n_frames / 4.0, 1.0)
    sens = np.ones(shape)
    if gain_variation:
        sens = np.clip(1 + gain_variation * rng.standard_normal(shape), 0.2, None)
    hot = np.zeros(shape, bool)
    if n_hot_pixels:
        idx = rng.choice(shape[0] * shape[1], int(n_hot_pixels), replace=False)
        hot.flat[idx] = True
    dead_col = int(rng.integers(shape[1] // 8, 7 * shape[1] // 8)) if dead_column else None
    frames = np.empty((n_frames,) + shape, np.float32)
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    spl_f = ndimage.spline_filter(film_img) if local_motion_px else None
    spl_c = ndimage.spline_filter(crys_img) if local_motion_px else None
    crystal_amp = []
    for f in range(n_frames):
        n_mid = pre_exposure + (f + 0.5) * dose_per_frame
        amp = float(np.exp(-n_mid / crystal_critical_dose)) if crystal_critical_dose else 1.0
        crystal_amp.append(amp)
        if local_motion_px:
            u = local_displacement(np.stack([rows, cols], -1), f, n_frames=n_frames, center_rc=center,
                                   width_px=width, amplitude_px=local_motion_px, tau_frames=tau)
            cr = rows + margin - drift[f, 0] - u[..., 0]
            ccol = cols + margin - drift[f, 1] - u[..., 1]
            img = ndimage.map_coordinates(spl_f, [cr, ccol], order=3, prefilter=False, mode="nearest")
            img = img + amp * ndimage.map_coordinates(spl_c, [cr, ccol], order=3, prefilter=False, mode="nearest")
        else:
            img = physics.fourier_shift(film_img + amp * crys_img, tuple(drift[f]))
            img = img[margin:margin + shape[0], margin:margin + shape[1]]
        ideal = np.clip(1.0 + img, 0, None) * sens
        counts = physics.shot_noise(ideal, dose_e_per_A2=dose_per_frame, pixel_size=pixel_size, rng=rng)
        if n_hot_pixels:
            counts[hot] += rng.poisson(20.0, int(hot.sum()))
        if dead_col is not None:
            counts[:, dead_col] = 0
        frames[f] = counts
    defects = hot.copy()
    if dead_col is not None:
        defects[:, dead_col] = True
    truth = {
        "drift_px": drift, "drift_A": drift * pixel_size, "pixel_size_A": pixel_size, "voltage_kV": voltage_kV,
        "dose_per_frame_e_per_A2": dose_per_frame, "counts_per_px_per_frame": dose_per_frame * pixel_size**2,
        "pre_exposure_e_per_A2": pre_exposure, "n_frames": n_frames, "shape": list(shape),
        "lattice_period_A": lattice_period_A if specimen != "film" else None,
        "lattice_angle_deg": lattice_angle_deg if specimen != "film" else None,
        "crystal_amplitude": crystal_amp,
        "local_motion": ({"center_rc_px": list(center), "width_px": width, "amplitude_px": local_motion_px,
                          "tau_frames": tau, "model": "cryomat.simulate.movie.local_displacement"}
                         if local_motion_px else None),
        "n_hot_pixels": int(n_hot_pixels), "dead_column": dead_col,
    }
    gain = (1.0 / sens).astype(np.float32) if gain_variation else None
    return frames, truth, gain, defects


@register("movie", help="low-dose TEM movie (counts) with known drift, optional doming, gain and defects")
def write(out: Path, *, seed: int = 0, n_frames: int = 20, size: int = 512, pixel_size: float = 1.0,
          voltage_kV: float = 300.0, dose_per_frame: float = 0.5, defocus_A: float = 15000.0,
          specimen: str = "film+crystal", lattice_period_A: float = 6.0, crystal_critical_dose: float | None = None,
          drift_total_px: float = 10.0, jitter_px: float = 0.0, local_motion_px: float = 0.0,
          gain_variation: float = 0.0, n_hot_pixels: int = 0, dead_column: bool = False,
          pre_exposure: float = 0.0) -> dict:
    """Write movie.mrcs (counts), gain.mrc / defects.mrc when used; return the truth dict."""
    from cryomat.io.writers import write_mrc

    frames, truth, gain, defects = render_movie(
        n_frames=n_frames, shape=(size, size), pixel_size=pixel_size, voltage_kV=voltage_kV,
        dose_per_frame=dose_per_frame, defocus_A=defocus_A, specimen=specimen, lattice_period_A=lattice_period_A,
        crystal_critical_dose=crystal_critical_dose, drift_total_px=drift_total_px, jitter_px=jitter_px,
        local_motion_px=local_motion_px, gain_variation=gain_variation, n_hot_pixels=n_hot_pixels,
        dead_column=dead_column, pre_exposure=pre_exposure, seed=seed)
    data = frames.astype(np.uint16) if frames.max() < 65535 else frames
    write_mrc(Path(out) / "movie.mrcs", data, pixel_size=pixel_size)
    files = {"movie": "movie.mrcs"}
    if gain is not None:
        write_mrc(Path(out) / "gain.mrc", gain, pixel_size=pixel_size)
        files["gain"] = "gain.mrc"
    if defects.any():
        write_mrc(Path(out) / "defects.mrc", defects.astype(np.int8), pixel_size=pixel_size)
        files["defects"] = "defects.mrc"
    truth["files"] = files
    return truth
