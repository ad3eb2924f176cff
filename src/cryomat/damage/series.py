"""Analysis of a dose series: Bragg-peak decay, critical dose, FRC/FRPR against cumulative fluence.

One pass over the frames (each frame read and Fourier-transformed once, so a 40-frame 4k x 4k
movie is streamed, not held in memory) after a short first pass that finds the reflections in
the least damaged frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cryomat.damage.fit import DecayFit, fit_decay
from cryomat.damage.frc_dose import RingSums, threshold_crossing
from cryomat.damage.reflections import (PatchIntegrator, find_reflections, group_by_d_spacing, rfft_frame,
                                        smooth_spectrum)

DOSE_CONVENTION = ("cumulative_dose_e_per_A2 is the fluence at the middle of each frame's exposure, "
                   "pre-exposure included (dose_start/dose_end give the frame's limits); a constant dose "
                   "offset changes I0, never the fitted critical dose")
FRC_CONVENTIONS = {"first": "each frame against the first (least exposed) frame of the series",
                   "consecutive": "each frame against the frame before it"}


def dose_schedule(n_frames: int, *, dose_per_frame: float | None = None, doses=None,
                  pre_exposure: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Start and end fluence (e/A^2) of each frame's exposure.

    Parameters
    ----------
    n_frames : number of frames.
    dose_per_frame : constant fluence per frame (e/A^2).
    doses : alternatively, cumulative fluence at the end of each frame (e/A^2), strictly increasing.
    pre_exposure : fluence received before the first frame (e/A^2).
    """
    pre = float(pre_exposure or 0.0)
    if not np.isfinite(pre) or pre < 0:
        raise ValueError(f"pre_exposure must be >= 0 e/A^2, got {pre_exposure!r}")
    if doses is not None:
        ends = np.asarray(doses, dtype=np.float64).ravel()
        if ends.size != n_frames:
            raise ValueError(f"doses lists {ends.size} values for {n_frames} frames")
        if not np.all(np.isfinite(ends)):
            raise ValueError("doses contains non-finite values")
        if np.any(np.diff(ends) <= 0) or ends[0] <= 0:
            bad = int(np.argmax(np.diff(np.concatenate([[0.0], ends])) <= 0))
            raise ValueError(f"cumulative doses must increase strictly from frame to frame (frame {bad}: "
                             f"{ends[bad]:g} e/A^2 after {0.0 if bad == 0 else ends[bad - 1]:g}); "
                             "the dose is not monotonic")
        ends = ends + pre
        starts = np.concatenate([[pre], ends[:-1]])
        return starts, ends
    if dose_per_frame is None:
        raise ValueError("the dose is unknown: give dose_per_frame (--dose-per-frame) or dose_rate and "
                         "frame_time (--dose-rate with --frame-time) or doses")
    dpf = float(dose_per_frame)
    if not np.isfinite(dpf) or dpf <= 0:
        raise ValueError(f"dose_per_frame must be a positive number of e/A^2, got {dose_per_frame!r}")
    starts = pre + dpf * np.arange(n_frames)
    return starts, starts + dpf


@dataclass
class DamageResult:
    """Everything :func:`analyse_dose_series` measured.

    Attributes
    ----------
    curve : per-frame table (dose, Bragg intensities relative to I0, FRC/FRPR in both conventions).
    reflections : per-reflection table (position, d-spacing, shell, fit).
    shells : per-d-spacing table (critical dose and interval per shell).
    fit : the fit of the summed Bragg intensity (headline critical dose), or ``None``.
    frc_first, frc_consecutive : (frames, rings) FRC curves; ``freq_per_A`` their ring frequencies.
    summary : JSON-ready headline numbers with units in the keys.
    """

    curve: object
    reflections: object
    shells: object
    fit: DecayFit | None
    freq_per_A: np.ndarray
    frc_first: np.ndarray
    frc_consecutive: np.ndarray
    frpr_first: np.ndarray
    summary: dict = field(default_factory=dict)
    shell_fits: list = field(default_factory=list)
    reflection_fits: list = field(default_factory=list)
    early_power: np.ndarray | None = None


