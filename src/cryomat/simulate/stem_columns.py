"""Simulator kind ``stem_columns``: an ADF-STEM image of atomic columns with known displacements.

A two-sublattice projection (perovskite ABO3 down [001] by default: A columns on the corners,
weaker B columns in the cell centres) where every column is a 2D Gaussian of width
``column_sigma_A``. Columns carry a periodic lattice displacement (PLD)

    u(r) = amplitude * e_pol * sin(2 pi q . r + phase),  q in units of the reciprocal basis,

plus optional random static displacements, on top of which the image is Poisson-sampled so that
an A column's peak pixel has ``peak_counts`` expected counts (B columns ``b_ratio`` of that) over
a uniform ``background_counts``.

References
----------
Savitzky et al., Nat. Commun. 8, 1883 (2017), doi:10.1038/s41467-017-02156-1 (picometre PLD maps);
Nord et al., Adv. Struct. Chem. Imaging 3, 9 (2017), doi:10.1186/s40679-017-0042-5 (atomap).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cryomat.simulate.registry import register


def column_positions(shape, *, pixel_size: float, lattice_A: float = 3.905, rotation_deg: float = 0.0,
                     origin_A=(1.0, 1.0), basis=((0.0, 0.0), (0.5, 0.5)), margin_A: float = 1.0):
    """Ideal column positions (row, col in px), their sublattice index and lattice indices (i, j).

    The lattice vectors are a1 = lattice_A (cos t, sin t) and a2 = lattice_A (-sin t, cos t) in
    (col, row) order (t = ``rotation_deg``); ``basis`` gives fractional sites in (a1, a2).
    """
    t = math.radians(rotation_deg)
    a1 = lattice_A * np.array([math.sin(t), math.cos(t)])  # (row, col)
    a2 = lattice_A * np.array([math.cos(t), -math.sin(t)])
    h, w = shape[0] * pixel_size, shape[1] * pixel_size
    n = int(math.ceil(math.hypot(h, w) / lattice_A)) + 2
    ii, jj = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    pos, sub, ij = [], [], []
    for s, (f1, f2) in enumerate(basis):
        p = np.asarray(origin_A) + (ii.ravel() + f1)[:, None] * a1 + (jj.ravel() + f2)[:, None] * a2
        pos.append(p)
        sub.append(np.full(len(p), s))
        ij.append(np.stack([ii.ravel() + f1, jj.ravel() + f2], axis=1))
    pos, sub, ij = np.concatenate(pos), np.concatenate(sub), np.concatenate(ij)
    inside = (pos[:, 0] >= margin_A) & (pos[:, 0] <= h - margin_A) & (pos[:, 1] >= margin_A) & (pos[:, 1] <= w - margin_A)
    return pos[inside] / pixel_size, sub[inside], ij[inside], a1, a2


def render_columns(shape, positions_px, peaks, *, sigma_px: float, background: float = 0.0) -> np.ndarray:
    """Sum of isotropic 2D Gaussians (peak heights ``peaks``) at (row, col) ``positions_px``."""
    img = np.full(shape, float(background))
    r = int(math.ceil(4.5 * sigma_px))
    off = np.arange(-r, r + 1)
    for (pr, pc), a in zip(positions_px, peaks):
        ir, ic = int(round(pr)), int(round(pc))
        rr, cc = ir + off, ic + off
        okr = (rr >= 0) & (rr < shape[0])
        okc = (cc >= 0) & (cc < shape[1])
        if not okr.any() or not okc.any():
            continue
        gr = np.exp(-0.5 * ((rr[okr] - pr) / sigma_px) ** 2)
        gc = np.exp(-0.5 * ((cc[okc] - pc) / sigma_px) ** 2)
        img[np.ix_(rr[okr], cc[okc])] += a * np.outer(gr, gc)
    return img


def stem_column_image(shape=(256, 256), *, pixel_size: float = 0.15, lattice_A: float = 3.905, rotation_deg: float = 0.0,
                      column_sigma_A: float = 0.45, peak_counts: float = 50.0, b_ratio: float = 0.5,
                      background_counts: float = 2.0, pld_amplitude_pm: float = 0.0, pld_q=(1 / 3, 0.0),
                      pld_polarization=(0.0, 1.0), pld_phase_deg: float = 0.0, pld_sublattices=(0, 1),
                      random_displacement_pm: float = 0.0, rng: np.random.Generator | None = None, noise: bool = True):
    """Image and truth table of a column lattice with a PLD; returns (image float32, truth dict of arrays).

    ``pld_q`` is in units of the reciprocal basis (b1, b2) of (a1, a2); ``pld_polarization`` is a
    unit vector in (a1, a2) directions. Displacements are in pm in the truth (row, col order).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    origin = tuple(rng.uniform(0.5, 1.5, 2) + lattice_A / 4)
    ideal, sub, ij, a1, a2 = column_positions(shape, pixel_size=pixel_size, lattice_A=lattice_A,
                                              rotation_deg=rotation_deg, origin_A=origin, margin_A=1.0)
    # PLD: u = A e sin(2 pi (q1 i + q2 j) + phi), in A (row, col)
    e = pld_polarization[0] * a1 / lattice_A + pld_polarization[1] * a2 / lattice_A
    e = e / (np.linalg.norm(e) or 1.0)
    arg = 2 * np.pi * (pld_q[0] * ij[:, 0] + pld_q[1] * ij[:, 1]) + math.radians(pld_phase_deg)
    amp = pld_amplitude_pm / 100.0 * np.isin(sub, pld_sublattices)
    disp = (amp * np.sin(arg))[:, None] * e[None, :]
    if random_displacement_pm:
        disp = disp + rng.normal(0, random_displacement_pm / 100.0, disp.shape)
    pos = ideal + disp / pixel_size
    peaks = np.where(sub == 0, peak_counts, peak_counts * b_ratio)
    img = render_columns(shape, pos, peaks, sigma_px=column_sigma_A / pixel_size, background=background_counts)
    if noise:
        img = rng.poisson(img).astype(np.float32)
    truth = {"positions_px": pos, "ideal_px": ideal, "sublattice": sub, "ij": ij, "displacement_pm": disp * 100.0,
             "a1_A": a1, "a2_A": a2, "pld_polarization_rc": e}
    return img.astype(np.float32), truth


