"""Simulator kind ``particles``: polydisperse nanoparticles on an amorphous support at a given dose.

Shapes (``classes``): ``sphere``, ``rod`` (spherocylinder lying flat), ``cube`` (viewed along
[001], rotated in plane), ``plate`` (hexagonal platelet lying flat) and ``aggregate`` (3-6 fused
spheres, one object). Each particle's projected thickness t (A) is rendered analytically on a
2x supersampled grid; the ground-truth instance mask is the pixel coverage >= 0.5.

Image formation (``mode``):

- ``"tem"`` (bright field): exit wave psi = exp(-t/(2 lambda_mfp)) exp(i sigma V0 t) over an
  amorphous carbon support (projected potential from :func:`physics.amorphous_potential`),
  propagated with the aberration phase chi(k) at ``defocus_A`` and Cs, objective envelope
  B; intensity |psi * h|^2 (mass-thickness plus phase contrast, Fresnel fringes).
- ``"haadf"``: incoherent, I = 1 + contrast * t / t_ref blurred by the probe; bright particles.

Poisson noise at ``dose_e_per_A2`` (counts per pixel = dose x pixel_size^2) through a counting
detector. The image is returned in electron counts.

References
----------
Reimer & Kohl, Transmission Electron Microscopy, 5th ed. (2008), doi:10.1007/978-0-387-40093-8
(mass-thickness contrast); Kirkland (2010), doi:10.1007/978-1-4419-6533-2 (CTF, weak phase).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cryomat.simulate import physics
from cryomat.simulate.registry import register

CLASSES = ("sphere", "rod", "cube", "plate", "aggregate")


@dataclass(frozen=True)
class ParticleImage:
    """A simulated image with its truth: ``image`` (counts, float32), ``labels`` (int32
    instance mask, 0 = support), ``table`` (one row per label: label, class,
    equivalent_diameter_nm, size_nm, aspect_ratio, touching)."""

    image: np.ndarray
    labels: np.ndarray
    table: pd.DataFrame
    pixel_size: float
    dose_e_per_A2: float


def _thickness(kind: str, rr: np.ndarray, cc: np.ndarray, p: dict) -> np.ndarray:
    """Projected thickness (A) of one particle at coordinates (A) relative to its centre."""
    th = p["angle"]
    u = cc * np.cos(th) - rr * np.sin(th)  # along the long axis
    v = cc * np.sin(th) + rr * np.cos(th)
    if kind == "sphere":
        r2 = p["radius"] ** 2 - (u**2 + v**2)
        return 2 * np.sqrt(np.clip(r2, 0, None))
    if kind == "rod":
        half = p["length"] / 2 - p["radius"]
        du = np.clip(np.abs(u) - half, 0, None)
        r2 = p["radius"] ** 2 - (du**2 + v**2)
        return 2 * np.sqrt(np.clip(r2, 0, None))
    if kind == "cube":
        a = p["edge"] / 2
        return np.where((np.abs(u) <= a) & (np.abs(v) <= a), p["edge"], 0.0)
    if kind == "plate":  # regular hexagon, circumradius R
        r = p["radius"]
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            ang = np.pi / 3 * k
            inside &= np.abs(u * np.cos(ang) + v * np.sin(ang)) <= r * np.sqrt(3) / 2
        return np.where(inside, p["thickness"], 0.0)
    if kind == "aggregate":
        t = np.zeros_like(u)
        for (dr, dc, rad) in p["members"]:
            r2 = rad**2 - ((rr - dr) ** 2 + (cc - dc) ** 2)
            t = np.maximum(t, 2 * np.sqrt(np.clip(r2, 0, None)))
        return t
    raise ValueError(f"unknown particle class {kind!r}; known: {', '.join(CLASSES)}")


def _draw_params(kind: str, rng: np.random.Generator, d_min_nm: float, d_max_nm: float) -> dict:
    """Random geometry (A) for one particle; sizes log-uniform in [d_min, d_max] nm."""
    d = 10 * float(np.exp(rng.uniform(np.log(d_min_nm), np.log(d_max_nm))))
    p = {"angle": float(rng.uniform(0, np.pi))}
    if kind == "sphere":
        p["radius"] = d / 2
        p["extent"] = d / 2
    elif kind == "rod":
        ar = rng.uniform(2.0, 4.0)
        p["radius"] = d / 2 / np.sqrt(ar)
        p["length"] = 2 * p["radius"] * ar
        p["extent"] = p["length"] / 2
    elif kind == "cube":
        p["edge"] = d * np.sqrt(np.pi) / 2
        p["extent"] = p["edge"] / np.sqrt(2)
    elif kind == "plate":
        p["radius"] = d / 2 * 1.1
        p["thickness"] = float(rng.uniform(0.35, 0.5)) * d
        p["extent"] = p["radius"]
    elif kind == "aggregate":
        n = int(rng.integers(3, 7))
        rad = d / 2 / np.sqrt(n) * 1.15
        members = [(0.0, 0.0, rad * rng.uniform(0.85, 1.15))]
        while len(members) < n:  # fuse onto a random member: centre distance 0.9-1.2 radii
            br, bc, brad = members[int(rng.integers(len(members)))]
            ang = rng.uniform(0, 2 * np.pi)
            rr = rad * rng.uniform(0.85, 1.15)
            dist = (brad + rr) * rng.uniform(0.45, 0.6)
            members.append((br + dist * np.sin(ang), bc + dist * np.cos(ang), rr))
        m = np.array(members)
        m[:, :2] -= m[:, :2].mean(axis=0)
        p["members"] = [tuple(x) for x in m]
        p["extent"] = float(np.max(np.hypot(m[:, 0], m[:, 1]) + m[:, 2]))
    else:
        raise ValueError(f"unknown particle class {kind!r}; known: {', '.join(CLASSES)}")
    return p


def _render(kind, p, centre_px, shape, pixel_size, ss=2):
    """Thickness crop (A, pixel means of ss x ss subsamples) and its slice into the image."""
    ext = p["extent"] / pixel_size + 2
    r0 = max(int(np.floor(centre_px[0] - ext)), 0)
    r1 = min(int(np.ceil(centre_px[0] + ext)) + 1, shape[0])
    c0 = max(int(np.floor(centre_px[1] - ext)), 0)
    c1 = min(int(np.ceil(centre_px[1] + ext)) + 1, shape[1])
    if r1 <= r0 or c1 <= c0:
        return None, None, None
    sub = (np.arange(ss) + 0.5) / ss - 0.5
    rr = (np.arange(r0, r1)[:, None] + sub[None, :]).ravel()
    cc = (np.arange(c0, c1)[:, None] + sub[None, :]).ravel()
    t = _thickness(kind, (rr[:, None] - centre_px[0]) * pixel_size, (cc[None, :] - centre_px[1]) * pixel_size, p)
    t = t.reshape(r1 - r0, ss, c1 - c0, ss)
    cover = (t > 0).mean(axis=(1, 3))
    return t.mean(axis=(1, 3)), cover, (slice(r0, r1), slice(c0, c1))


def particle_image(shape=(512, 512), *, pixel_size: float = 5.0, dose_e_per_A2: float = 1.0,
                   n_particles: int = 40, classes=("sphere", "rod", "cube", "plate"),
                   class_weights=None, d_min_nm: float = 10.0, d_max_nm: float = 30.0,
                   touching_fraction: float = 0.15, mode: str = "tem", voltage_kV: float = 300.0,
                   defocus_A: float = 500.0, mfp_A: float = 250.0, inner_potential_V: float = 20.0,
                   support_thickness_A: float = 150.0, rng: np.random.Generator | None = None) -> ParticleImage:
    """Simulate one image of particles with ground-truth instance labels and classes.

    Parameters
    ----------
    shape : (rows, cols) in pixels.
    pixel_size : A per pixel.
    dose_e_per_A2 : fluence in e/A^2 (Poisson noise); ``None`` or ``inf`` gives the noiseless
        expected counts at 1 e/A^2... scaled to the mean counts.
    n_particles : target number of particles (fewer if the field is full).
    classes : particle classes drawn (see module docstring); ``class_weights`` their odds.
    d_min_nm, d_max_nm : equivalent-diameter range (log-uniform), nm.
    touching_fraction : fraction of particles placed in contact with an earlier one (gap 0-1 px).
    mode : ``"tem"`` (bright field, dark particles) or ``"haadf"`` (bright particles).
    mfp_A : inelastic/aperture mean free path of the particle material (A); sets
        mass-thickness contrast exp(-t/mfp).
    rng : numpy Generator.
    """
    rng = np.random.default_rng() if rng is None else rng
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 16:
        raise ValueError(f"shape must be two sizes >= 16, got {shape!r}")
    if pixel_size <= 0:
        raise ValueError(f"pixel_size must be positive, got {pixel_size!r}")
    if mode not in ("tem", "haadf"):
        raise ValueError(f"mode must be 'tem' or 'haadf', got {mode!r}")
    classes = tuple(classes)
    for c in classes:
        if c not in CLASSES:
            raise ValueError(f"unknown particle class {c!r}; known: {', '.join(CLASSES)}")
    w = np.ones(len(classes)) if class_weights is None else np.asarray(class_weights, float)
    w = w / w.sum()
    thick = np.zeros(shape, np.float32)
    labels = np.zeros(shape, np.int32)
    occupied = np.zeros(shape, bool)  # masks dilated by the minimum gap
    rows = []
    gap = 2
    from scipy import ndimage as ndi

    struct = np.ones((2 * gap + 1, 2 * gap + 1), bool)
    attempts = 0
    while len(rows) < n_particles and attempts < 30 * n_particles:
        attempts += 1
        kind = classes[int(rng.choice(len(classes), p=w))]
        p = _draw_params(kind, rng, d_min_nm, d_max_nm)
        touching = bool(rows) and rng.random() < touching_fraction
        if touching:  # slide towards an existing particle until just before contact
            other = rows[int(rng.integers(len(rows)))]
            ang = rng.uniform(0, 2 * np.pi)
            dist = (other["_extent_px"] + p["extent"] / pixel_size) + 2
            centre = None
            step = 0.5
            while dist > 0:
                cand = (other["_centre"][0] + dist * np.sin(ang), other["_centre"][1] + dist * np.cos(ang))
                t, cov, sl = _render(kind, p, cand, shape, pixel_size)
                if t is None:
                    break
                m = cov >= 0.5
                if np.any(labels[sl][m] > 0) or np.any(ndi.binary_dilation(m, iterations=1) & (labels[sl] > 0)):
                    break
                centre = cand
                dist -= step
            if centre is None:
                continue
        else:
            margin = -p["extent"] / pixel_size * 0.3  # allow partly cut by the border
            centre = (rng.uniform(margin, shape[0] - margin), rng.uniform(margin, shape[1] - margin))
        t, cov, sl = _render(kind, p, centre, shape, pixel_size)
        if t is None:
            continue
        m = cov >= 0.5
        if m.sum() < 4:
            continue
        if not touching and np.any(occupied[sl][m]):
            continue
        if np.any(labels[sl][m] > 0):
            continue
        lab = len(rows) + 1
        labels[sl][m] = lab
        thick[sl] = np.maximum(thick[sl], t.astype(np.float32))
        pad = np.pad(m, gap)
        dil = ndi.binary_dilation(pad, structure=struct)[gap:-gap, gap:-gap]
        occupied[sl] |= dil
        rows.append({"label": lab, "class": kind, "_centre": centre, "_extent_px": p["extent"] / pixel_size,
                     "touching": touching, "params": p})
    # ground-truth table from the masks
    area = np.bincount(labels.ravel(), minlength=len(rows) + 1)[1:]
    table = pd.DataFrame({
        "label": [r["label"] for r in rows],
        "class": [r["class"] for r in rows],
        "equivalent_diameter_nm": np.sqrt(4 * area / np.pi) * pixel_size / 10,
        "area_px": area,
        "touching": [r["touching"] for r in rows],
        "centroid_row_px": [r["_centre"][0] for r in rows],
        "centroid_col_px": [r["_centre"][1] for r in rows],
    })
    ideal = _form_image(thick, shape=shape, pixel_size=pixel_size, mode=mode, voltage_kV=voltage_kV,
                        defocus_A=defocus_A, mfp_A=mfp_A, inner_potential_V=inner_potential_V,
                        support_thickness_A=support_thickness_A, rng=rng)
    if dose_e_per_A2 is None or not np.isfinite(dose_e_per_A2):
        img = (ideal * physics.counts_per_pixel(1.0, pixel_size)).astype(np.float32)
        dose = float("inf")
    else:
        dose = float(dose_e_per_A2)
        if dose <= 0:
            raise ValueError(f"dose_e_per_A2 must be positive, got {dose_e_per_A2!r}")
        img = physics.detector(physics.shot_noise(ideal, dose_e_per_A2=dose, pixel_size=pixel_size, rng=rng),
                               rng=rng, kind="counting")
    return ParticleImage(image=img, labels=labels, table=table, pixel_size=float(pixel_size), dose_e_per_A2=dose)


def _form_image(thick, *, shape, pixel_size, mode, voltage_kV, defocus_A, mfp_A, inner_potential_V,
                support_thickness_A, rng) -> np.ndarray:
    """Noise-free relative intensity (mean ~1) from the particles' thickness map (A)."""
    from cryomat.fourier.grids import frequency_grid

    support = physics.amorphous_potential(shape, pixel_size=pixel_size, rng=rng, ring_A=2.1,
                                          thickness_A=support_thickness_A, mean_potential_V=9.0)
    if mode == "haadf":
        kr, kc = frequency_grid(shape, pixel_size)
        probe = np.exp(-0.5 * (kr**2 + kc**2) * (2 * np.pi * 1.5) ** 2)  # ~1.5 A probe
        sig = 0.08 * (support / support.mean()) + thick / 300.0
        sig = np.real(np.fft.ifft2(np.fft.fft2(sig) * probe))
        return np.clip(0.3 + sig, 1e-3, None)
    sigma = physics.interaction_constant(voltage_kV)
    phase = sigma * (support - support.mean() + inner_potential_V * thick)
    amp = np.exp(-thick / (2 * mfp_A) - support_thickness_A / (2 * 3000.0))
    psi = amp * np.exp(1j * phase)
    lam = physics.electron_wavelength(voltage_kV)
    kr, kc = frequency_grid(shape, pixel_size)
    k2 = kr**2 + kc**2
    chi = np.pi * lam * defocus_A * k2 - 0.5 * np.pi * 2.7e7 * lam**3 * k2**2
    env = np.exp(-30.0 * k2 / 4)
    out = np.fft.ifft2(np.fft.fft2(psi) * np.exp(-1j * chi) * env)
    return np.abs(out) ** 2


