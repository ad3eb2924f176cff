"""Populations across aliquots: a reaction frozen at several times, each grid its own population.

Per time point: particle counts, size distribution, class fractions with Wilson intervals
(classes from :mod:`cryomat.measure.classify`), a chi-square test that the mix changes, and the
transformed fraction of a product class fitted with the JMAK (Avrami) law
X(t) = 1 - exp(-(k (t - t0))^n) (Avrami, J. Chem. Phys. 7, 1103 (1939), doi:10.1063/1.1750380).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit

_UNITS_H = {"s": 1 / 3600, "sec": 1 / 3600, "min": 1 / 60, "m": 1 / 60, "h": 1.0, "hr": 1.0, "d": 24.0, "day": 24.0}
IMAGE_EXT = {".mrc", ".tif", ".tiff", ".dm3", ".dm4", ".emd", ".ser", ".hspy", ".png"}


def parse_times(text: str) -> list[float]:
    """``"48h,52h,56h"`` or ``"30min,1h,2d"`` or ``"48,52"`` (hours) -> hours."""
    out = []
    for tok in [t.strip() for t in str(text).split(",") if t.strip()]:
        m = re.fullmatch(r"([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*([a-zA-Z]*)", tok)
        if not m or (m.group(2) and m.group(2).lower() not in _UNITS_H):
            raise ValueError(f"--times: cannot read {tok!r}; use numbers with h, min, s or d (e.g. 48h)")
        out.append(float(m.group(1)) * _UNITS_H.get(m.group(2).lower() or "h", 1.0))
    return out


def jmak(t, k, n, t0):
    """Transformed fraction X(t) = 1 - exp(-(k (t - t0))^n) for t > t0 (induction time t0)."""
    return 1.0 - np.exp(-np.power(np.clip(k * (np.asarray(t, float) - t0), 0, None), n))


def fit_jmak(t_h, fraction) -> dict:
    """Fit the JMAK law with rate k (1/h), Avrami exponent n and induction time t0 (h).

    Needs >= 4 time points (three parameters) and a rising fraction; ``applies`` is True when
    R^2 > 0.9. The Avrami exponent hints at the mechanism (e.g. ~1-1.5 one-dimensional or
    diffusion-limited growth, ~3-4 three-dimensional growth with constant nucleation).
    """
    t = np.asarray(t_h, float)
    x = np.clip(np.asarray(fraction, float), 0, 1)
    if len(t) < 4 or x[-1] <= x[0]:
        return {"applies": False, "reason": "needs >= 4 time points with a rising fraction"}
    span = float(t.max() - t.min()) or 1.0
    try:
        p, cov = curve_fit(jmak, t, x, p0=(1.0 / span, 2.0, max(0.0, t.min() - 0.5 * span)),
                           bounds=([1e-9, 0.5, 0.0], [np.inf, 6.0, max(t.min() - 1e-9, 1e-9)]), maxfev=20000)
    except (RuntimeError, ValueError) as exc:
        return {"applies": False, "reason": f"fit failed: {exc}"}
    pred = jmak(t, *p)
    ss_res = float(np.sum((x - pred) ** 2))
    ss_tot = float(np.sum((x - x.mean()) ** 2)) or 1e-12
    err = np.sqrt(np.clip(np.diag(cov), 0, None)) if np.all(np.isfinite(cov)) else np.full(3, np.nan)
    r2 = 1 - ss_res / ss_tot
    return {"applies": bool(r2 > 0.9), "k_per_h": float(p[0]), "avrami_n": float(p[1]), "avrami_n_se": float(err[1]),
            "induction_time_h": float(p[2]), "r2": float(r2)}


def load_condition(path: Path, *, pixel_size: float | None = None, dose_e_per_A2: float | None = None) -> pd.DataFrame:
    """Particles of one aliquot: ``particles.csv`` if the folder has one (from ``cryomat segment``),
    else every image in it is segmented and measured."""
    from cryomat.errors import InputError

    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".csv":
        return pd.read_csv(p)
    if not p.is_dir():
        raise InputError("not a folder or particles.csv", path=p)
    csv = p / "particles.csv"
    if csv.exists():
        return pd.read_csv(csv)
    images = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXT and "label" not in f.stem.lower())
    if not images:
        raise InputError("holds neither particles.csv nor images", path=p)
    from cryomat import io
    from cryomat.measure import particle_table
    from cryomat.segmentation import segment_particles

    tables = []
    for f in images:
        img = io.read(f)
        px = img.require_pixel_size(pixel_size)
        data = np.asarray(img.data, np.float32)
        lab = segment_particles(data, pixel_size=px, dose_e_per_A2=dose_e_per_A2)
        t = particle_table(lab, data, pixel_size=px)
        t.insert(0, "image", f.name)
        tables.append(t)
    return pd.concat(tables, ignore_index=True)


def population_summary(particles: pd.DataFrame, classes) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(per-time size summary, class fractions with intervals, chi-square test) from a pooled table
    with columns ``time_h`` and ``equivalent_diameter_nm``."""
    from cryomat.measure.classify import class_fractions, compare_groups

    g = particles.groupby("time_h")["equivalent_diameter_nm"]
    sizes = pd.DataFrame({"time_h": g.median().index, "n_particles": g.size().to_numpy(),
                          "median_diameter_nm": g.median().to_numpy(),
                          "q25_diameter_nm": g.quantile(0.25).to_numpy(), "q75_diameter_nm": g.quantile(0.75).to_numpy()})
    frac = class_fractions(particles["time_h"].astype(float).map(lambda v: f"{v:g}"), classes)
    frac["time_h"] = frac["group"].astype(float)
    test = compare_groups(particles["time_h"].astype(str), classes)
    return sizes, frac.sort_values(["time_h", "class"]).reset_index(drop=True), test
