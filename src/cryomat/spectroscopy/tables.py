"""Shipped reference tables: X-ray line energies, EELS edge onsets, approximate k-factors.

The tables sit in ``cryomat/data/spectroscopy`` with their sources in ``SOURCES.md`` there.
"""

from __future__ import annotations

import csv
import functools
import math
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "spectroscopy"


def _rows(name: str) -> list[dict]:
    with open(DATA_DIR / name, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@functools.lru_cache(maxsize=None)
def xray_lines_table() -> dict[str, dict[str, dict]]:
    """``{element: {line: {"energy_keV", "weight"}}}`` (Chantler 2005 energies, EPQ weights)."""
    out: dict[str, dict[str, dict]] = {}
    for r in _rows("xray_lines.csv"):
        out.setdefault(r["element"], {})[r["line"]] = {"energy_keV": float(r["energy_keV"]),
                                                       "weight": float(r["weight"])}
    return out


@functools.lru_cache(maxsize=None)
def atomic_weights() -> dict[str, float]:
    """Standard atomic weights (g/mol) by element symbol."""
    return {r["element"]: float(r["atomic_weight"]) for r in _rows("elements.csv")}


@functools.lru_cache(maxsize=None)
def eels_edges_table() -> dict[str, dict[str, float]]:
    """``{element: {subshell: onset_eV}}`` (Gatan EELS atlas)."""
    out: dict[str, dict[str, float]] = {}
    for r in _rows("eels_edges.csv"):
        out.setdefault(r["element"], {})[r["subshell"]] = float(r["onset_eV"])
    return out


@functools.lru_cache(maxsize=None)
def _kfactor_rows() -> dict[str, dict[str, float]]:
    out = {}
    for r in _rows("kfactors.csv"):
        out[f"{r['element']}_{r['line']}"] = {k: (float(v) if v else math.nan) for k, v in r.items()
                                              if k.startswith("k_")}
    return out


def split_line(line: str) -> tuple[str, str]:
    """``"Fe_Ka" -> ("Fe", "Ka")`` with a clear error for malformed names."""
    if not isinstance(line, str) or "_" not in line:
        raise ValueError(f"X-ray line must look like 'Fe_Ka', got {line!r}")
    el, ln = line.split("_", 1)
    return el, ln


def line_energy_eV(line: str) -> float:
    """Energy (eV) of an X-ray line such as ``"Fe_Ka"``."""
    el, ln = split_line(line)
    tab = xray_lines_table()
    if el not in tab:
        raise ValueError(f"unknown element {el!r} in X-ray line {line!r}")
    if ln not in tab[el]:
        raise ValueError(f"element {el} has no line {ln!r}; known: {', '.join(sorted(tab[el]))}")
    return 1000.0 * tab[el][ln]["energy_keV"]


def edge_onset_eV(edge: str) -> float:
    """Onset energy (eV) of an EELS edge such as ``"O_K"``, ``"Ti_L3"`` (``"Ti_L"`` means L3)."""
    el, sub = split_line(edge)
    tab = eels_edges_table()
    if el not in tab:
        raise ValueError(f"unknown element {el!r} in EELS edge {edge!r}")
    sub = {"L": "L3", "M": "M5", "L23": "L3", "M45": "M5"}.get(sub, sub)
    if sub not in tab.get(el, {}) and sub in {"L3", "L2"} and "L2,3" in tab.get(el, {}):
        sub = "L2,3"
    if sub not in tab.get(el, {}) and sub in {"M5", "M4"} and "M4,5" in tab.get(el, {}):
        sub = "M4,5"
    if sub not in tab[el]:
        raise ValueError(f"element {el} has no tabulated {sub} edge; known: {', '.join(sorted(tab[el]))}")
    return tab[el][sub]


def shipped_kfactor(line: str, *, voltage_kV: float = 200.0) -> float:
    """Approximate theoretical k-factor of ``line`` relative to Si Ka (weight fractions).

    Linear interpolation between the 80, 200 and 300 kV columns. See ``SOURCES.md``: expect
    +-10 % for K lines and up to +-30 % for L/M lines; measured k-factors are better.
    """
    rows = _kfactor_rows()
    if line not in rows:
        raise ValueError(f"no shipped k-factor for {line!r}; give k-factors explicitly")
    pts = [(80.0, rows[line]["k_80kV"]), (200.0, rows[line]["k_200kV"]), (300.0, rows[line]["k_300kV"])]
    pts = [(v, k) for v, k in pts if math.isfinite(k)]
    if not pts:
        raise ValueError(f"the shipped table has no k-factor for {line!r}")
    v = min(max(float(voltage_kV), pts[0][0]), pts[-1][0])
    for (v0, k0), (v1, k1) in zip(pts, pts[1:]):
        if v0 <= v <= v1:
            return k0 + (k1 - k0) * (v - v0) / (v1 - v0)
    return pts[0][1]
