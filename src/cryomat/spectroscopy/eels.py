"""EELS: power-law background, edge integration, cross-sections, zero-loss, t/lambda, Fourier-ratio.

Everything works on arrays ``(..., energy)`` (one spectrum or a spectrum image) with a uniform
energy axis in eV, vectorised over pixels. The window conventions follow HyperSpy/exSpy
(``remove_background(..., fast=True)`` with the two-area power-law estimate) so that numbers agree
with them for the same windows.

Reference: R. F. Egerton, *Electron Energy-Loss Spectroscopy in the Electron Microscope*, 3rd ed.,
Springer 2011, doi:10.1007/978-1-4419-9583-4 (sections 4.2 deconvolution, 4.4 background,
4.5 quantification, 5.1 thickness).
"""

from __future__ import annotations

import functools

import numpy as np

from cryomat.spectroscopy.eds import _axis, _cumsum, _window_sum, energy_to_index
from cryomat.spectroscopy.tables import edge_onset_eV, split_line


def _idx(e, offset, scale, size):
    return int(energy_to_index(e, offset_eV=offset, scale_eV=scale, size=size - 1))


def powerlaw_fit(data, energy_eV, window_eV, *, r=None):
    """Two-area power-law estimate ``A E^-r`` of the background in a pre-edge window.

    Parameters
    ----------
    data : array (..., energy) counts per channel.
    energy_eV : array (energy,) channel energies (eV).
    window_eV : (start, end) of the fit window (eV), before the edge.
    r : fixed exponent (scalar or per-pixel array); then only ``A`` is estimated, from the counts of
        the whole window. This is linear in the counts, hence unbiased and robust at low dose when
        ``r`` comes from the summed spectrum (Egerton 2011, sec. 4.4.2).

    Returns
    -------
    (A, r) arrays of shape ``data.shape[:-1]``; the model counts per channel are
    ``A E^-r dE`` (see :func:`powerlaw_background`).

    Notes
    -----
    The window is split in two halves with counts I1, I2 and
    ``r = 2 ln(I1/I2 (x4-x3)/(x2-x1)) / ln(x3 x4 / (x1 x2))`` (Egerton 2011, eq. 4.64);
    A is the count-weighted mean of the two halves' estimates, as in HyperSpy's ``PowerLaw``.
    """
    offset, scale, size = _axis(energy_eV)
    lo, hi = float(window_eV[0]), float(window_eV[1])
    if not hi > lo:
        raise ValueError(f"window_eV must be (start, end) with end > start, got {window_eV!r}")
    if lo < 0 or offset + scale * (size - 1) < hi or hi < offset:
        raise ValueError(f"background window {window_eV!r} eV lies outside the spectrum "
                         f"({offset:.1f}-{offset + scale * (size - 1):.1f} eV) or below 0 eV")
    i1 = _idx(lo, offset, scale, size) if lo > offset else 0
    i4 = _idx(hi, offset, scale, size)
    if (i4 + i1) % 2:
        i4 -= 1
    if i4 == i1:
        i4 += 2
    i2 = i3 = (i1 + i4) // 2
    x1, x2, x3, x4 = (offset + scale * i for i in (i1, i2, i3, i4))
    if x1 <= 0:
        raise ValueError(f"the power-law window must start above 0 eV, got {x1:.2f} eV")
    big1 = _window_sum(data, i1, i2)
    big2 = _window_sum(data, i3, i4)
    if r is not None:
        r = np.broadcast_to(np.asarray(r, float), big1.shape)
        k = 1 - r
        with np.errstate(divide="ignore", invalid="ignore"):
            a = k * (big1 + big2) / (x4**k - x1**k)
        return np.nan_to_num(a), np.asarray(r)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 2 * np.log(big1 / big2 * (x4 - x3) / (x2 - x1)) / np.log(x4 * x3 / x2 / x1)
        k = 1 - r
        a2 = k * big2 / (x4**k - x3**k)
        a1 = k * big1 / (x2**k - x1**k)
        a = (a1 * big1 + a2 * big2) / (big1 + big2)
    return np.nan_to_num(a), np.nan_to_num(r)