@register("stem_columns", help="ADF-STEM atomic-column image (two sublattices) with a known PLD and displacements")
def write(out: Path, *, seed: int, size: int = 256, pixel_size: float = 0.15, lattice_A: float = 3.905,
          rotation_deg: float = 0.0, column_sigma_A: float = 0.45, peak_counts: float = 50.0, b_ratio: float = 0.5,
          background_counts: float = 2.0, pld_amplitude_pm: float = 6.0, pld_q: tuple = (1 / 3, 0.0),
          pld_polarization: tuple = (0.0, 1.0), random_displacement_pm: float = 0.0) -> dict:
    """Write ``image.mrc`` (counts) and ``columns.csv`` (true positions and displacements)."""
    import pandas as pd

    from cryomat.io import write_mrc
    from cryomat.outputs import atomic_path

    rng = np.random.default_rng(seed)
    img, t = stem_column_image((size, size), pixel_size=pixel_size, lattice_A=lattice_A, rotation_deg=rotation_deg,
                               column_sigma_A=column_sigma_A, peak_counts=peak_counts, b_ratio=b_ratio,
                               background_counts=background_counts, pld_amplitude_pm=pld_amplitude_pm,
                               pld_q=tuple(pld_q), pld_polarization=tuple(pld_polarization),
                               random_displacement_pm=random_displacement_pm, rng=rng)
    write_mrc(out / "image.mrc", img, pixel_size=pixel_size)
    df = pd.DataFrame({"row_px": t["positions_px"][:, 0], "col_px": t["positions_px"][:, 1],
                       "ideal_row_px": t["ideal_px"][:, 0], "ideal_col_px": t["ideal_px"][:, 1],
                       "sublattice": t["sublattice"], "i": t["ij"][:, 0], "j": t["ij"][:, 1],
                       "dr_pm": t["displacement_pm"][:, 0], "dc_pm": t["displacement_pm"][:, 1]})
    with atomic_path(out / "columns.csv") as tmp:
        df.to_csv(tmp, index=False)
    return {"image": "image.mrc", "columns": "columns.csv", "n_columns": int(len(df)),
            "n_columns_per_sublattice": [int((df.sublattice == s).sum()) for s in (0, 1)],
            "pixel_size_A": pixel_size, "lattice_A": lattice_A, "a1_A_rowcol": list(t["a1_A"]),
            "a2_A_rowcol": list(t["a2_A"]), "pld_amplitude_pm": pld_amplitude_pm, "pld_q_rlu": list(pld_q),
            "pld_polarization_rowcol": list(t["pld_polarization_rc"]),
            "note": "peak_counts: expected counts in the peak pixel of an A column (B: b_ratio of it)"}
