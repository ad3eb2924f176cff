"""Regenerate the shipped spectroscopy tables (run by hand; not imported by cryomat).

``python -m cryomat.data.spectroscopy._generate`` writes, next to this file:

- ``elements.csv``: element, Z, standard atomic weight (IUPAC, as in the exSpy database).
- ``xray_lines.csv``: element, Z, atomic weight, X-ray line, energy (keV), relative weight in its
  family. Energies: Chantler et al. (2005), NIST X-Ray Form Factor, Attenuation and Scattering
  Tables v2.1, doi:10.18434/T4HS32; relative line weights: NIST EPQ library (DTSA-II). Both as
  compiled in the exSpy element database (exSpy 0.3), read from the installed exSpy.
- ``eels_edges.csv``: EELS edge onsets (eV) by subshell, with relevance and edge shape, from the
  Gatan EELS atlas (https://eels.info/atlas, June 2020) as compiled in the exSpy database.
- ``kfactors.csv``: approximate theoretical Cliff-Lorimer k-factors relative to Si Ka (weight
  fraction convention) computed here from a stated thin-film model, see :func:`theoretical_kfactor`.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Bethe constants per shell (n_s electrons, b_s, c_s): Powell (1976) / Williams & Carter (2009) ch. 35
_BETHE = {"K": (2, 0.35, 1.0), "L": (8, 0.25, 1.0), "M": (18, 0.25, 1.0)}
# fluorescence-yield fit omega = Z^4 / (a + Z^4) (Burhop 1955; Williams & Carter 2009 eq. 4.6)
_OMEGA_A = {"K": 1.0e6, "L": 1.0e8, "M": 1.0e9}


def bethe_cross_section_cm2(edge_keV: float, voltage_kV: float, shell: str) -> float:
    """Relativistic Bethe ionisation cross-section (cm^2) of one shell (Williams & Carter 2009, eq. 4.3)."""
    n, b, c = _BETHE[shell]
    mc2 = 511.0
    gamma = 1.0 + voltage_kV / mc2
    beta2 = 1.0 - 1.0 / gamma**2
    t = 0.5 * mc2 * beta2  # m0 v^2 / 2 in keV
    arg = math.log(c * t / edge_keV) - math.log(1.0 - beta2) - beta2
    return 6.51e-20 * n * b / (edge_keV * t) * max(arg, 0.0)


def theoretical_kfactor(z: int, weight: float, edge_keV: float, family_weight: float, shell: str,
                        voltage_kV: float) -> float:
    """k relative to an element of unit response: A / (Q * omega * a) (weight fraction convention)."""
    q = bethe_cross_section_cm2(edge_keV, voltage_kV, shell)
    omega = z**4 / (_OMEGA_A[shell] + z**4)
    line_fraction = 1.0 / family_weight
    if q <= 0:  # not excited at this voltage
        return float("nan")
    return weight / (q * omega * line_fraction)


def _edge_from_lines(xl: dict, shell: str) -> float | None:
    """Approximate K / L3 / M5 ionisation energy (keV) from the emission lines when no edge is tabulated.

    K: the Kb line (K-M3, within ~1 % of the K edge); L3: the Lb2 line (L3-N4,5, within ~3 %) or
    1.1 x La; M5: 1.05 x Ma.
    """
    if shell == "K":
        v = xl.get("Kb", xl.get("Ka"))
        return None if v is None else v["energy (keV)"]
    if shell == "L":
        if "Lb2" in xl:
            return xl["Lb2"]["energy (keV)"]
        return 1.1 * xl["La"]["energy (keV)"] if "La" in xl else None
    return 1.05 * xl["Ma"]["energy (keV)"] if "Ma" in xl else None


def main() -> None:
    from exspy.material import elements as db

    lines_rows, edge_rows, k_rows, el_rows = [], [], [], []
    sis = {}
    for el in sorted(db.keys()):
        e = db[el]
        z = int(e.General_properties.Z)
        aw = float(e.General_properties.atomic_weight)
        el_rows.append([el, z, aw])
        ap = e.Atomic_properties
        xl = ap.Xray_lines.as_dictionary() if ap.has_item("Xray_lines") else {}
        be = ap.Binding_energies.as_dictionary() if ap.has_item("Binding_energies") else {}
        for line, v in sorted(xl.items()):
            lines_rows.append([el, z, aw, line, v["energy (keV)"], v["weight"]])
        for sub, v in sorted(be.items()):
            edge_rows.append([el, z, sub, v["onset_energy (eV)"], v.get("relevance", ""), v.get("edge", "")])
        for line in ("Ka", "La", "Ma"):
            if line not in xl:
                continue
            shell = line[0]
            fam = sum(w["weight"] for n_, w in xl.items() if n_.startswith(shell))
            sub = {"K": "K", "L": "L3", "M": "M5"}[shell]
            if sub in be:
                edge = be[sub]["onset_energy (eV)"] / 1000.0
            else:  # edge beyond the EELS atlas: the highest line of that shell's upper level
                edge = _edge_from_lines(xl, shell)
                if edge is None:
                    continue
            ks = {kv: theoretical_kfactor(z, aw, edge, fam, shell, kv) for kv in (80.0, 200.0, 300.0)}
            k_rows.append([el, line, ks])
            if el == "Si" and line == "Ka":
                sis = ks
    with open(HERE / "elements.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["element", "Z", "atomic_weight"])
        w.writerows(sorted(el_rows, key=lambda r: r[1]))
    with open(HERE / "xray_lines.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["element", "Z", "atomic_weight", "line", "energy_keV", "weight"])
        w.writerows(lines_rows)
    with open(HERE / "eels_edges.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["element", "Z", "subshell", "onset_eV", "relevance", "edge_shape"])
        w.writerows(edge_rows)
    with open(HERE / "kfactors.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["element", "line", "k_80kV", "k_200kV", "k_300kV"])
        for el, line, ks in k_rows:
            vals = [ks[kv] / sis[kv] for kv in (80.0, 200.0, 300.0)]
            w.writerow([el, line] + ["" if math.isnan(v) else f"{v:.5g}" for v in vals])


if __name__ == "__main__":
    main()