@register("particles")
def write(out_dir: Path, *, seed: int, n_images: int = 2, shape=(512, 512), pixel_size: float = 5.0,
          dose_e_per_A2: float = 1.0, n_particles: int = 40, classes=("sphere", "rod", "cube", "plate"),
          d_min_nm: float = 10.0, d_max_nm: float = 30.0, touching_fraction: float = 0.15, mode: str = "tem",
          defocus_A: float = 500.0) -> dict:
    """Polydisperse spheres, rods, cubes, plates, aggregates on a support, with instance masks and classes."""
    from cryomat.io.writers import write_mrc, write_tiff

    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    images = []
    tables = []
    for i in range(int(n_images)):
        sim = particle_image(shape, pixel_size=pixel_size, dose_e_per_A2=dose_e_per_A2, n_particles=n_particles,
                             classes=classes, d_min_nm=d_min_nm, d_max_nm=d_max_nm,
                             touching_fraction=touching_fraction, mode=mode, defocus_A=defocus_A, rng=rng)
        name = f"image_{i:03d}"
        write_mrc(out_dir / f"{name}.mrc", sim.image, pixel_size=pixel_size)
        write_tiff(out_dir / f"{name}_labels.tif", sim.labels.astype(np.uint16), pixel_size=pixel_size)
        t = sim.table.assign(image=name)
        tables.append(t)
        images.append({"image": f"{name}.mrc", "labels": f"{name}_labels.tif", "n_particles": int(len(t))})
    allt = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    allt.to_csv(out_dir / "truth_particles.csv", index=False)
    return {"images": images, "pixel_size_A": pixel_size, "dose_e_per_A2": dose_e_per_A2,
            "truth_table": "truth_particles.csv",
            "class_counts": {str(k): int(v) for k, v in allt["class"].value_counts().items()} if len(allt) else {}}
