"""Simulator kind ``atlas``: a low-magnification overview of a materials grid.

A continuous support film (no holes) whose thickness varies smoothly (bright-field
intensity I = I0 exp(-t / lambda_in), inelastic mean free path lambda_in ~ 300 nm at 300 kV),
regions of differing particle density and class mix (``sphere`` round particles and
``rod`` elongated ones, mass-thickness contrast), opaque grid bars, ice-contamination
blobs, and Poisson noise at the atlas fluence. Truth: particle centres and classes, the
thickness map and the good-area masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from cryomat.simulate.registry import register

CLASSES = ("sphere", "rod")


def _smooth_field(shape, rng, scale_px: float) -> np.ndarray:
    """Smooth random field (correlation length ~ scale_px), made on a coarse grid and interpolated."""
    step = max(1, int(scale_px // 4))
    coarse = (shape[0] // step + 2, shape[1] // step + 2)
    f = ndi.gaussian_filter(rng.standard_normal(coarse), scale_px / step, mode="wrap")
    f = ndi.zoom(f, step, order=3)[: shape[0], : shape[1]]
    f -= f.min()
    return f / (f.max() + 1e-12)


def make_atlas(*, size: int = 1024, pixel_size_A: float = 100.0, dose_e_per_A2: float = 0.02,
               n_regions: int = 9, max_density_per_um2: float = 6.0, lambda_nm: float = 300.0,
               thickness_nm: tuple = (20.0, 250.0), n_contamination: int = 6, grid_bar: bool = True,
               rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Return (counts image float32, truth dict). Coordinates in truth are (row, col) pixels."""
    shape = (size, size)
    px_nm = pixel_size_A / 10.0
    # film thickness: smooth, with a few thick patches
    t_lo, t_hi = thickness_nm
    thick = t_lo + (t_hi - t_lo) * _smooth_field(shape, rng, size / 6) ** 1.5
    # regions (Voronoi) with their own particle density and class mix
    seeds = rng.uniform(0, size, (n_regions, 2))
    rr, cc = np.mgrid[0:size, 0:size].astype(np.float32)
    region = np.zeros(shape, np.int16)
    best = np.full(shape, np.inf, np.float32)
    for k, (r0, c0) in enumerate(seeds):  # Voronoi cells, one seed at a time (memory ~ image)
        d2 = (rr - r0) ** 2 + (cc - c0) ** 2
        closer = d2 < best
        region[closer] = k
        best = np.minimum(best, d2)
    # every atlas has dense, sparse and empty regions, and pure-sphere, mixed and pure-rod ones
    # (every density paired with every class mix once per 9 regions, in random order)
    combo = rng.permutation(n_regions)
    densities = np.array([1.0, 0.25, 0.0])[combo % 3] * max_density_per_um2
    rod_frac = np.array([0.0, 1.0, 0.5])[(combo // 3) % 3]
    # exclusion: grid bar along one side, contamination blobs
    bar = np.zeros(shape, bool)
    if grid_bar:
        w = int(0.08 * size)
        bar[:, size - w:] = True
    contam = np.zeros(shape, bool)
    blobs = []
    for _ in range(n_contamination):
        r0, c0 = rng.uniform(0, size, 2)
        rad = rng.uniform(0.01, 0.03) * size
        contam |= (rr - r0) ** 2 + (cc - c0) ** 2 < rad**2
        blobs.append([float(r0), float(c0), float(rad)])
    # particles: Poisson number per region from area and density
    area_um2 = (px_nm / 1000.0) ** 2
    centres, classes = [], []
    for k in range(n_regions):
        mask = (region == k) & ~bar & ~contam
        n = rng.poisson(densities[k] * mask.sum() * area_um2)
        idx = np.flatnonzero(mask)
        if n == 0 or idx.size == 0:
            continue
        pick = rng.choice(idx, size=min(n, idx.size), replace=False)
        for p in pick:
            centres.append(divmod(int(p), size))
            classes.append("rod" if rng.random() < rod_frac[k] else "sphere")
    # render particles as projected thickness (nm) of dense material
    ptk = np.zeros(shape)
    for (r0, c0), cls in zip(centres, classes):
        if cls == "sphere":
            rad = rng.uniform(40, 70) / px_nm
            a = b = rad
        else:
            a = rng.uniform(110, 160) / px_nm
            b = rng.uniform(22, 30) / px_nm
        ang = rng.uniform(0, np.pi)
        half = int(np.ceil(max(a, b))) + 2
        r1, r2 = max(0, r0 - half), min(size, r0 + half + 1)
        c1, c2 = max(0, c0 - half), min(size, c0 + half + 1)
        y, x = np.mgrid[r1:r2, c1:c2]
        u = (x - c0) * np.cos(ang) + (y - r0) * np.sin(ang)
        v = -(x - c0) * np.sin(ang) + (y - r0) * np.cos(ang)
        q = 1 - (u / a) ** 2 - (v / b) ** 2
        ptk[r1:r2, c1:c2] += np.where(q > 0, 2 * b * px_nm * np.sqrt(np.clip(q, 0, 1)), 0)
    ptk = ndi.gaussian_filter(ptk, 0.7)
    # particles are dense (effective mean free path ~ lambda / 3)
    t_eff = thick + 3.0 * ptk
    t_eff = np.where(contam, t_eff + 1500.0, t_eff)
    intensity = np.exp(-t_eff / lambda_nm)
    intensity[bar] = 0.002
    counts_per_px = dose_e_per_A2 * pixel_size_A**2
    img = rng.poisson(intensity * counts_per_px).astype(np.float32)
    truth = {
        "pixel_size_A": pixel_size_A, "dose_e_per_A2": dose_e_per_A2, "lambda_nm": lambda_nm,
        "particles": [{"row_px": r, "col_px": c, "class": k} for (r, c), k in zip(centres, classes)],
        "contamination_blobs_row_col_radius_px": blobs, "grid_bar_cols_from": int(size - 0.08 * size) if grid_bar else None,
        "region_density_per_um2": densities.tolist(), "region_rod_fraction": rod_frac.tolist(),
    }
    return img, truth, {"thickness_nm": thick.astype(np.float32), "exclude": bar | contam,
                        "reference_counts_per_px": counts_per_px}


@register("atlas", help="low-magnification grid atlas: particle regions of two classes, thickness, bars, contamination")
def write(out_dir: Path, *, seed: int, size: int = 1024, pixel_size_A: float = 100.0, dose_e_per_A2: float = 0.02,
          max_density_per_um2: float = 6.0) -> dict:
    from cryomat.io import write_mrc

    rng = np.random.default_rng(seed)
    img, truth, maps = make_atlas(size=size, pixel_size_A=pixel_size_A, dose_e_per_A2=dose_e_per_A2,
                                  max_density_per_um2=max_density_per_um2, rng=rng)
    write_mrc(out_dir / "atlas.mrc", img, pixel_size=pixel_size_A)
    write_mrc(out_dir / "thickness_nm.mrc", maps["thickness_nm"], pixel_size=pixel_size_A)
    write_mrc(out_dir / "exclude_mask.mrc", maps["exclude"].astype(np.int8), pixel_size=pixel_size_A)
    # an empty-beam reference at the same dose (for thickness from intensity)
    ref = rng.poisson(np.full((64, 64), maps["reference_counts_per_px"])).astype(np.float32)
    write_mrc(out_dir / "reference.mrc", ref, pixel_size=pixel_size_A)
    truth["files"] = ["atlas.mrc", "thickness_nm.mrc", "exclude_mask.mrc", "reference.mrc"]
    return truth
