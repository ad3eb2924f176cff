"""Automatic element identification when the file names none: EDS lines and EELS edges.

EDS: the continuum is estimated with the SNIP clipping algorithm (Ryan et al., *Nucl. Instrum. Meth.
B* 34 (1988) 396, doi:10.1016/0168-583X(88)90063-8), peaks are found where the net counts in a
one-FWHM window exceed ``min_sigma`` Poisson standard deviations, and each peak, strongest first,
is given the element whose alpha line (Ka, La or Ma) lies within half a FWHM + 20 eV and whose other lines are
best supported by the detected peaks (an element matched by its L line whose K line is inside the
spectrum but not detected, or far weaker than the L peak, is rejected: V La is not O Ka when V Ka is
absent).

EELS: a tabulated major K or L3 edge is present when the counts in the 20 eV above its onset exceed the
power-law extrapolation of the 25 eV before it by ``min_sigma`` standard deviations and by 5 %.

Noble gases and radioactive elements without stable isotopes are never proposed. These are aids: always check the suggested list; give ``--elements``/``--edges`` to be sure.
"""

from __future__ import annotations

import numpy as np

from cryomat.spectroscopy.eds import eds_fwhm_eV
from cryomat.spectroscopy.tables import eels_edges_table, xray_lines_table


# not proposed automatically: noble gases and elements with no stable isotope (or Z > 83 but Th, U)
_EXCLUDED = {"He", "Ne", "Ar", "Kr", "Xe", "Rn", "Tc", "Pm", "Po", "At", "Fr", "Ra", "Ac", "Pa", "Np", "Pu",
             "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr"}


def snip_background(y, half_width: int, *, iterations: int | None = None) -> np.ndarray:
    """SNIP continuum (Ryan et al. 1988) of a 1-D spectrum, on the LLS-transformed counts."""
    y = np.clip(np.asarray(y, float), 0, None)
    v = np.log(np.log(np.sqrt(y + 1) + 1) + 1)
    n = v.size
    w = max(1, int(half_width))
    for p in range(1, (iterations or w) + 1):
        left = np.concatenate([v[:p], v[:-p]]) if p < n else v
        right = np.concatenate([v[p:], v[-p:]]) if p < n else v
        v = np.minimum(v, 0.5 * (left + right))
    return (np.exp(np.exp(v) - 1) - 1) ** 2 - 1


def _peaks(y, e, fwhm_mnka_eV, min_sigma, min_fraction=0.01):
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import find_peaks

    scale = e[1] - e[0]
    f_ch = float(eds_fwhm_eV(3000.0, fwhm_mnka_eV=fwhm_mnka_eV)) / scale
    # smooth before clipping: SNIP follows the minima of the noise otherwise and the continuum is biased low
    ys = gaussian_filter1d(np.clip(y, 0, None), max(0.5, f_ch / 4.0))
    bg = np.clip(snip_background(ys, int(round(2 * f_ch))), 0, None)
    net = ys - bg
    k = max(1, int(round(f_ch)))
    ker = np.ones(k)
    s_net = np.convolve(net, ker, mode="same")
    s_tot = np.convolve(np.clip(y, 0, None), ker, mode="same")
    z = s_net / np.sqrt(s_tot + 1.0)
    idx, _ = find_peaks(z, height=min_sigma, distance=max(1, int(0.5 * f_ch)))
    if len(idx) == 0:
        return []
    big = s_net[idx].max()
    return [(float(e[i]), float(z[i])) for i in idx if s_net[i] >= min_fraction * big]