def powerlaw_background(a, r, energy_eV):
    """Background counts per channel ``A E^-r dE``: array ``a.shape + (energy,)``."""
    offset, scale, size = _axis(energy_eV)
    e = np.asarray(energy_eV, float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.asarray(a)[..., None] * np.power(np.where(e > 0, e, np.nan), -np.asarray(r)[..., None]) * scale
    return np.nan_to_num(out)


BACKGROUND_MODELS = ("powerlaw", "powerlaw-lsq", "exponential", "linear")


def background_counts(data, energy_eV, window_eV, at_eV, *, model: str = "powerlaw", r=None):
    """Background counts per channel at energies ``at_eV`` fitted in ``window_eV`` (before an edge).

    Models: ``"powerlaw"`` (two-area A E^-r, :func:`powerlaw_fit`; ``r`` may be fixed),
    ``"powerlaw-lsq"`` (least-squares line in log counts vs log E, weighted by the counts: less
    sensitive to a single noisy half-window), ``"exponential"`` (two-area A exp(-b E), for low-loss
    tails and windows far from a power law), ``"linear"`` (least-squares straight line, for short
    windows). Egerton 2011, sec. 4.4.

    Returns
    -------
    array ``data.shape[:-1] + (len(at_eV),)`` of counts per channel.
    """
    if model not in BACKGROUND_MODELS:
        raise ValueError(f"model must be one of {', '.join(BACKGROUND_MODELS)}, got {model!r}")
    offset, scale, size = _axis(energy_eV)
    at = np.asarray(at_eV, float)
    d = np.asarray(data)
    if model == "powerlaw":
        a, rr = powerlaw_fit(d, energy_eV, window_eV, r=r)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.nan_to_num(np.asarray(a)[..., None] * np.power(at, -np.asarray(rr)[..., None]) * scale)
    i0, i1 = (int(v) for v in energy_to_index(window_eV, offset_eV=offset, scale_eV=scale, size=size))
    if i1 - i0 < 4:
        raise ValueError(f"background window {window_eV!r} eV holds fewer than 4 channels")
    e = offset + scale * np.arange(i0, i1)
    y = np.asarray(d[..., i0:i1], float)
    if model == "exponential":
        h = (i1 - i0) // 2
        big1, big2 = y[..., :h].sum(-1), y[..., h: 2 * h].sum(-1)
        w = h * scale
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            b = np.log(big1 / big2) / w
            x1, x4 = e[0], e[0] + 2 * w
            amp = b * (big1 + big2) / (np.exp(-b * x1) - np.exp(-b * x4))
            out = amp[..., None] * np.exp(-b[..., None] * at) * scale
        return np.nan_to_num(out)
    if model == "linear":
        x = e - e.mean()
        slope = (y * x).sum(-1) / (x * x).sum()
        return y.mean(-1)[..., None] + slope[..., None] * (at - e.mean())
    # powerlaw-lsq: weighted least squares of log y on log E (weights = counts, the Poisson 1/var of log y)
    if np.any(e <= 0):
        raise ValueError("the power-law window must lie above 0 eV")
    lx = np.log(e)
    ly = np.log(np.clip(y, 0.5, None))
    wts = np.clip(y, 1.0, None)
    sw = wts.sum(-1)
    mx = (wts * lx).sum(-1) / sw
    my = (wts * ly).sum(-1) / sw
    slope = (wts * (lx - mx[..., None]) * (ly - my[..., None])).sum(-1) / (wts * (lx - mx[..., None]) ** 2).sum(-1)
    return np.exp(my[..., None] + slope[..., None] * (np.log(at) - mx[..., None]))


def edge_intensity(data, energy_eV, *, background_window_eV, integration_window_eV, r=None,
                   model: str = "powerlaw"):
    """Background-subtracted counts of a core-loss edge.

    Parameters
    ----------
    data : array (..., energy) counts.
    energy_eV : array (energy,) channel energies (eV).
    background_window_eV : (start, end) pre-edge window for the background fit (eV).
    integration_window_eV : (onset, onset + Delta) window to integrate (eV).
    r : optional fixed power-law exponent (see :func:`powerlaw_fit`).
    model : background model, see :func:`background_counts` (default the two-area power law).

    Returns
    -------
    (intensity, variance, background) arrays ``data.shape[:-1]``: net edge counts, an approximate
    Poisson variance (gross counts + h x background, h = 1 + Delta / fit width; Egerton 2011 eq. 4.67
    simplified) and the background counts subtracted under the edge.
    """
    offset, scale, size = _axis(energy_eV)
    if model == "powerlaw":
        powerlaw_fit(data, energy_eV, background_window_eV, r=r)  # validates the window
    e0, e1 = (float(v) for v in integration_window_eV)
    if not e1 > e0:
        raise ValueError(f"integration_window_eV must be (start, end) with end > start, got {integration_window_eV!r}")
    j0, j1 = (int(v) for v in energy_to_index([e0, e1], offset_eV=offset, scale_eV=scale, size=size))
    if j1 <= j0:
        raise ValueError(f"integration window {integration_window_eV!r} eV is outside the spectrum")
    e = np.asarray(energy_eV, float)[j0:j1]
    bg = background_counts(data, energy_eV, background_window_eV, e, model=model, r=r).sum(-1)
    gross = _window_sum(data, j0, j1)
    h = 1.0 + (e1 - e0) / max(float(background_window_eV[1]) - float(background_window_eV[0]), scale)
    var = np.clip(gross, 0, None) + h * np.clip(bg, 0, None)
    return gross - bg, var, bg


def effective_collection_angle_mrad(voltage_kV: float, energy_eV: float, alpha_mrad: float, beta_mrad: float) -> float:
    """Effective collection semi-angle (mrad) for a convergent probe (Egerton 2011, appendix B, CONCOR)."""
    if alpha_mrad == 0:
        return float(beta_mrad)
    from exspy._misc.eels.effective_angle import effective_angle

    return float(effective_angle(voltage_kV, energy_eV, alpha_mrad, beta_mrad))


@functools.lru_cache(maxsize=64)
def _edge_component(edge: str, voltage_kV: float, alpha_mrad: float, beta_mrad: float, onset_eV: float):
    import warnings

    try:
        with warnings.catch_warnings():  # hyperspy's deprecation chatter on import
            warnings.simplefilter("ignore")
            from exspy.components import EELSCLEdge
    except ImportError as exc:  # pragma: no cover - exspy is a dependency
        raise ImportError("EELS cross-sections need exSpy: pip install exspy") from exc
    el, sub = split_line(edge)
    sub = {"L": "L3", "L23": "L3", "K1": "K"}.get(sub, sub)
    if sub[0] not in "KL":
        raise ValueError(f"offline hydrogenic cross-sections exist for K and L edges only, not {edge!r}")
    comp = EELSCLEdge(f"{el}_{sub}", GOS="hydrogenic")
    comp.onset_energy.value = float(onset_eV)
    comp.set_microscope_parameters(E0=float(voltage_kV), alpha=float(alpha_mrad), beta=float(beta_mrad),
                                   energy_scale=0.1)
    return comp


def edge_cross_section(edge: str, *, window_eV: float, voltage_kV: float, beta_mrad: float,
                       alpha_mrad: float = 0.0, onset_eV: float | None = None, step_eV: float = 0.1) -> float:
    """Partial ionisation cross-section sigma(beta, Delta) in barn (1e-28 m^2) of one atom.

    Hydrogenic generalised oscillator strengths (Egerton's SIGMAK/SIGMAL models, computed offline by
    exSpy's ``HydrogenicGOS``), integrated over q up to the effective collection angle and over the
    energy window [onset, onset + window_eV]. K and L2,3 edges.

    Parameters
    ----------
    edge : e.g. ``"O_K"``, ``"Ti_L3"`` (``"Ti_L"`` = L2,3).
    window_eV : integration width Delta (eV) above the onset.
    voltage_kV, beta_mrad, alpha_mrad : beam energy, collection and convergence semi-angles.
    onset_eV : onset energy; default the Gatan-atlas value shipped with cryomat.
    step_eV : energy step of the numerical integration (trapezoid rule).

    References
    ----------
    Egerton 2011, sections 3.6 and 4.5; doi:10.1007/978-1-4419-9583-4.
    """
    for name, v in (("window_eV", window_eV), ("voltage_kV", voltage_kV), ("beta_mrad", beta_mrad)):
        if not np.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be positive, got {v!r}")
    onset = edge_onset_eV(edge) if onset_eV is None else float(onset_eV)
    comp = _edge_component(edge, float(voltage_kV), float(alpha_mrad), float(beta_mrad), onset)
    e = np.arange(onset, onset + window_eV + step_eV / 2, step_eV)
    return float(np.trapezoid(comp.function(e), e))


def quantify_edges(intensities: dict, cross_sections: dict, *, variances: dict | None = None):
    """Atomic percent from edge intensities: ``N_i ∝ I_i / sigma_i`` (Egerton 2011, eq. 4.65).

    Returns ``({edge: at.% array}, {edge: 1-sigma at.% array or None})``.
    """
    keys = list(intensities)
    n = np.stack([np.clip(np.asarray(intensities[k], float), 0, None) / cross_sections[k] for k in keys])
    tot = n.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(tot > 0, n / np.where(tot > 0, tot, 1.0), np.nan)
        sig = {k: None for k in keys}
        if variances is not None:
            inten = np.stack([np.asarray(intensities[k], float) for k in keys])
            rel2 = np.where(inten > 0, np.stack([variances[k] for k in keys]) / np.where(inten > 0, inten, 1) ** 2, 0)
            s = np.sum(frac**2 * rel2, 0)
            sd = 100 * np.abs(frac) * np.sqrt(np.clip((1 - frac) ** 2 * rel2 + s - frac**2 * rel2, 0, None))
            sig = {k: sd[i] for i, k in enumerate(keys)}
    return {k: 100 * frac[i] for i, k in enumerate(keys)}, sig


# --- low loss -------------------------------------------------------------------------------------------
def zero_loss_position(data, energy_eV, *, search_eV: tuple[float, float] = (-20.0, 20.0)):
    """Zero-loss peak centre (eV) per spectrum: the maximum refined by a parabola through 3 channels."""
    offset, scale, size = _axis(energy_eV)
    d = np.asarray(data, float)
    i0 = int(energy_to_index(max(search_eV[0], offset), offset_eV=offset, scale_eV=scale, size=size - 1))
    i1 = int(energy_to_index(min(search_eV[1], offset + scale * (size - 1)), offset_eV=offset, scale_eV=scale,
                             size=size - 1)) + 1
    if i1 - i0 < 3:
        raise ValueError(f"the spectrum does not cover the zero-loss search range {search_eV!r} eV")
    seg = d[..., i0:i1]
    k = np.clip(np.argmax(seg, axis=-1), 1, seg.shape[-1] - 2)
    ym = np.take_along_axis(seg, (k - 1)[..., None], -1)[..., 0]
    y0 = np.take_along_axis(seg, k[..., None], -1)[..., 0]
    yp = np.take_along_axis(seg, (k + 1)[..., None], -1)[..., 0]
    den = ym - 2 * y0 + yp
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(den < 0, 0.5 * (ym - yp) / den, 0.0)
    return offset + scale * (i0 + k + np.clip(frac, -0.5, 0.5))


def shift_spectra(data, shift_eV, energy_eV):
    """Shift each spectrum by ``-shift_eV`` along energy (linear interpolation; zero outside)."""
    offset, scale, size = _axis(energy_eV)
    d = np.asarray(data, float)
    sh = np.broadcast_to(np.asarray(shift_eV, float), d.shape[:-1]) / scale
    x = np.arange(size, dtype=float)
    src = x[None, :] + sh.reshape(-1, 1)
    flat = d.reshape(-1, size)
    lo = np.floor(src).astype(int)
    w = src - lo
    ok0 = (lo >= 0) & (lo < size)
    ok1 = (lo + 1 >= 0) & (lo + 1 < size)
    rows = np.arange(flat.shape[0])[:, None]
    v0 = np.where(ok0, flat[rows, np.clip(lo, 0, size - 1)], 0.0)
    v1 = np.where(ok1, flat[rows, np.clip(lo + 1, 0, size - 1)], 0.0)
    return ((1 - w) * v0 + w * v1).reshape(d.shape)


def align_zero_loss(data, energy_eV, *, reference_eV: float = 0.0):
    """Shift every spectrum so its zero-loss peak sits at ``reference_eV``.

    Returns ``(aligned, shifts_eV)``; ``shifts_eV`` = measured centre - reference per pixel.
    """
    pos = zero_loss_position(data, energy_eV)
    shifts = pos - reference_eV
    return shift_spectra(data, shifts, energy_eV), shifts


def elastic_threshold_eV(data, energy_eV, *, start_eV: float = 1.0, window_eV: float = 10.0, smooth: int = 5):
    """End of the zero-loss peak (eV): where the smoothed spectrum is flattest in [start, start+window]
    after the peak (the inflexion/minimum between zero-loss and plasmon; as exSpy's estimate)."""
    from scipy.signal import savgol_filter

    offset, scale, size = _axis(energy_eV)
    i0 = int(energy_to_index(start_eV, offset_eV=offset, scale_eV=scale, size=size - 1))
    i1 = int(energy_to_index(min(start_eV + window_eV, offset + scale * (size - 1)), offset_eV=offset,
                             scale_eV=scale, size=size - 1))
    if i1 - i0 < 10:
        raise ValueError("the spectrum does not extend far enough above the zero-loss peak to find its end")
    seg = np.asarray(data, float)[..., i0:i1]
    der = savgol_filter(seg, smooth, 3, deriv=1, axis=-1) if smooth else np.gradient(seg, axis=-1)
    k = np.argmin(np.abs(der), axis=-1)
    return offset + scale * (i0 + k)


def thickness_log_ratio(data, energy_eV, *, threshold_eV=None):
    """Relative thickness t/lambda = ln(I_t / I_0) from a low-loss spectrum (Egerton 2011, eq. 5.1).

    ``I_0`` is the count up to the end of the zero-loss peak (``threshold_eV`` or
    :func:`elastic_threshold_eV`), ``I_t`` the count of the whole spectrum.
    """
    offset, scale, size = _axis(energy_eV)
    thr = elastic_threshold_eV(data, energy_eV) if threshold_eV is None else np.asarray(threshold_eV, float)
    csum = _cumsum(data)
    idx = energy_to_index(thr, offset_eV=offset, scale_eV=scale, size=size)
    i0 = np.take_along_axis(csum, np.asarray(idx)[..., None] * np.ones(csum.shape[:-1] + (1,), int), -1)[..., 0]
    it = csum[..., -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(it / i0)


def fourier_ratio_deconvolve(coreloss, cl_energy_eV, lowloss, ll_energy_eV, *, fwhm_eV=None, threshold_eV=None):
    """Remove plural scattering from a core-loss spectrum by the Fourier-ratio method.

    ``D(nu) = I_0 G(nu) FT(core)(nu) / FT(low)(nu)``: the core-loss, divided in Fourier space by the
    low-loss (with its zero-loss at channel 0) and reconvolved with a Gaussian of the zero-loss FWHM
    and area ``I_0`` (Egerton 2011, eq. 4.15). Both spectra must share the channel width; they are
    padded with smooth tails to suppress wrap-around.

    Parameters
    ----------
    coreloss : array (..., n) background-subtracted or raw core-loss counts.
    cl_energy_eV : (n,) core-loss channel energies.
    lowloss : array (..., m) low-loss counts of the same pixels (or one spectrum).
    ll_energy_eV : (m,) low-loss energies, zero-loss at 0 eV (align it first).
    fwhm_eV : reconvolution width; default the measured zero-loss FWHM.

    Returns
    -------
    array like ``coreloss``: single-scattering core-loss distribution.
    """
    _, cs, n = _axis(cl_energy_eV)
    lo_off, ls, m = _axis(ll_energy_eV)
    if abs(cs - ls) > 1e-6 * max(cs, ls):
        raise ValueError(f"core-loss ({cs:g} eV/ch) and low-loss ({ls:g} eV/ch) must share the channel width")
    cl = np.asarray(coreloss, float)
    ll = np.asarray(lowloss, float)
    if not lo_off < 0 < lo_off + ls * (m - 1):
        raise ValueError("the low-loss spectrum does not contain 0 eV")
    thr = elastic_threshold_eV(ll, ll_energy_eV) if threshold_eV is None else threshold_eV
    i_thr = energy_to_index(thr, offset_eV=lo_off, scale_eV=ls, size=m)
    csum = _cumsum(ll)
    i0 = np.take_along_axis(csum, np.broadcast_to(np.asarray(i_thr)[..., None], csum.shape[:-1] + (1,)), -1)[..., 0]
    if fwhm_eV is None:
        fwhm_eV = float(np.median(_fwhm(ll.reshape(-1, m), ls)))
    from scipy.fft import irfft, next_fast_len, rfft

    cl_ext = _taper(_extend_powerlaw(cl, cl_energy_eV, fit_channels=20, extra=100))
    ll_ext = _taper(_extend_powerlaw(ll, ll_energy_eV, fit_channels=100, extra=100))
    size = next_fast_len(n + ll_ext.shape[-1] - 1)
    e_ll = lo_off + ls * np.arange(size)
    zl = np.exp(-0.5 * (e_ll / (fwhm_eV / (2 * np.sqrt(2 * np.log(2))))) ** 2)
    zl /= zl.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        d = irfft(rfft(zl) * rfft(cl_ext, n=size, axis=-1) / rfft(ll_ext, n=size, axis=-1), n=size, axis=-1)
    return np.nan_to_num(d[..., :n] * np.asarray(i0)[..., None])


def _extend_powerlaw(x, energy_eV, *, fit_channels: int, extra: int):
    """Append ``extra`` channels continuing the last ``fit_channels`` as a power law (zero where r < 0)."""
    off, sc, n = _axis(energy_eV)
    e_new = off + sc * np.arange(n + extra)
    a, r = powerlaw_fit(x, energy_eV, (off + sc * (n - fit_channels), off + sc * (n - 1)))
    tail = powerlaw_background(a, r, e_new[n:]) if extra else np.zeros(x.shape[:-1] + (0,))
    return np.concatenate([x, tail], axis=-1)


def _taper(x):
    """Half-Hann taper of both ends over max(20, 2 % of the length) channels."""
    n = x.shape[-1]
    c = max(20, int(round(0.02 * n)))
    w = np.hanning(2 * c)
    y = np.array(x, float, copy=True)
    y[..., :c] *= w[:c]
    y[..., -c:] *= w[c:]
    return y


def _fwhm(spectra, scale):
    """Full width at half maximum (eV) of the highest peak of each spectrum, interpolated."""
    out = []
    for s in spectra:
        k = int(np.argmax(s))
        half = s[k] / 2
        left = k
        while left > 0 and s[left] > half:
            left -= 1
        right = k
        while right < len(s) - 1 and s[right] > half:
            right += 1
        xl = left + (half - s[left]) / (s[left + 1] - s[left]) if s[left + 1] != s[left] else left
        xr = right - (half - s[right]) / (s[right - 1] - s[right]) if s[right - 1] != s[right] else right
        out.append((xr - xl) * scale)
    return np.asarray(out)