def _encircled_radius(power, table, *, max_r: int = 8, frac: float = 0.85) -> float:
    """Radius (px) that holds ``frac`` of each reflection's background-subtracted power (median)."""
    m, n = power.shape
    c0 = np.array([m // 2, n // 2])
    rr, cc = np.mgrid[-max_r - 5:max_r + 6, -max_r - 5:max_r + 6]
    radii = []
    for row, col in zip(table["row_px"], table["col_px"]):
        ir, ic = int(round(row)) + c0[0], int(round(col)) + c0[1]
        patch = power[(ir + rr) % m, (ic + cc) % n]
        dist = np.hypot(rr + round(row) - row, cc + round(col) - col)
        bg = np.mean(patch[(dist > max_r + 1) & (dist <= max_r + 4)])
        cum = np.array([np.sum(patch[dist <= r] - bg) for r in range(1, max_r + 1)])
        if cum[-1] <= 0:
            continue
        radii.append(1 + int(np.argmax(cum >= frac * cum[-1])))
    return float(np.clip(np.median(radii) if radii else 3.0, 2.0, max_r))


def _half_to_shifted_full(half, shape):
    m, n = shape
    full = np.empty((m, n), dtype=np.float64)
    nh = half.shape[1]
    full[:, :nh] = half
    if n > nh:
        cols = np.arange(nh, n)
        full[:, nh:] = half[(-np.arange(m)) % m][:, n - cols]
    return np.fft.fftshift(full)


def _as_frame(frames, i):
    a = np.asarray(frames[i])
    return a.astype(np.float32, copy=False) if a.dtype != np.float64 else a


def _one_blas_thread():
    """Limit BLAS to one thread while analysing: the matrices here are small, and OpenBLAS threads on a
    busy machine cost far more than they give (FFTs use their own ``workers``)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def analyse_dose_series(frames, **kwargs) -> DamageResult:
    with _one_blas_thread():
        return _analyse_dose_series(frames, **kwargs)


def _analyse_dose_series(frames, *, pixel_size: float, dose_per_frame: float | None = None, doses=None,
                        pre_exposure: float = 0.0, voltage_kV: float = 300.0, composition: str = "H2O",
                        density_g_per_cm3: float | None = None, align: bool = False, n_early: int | None = None,
                        band_A: tuple[float, float] | None = None, z_threshold: float = 12.0,
                        peak_radius_px: float | None = None, max_reflections: int = 60, n_boot: int = 400,
                        model: str = "auto", frc_group: int | None = None, seed: int = 0,
                        progress: bool = True) -> DamageResult:
    """Critical dose and FRC/FRPR against cumulative fluence for a dose series.

    Parameters
    ----------
    frames : (frame, row, col) array (numpy, memmap or dask): the same area exposed frame after frame.
    pixel_size : A per pixel.
    dose_per_frame, doses, pre_exposure : the fluence schedule (see :func:`dose_schedule`), e/A^2.
    voltage_kV, composition, density_g_per_cm3 : for the fluence-to-MGy conversion.
    align : correct drift before FRC/FRPR (Bragg intensities do not depend on drift):
        ``"registration"`` uses :func:`cryomat.registration.estimate_drift` on the whole stack in memory,
        ``"streaming"`` registers frame by frame (low memory; :class:`cryomat.damage.align.DriftTracker`),
        ``True``/``"auto"`` picks registration for stacks up to 512 MB, else streaming.
    n_early : frames summed to find the reflections (default: 10 % of the series, 1 to 5).
    band_A : (low, high) resolution band in A for the band-averaged FRC/FRPR and their threshold
        doses; default: the band holding the detected reflections, else 4 to 20 pixels.
    z_threshold : reflection detection threshold (standard deviations).
    peak_radius_px : integration radius; default estimated from the early spectrum.
    max_reflections : strongest reflections tracked.
    n_boot : bootstrap replicates per fit.
    model : decay model, ``"auto"``, ``"single"`` or ``"two-stage"``.
    frc_group : frames summed (after alignment) into one exposure for FRC/FRPR; default: enough
        frames for at least 5 electrons per pixel (single low-dose frames carry too little signal
        for FRC); Bragg intensities are always per frame.
    seed : bootstrap seed.

    Returns
    -------
    DamageResult

    References
    ----------
    Glaeser 1971, doi:10.1016/S0022-5320(71)90039-6 (critical dose from Bragg-spot fading);
    Karuppasamy et al. 2011, doi:10.1107/S090904951102820X (FRC/FRPR against dose, 0.5 and 45 deg);
    Egerton 2019, doi:10.1016/j.micron.2019.03.009 (radiation damage in the TEM).
    """
    import pandas as pd

    from cryomat.damage.align import DriftTracker, registration_drift, shift_spectrum
    from cryomat.damage.stopping import dose_MGy_per_e_per_A2
    from cryomat.progress import progress as _progress

    shape = tuple(np.shape(frames))
    if len(shape) != 3:
        raise ValueError(f"a dose series needs a (frame, row, col) stack, got shape {shape}")
    nf, m, n = shape
    if nf < 2:
        raise ValueError(f"a dose series needs several frames of the same area; this one has {nf} frame")
    if nf < 4:
        raise ValueError(f"a dose series needs at least 4 frames to fit a decay; this one has {nf}")
    if min(m, n) < 32:
        raise ValueError(f"frames of {m} x {n} px are too small for Fourier analysis (need >= 32)")
    starts, ends = dose_schedule(nf, dose_per_frame=dose_per_frame, doses=doses, pre_exposure=pre_exposure)
    mids = 0.5 * (starts + ends)
    mgy = dose_MGy_per_e_per_A2(composition, voltage_kV, density_g_per_cm3=density_g_per_cm3)

    # --- pass 1: reflections in the early, least damaged frames --------------------------------
    k_early = int(n_early) if n_early else int(np.clip(round(0.1 * nf), 1, 5))
    k_early = max(1, min(k_early, nf))
    early = np.zeros((m, n // 2 + 1))
    keep = k_early * m * (n // 2 + 1) * 8 <= 512 * 2**20     # reuse these spectra in pass 2
    cached = {}
    for i in range(k_early):
        fr = _as_frame(frames, i)
        raw = rfft_frame(fr)
        if keep:
            cached[i] = raw
        spec = raw - smooth_spectrum(fr)
        early += np.abs(spec) ** 2
    early_full = _half_to_shifted_full(early, (m, n))
    table = find_reflections(early_full, pixel_size=pixel_size, n_frames=k_early, z_threshold=z_threshold,
                             max_reflections=max_reflections)
    radius = float(peak_radius_px) if peak_radius_px else (_encircled_radius(early_full, table) if len(table) else 3.0)
    table["shell"] = group_by_d_spacing(table, pixel_size=pixel_size, shape=(m, n))
    integ = PatchIntegrator(table, (m, n), radius_px=radius)

    if band_A is None:
        if len(table):
            band_A = (float(min(1.15 * table["d_spacing_A"].max(), min(m, n) * pixel_size / 4)),
                      float(max(0.85 * table["d_spacing_A"].min(), 2.0 * pixel_size)))
        else:
            band_A = (20.0 * pixel_size, 4.0 * pixel_size)
    rings = RingSums((m, n), pixel_size=pixel_size, band_A=band_A)

    shifts = None
    if align not in (False, None, True, "auto", "streaming", "registration"):
        raise ValueError(f"align must be False, True/'auto', 'streaming' or 'registration', got {align!r}")
    if align in (True, "auto"):
        # cryomat.registration holds the whole stack in memory: use it for stacks up to ~512 MB
        from cryomat.damage.align import registration_available

        small = nf * m * n * 4 <= 512 * 2**20
        align = "registration" if small and registration_available() else "streaming"
    if align == "registration":
        shifts = registration_drift(frames, pixel_size=pixel_size)
        if shifts is None:
            raise ValueError("align='registration' needs cryomat.registration.estimate_drift, which is not available")
    tracker = DriftTracker((m, n)) if align and shifts is None else None

    # --- pass 2: every frame once -----------------------------------------------------------------
    if frc_group is None:
        dpf = float(np.median(ends - starts))
        frc_group = int(np.clip(np.ceil(5.0 / max(dpf * pixel_size**2, 1e-9)), 1, max(1, nf // 4)))
    frc_group = int(frc_group)
    if frc_group < 1:
        raise ValueError(f"frc_group must be a positive whole number, got {frc_group!r}")
    inten = np.zeros((nf, integ.n))
    bgpix = np.zeros((nf, integ.n))
    drift = np.zeros((nf, 2))
    gfrc = _GroupFRC(rings, mids)
    acc, acc_start = None, 0
    it = _progress(range(nf), total=nf, desc="damage") if progress else range(nf)
    for i in it:
        fr = _as_frame(frames, i)
        spec = cached.pop(i) if i in cached else rfft_frame(fr)
        inten[i], bgpix[i] = integ(spec, fr)
        if align:
            sh = shifts[i] if shifts is not None else tracker.add(spec)
            drift[i] = sh
            if np.any(np.abs(sh) > 1e-3):
                spec = shift_spectrum(spec, (m, n), (-sh[0], -sh[1]))
        flat = rings.flat(spec)
        acc = flat.copy() if acc is None else acc + flat
        if (i + 1 - acc_start) == frc_group or i == nf - 1:
            gfrc.add(acc_start, i, acc)
            acc, acc_start = None, i + 1
    # --- fits ------------------------------------------------------------------------------------------
    curve = pd.DataFrame({"frame": np.arange(nf), "dose_start_e_per_A2": starts, "dose_end_e_per_A2": ends,
                          "cumulative_dose_e_per_A2": mids, "cumulative_dose_MGy": mids * mgy})
    fit = None
    shell_fits, refl_fits = [], []
    if integ.n:
        total = inten.sum(axis=1)
        fit = _safe_fit(mids, total, model=model, n_boot=n_boot, seed=seed, components=inten)
        curve["bragg_intensity_total"] = total
        curve["bragg_intensity_rel"] = total / (fit.i0 if fit and fit.i0 > 0 else total[:2].mean())
        rel_cols = []
        for j in range(integ.n):
            fj = _safe_fit(mids, inten[:, j], model="single", n_boot=max(100, n_boot // 2), seed=seed + 1 + j)
            refl_fits.append(fj)
            i0 = fj.i0 if fj is not None and fj.i0 > 0 else max(inten[:2, j].mean(), 1e-300)
            curve[f"bragg_intensity_rel_r{j}"] = inten[:, j] / i0
            rel_cols.append(f"bragg_intensity_rel_r{j}")
        curve["bragg_intensity_rel_mean"] = curve[rel_cols].mean(axis=1)
        for s in sorted(table["shell"].unique()):
            sel = (table["shell"] == s).to_numpy()
            ysh = inten[:, sel].sum(1)
            fs = _safe_fit(mids, ysh, model=model, n_boot=n_boot, seed=seed + 1000 + int(s),
                           components=inten[:, sel])
            shell_fits.append((int(s), fs))
            curve[f"bragg_intensity_rel_shell{int(s)}"] = ysh / (fs.i0 if fs is not None and fs.i0 > 0
                                                                 else max(ysh[:2].mean(), 1e-300))
    group_of = np.zeros(nf, dtype=int)
    for g, (a, b) in enumerate(gfrc.spans):
        group_of[a:b + 1] = g
    curve["frc_group"] = group_of
    frc_df = pd.DataFrame(gfrc.rows)
    curve = curve.merge(frc_df, on="frc_group", how="left")
    if align:
        curve["shift_row_px"], curve["shift_col_px"] = drift[:, 0], drift[:, 1]

    refl = table.copy()
    for key in ("critical_dose_e_per_A2", "ci_low_e_per_A2", "ci_high_e_per_A2", "offset_rel", "reliable"):
        refl[key] = [getattr(f, key) if f is not None else np.nan for f in refl_fits] if len(refl) else []
    refl["i0"] = [f.i0 if f is not None else np.nan for f in refl_fits] if len(refl) else []
    ndisk = np.array([dk.sum() for dk in integ._disk]) if integ.n else np.zeros(0)
    refl["intensity_snr_first"] = inten[0] / (np.maximum(bgpix[0], 1e-300) * np.sqrt(ndisk)) if integ.n else []
    shells = _shell_table(table, shell_fits)
    summary = _summary(fit, shells, curve, mgy, band_A, table, radius, k_early, align, drift)
    summary["frc_frames_per_group"] = frc_group
    if frc_group > 1:
        summary["frc_convention"] += (f"; FRC/FRPR points are sums of {frc_group} consecutive aligned frames "
                                      "(the 'frame' of both conventions is such a group)")
    summary["align_method"] = align or None
    return DamageResult(curve=curve, reflections=refl, shells=shells, fit=fit, freq_per_A=rings.freq_per_A,
                        frc_first=np.array(gfrc.frc_first), frc_consecutive=np.array(gfrc.frc_cons),
                        frpr_first=np.array(gfrc.frpr_first), summary=summary,
                        shell_fits=shell_fits, reflection_fits=refl_fits, early_power=early_full)


class _GroupFRC:
    """FRC/FRPR per group of frames in both conventions (vs first group; vs previous group), streamed."""

    def __init__(self, rings, mids):
        self.rings, self.mids = rings, mids
        self.rows, self.frc_first, self.frc_cons, self.frpr_first, self.spans = [], [], [], [], []
        self.first = self.prev = None

    def add(self, a: int, b: int, spec) -> None:
        rings = self.rings
        nring = rings.nmax + 1
        g = len(self.rows)
        self.spans.append((a, b))
        row = {"frc_group": g, "frc_group_dose_e_per_A2": float(np.mean(self.mids[a:b + 1]))}
        pw = rings.power(spec)
        if self.first is None:
            self.first = (spec, pw)
            self.frc_first.append(np.ones(nring))
            self.frc_cons.append(np.full(nring, np.nan))
            self.frpr_first.append(np.zeros(nring))
            for conv in ("", "_consecutive"):
                row.update({f"frc_05_A{conv}": np.nan, f"frc_0143_A{conv}": np.nan, f"frc_half_bit_A{conv}": np.nan,
                            f"frc_band{conv}": np.nan, f"frpr_deg{conv}": np.nan})
        else:
            for conv, (fb, pb) in (("", self.first), ("_consecutive", self.prev)):
                res, frpr, fband, pband = rings.compare(spec, fb, pw, pb)
                if conv == "":
                    self.frc_first.append(res.frc)
                    self.frpr_first.append(frpr)
                else:
                    self.frc_cons.append(res.frc)
                row.update({f"frc_05_A{conv}": res.resolution(0.5), f"frc_0143_A{conv}": res.resolution(0.143),
                            f"frc_half_bit_A{conv}": res.resolution("half-bit"), f"frc_band{conv}": fband,
                            f"frpr_deg{conv}": pband})
        self.prev = (spec, pw)
        self.rows.append(row)


def _safe_fit(dose, y, **kw) -> DecayFit | None:
    try:
        return fit_decay(dose, y, **kw)
    except (ValueError, np.linalg.LinAlgError):
        return None


def _shell_table(table, shell_fits):
    import pandas as pd

    rows = []
    for s, f in shell_fits:
        sel = table["shell"] == s
        rows.append({"shell": s, "d_spacing_A": float(table.loc[sel, "d_spacing_A"].mean()),
                     "freq_per_A": float(table.loc[sel, "freq_per_A"].mean()), "n_reflections": int(sel.sum()),
                     "critical_dose_e_per_A2": f.critical_dose_e_per_A2 if f else np.nan,
                     "ci_low_e_per_A2": f.ci_low_e_per_A2 if f else np.nan,
                     "ci_high_e_per_A2": f.ci_high_e_per_A2 if f else np.nan,
                     "model": f.model if f else "failed", "offset_rel": f.offset_rel if f else np.nan,
                     "beyond_dose_range": bool(f.bounded) if f else True,
                     "reliable": bool(f.reliable) if f else False})
    cols = ["shell", "d_spacing_A", "freq_per_A", "n_reflections", "critical_dose_e_per_A2", "ci_low_e_per_A2",
            "ci_high_e_per_A2", "model", "offset_rel", "beyond_dose_range", "reliable"]
    return pd.DataFrame(rows, columns=cols)


def _summary(fit, shells, curve, mgy, band_A, table, radius, k_early, align, drift) -> dict:
    grp = curve.drop_duplicates("frc_group")
    d = grp["frc_group_dose_e_per_A2"].to_numpy()
    later = grp["frc_group"].to_numpy() > 0
    frc_dose = threshold_crossing(d[later], grp["frc_band"].to_numpy()[later], 0.5, falling=True)
    frpr_dose = threshold_crossing(d[later], grp["frpr_deg"].to_numpy()[later], 45.0, falling=False)
    frc_dose_c = threshold_crossing(d[later], grp["frc_band_consecutive"].to_numpy()[later], 0.5, falling=True)
    frpr_dose_c = threshold_crossing(d[later], grp["frpr_deg_consecutive"].to_numpy()[later], 45.0, falling=False)
    by_d = []
    for _, r in shells.iterrows():
        by_d.append({"d_spacing_A": r["d_spacing_A"], "n_reflections": r["n_reflections"],
                     "critical_dose_e_per_A2": r["critical_dose_e_per_A2"],
                     "critical_dose_ci95_e_per_A2": [r["ci_low_e_per_A2"], r["ci_high_e_per_A2"]],
                     "model": r["model"], "beyond_dose_range": r["beyond_dose_range"], "reliable": r["reliable"]})
    candidates = []
    ok_shells = shells[shells["reliable"].astype(bool) & ~shells["beyond_dose_range"].astype(bool)]
    if len(ok_shells):
        finest = ok_shells.sort_values("d_spacing_A").iloc[0]
        candidates.append((float(finest["critical_dose_e_per_A2"]),
                           f"critical dose of the finest reliable d-spacing ({finest['d_spacing_A']:.3g} A)"))
    elif fit is not None and not fit.bounded:
        candidates.append((fit.critical_dose_e_per_A2, "critical dose of the summed Bragg intensity"))
    if frc_dose is not None:
        candidates.append((frc_dose, "FRC (vs first frame) over the band falls below 0.5"))
    if frpr_dose is not None:
        candidates.append((frpr_dose, "FRPR (vs first frame) over the band passes 45 deg"))
    budget, basis = min(candidates) if candidates else (None, "no damage threshold reached within the series")
    out = {
        "critical_dose_e_per_A2": fit.critical_dose_e_per_A2 if fit else None,
        "critical_dose_ci95_e_per_A2": [fit.ci_low_e_per_A2, fit.ci_high_e_per_A2] if fit else None,
        "critical_dose_ci_low_e_per_A2": fit.ci_low_e_per_A2 if fit else None,
        "critical_dose_ci_high_e_per_A2": fit.ci_high_e_per_A2 if fit else None,
        "critical_dose_MGy": fit.critical_dose_e_per_A2 * mgy if fit else None,
        "critical_dose_model": fit.model if fit else None,
        "critical_dose_beyond_dose_range": bool(fit.bounded) if fit else None,
        "critical_dose_reliable": bool(fit.reliable) if fit else None,
        "offset_rel": fit.offset_rel if fit else None,
        "critical_dose_by_d_spacing": by_d,
        "n_reflections": int(len(table)),
        "frc_threshold_dose_e_per_A2": frc_dose,
        "frpr_threshold_dose_e_per_A2": frpr_dose,
        "frc_threshold_dose_consecutive_e_per_A2": frc_dose_c,
        "frpr_threshold_dose_consecutive_e_per_A2": frpr_dose_c,
        "frc_band_A": list(band_A),
        "frc_convention": FRC_CONVENTIONS["first"] + " (columns without suffix); _consecutive: "
                          + FRC_CONVENTIONS["consecutive"],
        "frc_thresholds": [0.5, 0.143, "half-bit"],
        "frpr_threshold_deg": 45.0,
        "dose_MGy_per_e_per_A2": mgy,
        "recommended_dose_budget_e_per_A2": budget,
        "recommended_dose_budget_MGy": budget * mgy if budget is not None else None,
        "recommended_dose_budget_basis": basis,
        "total_dose_e_per_A2": float(curve["dose_end_e_per_A2"].iloc[-1]),
        "frc_band_first_pair": float(grp["frc_band"].to_numpy()[1]) if later.sum() else None,
        "dose_convention": DOSE_CONVENTION,
        "peak_radius_px": radius,
        "early_frames_for_finding": k_early,
    }
    if fit is not None and fit.model == "two-stage":
        out.update({"critical_dose_fast_e_per_A2": fit.dc1_e_per_A2, "critical_dose_slow_e_per_A2": fit.dc2_e_per_A2,
                    "fraction_fast": fit.fraction_fast})
    if align:
        out["total_drift_px"] = float(np.hypot(*(drift[-1] - drift[0])))
    return out
