"""Simulator kind ``stem_series``: a fast-scan HAADF-STEM frame series with known drift.

Incoherent Z-contrast imaging: the HAADF intensity is a sum of probe-blurred Gaussian atom columns
(intensity ~ Z^1.7 per column) on a 2D lattice, over a weak amorphous support, scaled so that the
detector collects ``counts_per_px`` electrons per pixel per frame on the columns (0.1-1 for the
low-dose series of beam-sensitive materials). Each frame is displaced by a smooth drift trajectory,
optionally with scan-line jitter (each row displaced along the fast scan axis) and a lattice that
fades with dose. Poisson counts.

Truth: frame ``f`` shows the specimen displaced by ``drift_px[f]`` (row, col) relative to frame 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryomat.simulate import physics
from cryomat.simulate.movie import drift_trajectory
from cryomat.simulate.registry import register


def haadf_lattice(shape, *, pixel_size: float, period_A: float, angle_deg: float, probe_sigma_A: float = 0.6,
                  offset_A=(0.0, 0.0)) -> np.ndarray:
    """Noise-free HAADF column image (peak ~1 on a column, 0 between) of a square lattice."""
    th = np.deg2rad(angle_deg)
    a = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]) * period_A  # columns = a1, a2
    rr, cc = np.meshgrid(np.arange(shape[0]) * pixel_size, np.arange(shape[1]) * pixel_size, indexing="ij")
    pos = np.stack([rr, cc], -1) - np.asarray(offset_A)
    frac = pos @ np.linalg.inv(a).T
    frac -= np.round(frac)
    d = frac @ a.T
    return np.exp(-0.5 * np.sum(d**2, -1) / probe_sigma_A**2)


def render_stem_series(*, n_frames: int = 10, shape=(256, 256), pixel_size: float = 0.5, counts_per_px: float = 0.5,
                       period_A: float = 3.9, angle_deg: float = 8.0, support_fraction: float = 0.15,
                       drift_total_px: float = 8.0, scan_jitter_px: float = 0.0, critical_dose: float | None = None,
                       probe_current_e_per_A2: float | None = None, seed: int = 0):
    """Frames (n, row, col) float32 counts and a truth dict."""
    rng = np.random.default_rng(seed)
    shape = (int(shape[0]), int(shape[1]))
    drift = drift_trajectory(n_frames, total_px=drift_total_px, rng=rng)
    margin = int(np.ceil(np.abs(drift).max() + 3 * scan_jitter_px + 8))
    big = (shape[0] + 2 * margin, shape[1] + 2 * margin)
    lat = haadf_lattice(big, pixel_size=pixel_size, period_A=period_A, angle_deg=angle_deg)
    vp = physics.amorphous_potential(big, pixel_size=pixel_size, rng=rng, ring_A=2.1, thickness_A=50.0)
    sup = (vp - vp.min()) / (np.ptp(vp) + 1e-12)
    frames = np.empty((n_frames,) + shape, np.float32)
    dose_frame = counts_per_px / pixel_size**2  # fluence scale that gives counts_per_px on a column
    amps = []
    jit = np.zeros((n_frames, shape[0]))
    for f in range(n_frames):
        n_mid = (f + 0.5) * (probe_current_e_per_A2 or dose_frame)
        amp = float(np.exp(-n_mid / critical_dose)) if critical_dose else 1.0
        amps.append(amp)
        ideal = physics.fourier_shift(amp * lat + support_fraction * sup, tuple(drift[f]))
        ideal = ideal[margin:margin + shape[0], margin:margin + shape[1]]
        if scan_jitter_px:
            jit[f] = rng.normal(0, scan_jitter_px, shape[0])
            cols = np.arange(shape[1])
            ideal = np.stack([np.interp(cols - jit[f, r], cols, ideal[r]) for r in range(shape[0])])
        frames[f] = rng.poisson(np.clip(ideal, 0, None) * counts_per_px).astype(np.float32)
    truth = {"drift_px": drift, "drift_A": drift * pixel_size, "pixel_size_A": pixel_size, "n_frames": n_frames,
             "shape": list(shape), "counts_per_px_on_column": counts_per_px, "lattice_period_A": period_A,
             "lattice_angle_deg": angle_deg, "lattice_amplitude": amps,
             "scan_jitter_px": jit if scan_jitter_px else None}
    return frames, truth


@register("stem_series", help="fast-scan HAADF-STEM frame series of a lattice with known drift (Poisson counts)")
def write(out: Path, *, seed: int = 0, n_frames: int = 10, size: int = 256, pixel_size: float = 0.5,
          counts_per_px: float = 0.5, period_A: float = 3.9, drift_total_px: float = 8.0, scan_jitter_px: float = 0.0,
          critical_dose: float | None = None) -> dict:
    """Write series.mrcs (counts) and return the truth dict."""
    from cryomat.io.writers import write_mrc

    frames, truth = render_stem_series(n_frames=n_frames, shape=(size, size), pixel_size=pixel_size,
                                       counts_per_px=counts_per_px, period_A=period_A, drift_total_px=drift_total_px,
                                       scan_jitter_px=scan_jitter_px, critical_dose=critical_dose, seed=seed)
    write_mrc(Path(out) / "series.mrcs", frames.astype(np.uint16), pixel_size=pixel_size)
    truth["files"] = {"series": "series.mrcs"}
    return truth