def identify_eds_elements(spectrum, energy_eV, *, fwhm_mnka_eV: float = 130.0, beam_energy_kV: float | None = None,
                          min_sigma: float = 10.0, min_energy_eV: float = 220.0) -> list[str]:
    """Elements whose X-ray lines explain the significant peaks of a summed EDS spectrum.

    Parameters
    ----------
    spectrum : (energy,) counts (sum a spectrum image over its pixels first).
    energy_eV : (energy,) channel energies.
    min_sigma : peak significance threshold (Poisson standard deviations of the window counts).
    min_energy_eV : ignore peaks below this (the noise peak at 0 eV and the detector cut-off; B Ka
        and lighter lines are therefore never proposed automatically).

    Returns
    -------
    sorted element symbols.
    """
    y = np.asarray(spectrum, float)
    e = np.asarray(energy_eV, float)
    if y.ndim != 1 or y.shape != e.shape:
        raise ValueError("identify_eds_elements needs one spectrum matching energy_eV")
    top = e[-1] if beam_energy_kV is None else min(e[-1], 1000.0 * beam_energy_kV)
    peaks = [(pe, pz) for pe, pz in _peaks(y, e, fwhm_mnka_eV, min_sigma) if min_energy_eV <= pe <= top]
    tab = xray_lines_table()
    explained = [False] * len(peaks)

    def near(energy):
        # half a FWHM plus room for an energy axis off by a few channels (common in exported files)
        tol = 0.5 * float(eds_fwhm_eV(energy, fwhm_mnka_eV=fwhm_mnka_eV)) + 20.0
        return [i for i, (pe, _) in enumerate(peaks) if abs(pe - energy) <= tol]

    chosen: list[str] = []
    for pi in np.argsort([-pz for _, pz in peaks]):
        if explained[pi]:
            continue
        pe = peaks[pi][0]
        best, best_score = None, -np.inf
        for el, lines in tab.items():
            if el in _EXCLUDED:
                continue
            alphas = {ln: v["energy_keV"] * 1000 for ln, v in lines.items() if ln in ("Ka", "La", "Ma")}
            hit = [ln for ln, en in alphas.items() if pi in near(en)]
            if not hit:
                continue
            fam = hit[0][0]
            # a higher-energy family inside the spectrum must be detected too (K for an L match, L for M)
            higher = {"L": "Ka", "M": "La"}.get(fam)
            if higher and higher in alphas and min_energy_eV < alphas[higher] < min(top, e[-1]):
                # peaks already explained by a chosen element are no evidence for this one
                hz = [peaks[j][1] for j in near(alphas[higher]) if not explained[j]]
                # the higher family must be there, and not much weaker (V La is not O Ka when the only
                # peak near V Ka is the weak Ti Kb)
                if not hz or max(hz) < 0.3 * peaks[pi][1]:
                    continue
            support = sum(1 for ln, v in lines.items() if v["weight"] >= 0.1
                          and any(not explained[j] for j in near(v["energy_keV"] * 1000)))
            miss = sum(1 for ln, v in lines.items() if v["weight"] >= 0.3 and ln[0] == fam
                       and min_energy_eV < v["energy_keV"] * 1000 < top and peaks[pi][1] * v["weight"] > 3 * min_sigma
                       and not near(v["energy_keV"] * 1000))
            d = min(abs(alphas[h] - pe) for h in hit)
            # K lines are the least ambiguous assignment: prefer them on ties (Al Ka over Br La)
            score = support - 2 * miss - d / 1000.0 + (0.5 if fam == "K" else 0.0)
            if score > best_score:
                best, best_score = el, score
        if best is None:
            continue
        chosen.append(best)
        # a chosen element explains the peaks of its lines (weight >= 0.1) in families whose alpha line is seen
        seen = {ln[0] for ln, v in tab[best].items() if ln in ("Ka", "La", "Ma") and near(v["energy_keV"] * 1000)}
        for ln, v in tab[best].items():
            if v["weight"] >= 0.1 and ln[0] in seen:
                for j in near(v["energy_keV"] * 1000):
                    explained[j] = True
        explained[pi] = True
    return sorted(set(chosen))


def edge_onset_measured(spectrum, energy_eV, onset_eV: float, *, search_eV=(-12.0, 8.0), smooth_eV: float = 1.0):
    """Measured onset (eV) of an edge: the steepest rise of the smoothed spectrum near the tabulated onset."""
    from scipy.ndimage import gaussian_filter1d

    y = np.asarray(spectrum, float)
    e = np.asarray(energy_eV, float)
    scale = e[1] - e[0]
    d = np.gradient(gaussian_filter1d(y, max(0.5, smooth_eV / scale)))
    m = (e >= onset_eV + search_eV[0]) & (e <= onset_eV + search_eV[1])
    if m.sum() < 3:
        return float(onset_eV)
    i = np.flatnonzero(m)[np.argmax(d[m])]
    return float(e[i])


def identify_eels_edges(spectrum, energy_eV, *, min_sigma: float = 8.0, min_jump: float = 0.05,
                        return_onsets: bool = False):
    """Major K and L2,3 edges with a significant jump near their tabulated onset in a core-loss spectrum.

    The onset is located as the steepest rise within -12/+8 eV of the tabulated value (energy axes are
    often off by a few eV); of candidates whose measured onsets coincide (within 10 eV) the one whose
    tabulated onset is closest wins. With ``return_onsets`` a dict ``{edge: measured onset eV}``.
    """
    from cryomat.spectroscopy.eels import powerlaw_background, powerlaw_fit

    y = np.asarray(spectrum, float)
    e = np.asarray(energy_eV, float)
    scale = e[1] - e[0]
    found = []
    for el, subs in eels_edges_table().items():
        for sub in ("K", "L3"):
            tab = subs.get(sub)
            if tab is None or not (e[0] + 42 < tab < e[-1] - 30) or tab < 30:
                continue
            on = edge_onset_measured(y, e, tab)
            try:
                a, r = powerlaw_fit(y, e, (on - 28.0, on - 3.0))
            except ValueError:
                continue
            m = (e >= on + 2) & (e < on + 22)
            bg = powerlaw_background(a, r, e[m]).sum() if r > 0 else np.nan
            tot = y[m].sum()
            if not np.isfinite(bg) or bg <= 0:
                continue
            net = tot - bg
            z = net / np.sqrt(tot + 1.0)
            if z > min_sigma and net > min_jump * bg:
                # rank by distance to the tabulated onset, K edges 5 eV ahead (light-element K edges are the
                # common case and L3 edges of neighbours often sit within the calibration error)
                found.append((f"{el}_{sub}", on, z, abs(on - tab) - (5.0 if sub == "K" else 0.0)))
    found.sort(key=lambda t: (t[3], -t[2]))
    keep = []
    for name, on, z, dist in found:
        if all(abs(on - o) > max(10.0, 10 * scale) for _, o, _, _ in keep):
            keep.append((name, on, z, dist))
    keep.sort(key=lambda t: t[1])
    if return_onsets:
        return {n: o for n, o, _, _ in keep}
    return [n for n, _, _, _ in keep]
