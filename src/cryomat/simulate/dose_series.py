"""Simulator kind ``dose_series``: a crystal fading under the beam, frame after frame.

The crystal is a 2D lattice of Gaussian atoms (a two-atom basis), written as its Fourier series
over every reflection up to ``max_freq_per_A``, so each reflection's amplitude is known exactly.
Damage acts per reflection like a growing Debye-Waller factor: the amplitude of a reflection of
spacing d falls as sqrt((1 - offset) exp(-D/Dc(d)) + offset), so its intensity follows
I/I0 = (1 - offset) exp(-D/Dc(d)) + offset with Dc(d) = Dc (d / d_max)^dc_exponent (high orders
fade first for dc_exponent > 0). The crystal that is lost turns into a growing amorphous
background (amorphisation), the amorphous film thins (mass loss: its contrast falls by
``mass_loss`` at high dose, so the Bragg decay keeps its known law), the stage drifts, and every frame gets
Poisson noise at the fluence per frame (:func:`cryomat.simulate.physics.shot_noise`). Each frame
shows the damage state at the middle of its exposure (exact for exponential decay up to a
constant factor, which does not change Dc).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryomat.simulate.registry import register


def _reflections(a_A, b_A, gamma_deg, rotation_deg, max_freq, atom_sigma_A, basis):
    """Reflections (half-plane representatives) with their structure factors and frequencies."""
    g = np.deg2rad(gamma_deg)
    rot = np.deg2rad(rotation_deg)
    # real-space basis vectors in (row, col) A
    a1 = np.array([-np.sin(rot), np.cos(rot)]) * a_A
    a2 = np.array([-np.sin(rot + g), np.cos(rot + g)]) * b_A
    real = np.stack([a1, a2])
    recip = np.linalg.inv(real).T     # rows: b1, b2 with a_i . b_j = delta_ij
    hmax = int(np.ceil(max_freq * max(a_A, b_A) / np.sin(g))) + 1
    out = []
    for h in range(-hmax, hmax + 1):
        for k in range(-hmax, hmax + 1):
            if (h, k) == (0, 0) or h < 0 or (h == 0 and k < 0):
                continue
            gv = h * recip[0] + k * recip[1]
            f = float(np.hypot(*gv))
            if f > max_freq:
                continue
            sf = sum(w * np.exp(-2j * np.pi * (h * u + k * v)) for (u, v), w in basis)
            amp = abs(sf) * np.exp(-2 * np.pi**2 * atom_sigma_A**2 * f**2)
            if amp < 1e-3 * len(basis):
                continue
            out.append({"h": h, "k": k, "g_row_per_A": float(gv[0]), "g_col_per_A": float(gv[1]), "freq_per_A": f,
                        "d_spacing_A": 1.0 / f, "amplitude": float(amp), "phase_rad": float(np.angle(sf))})
    return out


def _amorphous_spectrum(shape, px, rng, ring_A):
    from cryomat.simulate.physics import amorphous_potential

    field = amorphous_potential(shape, pixel_size=px, rng=rng, ring_A=ring_A)
    field = (field - field.mean()) / (field.std() + 1e-12)
    return np.fft.rfft2(field)


def dose_series_frames(*, seed: int = 0, shape=(512, 512), n_frames: int = 40, pixel_size: float = 1.0,
                       dose_per_frame: float = 2.0, pre_exposure: float = 0.0, critical_dose: float = 20.0,
                       dc_exponent: float = 0.0, offset: float = 0.0, a_A: float = 5.0, b_A: float = 6.0,
                       gamma_deg: float = 80.0, rotation_deg: float | None = None, max_freq_per_A: float = 0.6,
                       atom_sigma_A: float = 0.35, contrast: float = 0.3, amorphous_contrast: float = 0.15,
                       amorphisation: float = 0.5, mass_loss: float = 0.1, drift_px_per_frame: float = 0.5,
                       amorphous_fresh: float = 0.0):
    """Generator of simulated frames (float32 counts) plus the truth dict (first yield).

    Yields ``truth`` first, then each frame in turn. See :func:`write_dose_series` for the parameters;
    ``amorphous_fresh`` (0..1) is the fraction of the amorphous structure that rearranges randomly
    from frame to frame (0: a static film).
    """
    rng = np.random.default_rng(seed)
    m, n = (int(shape), int(shape)) if np.isscalar(shape) else tuple(int(s) for s in shape)
    px = float(pixel_size)
    max_freq = min(float(max_freq_per_A), 0.8 / (2 * px))
    rot = float(rng.uniform(0, 180)) if rotation_deg is None else float(rotation_deg)
    basis = [((0.0, 0.0), 1.0), ((0.5, 0.5), 0.6)]
    refl = _reflections(a_A, b_A, gamma_deg, rot, max_freq, atom_sigma_A, basis)
    if not refl:
        raise ValueError("no reflection lies within max_freq_per_A; lower the lattice constants or raise the limit")
    d_max = max(r["d_spacing_A"] for r in refl)
    for r in refl:
        r["critical_dose_e_per_A2"] = float(critical_dose * (r["d_spacing_A"] / d_max) ** dc_exponent)
    # normalise the crystal so its rms is 1 at zero dose
    rms = np.sqrt(sum(2 * r["amplitude"] ** 2 for r in refl))
    for r in refl:
        r["amplitude"] /= rms
    am_ice = _amorphous_spectrum((m, n), px, rng, 3.7)
    am_cryst = _amorphous_spectrum((m, n), px, rng, float(np.median([r["d_spacing_A"] for r in refl])))
    theta = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.sin(theta), np.cos(theta)])
    jitter = rng.normal(0, 0.15 * drift_px_per_frame, size=(n_frames, 2))
    shifts = np.arange(n_frames)[:, None] * drift_px_per_frame * direction[None, :] + np.cumsum(jitter, axis=0)
    shifts -= shifts[0]
    rows_A = (np.arange(m) * px).astype(np.float64)
    cols_A = (np.arange(n) * px).astype(np.float64)
    kr = np.fft.fftfreq(m)[:, None]
    kc = np.fft.rfftfreq(n)[None, :]
    dose_mid = pre_exposure + dose_per_frame * (np.arange(n_frames) + 0.5)
    dc_sum = critical_dose
    # the 1/e fluence of the summed Bragg intensity (what the headline fit measures), by bisection
    w = np.array([r["amplitude"] ** 2 for r in refl])
    dcs = np.array([r["critical_dose_e_per_A2"] for r in refl])

    def _summed(dd):
        return float(np.sum(w * ((1 - offset) * np.exp(-dd / dcs) + offset)) / w.sum())

    lo_d, hi_d = 0.0, 50.0 * critical_dose
    for _ in range(100):
        mid = 0.5 * (lo_d + hi_d)
        lo_d, hi_d = (mid, hi_d) if _summed(mid) - offset > (1 - offset) / np.e else (lo_d, mid)
    by_d = {}
    for r in refl:
        by_d.setdefault(round(r["d_spacing_A"], 3), r["critical_dose_e_per_A2"])
    truth = {
        "pixel_size_A": px, "shape": [m, n], "n_frames": n_frames, "dose_per_frame_e_per_A2": dose_per_frame,
        "pre_exposure_e_per_A2": pre_exposure, "critical_dose_e_per_A2": float(critical_dose),
        "critical_dose_reference_d_A": d_max, "dc_exponent": dc_exponent, "offset_rel": offset,
        "lattice": {"a_A": a_A, "b_A": b_A, "gamma_deg": gamma_deg, "rotation_deg": rot},
        "critical_dose_summed_e_per_A2": 0.5 * (lo_d + hi_d),
        "critical_dose_by_d_spacing": [{"d_spacing_A": k, "critical_dose_e_per_A2": v} for k, v in sorted(by_d.items())],
        "reflections": refl, "drift_px": shifts.tolist(), "cumulative_dose_mid_e_per_A2": dose_mid.tolist(),
        "dose_convention": "frame i shows the damage state at pre_exposure + (i + 0.5) dose_per_frame",
        "amorphisation": amorphisation, "mass_loss": mass_loss,
    }
    yield truth
    from cryomat.simulate.physics import shot_noise

    for i in range(n_frames):
        d = dose_mid[i]
        sr, sc = shifts[i] * px
        crystal = np.zeros((m, n), dtype=np.float32)
        for r in refl:
            frac = (1 - offset) * np.exp(-d / r["critical_dose_e_per_A2"]) + offset
            amp = 2.0 * r["amplitude"] * np.sqrt(frac)
            ar = 2 * np.pi * r["g_row_per_A"] * (rows_A - sr)
            ac = 2 * np.pi * r["g_col_per_A"] * (cols_A - sc) + r["phase_rad"]
            crystal += (amp * np.cos(ar)).astype(np.float32)[:, None] * np.cos(ac).astype(np.float32)[None, :]
            crystal -= (amp * np.sin(ar)).astype(np.float32)[:, None] * np.sin(ac).astype(np.float32)[None, :]
        lost = 1.0 - np.exp(-d / dc_sum)
        ramp = np.exp(-2j * np.pi * (kr * shifts[i][0] + kc * shifts[i][1]))
        am = am_ice + amorphisation * lost * am_cryst
        if amorphous_fresh > 0:   # part of the amorphous structure rearranges from frame to frame
            phase = np.exp(2j * np.pi * rng.random(am.shape))
            am = np.sqrt(1 - amorphous_fresh) * am + np.sqrt(amorphous_fresh) * np.abs(am) * phase
        amorph = np.fft.irfft2(am * ramp, s=(m, n))
        thick = 1.0 - mass_loss * (1.0 - np.exp(-d / (2.0 * critical_dose)))
        image = 1.0 + contrast * crystal + thick * amorphous_contrast * amorph
        yield shot_noise(image, dose_e_per_A2=dose_per_frame, pixel_size=px, rng=rng)


def simulate_dose_series(**params):
    """Simulated dose series in memory: ``(frames (frame, row, col) float32, truth dict)``."""
    gen = dose_series_frames(**params)
    truth = next(gen)
    return np.stack(list(gen)), truth


@register("dose_series", help="crystal fading under the beam: per-reflection critical doses, amorphisation, "
                              "mass loss, drift, Poisson noise (series.mrcs + truth.json)")
def write_dose_series(out_dir: Path, *, seed: int = 0, size: int = 512, n_frames: int = 40, pixel_size: float = 1.0,
                      dose_per_frame: float = 2.0, pre_exposure: float = 0.0, critical_dose: float = 20.0,
                      dc_exponent: float = 0.0, offset: float = 0.0, contrast: float = 0.3,
                      amorphisation: float = 0.5, mass_loss: float = 0.1, drift_px_per_frame: float = 0.5) -> dict:
    """Dose series of a crystal with a known critical dose per reflection (series.mrcs).

    Parameters (units): size (px, square frames), n_frames, pixel_size (A), dose_per_frame (e/A^2),
    pre_exposure (e/A^2), critical_dose (e/A^2, for the largest d-spacing), dc_exponent
    (Dc(d) = critical_dose (d/d_max)^dc_exponent; 0, the default, gives one Dc for all reflections;
    truth.json then also gives ``critical_dose_summed_e_per_A2``, the 1/e fluence of the summed
    Bragg intensity, and ``critical_dose_by_d_spacing``), offset
    (non-decaying fraction of I0), contrast (rms crystal contrast), amorphisation (amorphous
    contrast gained when the crystal is gone, relative), mass_loss (fraction of the film lost at
    high dose), drift_px_per_frame.
    """
    import mrcfile

    from cryomat.io.atomic import atomic_path

    gen = dose_series_frames(seed=seed, shape=(size, size), n_frames=n_frames, pixel_size=pixel_size,
                             dose_per_frame=dose_per_frame, pre_exposure=pre_exposure, critical_dose=critical_dose,
                             dc_exponent=dc_exponent, offset=offset, contrast=contrast, amorphisation=amorphisation,
                             mass_loss=mass_loss, drift_px_per_frame=drift_px_per_frame)
    truth = next(gen)
    target = Path(out_dir) / "series.mrcs"
    with atomic_path(target) as tmp:
        with mrcfile.new_mmap(tmp, shape=(n_frames, size, size), mrc_mode=2, overwrite=True) as mrc:
            for i, frame in enumerate(gen):
                mrc.data[i] = frame
            mrc.set_image_stack()
            mrc.voxel_size = float(pixel_size)
            mrc.update_header_stats()
    truth["files"] = {"series": "series.mrcs"}
    return truth
