"""High-level maps and quantification of a :class:`~cryomat.spectroscopy.loading.Spectrum`.

``eds_maps`` and ``eels_maps`` return a :class:`MapResult`: background-subtracted intensity maps,
composition maps in at.% with 1-sigma Poisson uncertainties, and the quantification of the summed
spectrum. These are what ``cryomat spectrum`` writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cryomat.spectroscopy import eds as _eds
from cryomat.spectroscopy import eels as _eels

EDS_ASSUMPTIONS = ("Cliff-Lorimer ratio method for a thin film: no absorption and no fluorescence correction; "
                   "continuum under each line from background windows on either side; Poisson errors only.")
EELS_ASSUMPTIONS = ("Edge counts over a window Delta above the onset after a power-law background fitted before "
                    "the edge (two-area method; exponent from the summed spectrum, amplitude per pixel); hydrogenic partial cross-sections sigma(beta, Delta) (Egerton); "
                    "single scattering assumed unless a low-loss is given for Fourier-ratio deconvolution.")


@dataclass
class MapResult:
    """Maps and quantification.

    Attributes
    ----------
    kind : ``"EDS"`` or ``"EELS"``.
    names : line or edge names, e.g. ``["Fe_Ka", "Pt_La"]`` or ``["Ti_L3", "O_K"]``.
    intensity : (n, ...) net counts per pixel.
    variance : (n, ...) Poisson variance of ``intensity``.
    composition : (n, ...) at.% per pixel (NaN where nothing was detected).
    sigma : (n, ...) 1-sigma at.% uncertainty.
    total_percent, total_sigma : at.% of the summed spectrum and its 1-sigma uncertainty, per name.
    factors : k-factors (EDS) or cross-sections in barn (EELS) used.
    factor_source : where the factors came from.
    windows : per name, the windows used (eV).
    extra : further per-map results (t/lambda, zero-loss shift).
    """

    kind: str
    names: list
    intensity: np.ndarray
    variance: np.ndarray
    composition: np.ndarray
    sigma: np.ndarray
    total_percent: dict
    total_sigma: dict
    factors: dict
    factor_source: str
    windows: dict
    assumptions: str
    extra: dict = field(default_factory=dict)

    @property
    def elements(self) -> list:
        return [n.split("_")[0] for n in self.names]


def eds_maps(spec, *, elements=None, lines=None, kfactors=None, background: str = "mean",
             line_width=(2.0, 2.0), window_width: float = 1.0, width: float = 2.0,
             fwhm_mnka_eV: float | None = None, window_mode: str = "auto",
             window_correction: bool = False) -> MapResult:
    """EDS line maps and Cliff-Lorimer composition maps of a spectrum (image).

    Parameters
    ----------
    spec : :class:`~cryomat.spectroscopy.loading.Spectrum` (kind EDS).
    elements : element symbols; default the file's, else identified from the summed spectrum
        (:func:`cryomat.spectroscopy.identify.identify_eds_elements`). One alpha line each
        (:func:`eds.select_xray_lines`).
    lines : explicit lines instead, e.g. ``["Fe_Ka", "Pt_La"]``.
    kfactors : ``{line: k}`` or a sequence; missing ones from the shipped approximate table.
    background : ``"mean"`` (exSpy), ``"linear"``, ``"powerlaw"`` or ``"none"``.
    line_width, window_width, width : window geometry in units of the line FWHM (exSpy's meaning).
    fwhm_mnka_eV : detector resolution at Mn Ka (eV); default the file's, else 130 eV.
    window_mode : background-window placement (:func:`eds.background_windows`).
    window_correction : full-line intensities (:func:`eds.line_intensities`).
    """
    e = spec.energy_eV
    res = float(fwhm_mnka_eV or spec.fwhm_mnka_eV or 130.0)
    auto_note = ""
    if lines is None:
        els = list(elements or spec.elements)
        if not els:
            from cryomat.spectroscopy.identify import identify_eds_elements

            tot = np.asarray(spec.data).reshape(-1, spec.data.shape[-1]).sum(0, dtype=np.float64)
            els = identify_eds_elements(tot, e, fwhm_mnka_eV=res, beam_energy_kV=spec.voltage_kV)
            if not els:
                raise ValueError("no elements: the file names none and no X-ray peak was identified; "
                                 "pass --elements (e.g. C,O,F) or --lines")
            auto_note = (f" Elements identified automatically from the summed spectrum ({', '.join(els)}): "
                         "check them, or give --elements.")
        lines = _eds.select_xray_lines(els, energy_range_eV=(e[0], e[-1]), beam_energy_kV=spec.voltage_kV)
        if not lines:
            raise ValueError(f"none of the elements {els} has an X-ray line inside the spectrum "
                             f"({e[0]:.0f}-{e[-1]:.0f} eV)")
    lines = list(lines)
    iw = _eds.integration_windows(lines, fwhm_mnka_eV=res, width=width)
    bw = None if background == "none" else _eds.background_windows(lines, fwhm_mnka_eV=res, line_width=line_width,
                                                                   window_width=window_width, mode=window_mode)
    li = _eds.line_intensities(spec.data, e, lines, windows_eV=iw, background_windows_eV=bw,
                               background="mean" if background == "none" else background,
                               fwhm_mnka_eV=res, window_correction=window_correction)
    voltage = spec.voltage_kV or 200.0
    user = kfactors is not None
    k = _eds.resolve_kfactors(lines, kfactors, voltage_kV=voltage)
    comp, sig = _eds.cliff_lorimer(li.net, lines, k, variance=li.variance)
    tot = li.net.reshape(len(lines), -1).sum(1)
    totv = li.variance.reshape(len(lines), -1).sum(1)
    tp, ts = _eds.cliff_lorimer(tot, lines, k, variance=totv)
    src = "user" if user and not isinstance(kfactors, dict) or (isinstance(kfactors, dict) and all(
        x in kfactors for x in lines)) else ("user + shipped approximate table" if user else
                                             f"shipped approximate theoretical table at {voltage:g} kV")
    windows = {ln: {"integration_eV": iw[i].tolist(), "background_eV": None if bw is None else bw[i].tolist()}
               for i, ln in enumerate(lines)}
    return MapResult(kind="EDS", names=lines, intensity=li.net, variance=li.variance, composition=comp, sigma=sig,
                     total_percent={ln: float(tp[i]) for i, ln in enumerate(lines)},
                     total_sigma={ln: float(ts[i]) for i, ln in enumerate(lines)},
                     factors={ln: float(k[i]) for i, ln in enumerate(lines)}, factor_source=src, windows=windows,
                     assumptions=EDS_ASSUMPTIONS + f" Detector FWHM at Mn Ka {res:g} eV." + auto_note)


def default_edge_windows(edges, energy_eV, *, delta_eV: float = 50.0, fit_eV: float = 30.0, gap_eV: float = 5.0,
                         onsets_eV: dict | None = None):
    """(background window, integration window) per edge: ``fit_eV`` before the onset minus
    ``gap_eV``, and ``delta_eV`` above it (shortened to stop before the next edge). Onsets: the
    tabulated ones unless ``onsets_eV`` gives measured ones."""
    from cryomat.spectroscopy.tables import edge_onset_eV

    onsets = {ed: (onsets_eV or {}).get(ed, edge_onset_eV(ed)) for ed in edges}
    out = {}
    lo, hi = float(energy_eV[0]), float(energy_eV[-1])
    srt = sorted(onsets.values())
    for ed, on in onsets.items():
        nxt = [o for o in srt if o > on + 1.0]
        d = min(delta_eV, (nxt[0] - on - 1.0) if nxt else delta_eV, hi - on)
        b1 = on - gap_eV
        b0 = max(b1 - fit_eV, lo + 1e-9, 1.0)
        if on <= lo or b1 - b0 < 4 * (energy_eV[1] - energy_eV[0]) or d <= 0:
            raise ValueError(f"edge {ed} at {on:g} eV is not covered with room for a background window by the "
                             f"spectrum ({lo:.0f}-{hi:.0f} eV)")
        out[ed] = ((b0, b1), (on, on + d))
    return out


def eels_maps(spec, *, edges, windows=None, delta_eV: float = 50.0, fit_eV: float = 30.0,
              voltage_kV=None, alpha_mrad=None, beta_mrad=None, lowloss=None, deconvolve: bool = True,
              align: bool = True, global_exponent: bool = True, align_windows: bool = True,
              background: str = "powerlaw") -> MapResult:
    """EELS edge maps and composition maps of a core-loss spectrum (image).

    Parameters
    ----------
    spec : core-loss :class:`~cryomat.spectroscopy.loading.Spectrum`.
    edges : e.g. ``["Ti_L3", "O_K"]``; empty or None: identified automatically (:mod:`.identify`).
    windows : optional ``{edge: ((bg0, bg1), (i0, i1))}`` in eV; default :func:`default_edge_windows`.
    voltage_kV, alpha_mrad, beta_mrad : override the file's (defaults 200 kV, 0 mrad, 50 mrad with a note).
    lowloss : low-loss :class:`Spectrum` of the same pixels (or one spectrum); default ``spec.lowloss``.
        When given: zero-loss alignment, t/lambda maps, and Fourier-ratio deconvolution of the core loss.
    align_windows : place the default windows at the measured edge onsets when they differ from the
        table by 1-12 eV (an energy-axis offset); the cross-sections keep the tabulated onsets.
    background : pre-edge background model (:data:`cryomat.spectroscopy.eels.BACKGROUND_MODELS`).
    global_exponent : fit the power-law exponent r once on the summed spectrum and only the amplitude
        per pixel (robust and linear at low counts, so profile sums of the maps equal the maps of the
        summed spectra); ``False`` fits both per pixel (exSpy's ``remove_background``).
    """
    notes = []
    v = voltage_kV or spec.voltage_kV
    if v is None:
        v = 200.0
        notes.append("beam energy unknown: 200 kV assumed")
    b = beta_mrad or spec.beta_mrad
    if b is None:
        b = 50.0
        notes.append("collection angle unknown: 50 mrad assumed")
    a = alpha_mrad if alpha_mrad is not None else (spec.alpha_mrad or 0.0)
    e = spec.energy_eV
    data = np.asarray(spec.data, float)
    extra = {}
    ll = lowloss if lowloss is not None else spec.lowloss
    if ll is not None:
        lld = np.asarray(ll.data, float)
        if align:
            lld, shifts = _eels.align_zero_loss(lld, ll.energy_eV)
            extra["zero_loss_shift_eV"] = shifts
        extra["t_over_lambda"] = _eels.thickness_log_ratio(lld, ll.energy_eV)
        if deconvolve:
            if lld.ndim > 1 and lld.shape[:-1] != data.shape[:-1]:
                raise ValueError(f"low-loss pixels {lld.shape[:-1]} do not match core-loss pixels {data.shape[:-1]}")
            data = _eels.fourier_ratio_deconvolve(data, e, lld, ll.energy_eV)
            notes.append("core loss Fourier-ratio deconvolved with the low loss")
    if not edges:
        from cryomat.spectroscopy.identify import identify_eels_edges

        edges = identify_eels_edges(data.reshape(-1, data.shape[-1]).sum(0), e)
        if not edges:
            raise ValueError("no edges given and none identified in the spectrum; pass --edges, e.g. Ti_L3,O_K")
        notes.append(f"edges identified automatically ({', '.join(edges)}): check them, or give --edges")
    from cryomat.spectroscopy.identify import edge_onset_measured
    from cryomat.spectroscopy.tables import edge_onset_eV

    tot_cl = data.reshape(-1, data.shape[-1]).sum(0)
    offsets = {ed: edge_onset_measured(tot_cl, e, edge_onset_eV(ed)) - edge_onset_eV(ed) for ed in edges}
    extra["edge_onset_offset_eV"] = offsets
    measured = None
    if align_windows:
        # energy axes are often off by a few eV: put the windows at the measured onsets (steepest rise
        # within -12/+8 eV of the table); the cross-sections stay at the tabulated onsets
        measured = {ed: edge_onset_eV(ed) + off for ed, off in offsets.items() if abs(off) >= 1.0}
        if measured:
            notes.append("windows moved to the measured onsets (" + ", ".join(
                f"{ed} {off:+.1f} eV" for ed, off in offsets.items() if abs(off) >= 1.0) + ")")
    windows = windows or default_edge_windows(edges, e, delta_eV=delta_eV, fit_eV=fit_eV, onsets_eV=measured)
    ints, vars_, xs = {}, {}, {}
    for ed in edges:
        bgw, iw = windows[ed]
        r = None
        if global_exponent and data.ndim > 1 and background == "powerlaw":
            _, r = _eels.powerlaw_fit(data.reshape(-1, data.shape[-1]).sum(0), e, bgw)
            r = float(r)
        i, var, _ = _eels.edge_intensity(data, e, background_window_eV=bgw, integration_window_eV=iw, r=r,
                                         model=background)
        ints[ed], vars_[ed] = i, var
        xs[ed] = _eels.edge_cross_section(ed, window_eV=iw[1] - iw[0], voltage_kV=v, beta_mrad=b, alpha_mrad=a,
                                          onset_eV=edge_onset_eV(ed) if measured and ed in measured else iw[0])
    comp, sig = _eels.quantify_edges(ints, xs, variances=vars_)
    tot = {ed: float(np.sum(ints[ed])) for ed in edges}
    totv = {ed: float(np.sum(vars_[ed])) for ed in edges}
    tp, ts = _eels.quantify_edges(tot, xs, variances=totv)
    return MapResult(kind="EELS", names=list(edges), intensity=np.stack([ints[x] for x in edges]),
                     variance=np.stack([vars_[x] for x in edges]), composition=np.stack([comp[x] for x in edges]),
                     sigma=np.stack([sig[x] for x in edges]),
                     total_percent={x: float(tp[x]) for x in edges}, total_sigma={x: float(ts[x]) for x in edges},
                     factors={x: xs[x] for x in edges},
                     factor_source=f"hydrogenic cross-sections (barn), {v:g} kV, alpha {a:g} mrad, beta {b:g} mrad; "
                                   f"{background} background",
                     windows={x: {"background_eV": list(windows[x][0]), "integration_eV": list(windows[x][1])}
                              for x in edges},
                     assumptions=EELS_ASSUMPTIONS + (" " + "; ".join(notes) + "." if notes else ""), extra=extra)
