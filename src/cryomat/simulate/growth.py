"""Simulator kind ``growth``: anisotropic crystals nucleating and growing in an amorphous film.

Models in-situ cryo-EM of ice nanocrystals growing in amorphous ice warmed to ~143 K (the
perspective's Fig. 6): elliptical crystals appear at random times, their semi-axes grow at
known velocities (linear, interface-limited, or parabolic, diffusion-limited: a^2 = a0^2 + K t),
they show diffraction contrast (darker than the film) on an amorphous background under
a global stage drift, are occasionally missed (out of Bragg condition), and coalesce when
they touch. Each pixel is darkened by the fraction of its area a crystal covers (the projected
contrast of a real crystal is area-continuous; a pixel-centre mask would add 0.1-0.2 px of
digitisation jitter per edge and frame that no specimen has), then blurred. Poisson noise at the
dose per frame. Truth: per-frame instance labels (pixel-centre masks of the analytic ellipses),
tracks with semi-axes, and merge events.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from cryomat.simulate.registry import register


def _ellipse_mask(shape, r0, c0, a, b, ang):
    half = int(np.ceil(max(a, b))) + 2
    r1, r2 = max(0, int(r0) - half), min(shape[0], int(r0) + half + 2)
    c1, c2 = max(0, int(c0) - half), min(shape[1], int(c0) + half + 2)
    if r1 >= r2 or c1 >= c2:
        return None
    y, x = np.mgrid[r1:r2, c1:c2]
    u = (x - c0) * np.cos(ang) - (y - r0) * np.sin(ang)
    v = (x - c0) * np.sin(ang) + (y - r0) * np.cos(ang)
    return (slice(r1, r2), slice(c1, c2)), (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _ellipse_subsamples(shape, r0, c0, a, b, ang, sub):
    """The ellipse on a ``sub`` x ``sub`` grid of sub-samples per pixel: ``(box, mask)`` with
    ``box`` the pixel slices and ``mask`` (rows * sub, cols * sub) bool, sub-sample centres at
    ``i + (k + 0.5) / sub - 0.5``; None when the box is outside the field."""
    half = int(np.ceil(max(a, b))) + 2
    r1, r2 = max(0, int(r0) - half), min(shape[0], int(r0) + half + 2)
    c1, c2 = max(0, int(c0) - half), min(shape[1], int(c0) + half + 2)
    if r1 >= r2 or c1 >= c2:
        return None
    off = (np.arange(sub) + 0.5) / sub - 0.5
    y = (np.arange(r1, r2)[:, None] + off[None, :]).ravel()[:, None]
    x = (np.arange(c1, c2)[:, None] + off[None, :]).ravel()[None, :]
    u = (x - c0) * np.cos(ang) - (y - r0) * np.sin(ang)
    v = (x - c0) * np.sin(ang) + (y - r0) * np.cos(ang)
    return (slice(r1, r2), slice(c1, c2)), (u / a) ** 2 + (v / b) ** 2 <= 1.0


def make_growth(*, size: int = 512, frames: int = 30, pixel_size_A: float = 5.0, frame_time_s: float = 10.0,
                n_crystals: int = 16, dose_per_frame_e_per_A2: float = 8.0, contrast: float = 0.35,
                drift_px_per_frame: float = 1.5, p_missed: float = 0.02, law: str = "linear",
                supersample: int = 5, rng: np.random.Generator):
    """Return (frames float32 (T, H, W), labels int32 (T, H, W), crystals list, tracks list, events
    list, drift (T, 2)).

    The image of a crystal is its projected area: each pixel is darkened by the fraction of its
    area the ellipse covers (``supersample`` x ``supersample`` sub-samples per pixel; 1 renders
    the pixel-centre mask, as before), then blurred by the point spread. The truth labels are the
    pixel-centre masks of the same analytic ellipses. With ``law="parabolic"`` a semi-axis grows as
    ``a^2 = a0^2 + 8 a0 v t`` (``v`` the crystal's ``va_px_s``/``vb_px_s``): the full axis
    ``L = 2a`` follows ``L^2 = L0^2 + K t`` with ``K = 32 a0 v`` px^2/s (``K_major_px2_per_s``,
    ``K_minor_px2_per_s`` in each crystal's record).
    """
    if law not in ("linear", "parabolic"):
        raise ValueError(f"law must be 'linear' or 'parabolic', got {law!r}")
    if int(supersample) < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample!r}")
    sub = int(supersample)
    t_s = np.arange(frames) * frame_time_s
    px_nm = pixel_size_A / 10.0
    crystals = []
    margin = 0.12 * size
    for k in range(n_crystals):
        t0 = rng.uniform(0, 0.4) * t_s[-1]
        va = rng.uniform(0.02, 0.04) / px_nm  # semi-axis velocity along a (px/s): 0.2-0.4 A/s
        anis = rng.uniform(1.5, 3.0)
        crystals.append({"id": k, "row": rng.uniform(margin, size - margin), "col": rng.uniform(margin, size - margin),
                         "t0_s": t0, "a0_px": 2.5, "b0_px": 2.0, "va_px_s": va, "vb_px_s": va / anis,
                         "angle_rad": rng.uniform(0, np.pi), "anisotropy": anis})
        c = crystals[-1]
        c["K_major_px2_per_s"] = 32 * c["a0_px"] * va
        c["K_minor_px2_per_s"] = 32 * c["b0_px"] * va / anis
    steps = rng.normal(0, drift_px_per_frame, (frames, 2))
    steps[0] = 0
    drift = np.cumsum(steps, axis=0)
    film_rng = np.random.default_rng(rng.integers(1 << 31))
    pad = max(32, int(np.ceil(np.abs(drift).max())) + 4)  # the film is larger than the field at every drift
    texture = ndi.gaussian_filter(film_rng.standard_normal((size + 2 * pad, size + 2 * pad)), 1.5)
    texture *= 0.04 / texture.std()
    counts = dose_per_frame_e_per_A2 * pixel_size_A**2
    imgs = np.empty((frames, size, size), np.float32)
    labels = np.zeros((frames, size, size), np.int32)
    tracks, events = [], []
    merged_into: dict[int, int] = {}
    hi = np.zeros((size * sub, size * sub), bool) if sub > 1 else None
    for f in range(frames):
        dr, dc = drift[f]
        lab = np.zeros((size, size), np.int32)
        shapes = []  # (crystal label, box, sub-sample mask) for the area-coverage image
        for c in crystals:
            dt = t_s[f] - c["t0_s"]
            if dt < 0:
                continue
            if law == "linear":
                a = c["a0_px"] + c["va_px_s"] * dt
                b = c["b0_px"] + c["vb_px_s"] * dt
            else:
                a = np.sqrt(c["a0_px"] ** 2 + 2 * c["a0_px"] * c["va_px_s"] * dt * 4)
                b = np.sqrt(c["b0_px"] ** 2 + 2 * c["b0_px"] * c["vb_px_s"] * dt * 4)
            r0, c0 = c["row"] + dr, c["col"] + dc
            got = _ellipse_mask((size, size), r0, c0, a, b, c["angle_rad"])
            if got is None:
                continue
            sl, m = got
            tid = c["id"] + 1
            if hi is not None:
                got_hi = _ellipse_subsamples((size, size), r0, c0, a, b, c["angle_rad"], sub)
                if got_hi is not None:
                    shapes.append((tid, *got_hi))
            lab_sl = lab[sl]
            touched = np.unique(lab_sl[m & (lab_sl > 0)])
            root = merged_into.get(tid, tid)
            for o in touched:
                o_root = merged_into.get(int(o), int(o))
                if o_root != root:
                    # the larger crystal keeps its identity (it absorbs the smaller one)
                    a_o, a_r = int((lab == o_root).sum()), int(m.sum()) + int((lab == root).sum())
                    keep, gone = (o_root, root) if a_o >= a_r else (root, o_root)
                    merged_into[gone] = keep
                    for key, v in list(merged_into.items()):
                        if v == gone:
                            merged_into[key] = keep
                    events.append({"event": "merge", "frame": f, "crystal_ids": [keep - 1, gone - 1]})  # kept first
                    lab[lab == gone] = keep
                    root = keep
            lab_sl = lab[sl]
            lab_sl[m] = root
            tracks.append({"crystal": c["id"], "frame": f, "time_s": float(t_s[f]), "row_px": float(r0),
                           "col_px": float(c0), "a_px": float(a), "b_px": float(b), "major_axis_nm": float(2 * a * px_nm),
                           "minor_axis_nm": float(2 * b * px_nm), "orientation_deg": float(np.rad2deg(c["angle_rad"]))})
        for c in crystals:  # appearance events
            if t_s[f] - frame_time_s < c["t0_s"] <= t_s[f]:
                events.append({"event": "appear", "frame": f, "crystal_ids": [c["id"]]})
        visible = lab.copy()
        missed = set()
        for i in np.unique(lab[lab > 0]):
            if rng.random() < p_missed:
                visible[visible == i] = 0
                missed.add(int(i))
        labels[f] = lab
        if hi is None:
            cover = (visible > 0).astype(float)
        else:  # area coverage of the union of the visible crystals
            cover = np.zeros((size, size))
            kept = [(bx, mk) for tid, bx, mk in shapes if merged_into.get(tid, tid) not in missed]
            for bx, mk in kept:
                hi[bx[0].start * sub:bx[0].stop * sub, bx[1].start * sub:bx[1].stop * sub] |= mk
            for bx, _ in kept:
                blk = hi[bx[0].start * sub:bx[0].stop * sub, bx[1].start * sub:bx[1].stop * sub]
                cover[bx] = blk.reshape(blk.shape[0] // sub, sub, blk.shape[1] // sub, sub).mean(axis=(1, 3))
            for bx, _ in kept:
                hi[bx[0].start * sub:bx[0].stop * sub, bx[1].start * sub:bx[1].stop * sub] = False
        soft = ndi.gaussian_filter(cover, 0.8)
        # the film moves with the crystals (stage drift moves the whole specimen): film(y) = texture(y - drift),
        # sub-pixel (cubic spline of the smooth texture)
        ir, ic = int(np.floor(dr)), int(np.floor(dc))
        win = texture[pad - ir - 4:pad - ir + size + 4, pad - ic - 4:pad - ic + size + 4]
        film = ndi.shift(win, (dr - ir, dc - ic), order=3, mode="nearest")[4:4 + size, 4:4 + size]
        intensity = (1.0 + film) * (1.0 - contrast * soft)
        imgs[f] = rng.poisson(np.clip(intensity, 0, None) * counts)
    return imgs, labels, crystals, tracks, events, drift


@register("growth", help="anisotropic crystals nucleating and growing with drift, noise, misses and coalescence")
def write(out_dir: Path, *, seed: int, size: int = 512, frames: int = 30, pixel_size_A: float = 5.0,
          frame_time_s: float = 10.0, n_crystals: int = 16, dose_per_frame_e_per_A2: float = 8.0,
          law: str = "linear", supersample: int = 5) -> dict:
    from cryomat.io import write_mrc

    rng = np.random.default_rng(seed)
    imgs, labels, crystals, tracks, events, drift = make_growth(
        size=size, frames=frames, pixel_size_A=pixel_size_A, frame_time_s=frame_time_s, n_crystals=n_crystals,
        dose_per_frame_e_per_A2=dose_per_frame_e_per_A2, law=law, supersample=supersample, rng=rng)
    write_mrc(out_dir / "series.mrcs", imgs, pixel_size=pixel_size_A)
    write_mrc(out_dir / "labels.mrcs", labels.astype(np.int16), pixel_size=pixel_size_A)
    px_nm = pixel_size_A / 10.0
    truth_crystals = []
    for c in crystals:
        if law == "linear":
            truth_crystals.append({**c, "major_axis_rate_nm_per_s": 2 * c["va_px_s"] * px_nm,
                                   "minor_axis_rate_nm_per_s": 2 * c["vb_px_s"] * px_nm})
        else:  # full axes L^2 = L0^2 + K t
            truth_crystals.append({**c, "major_axis_K_nm2_per_s": c["K_major_px2_per_s"] * px_nm**2,
                                   "minor_axis_K_nm2_per_s": c["K_minor_px2_per_s"] * px_nm**2})
    return {"files": ["series.mrcs", "labels.mrcs"], "pixel_size_A": pixel_size_A, "frame_time_s": frame_time_s,
            "law": law, "crystals": truth_crystals, "tracks": tracks, "events": events,
            "drift_row_col_px": drift.tolist()}
