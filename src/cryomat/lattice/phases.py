"""The phase library: crystal structures, electron structure factors, zone-axis spot patterns.

A :class:`Phase` is a crystal structure (cell, space group, asymmetric-unit sites), not a list
of spacings: which reflections exist, and how strong they are, follows from the kinematic
electron structure factor

    F(hkl) = sum_j occ_j f_j(s) exp(-B_j s^2) exp(2 pi i (h x_j + k y_j + l z_j)),   s = 1 / (2 d),

summed over all sites of the unit cell (symmetry expansion with gemmi), with the electron
scattering factors f_j(s) of International Tables C, table 4.3.2.2 (``gemmi.Element.c4322``, A).

References
----------
International Tables for Crystallography Vol. C (2006), table 4.3.2.2, doi:10.1107/97809553602060000103;
Wojdyr, "GEMMI: a library for structural biology", JOSS 7, 4200 (2022), doi:10.21105/joss.04200.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

#: planck^2 / (2 pi m0 e) in V A^2: V_g = _VG * F_g / Omega  (Kirkland 2010, eq. 5.19)
VG_CONSTANT_V_A2 = 47.87801


@dataclass(frozen=True)
class Phase:
    """A crystal structure.

    Attributes
    ----------
    name : library name, e.g. ``"Li2CO3"``, ``"ice-Ih"``.
    spacegroup : Hermann-Mauguin name understood by gemmi (with origin choice where needed).
    cell : (a, b, c, alpha, beta, gamma) in A and degrees.
    sites : ((element, x, y, z, occupancy, B_iso_A2), ...) asymmetric-unit sites.
    temperature_K : temperature of ``cell``.
    source : literature source of the structure and cell.
    """

    name: str
    spacegroup: str
    cell: tuple[float, float, float, float, float, float]
    sites: tuple[tuple, ...]
    formula: str = ""
    description: str = ""
    temperature_K: float | None = None
    source: str = ""
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    # --- geometry -------------------------------------------------------------------
    @functools.cached_property
    def _gemmi_cell(self):
        import gemmi

        return gemmi.UnitCell(*self.cell)

    @property
    def orth(self) -> np.ndarray:
        """3x3 matrix whose columns are the lattice vectors a, b, c in Cartesian A."""
        return np.array(self._gemmi_cell.orth.mat.tolist(), dtype=np.float64)

    @property
    def recip(self) -> np.ndarray:
        """3x3 matrix M with g_cart = M @ hkl (1/A, cycles, no 2 pi)."""
        return np.linalg.inv(self.orth).T

    @property
    def volume_A3(self) -> float:
        return float(abs(np.linalg.det(self.orth)))

    def d_spacing(self, hkl) -> np.ndarray:
        """Interplanar spacing(s) in A of reflection(s) ``hkl`` (..., 3)."""
        g = np.asarray(hkl, dtype=np.float64) @ self.recip.T
        return 1.0 / np.linalg.norm(g, axis=-1)

    @functools.cached_property
    def _ops(self):
        import gemmi

        sg = gemmi.find_spacegroup_by_name(self.spacegroup)
        if sg is None:
            raise ValueError(f"phase {self.name!r}: unknown space group {self.spacegroup!r}")
        return sg.operations()

    @functools.cached_property
    def cell_sites(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """All sites of one unit cell: (elements (n,), fractional xyz (n, 3), occupancy (n,), B (n,))."""
        els, xyz, occ, bb = [], [], [], []
        for el, x, y, z, o, b in self.sites:
            seen: list[np.ndarray] = []
            for op in self._ops:
                p = np.mod(np.array(op.apply_to_xyz([float(x), float(y), float(z)])), 1.0)
                if any(np.all(np.abs(((p - q) + 0.5) % 1.0 - 0.5) < 1e-4) for q in seen):
                    continue
                seen.append(p)
                els.append(el)
                xyz.append(p)
                occ.append(float(o))
                bb.append(float(b))
        return np.array(els), np.array(xyz), np.array(occ), np.array(bb)

    def structure_factor(self, hkl) -> np.ndarray:
        """Kinematic electron structure factor(s) in A for reflection(s) ``hkl`` (..., 3)."""
        import gemmi

        hkl = np.atleast_2d(np.asarray(hkl, dtype=np.float64))
        s = 0.5 * np.linalg.norm(hkl @ self.recip.T, axis=-1)  # sin(theta)/lambda = 1/(2d)
        els, xyz, occ, bb = self.cell_sites
        out = np.zeros(hkl.shape[0], dtype=np.complex128)
        for el in np.unique(els):
            sel = els == el
            coef = gemmi.Element(str(el)).c4322
            f = np.array([coef.calculate_sf(float(si) ** 2) for si in s])
            phase = np.exp(2j * np.pi * hkl @ xyz[sel].T)  # (nref, nsite)
            dw = np.exp(-np.outer(s**2, bb[sel]))
            out += f * np.sum(occ[sel] * dw * phase, axis=1)
        return out

    # --- reflections and zone axes -----------------------------------------------------
    def reflections(self, *, d_min: float = 1.0, rel_threshold: float = 0.005) -> pd.DataFrame:
        """All reflections with d >= ``d_min`` whose |F| exceeds ``rel_threshold`` x the largest.

        Returns a table with columns ``h, k, l, d_A, F_abs_A, F_phase_deg``. Kinematically
        forbidden reflections (lattice centring, glides, screws, special positions) have |F| ~ 0
        and are left out.
        """
        return _reflections(self, round(float(d_min), 4), float(rel_threshold)).copy()

    def zone_axes(self, *, max_index: int = 2, d_min: float = 1.0, min_spots: int = 4) -> list[tuple[int, int, int]]:
        """Symmetry-distinct zone axes [uvw] (|u|,|v|,|w| <= ``max_index``) with >= ``min_spots`` ZOLZ spots.

        Two axes equivalent under the point group (or related by inversion) are listed once.
        Spots counted are those of :meth:`reflections` (d >= ``d_min``) with g . uvw = 0, and at
        least two of them must be non-collinear.
        """
        refl = self.reflections(d_min=d_min)
        hkl = refl[["h", "k", "l"]].to_numpy()
        rots = [np.array(op.rot, dtype=np.float64) / 24.0 for op in self._ops.sym_ops]
        seen, out = set(), []
        rng = range(-max_index, max_index + 1)
        cands = sorted({_reduce((u, v, w)) for u in rng for v in rng for w in rng if (u, v, w) != (0, 0, 0)},
                       key=lambda t: (sum(abs(x) for x in t), [-x for x in t]))
        for uvw in cands:
            if uvw in seen:
                continue
            for r in rots:
                e = _reduce(tuple(int(round(x)) for x in r @ np.array(uvw, dtype=np.float64)))
                seen.add(e)
                seen.add(_reduce(tuple(-x for x in e)))
            on = hkl[np.abs(hkl @ np.array(uvw)) == 0]
            if len(on) < min_spots or np.linalg.matrix_rank(on.astype(float)) < 2:
                continue
            out.append(uvw)
        return out

    def zone_frame(self, zone_axis) -> np.ndarray:
        """Orthonormal Cartesian frame (rows: x, y, z) with z along [uvw] and x along its strongest, longest-d spot."""
        uvw = np.asarray(zone_axis, dtype=np.float64)
        z = self.orth @ uvw
        if not np.any(z):
            raise ValueError(f"zone_axis must be a non-zero direction, got {zone_axis!r}")
        z /= np.linalg.norm(z)
        refl = self.reflections(d_min=0.5)
        hkl = refl[["h", "k", "l"]].to_numpy()
        on = refl[np.abs(hkl @ uvw) < 1e-9]
        if len(on):
            first = on.iloc[0]
            x = self.recip @ np.array([first.h, first.k, first.l], dtype=np.float64)
        else:
            x = np.cross(z, [0, 0, 1.0]) if abs(z[2]) < 0.9 else np.cross(z, [1.0, 0, 0])
        x = x - z * (x @ z)
        x /= np.linalg.norm(x)
        return np.stack([x, np.cross(z, x), z])

    def zone_pattern(self, zone_axis, *, d_min: float = 1.0, rotation_deg: float = 0.0) -> pd.DataFrame:
        """Zero-order Laue zone spots of [uvw] as 2D vectors in the zone frame.

        Returns
        -------
        DataFrame with ``h, k, l, d_A, F_abs_A, F_phase_deg, gx_per_A, gy_per_A`` (both Friedel
        mates), ``gx`` along the frame's x rotated by ``rotation_deg`` (counter-clockwise).
        """
        uvw = np.asarray(zone_axis, dtype=np.float64)
        refl = self.reflections(d_min=d_min)
        hkl = refl[["h", "k", "l"]].to_numpy().astype(np.float64)
        on = refl[np.abs(hkl @ uvw) < 1e-9].copy()
        frame = self.zone_frame(zone_axis)
        g = on[["h", "k", "l"]].to_numpy().astype(np.float64) @ self.recip.T
        gx, gy = g @ frame[0], g @ frame[1]
        c, s = math.cos(math.radians(rotation_deg)), math.sin(math.radians(rotation_deg))
        on["gx_per_A"] = c * gx - s * gy
        on["gy_per_A"] = s * gx + c * gy
        return on.reset_index(drop=True)

    def at_temperature(self, temperature_K: float | None) -> "Phase":
        """This phase with its cell linearly interpolated to ``temperature_K`` (cryo cell where known)."""
        cryo = self.extra.get("cell_cryo")
        if temperature_K is None or cryo is None or self.temperature_K is None:
            return self
        t0, t1 = float(self.extra["temperature_cryo_K"]), float(self.temperature_K)
        w = min(max((float(temperature_K) - t0) / (t1 - t0), 0.0), 1.0)
        cell = tuple(float(c0 + w * (c1 - c0)) for c0, c1 in zip(cryo, self.cell))
        return replace(self, cell=cell, temperature_K=float(temperature_K))

    def to_dict(self) -> dict:
        return {"name": self.name, "formula": self.formula, "spacegroup": self.spacegroup,
                "cell_A_deg": list(self.cell), "temperature_K": self.temperature_K, "source": self.source}


@functools.lru_cache(maxsize=256)
def _reflections(phase: Phase, d_min: float, rel_threshold: float) -> pd.DataFrame:
    if d_min <= 0:
        raise ValueError(f"d_min must be positive, got {d_min!r}")
    a, b, c = (np.linalg.norm(phase.orth[:, i]) for i in range(3))
    hmax, kmax, lmax = (int(math.ceil(x / d_min)) for x in (a, b, c))
    h, k, l = np.meshgrid(np.arange(-hmax, hmax + 1), np.arange(-kmax, kmax + 1), np.arange(-lmax, lmax + 1),
                          indexing="ij")
    hkl = np.stack([h.ravel(), k.ravel(), l.ravel()], axis=1)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    d = phase.d_spacing(hkl)
    hkl, d = hkl[d >= d_min], d[d >= d_min]
    f = phase.structure_factor(hkl)
    fa = np.abs(f)
    keep = fa > rel_threshold * (fa.max() if fa.size else 1.0)
    df = pd.DataFrame({"h": hkl[keep, 0], "k": hkl[keep, 1], "l": hkl[keep, 2], "d_A": d[keep],
                       "F_abs_A": fa[keep], "F_phase_deg": np.degrees(np.angle(f[keep]))})
    order = np.lexsort((-df.l.to_numpy(), -df.k.to_numpy(), -df.h.to_numpy(), -np.round(df.F_abs_A.to_numpy(), 3),
                        -np.round(df.d_A.to_numpy(), 4)))
    return df.iloc[order].reset_index(drop=True)


def _reduce(t: tuple[int, int, int]) -> tuple[int, int, int]:
    g = math.gcd(math.gcd(abs(t[0]), abs(t[1])), abs(t[2])) or 1
    t = tuple(x // g for x in t)
    # canonical sign: first non-zero component positive
    for x in t:
        if x:
            return t if x > 0 else tuple(-y for y in t)
    return t


# --- the library ----------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _library_doc() -> dict:
    text = (Path(__file__).resolve().parents[1] / "data" / "phases" / "library.json").read_text()
    return json.loads(text)


def _phase_from_entry(name: str, e: dict) -> Phase:
    extra = {k: e[k] for k in ("cell_cryo", "temperature_cryo_K") if k in e}
    return Phase(name=name, spacegroup=e["spacegroup"], cell=tuple(float(x) for x in e["cell"]),
                 sites=tuple(tuple(s) for s in e["sites"]), formula=e.get("formula", name),
                 description=e.get("description", ""), temperature_K=e.get("temperature_K"),
                 source=e.get("source", ""), extra=extra)


def list_phases() -> list[str]:
    """Names of the phases in the built-in library."""
    return list(_library_doc()["phases"])


def get_phase(name: str | Phase, *, temperature_K: float | None = None) -> Phase:
    """A library phase by name (case-insensitive; ``ice_Ih``/``iceIh`` accepted) at ``temperature_K``.

    Without a temperature the room-temperature reference cell is returned; below room
    temperature the cell is interpolated towards the library's cryogenic cell.
    """
    if isinstance(name, Phase):
        return name.at_temperature(temperature_K)
    phases = _library_doc()["phases"]
    key = {k.lower().replace("-", "").replace("_", ""): k for k in phases}.get(
        str(name).lower().replace("-", "").replace("_", "").replace(" ", ""))
    if key is None:
        raise ValueError(f"unknown phase {name!r}; the library has: {', '.join(phases)} (add others with a CIF)")
    return _phase_from_entry(key, phases[key]).at_temperature(temperature_K)


def phase_from_cif(path: str | Path, *, name: str | None = None) -> Phase:
    """A :class:`Phase` from a small-molecule/inorganic CIF file (read with gemmi).

    Raises ``ValueError`` naming the file if it holds no cell, space group or sites.
    """
    import gemmi

    p = Path(path)
    try:
        ss = gemmi.read_small_structure(str(p))
    except Exception as exc:  # gemmi raises RuntimeError/ValueError with its own text
        raise ValueError(f"{p}: cannot read CIF ({exc})") from exc
    c = ss.cell
    if c.a <= 0 or not ss.sites:
        raise ValueError(f"{p}: the CIF has no unit cell or no atom sites")
    sg = ss.spacegroup_hm or (ss.find_spacegroup().hm if ss.find_spacegroup() else "")
    if not sg or gemmi.find_spacegroup_by_name(sg) is None:
        raise ValueError(f"{p}: the CIF has no space group gemmi understands ({ss.spacegroup_hm!r})")
    sites = tuple((s.element.name, s.fract.x, s.fract.y, s.fract.z, s.occ,
                   8 * math.pi**2 * (s.u_iso if s.u_iso > 0 else 0.01)) for s in ss.sites)
    return Phase(name=name or ss.name or p.stem, spacegroup=sg, cell=(c.a, c.b, c.c, c.alpha, c.beta, c.gamma),
                 sites=sites, formula=name or p.stem, source=str(p))
