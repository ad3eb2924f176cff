"""EDS: X-ray line selection, integration and background windows, line intensities, Cliff-Lorimer.

The window conventions are those of exSpy (``EDSSpectrum.estimate_integration_windows``,
``estimate_background_windows``, ``get_lines_intensity``) so that numbers agree with it, but the
work is done here on plain arrays of any shape ``(..., energy)``, vectorised for spectrum images.

Assumptions of the quantification (state them in reports): thin film (no absorption, no
fluorescence: the Cliff-Lorimer ratio approximation), k-factors either measured by the user or the
approximate theoretical values shipped with cryomat, continuum under a line estimated from
windows on either side of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cryomat.spectroscopy.tables import atomic_weights, line_energy_eV, shipped_kfactor, split_line, xray_lines_table

MNKA_EV = 5898.7  # Mn Ka energy (eV), reference of detector resolution


def eds_fwhm_eV(energy_eV, *, fwhm_mnka_eV: float = 130.0):
    """FWHM (eV) of an EDS peak at ``energy_eV`` given the resolution at Mn Ka.

    FWHM(E)^2 = FWHM(MnKa)^2 + 2.5 (E - E_MnKa), energies in eV (Fiori & Newbury 1978; Goldstein
    et al., *Scanning Electron Microscopy and X-ray Microanalysis*, 3rd ed. 2003, p. 315,
    doi:10.1007/978-1-4615-0215-9).
    """
    if not np.isfinite(fwhm_mnka_eV) or fwhm_mnka_eV <= 0:
        raise ValueError(f"fwhm_mnka_eV must be a positive number of eV, got {fwhm_mnka_eV!r}")
    return np.sqrt(2.5 * (np.asarray(energy_eV, float) - MNKA_EV) + fwhm_mnka_eV**2)


def select_xray_lines(elements, *, energy_range_eV: tuple[float, float], beam_energy_kV: float | None = None,
                      families=("Ka", "La", "Ma")) -> list[str]:
    """One alpha line per element, exSpy's rule: of the Ka/La/Ma lines inside the spectrum (and
    below the beam energy), the highest-energy one excited with an overvoltage >= 2, else the lowest.

    Parameters
    ----------
    elements : element symbols, e.g. ``["Fe", "Pt"]``.
    energy_range_eV : (low, high) of the spectrum in eV.
    beam_energy_kV : accelerating voltage; ``None`` uses the top of the spectrum.

    Returns
    -------
    list of line names sorted alphabetically, e.g. ``["Fe_Ka", "Pt_La"]``.
    """
    tab = xray_lines_table()
    lo, hi = float(energy_range_eV[0]), float(energy_range_eV[1])
    beam = hi if beam_energy_kV is None else 1000.0 * float(beam_energy_kV)
    top = min(hi, beam)
    out = []
    for el in elements:
        if el not in tab:
            raise ValueError(f"unknown element {el!r} in elements")
        cands = sorted(f"{el}_{ln}" for ln in tab[el] if ln in families
                       and lo < 1000.0 * tab[el][ln]["energy_keV"] < top)
        if not cands:
            continue
        pick = next((c for c in cands if line_energy_eV(c) < beam / 2), cands[-1])
        out.append(pick)
    return sorted(out)


def integration_windows(lines, *, fwhm_mnka_eV: float = 130.0, width: float = 2.0) -> np.ndarray:
    """Integration windows (eV), ``width`` x FWHM centred on each line: array (n_lines, 2)."""
    e = np.array([line_energy_eV(x) for x in lines], float)
    half = width * eds_fwhm_eV(e, fwhm_mnka_eV=fwhm_mnka_eV) / 2.0
    return np.stack([e - half, e + half], axis=1).reshape(-1, 2)


def background_windows(lines, *, fwhm_mnka_eV: float = 130.0, line_width=(2.0, 2.0),
                       window_width: float = 1.0, mode: str = "auto") -> np.ndarray:
    """Two background windows per line (eV): array (n_lines, 4) = left (a, b), right (c, d).

    The left window ends ``line_width[0]`` FWHM below the line, the right one starts
    ``line_width[1]`` FWHM above it; each is ``window_width`` FWHM wide.

    mode : ``"exspy"``: windows of neighbouring lines that overlap are merged pairwise in order of
        energy, exactly as exSpy's ``estimate_background_windows``; ``"exclusive"``: each window is
        moved outwards (in steps of a tenth of its width) until it overlaps no other line's peak region
        (+-``line_width`` FWHM around it); ``"auto"`` (default): exSpy's windows unless one of them
        then falls on another line's peak region, in which case the exclusive ones.
    """
    if mode not in {"auto", "exspy", "exclusive"}:
        raise ValueError(f"mode must be 'auto', 'exspy' or 'exclusive', got {mode!r}")
    e = np.array([line_energy_eV(x) for x in lines], float)
    f = eds_fwhm_eV(e, fwhm_mnka_eV=fwhm_mnka_eV)
    base = np.stack([e - f * line_width[0] - f * window_width, e - f * line_width[0],
                     e + f * line_width[1], e + f * line_width[1] + f * window_width], axis=1).reshape(-1, 4)
    w = base.copy()
    order = np.argsort(w[:, 0], kind="stable")
    for ia, ib in zip(order[:-1], order[1:]):
        if w[ia, 2] > w[ib, 0]:
            merged = np.concatenate([w[ia, :2], w[ib, 2:]])
            w[ia] = merged
            w[ib] = merged
    peaks = np.stack([e - f * line_width[0], e + f * line_width[1]], axis=1)

    def hits(i, lo, hi):
        return any(j != i and lo < peaks[j, 1] and hi > peaks[j, 0] for j in range(len(e)))

    if mode == "exspy" or (mode == "auto" and not any(hits(i, w[i, 0], w[i, 1]) or hits(i, w[i, 2], w[i, 3])
                                                       for i in range(len(e)))):
        return w
    out = base.copy()
    for i in range(len(e)):
        step = 0.1 * f[i] * window_width
        lo, hi = out[i, 0], out[i, 1]
        while hits(i, lo, hi) and lo > step:
            lo, hi = lo - step, hi - step
        lo2, hi2 = out[i, 2], out[i, 3]
        while hits(i, lo2, hi2):
            lo2, hi2 = lo2 + step, hi2 + step
        out[i] = (lo, hi, lo2, hi2)
    return out


def energy_to_index(energy_eV, *, offset_eV: float, scale_eV: float, size: int) -> np.ndarray:
    """Nearest channel of an energy (HyperSpy's rounding: ties toward zero), clipped to the axis."""
    x = np.trunc((np.asarray(energy_eV, float) - offset_eV) / scale_eV * 1e12) / 1e12
    idx = np.where(x - np.floor(x) > 0.5, np.ceil(x), np.floor(x))
    return np.clip(idx, 0, size).astype(int)


def _axis(energy_eV) -> tuple[float, float, int]:
    e = np.asarray(energy_eV, float)
    if e.ndim != 1 or e.size < 2:
        raise ValueError(f"energy_eV must be a 1-D axis of at least 2 channels, got shape {e.shape}")
    scale = (e[-1] - e[0]) / (e.size - 1)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError("energy_eV must increase")
    return float(e[0]), float(scale), int(e.size)


@dataclass(frozen=True)
class LineIntensities:
    """Background-subtracted X-ray line intensities.

    Attributes
    ----------
    lines : line names.
    net : array (n_lines, ...) of net counts.
    background : array (n_lines, ...) of the background counts subtracted.
    variance : array (n_lines, ...) Poisson variance of ``net`` (counts^2).
    windows_eV, background_windows_eV : the windows used.
    """

    lines: list
    net: np.ndarray
    background: np.ndarray
    variance: np.ndarray
    windows_eV: np.ndarray
    background_windows_eV: np.ndarray | None = field(default=None)

    def as_dict(self) -> dict:
        return {ln: self.net[i] for i, ln in enumerate(self.lines)}


def line_intensities(data, energy_eV, lines, *, windows_eV=None, background_windows_eV=None,
                     fwhm_mnka_eV: float = 130.0, width: float = 2.0, background: str = "mean",
                     window_correction: bool = False) -> LineIntensities:
    """Integrated X-ray line counts with the continuum removed.

    Parameters
    ----------
    data : array (..., energy) of counts (a spectrum or a spectrum image).
    energy_eV : array (energy,) channel energies (eV), uniform.
    lines : line names, e.g. ``["Fe_Ka", "Pt_La"]``.
    windows_eV : (n_lines, 2) integration windows; default ``width`` x FWHM (:func:`integration_windows`).
    background_windows_eV : (n_lines, 4) windows, e.g. from :func:`background_windows`; ``None``:
        no background subtraction.
    background : ``"mean"`` (exSpy's estimator: the mean count per channel of both windows times the
        window width) or ``"linear"`` (a straight line through the two window means, evaluated
        under the line: better when the continuum slopes and the windows are asymmetric) or
        ``"powerlaw"`` (a power law of energy through the two window means: exact for a Kramers
        continuum ~ (E0 - E) / E far below E0).

    window_correction : divide each net intensity by the fraction of a Gaussian line (FWHM from
        ``fwhm_mnka_eV``) that falls inside its integration window as rounded to whole channels, so
        that intensities are full-line counts (k-factors defined for whole lines then apply; off by
        default, as exSpy, whose k-factors are calibrated with its windows).

    Returns
    -------
    :class:`LineIntensities` with net counts, background and Poisson variance.

    Notes
    -----
    Channel ``i`` belongs to window [a, b) when round(a) <= i < round(b) (HyperSpy's slicing), so
    the counts equal exSpy's ``get_lines_intensity`` for the same windows.
    """
    if background not in {"mean", "linear", "powerlaw"}:
        raise ValueError(f"background must be 'mean', 'linear' or 'powerlaw', got {background!r}")
    offset, scale, size = _axis(energy_eV)
    if np.shape(data)[-1] != size:
        raise ValueError(f"data has {np.shape(data)[-1]} channels but energy_eV has {size}")
    lines = list(lines)
    if windows_eV is None:
        windows_eV = integration_windows(lines, fwhm_mnka_eV=fwhm_mnka_eV, width=width)
    windows_eV = np.asarray(windows_eV, float).reshape(-1, 2)
    if len(windows_eV) != len(lines):
        raise ValueError(f"windows_eV has {len(windows_eV)} rows for {len(lines)} lines")
    csum = np.asarray(data)
    nets, bgs, vars_ = [], [], []
    for i, _line in enumerate(lines):
        i0, i1 = energy_to_index(windows_eV[i], offset_eV=offset, scale_eV=scale, size=size)
        gross = _window_sum(csum, i0, i1)
        bg = np.zeros_like(gross)
        var = gross.copy()
        if background_windows_eV is not None:
            bw = np.asarray(background_windows_eV, float).reshape(-1, 4)[i]
            b0, b1, b2, b3 = energy_to_index(bw, offset_eV=offset, scale_eV=scale, size=size)
            n_left, n_right = b1 - b0, b3 - b2
            left = _window_sum(csum, b0, b1) if n_left > 0 else _window_sum(csum, b0, b0 + 1)
            right = _window_sum(csum, b2, b3) if n_right > 0 else _window_sum(csum, b2, b2 + 1)
            if background == "mean":
                f = (i1 - i0) / max(n_left + n_right, 1)
                bg = (left + right) * f
                var = gross + (left + right) * f**2
            else:
                nl, nr = max(n_left, 1), max(n_right, 1)
                el = offset + scale * (b0 + 0.5 * nl - 0.5)  # window centres (eV)
                er = offset + scale * (b2 + 0.5 * nr - 0.5)
                em = offset + scale * (0.5 * (i0 + i1) - 0.5)
                n = i1 - i0
                if background == "linear" or el <= 0:
                    t = (em - el) / (er - el) if er != el else 0.5
                    wl, wr = n * (1 - t) / nl, n * t / nr
                    bg = wl * left + wr * right
                    var = gross + wl**2 * left + wr**2 * right
                else:
                    t = np.log(em / el) / np.log(er / el) if er != el else 0.5
                    dl, dr = np.clip(left, 1e-12, None) / nl, np.clip(right, 1e-12, None) / nr
                    bg = n * dl ** (1 - t) * dr**t
                    # d bg / d left = bg (1 - t) / left, d bg / d right = bg t / right
                    var = gross + (bg * (1 - t)) ** 2 / np.clip(left, 1, None) + (bg * t) ** 2 / np.clip(right, 1, None)
        if window_correction:
            from scipy.special import ndtr

            c = line_energy_eV(_line)
            sd = eds_fwhm_eV(c, fwhm_mnka_eV=fwhm_mnka_eV) / 2.3548200450309493
            lo_e, hi_e = offset + scale * (i0 - 0.5), offset + scale * (i1 - 0.5)
            frac = float(ndtr((hi_e - c) / sd) - ndtr((lo_e - c) / sd))
            gross, bg, var = gross / frac, bg / frac, var / frac**2
        nets.append(gross - bg)
        bgs.append(bg)
        vars_.append(var)
    return LineIntensities(lines=lines, net=np.stack(nets), background=np.stack(bgs), variance=np.stack(vars_),
                           windows_eV=windows_eV,
                           background_windows_eV=None if background_windows_eV is None
                           else np.asarray(background_windows_eV, float).reshape(-1, 4))


def _cumsum(data) -> np.ndarray:
    """Cumulative counts along energy with a leading zero, float64: window sums in O(1) each."""
    d = np.asarray(data)
    c = np.cumsum(d, axis=-1, dtype=np.float64)
    return np.concatenate([np.zeros(d.shape[:-1] + (1,), np.float64), c], axis=-1)


def _window_sum(data, i0: int, i1: int) -> np.ndarray:
    """Counts in channels [i0, i1) of ``data`` (..., energy), float64 (empty window: 0)."""
    i1 = max(int(i1), int(i0))
    return np.sum(np.asarray(data)[..., int(i0):i1], axis=-1, dtype=np.float64)


def resolve_kfactors(lines, kfactors=None, *, voltage_kV: float = 200.0) -> np.ndarray:
    """k-factors for ``lines``: the user's (a sequence or ``{line: k}``), else the shipped table."""
    if kfactors is None:
        return np.array([shipped_kfactor(x, voltage_kV=voltage_kV) for x in lines], float)
    if isinstance(kfactors, dict):
        ks = [kfactors[x] if x in kfactors else shipped_kfactor(x, voltage_kV=voltage_kV) for x in lines]
    else:
        ks = list(kfactors)
        if len(ks) != len(lines):
            raise ValueError(f"kfactors has {len(ks)} values for {len(lines)} lines")
    k = np.asarray(ks, float)
    if not np.all(np.isfinite(k)) or np.any(k <= 0):
        raise ValueError(f"kfactors must be positive numbers, got {ks!r}")
    return k


def cliff_lorimer(intensities, lines, kfactors, *, variance=None, composition: str = "atomic"):
    """Cliff-Lorimer quantification of a thin film.

    ``C_i / C_j = k_i I_i / (k_j I_j)`` for weight fractions, normalised to 100 %; atomic
    percent divides by the atomic weights (Cliff & Lorimer, *J. Microsc.* 103 (1975) 203,
    doi:10.1111/j.1365-2818.1975.tb03895.x).

    Parameters
    ----------
    intensities : array (n_lines, ...) net counts (negative values count as zero).
    lines : line names (for the atomic weights).
    kfactors : array (n_lines,) k-factors in the weight-fraction convention (any common reference).
    variance : optional array (n_lines, ...) of count variances for 1-sigma uncertainties.
    composition : ``"atomic"`` (at.%) or ``"weight"`` (wt.%).

    Returns
    -------
    (percent, sigma) arrays (n_lines, ...): composition in percent and its 1-sigma Poisson
    uncertainty (``None`` when ``variance`` is not given). Pixels with no counts in any line are NaN.
    """
    if composition not in {"atomic", "weight"}:
        raise ValueError(f"composition must be 'atomic' or 'weight', got {composition!r}")
    inten = np.clip(np.asarray(intensities, float), 0, None)
    k = np.asarray(kfactors, float).reshape((-1,) + (1,) * (inten.ndim - 1))
    if k.shape[0] != inten.shape[0] or len(lines) != inten.shape[0]:
        raise ValueError("intensities, lines and kfactors must have the same number of lines")
    w = k * inten
    if composition == "atomic":
        aw = atomic_weights()
        a = np.array([aw[split_line(x)[0]] for x in lines], float).reshape(k.shape)
        w = w / a
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(total > 0, w / np.where(total > 0, total, 1.0), np.nan)
        sigma = None
        if variance is not None:
            rel2 = np.where(inten > 0, np.asarray(variance, float) / np.where(inten > 0, inten, 1.0) ** 2, 0.0)
            # dC_i^2 = C_i^2 [(1 - C_i)^2 r_i^2 + sum_{j != i} C_j^2 r_j^2]
            s = np.sum(frac**2 * rel2, axis=0)
            sigma = np.abs(frac) * np.sqrt(np.clip((1 - frac) ** 2 * rel2 + s - frac**2 * rel2, 0, None))
            sigma = 100.0 * sigma
    return 100.0 * frac, sigma


def calibration_check(spectrum, energy_eV, lines, *, fwhm_mnka_eV: float = 130.0, min_counts: float = 200.0) -> dict:
    """Energy-calibration check: measured centroid minus tabulated energy (eV) of each strong line.

    The centroid of the background-subtracted counts within +-1 FWHM of the tabulated energy is
    iterated twice around the measured centre. Lines with fewer than ``min_counts`` net counts are
    skipped. A systematic offset of more than ~1/4 FWHM means the energy axis (offset or gain) is off.

    Returns ``{line: offset_eV}``.
    """
    e = np.asarray(energy_eV, float)
    y = np.asarray(spectrum, float)
    if y.ndim != 1 or y.shape != e.shape:
        raise ValueError("calibration_check needs one spectrum matching energy_eV")
    out = {}
    for ln in lines:
        c0 = line_energy_eV(ln)
        f = float(eds_fwhm_eV(c0, fwhm_mnka_eV=fwhm_mnka_eV))
        c = c0
        ok = True
        for _ in range(3):
            m = (e >= c - f) & (e <= c + f)
            side = ((e >= c - 2.5 * f) & (e < c - 1.5 * f)) | ((e > c + 1.5 * f) & (e <= c + 2.5 * f))
            if m.sum() < 3 or side.sum() < 2:
                ok = False
                break
            net = np.clip(y[m] - np.mean(y[side]), 0, None)
            if net.sum() < min_counts:
                ok = False
                break
            c = float(np.sum(net * e[m]) / net.sum())
        if ok:
            out[ln] = c - c0
    return out
