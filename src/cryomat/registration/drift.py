"""Global drift estimation: leave-one-out alignment of low-dose frames (and the result record)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cryomat.registration.ccf import (Spectra, blas_single, ccf_peak, choose_bfactor, make_spectra, norm, snr_weight,
                                     with_bfactor)
from cryomat.registration.loo import NewtonLOO, choose_band, coarse_search, crop_spectra, progressive
from cryomat.registration.smooth import smooth_trajectory


@dataclass(frozen=True)
class DriftResult:
    """Per-frame drift of a movie or frame series.

    Attributes
    ----------
    shifts_px : (n, 2) float, displacement (row, col) of each frame's content relative to frame 0,
        in pixels, after smoothing. The aligned sum moves frame ``f`` by ``-shifts_px[f]``.
    raw_shifts_px : (n, 2) float, the measured shifts before smoothing (same origin).
    ccf_peak : (n,) float, normalised CCF peak of each frame against its reference (0..1).
    mode : ``"reference"`` (leave-one-out) or ``"all-pairs"``.
    iterations : int, leave-one-out iterations run (or robust re-weighting rounds).
    converged : bool, whether the last update was below the tolerance.
    lattice_period_px : float or None, shortest lattice period found (sets the jump guard).
    smoothing : float, Whittaker smoothing parameter used (0 = none).
    outlier_pairs : int, pairs flagged as outliers (all-pairs mode).
    pixel_size : float or None, A per pixel.
    """

    shifts_px: np.ndarray
    raw_shifts_px: np.ndarray
    ccf_peak: np.ndarray
    mode: str = "reference"
    iterations: int = 0
    converged: bool = True
    lattice_period_px: float | None = None
    smoothing: float = 0.0
    outlier_pairs: int = 0
    pixel_size: float | None = None
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def n_frames(self) -> int:
        return int(self.shifts_px.shape[0])

    @property
    def total_drift_px(self) -> float:
        """Path length of the smoothed trajectory (px)."""
        return float(np.sum(np.hypot(*np.diff(self.shifts_px, axis=0).T))) if self.n_frames > 1 else 0.0

    @property
    def residual_rms_px(self) -> float:
        """RMS distance between measured and smoothed shifts (px): the per-frame measurement scatter."""
        return float(np.sqrt(np.mean(np.sum((self.raw_shifts_px - self.shifts_px) ** 2, axis=1))))

    def table(self):
        """pandas DataFrame: frame, shift_row_px, shift_col_px, shift_row_A, shift_col_A, ccf_peak, raw shifts."""
        import pandas as pd

        px = self.pixel_size if self.pixel_size else np.nan
        return pd.DataFrame({
            "frame": np.arange(self.n_frames),
            "shift_row_px": self.shifts_px[:, 0], "shift_col_px": self.shifts_px[:, 1],
            "shift_row_A": self.shifts_px[:, 0] * px, "shift_col_A": self.shifts_px[:, 1] * px,
            "ccf_peak": self.ccf_peak,
            "raw_shift_row_px": self.raw_shifts_px[:, 0], "raw_shift_col_px": self.raw_shifts_px[:, 1],
        })

    def to_dict(self) -> dict:
        px = self.pixel_size
        return {"mode": self.mode, "n_frames": self.n_frames, "iterations": self.iterations,
                "converged": self.converged, "total_drift_px": self.total_drift_px,
                "total_drift_A": self.total_drift_px * px if px else None,
                "residual_rms_px": self.residual_rms_px, "outlier_pairs": self.outlier_pairs,
                "lattice_period_px": self.lattice_period_px, "smoothing": self.smoothing,
                "mean_ccf_peak": float(np.mean(self.ccf_peak))}


def lattice_period(spec: Spectra, *, z_threshold: float = 10.0, min_k: float = 0.02) -> float | None:
    """Largest lattice-plane spacing (px) seen as Bragg spots in the mean power spectrum, or None.

    The mean power spectrum of the frames does not depend on the drift. Bragg spots are pixels
    that stand above their ring's mean (radial profile) by ``z_threshold`` standard errors; the
    error of a pixel combines the shot-noise floor N averaged over n frames (N / sqrt(n)) and the
    specimen's own speckle (which does not average: the same specimen is in every frame). The axes
    (detector streaks) and |k| < ``min_k`` cycles/px are ignored. The spot of lowest |k| gives
    d_max = 1/|k|, never larger than the shortest lattice translation, so 0.45 d_max is a safe
    radius against whole-period jumps. A false detection on a strong amorphous image only makes the
    tracking more cautious; a missed lattice at very low dose would allow jumps, so the threshold is low.
    """
    n = spec.data.shape[0]
    p = spec.mean_power()
    kr = spec.kr[:, None]
    kc = spec.kc[None, :]
    k = np.sqrt(kr**2 + kc**2)
    nmin = min(spec.shape)
    ring = np.minimum(np.rint(k * nmin).astype(np.int64), int(nmin))
    cnt = np.bincount(ring.ravel(), minlength=nmin + 1)
    prof = np.bincount(ring.ravel(), weights=p.ravel(), minlength=nmin + 1) / np.maximum(cnt, 1)
    bg = prof[ring]
    ok = (k > min_k) & (np.abs(kr) > 1.5 / spec.shape[0]) & (np.abs(kc) > 1.5 / spec.shape[1])
    if spec.noise_floor is not None:
        floor = spec.noise_floor
    else:
        valid = prof[max(2, nmin // 40):nmin // 2]
        floor = float(np.percentile(valid, 5)) if valid.size else float(np.median(p))
    spk = np.clip(bg - floor, 0, None)
    z = (p - bg) / np.maximum(np.sqrt(spk**2 + floor**2 / n), 1e-30)
    spots = ok & (z > z_threshold)
    if spots.sum() < 2:  # a 2D lattice shows at least two independent reflections
        return None
    return float(1.0 / k[spots].min())


def _loo_pass(spec: Spectra, shifts: np.ndarray, *, group: int, radius: np.ndarray | float | None,
              centers=None, active=None, peak_prev=None) -> tuple[np.ndarray, np.ndarray]:
    """One leave-one-out pass: residual shift of every frame (group) against the sum of the others.

    Only frames in ``active`` (bool mask) are re-measured; the others keep a zero update and their
    previous peak (``peak_prev``): once a frame has converged, the small changes of its reference
    do not move it.
    """
    n = spec.data.shape[0]
    aligned = np.empty_like(spec.data)
    for f in range(n):
        aligned[f] = spec.data[f] * spec.ramp(shifts[f])
    total = aligned.sum(0)
    h = group // 2
    # |aligned frame| does not depend on its shift: the single-frame norms are computed once
    own = [norm(spec.data[f], spec) for f in range(n)] if group == 1 else None
    delta = np.zeros((n, 2))
    peak = np.zeros(n) if peak_prev is None else np.array(peak_prev, float)
    for f in range(n):
        if active is not None and not active[f]:
            continue
        lo, hi = max(0, f - h), min(n, f + h + 1)
        mine = aligned[lo:hi].sum(0)
        ref = total - mine
        cross = mine * np.conj(ref) * spec.filt
        rad = radius[f] if isinstance(radius, np.ndarray) else radius
        ctr = (0.0, 0.0) if centers is None else centers[f]
        delta[f], val = ccf_peak(cross, spec, center_px=ctr, radius_px=rad)
        peak[f] = val / max((own[f] if own is not None else norm(mine, spec)) * norm(ref, spec), 1e-30)
    return delta, peak


def _progressive(spec: Spectra, *, radius: float) -> np.ndarray:
    """Continuity-guarded initial trajectory: frame f against the aligned sum of frames < f,
    searched within ``radius`` of the linear extrapolation of the previous frames."""
    n = spec.data.shape[0]
    s = np.zeros((n, 2))
    acc = spec.data[0].copy()
    for f in range(1, n):
        pred = s[f - 1] + (0.5 * (s[f - 1] - s[f - 3]) if f >= 3 else 0.0)
        cross = spec.data[f] * np.conj(acc) * spec.filt
        s[f], _ = ccf_peak(cross, spec, center_px=pred, radius_px=radius)
        acc = acc + spec.data[f] * spec.ramp(s[f])
    return s


def estimate_drift(frames, *, pixel_size: float | None = None, mode: str = "reference", bfactor_px2="auto",
                   max_shift_px: float | None = None, group: int = 1, max_iterations: int = 8,
                   tol_px: float = 0.05, smoothing="auto", corrector=None, max_size: int = 1024,
                   lattice_guard: bool = True, pair_window: int | None = None, spectra: Spectra | None = None,
                   matched_filter: bool = True) -> DriftResult:
    """Global drift of a low-dose movie or STEM frame series.

    ``mode="reference"``: every frame (or group of ``group`` neighbouring frames) is correlated
    with the sum of all *other* frames (leave-one-out, so its own shot noise never correlates with
    itself), using a B-factor low-passed cross-power spectrum with zero DC, cropped in Fourier space
    to the band the filter keeps. Each frame is transformed once; the shifts are applied as phase
    ramps to its half spectrum. The whole search disc is scanned on a crop of at most 256^2
    (a binned view: one batched inverse FFT, repeated until the frames move by less than a CCF
    step; where the frames spread over more than 4 CCF steps, a frame-by-frame tracking is tried
    too and the trajectory whose frames correlate better with the sum of the others is kept); then every pass takes one Newton step on log CCF per frame, first on that crop, then
    on the band that minimises the expected shift variance (:func:`cryomat.registration.loo.choose_band`:
    at the lowest doses the outer band adds more noise than signal) to the exact maximum of the
    band-limited CCF (no grid, no parabola bias),
    until the largest update, or the movement still to come predicted from the geometric rate of
    the last two, is below ``tol_px`` (:mod:`cryomat.registration.loo`); the trajectory is then
    smoothed. With ``group`` > 1 the per-frame updates are the regularised inverse of the group
    averaging (:func:`_ungroup`).
    ``mode="all-pairs"``: see :func:`cryomat.registration.allpairs.estimate_drift_all_pairs`.

    A frame whose normalised CCF peak falls below 0.35 of the median has lost its signal (it
    locked onto noise); its shift is interpolated from its neighbours and it is listed in
    ``result.extra["lost_frames"]``.

    Where the frames show a lattice (found from the drift-invariant mean power spectrum), shifts
    are tracked with continuity: the first trajectory is built frame by frame, each searched within
    0.45 lattice periods of its prediction, and the leave-one-out updates are kept within that
    radius, so that the alignment never jumps by a whole lattice period.

    Parameters
    ----------
    frames : (n, row, col) array (numpy, memmap or dask); read one frame at a time.
    pixel_size : float, A per pixel (only used for the reported shifts in A).
    bfactor_px2 : float, B-factor of the CCF low-pass exp(-B k^2/4), k in cycles/px (px^2).
        Divide a B-factor in A^2 by pixel_size^2.
    max_shift_px : float, largest shift searched in the first pass (default: a quarter of the frame).
    group : int, odd number of neighbouring frames summed for each estimate (more signal per estimate).
    max_iterations, tol_px : leave-one-out passes stop when the largest update is below ``tol_px`` px.
    lattice_guard : bool, detect lattices and track with continuity (see above).
    pair_window : int, all-pairs mode: largest frame distance of a pair (default: all pairs up to 40 frames).
    spectra : precomputed :class:`cryomat.registration.ccf.Spectra` (skips reading the frames).
    smoothing : ``"auto"`` (GCV), a number (Whittaker lambda) or 0 (none).
    corrector : :class:`cryomat.registration.preprocess.Corrector` applied to every frame.
    max_size : int, largest Fourier crop per axis (the 4k case is aligned on a 1k crop or less).
    matched_filter : bool, where a lattice is found, also weight the CCF by the spectral SNR S/(S+N)
        estimated from the drift-invariant mean power spectrum (:func:`cryomat.registration.ccf.snr_weight`).

    Returns
    -------
    DriftResult

    References
    ----------
    Zheng et al., MotionCor2, Nat. Methods 14, 331 (2017), doi:10.1038/nmeth.4193;
    Grant & Grigorieff, eLife 4:e06980 (2015), doi:10.7554/eLife.06980;
    Guizar-Sicairos et al., Opt. Lett. 33, 156 (2008), doi:10.1364/OL.33.000156.
    """
    with blas_single():
        return _estimate_drift(frames, pixel_size=pixel_size, mode=mode, bfactor_px2=bfactor_px2,
                               max_shift_px=max_shift_px, group=group, max_iterations=max_iterations, tol_px=tol_px,
                               smoothing=smoothing, corrector=corrector, max_size=max_size,
                               lattice_guard=lattice_guard, pair_window=pair_window, spectra=spectra,
                               matched_filter=matched_filter)


def _estimate_drift(frames, *, pixel_size, mode, bfactor_px2, max_shift_px, group, max_iterations, tol_px, smoothing,
                    corrector, max_size, lattice_guard, pair_window, spectra, matched_filter) -> DriftResult:
    n = _check_frames(frames)
    if mode not in ("reference", "all-pairs"):
        raise ValueError(f"mode must be 'reference' or 'all-pairs', got {mode!r}")
    group = int(group)
    if group < 1:
        raise ValueError(f"group must be >= 1, got {group!r}")
    if group % 2 == 0:
        group += 1
    auto_b = isinstance(bfactor_px2, str)
    if auto_b and bfactor_px2 != "auto":
        raise ValueError(f"bfactor_px2 must be 'auto' or a positive number, got {bfactor_px2!r}")
    if not auto_b and (not np.isfinite(bfactor_px2) or bfactor_px2 <= 0):
        raise ValueError(f"bfactor_px2 must be positive, got {bfactor_px2!r}")
    clock = _Clock()
    if spectra is None:
        spectra = make_spectra(frames, bfactor_px2=10.0 if auto_b else float(bfactor_px2), max_size=max_size,
                               corrector=corrector)
    clock("spectra")
    period = lattice_period(spectra) if lattice_guard else None
    # the matched filter concentrates the CCF on Bragg spots; on amorphous images at 0.1 e/px its
    # weights are too noisy, so it is used where a lattice was found
    use_mf = matched_filter and period is not None
    wsnr = snr_weight(spectra) if use_mf else None
    bval = choose_bfactor(spectra, weight=wsnr) if auto_b else float(bfactor_px2)
    spec = with_bfactor(spectra, bval)
    if use_mf:
        spec = with_weight(spec, spectra, wsnr)
    max_shift = float(max_shift_px) if max_shift_px else 0.25 * min(spec.shape)
    if mode == "all-pairs":
        from cryomat.registration.allpairs import estimate_drift_all_pairs

        res = estimate_drift_all_pairs(spec, pixel_size=pixel_size, period_px=period, max_shift_px=max_shift,
                                       window=pair_window, smoothing=smoothing)
        res.extra.update({"bfactor_px2": bval, "ccf_size": list(spec.ccf_shape)})
        return res
    guard = 0.45 * period if period else None
    clock("lattice_and_bfactor")
    # first pass on a Fourier crop of at most 256^2 (a binned view; it keeps the lattice's first
    # spots): the whole search disc, or the continuity-guarded progressive trajectory on a lattice
    need = 2.5 * max(spec.shape) / period if period else 0.0
    side = int(max(256, 2 * np.ceil(need / 2)))
    # the final passes use the band that minimises the expected shift variance (at the lowest
    # doses the outer band adds more noise than signal), never less than the first pass's crop
    band = max(choose_band(spec, n), side) if auto_band else max(spec.ccf_shape)
    spec = crop_spectra(spec, band, band)
    coarse = crop_spectra(spec, side, side)
    if guard:
        shifts = progressive(coarse, radius=guard)
    else:
        # the first reference is the sum of the unaligned frames, blurred by the drift: where the
        # frames found spread over more than 4 CCF steps, search again against the sharper, aligned
        # sum, until the frames move by less than a CCF step
        shifts = np.zeros((n, 2))
        step = max(coarse.ccf_step)
        wide = False
        for p in range(COARSE_PASSES):
            new = shifts + _ungroup(coarse_search(coarse, shifts, radius=max_shift, group=group), group)
            if n >= 5:  # a frame far from its neighbours' running median locked onto noise
                new = _reject_jumps(new)
            new -= new.mean(0)
            delta, shifts = new - shifts, new
            moved = np.hypot(delta[:, 0], delta[:, 1])
            if p == 0 and float(np.max(np.hypot(new[:, 0], new[:, 1]))) < 4 * step:
                break
            wide = True
            if float(np.max(moved)) < step:
                break
        if wide and n >= 3:
            # a large drift at very low dose can defeat the blurred first reference: also track
            # frame by frame (each within 10 px, or 4 CCF steps, of its prediction) and keep the
            # trajectory whose frames correlate better with the sum of the others
            alt = progressive(coarse, radius=max(10.0, 4 * step))
            alt -= alt.mean(0)
            probe = NewtonLOO(coarse, group=group)
            if np.median(probe.step(alt)[1]) > np.median(probe.step(shifts)[1]):
                shifts = alt
    shifts -= shifts.mean(0)
    if guard and n >= 5:
        shifts = _reject_jumps(shifts)
    # then Newton steps: on the crop until the updates are below 0.1 px (cheap), then on the full
    # band until the largest update is below tol_px; each step is at most 1 px (and a quarter
    # lattice period), so the continuity of the first pass is kept
    max_step = min(1.0, 0.25 * period) if period else 1.0
    fallback = min(guard, 3.0) if guard else 3.0
    converged = False
    it = 1
    peak = np.zeros(n)
    clock("coarse_search")
    stages = [(NewtonLOO(coarse, group=group), max(tol_px, 0.1))] if coarse is not spec else []
    stages.append((NewtonLOO(spec, group=group), tol_px))
    del coarse
    for k, (engine, tol) in enumerate(stages):
        last = k == len(stages) - 1
        prev = None
        while it < max(2, max_iterations) + (len(stages) - 1):
            it += 1
            delta, peak = engine.step(shifts, max_step=max_step, fallback_radius=fallback)
            delta = _ungroup(delta, group)
            delta -= delta.mean(0)
            shifts = shifts + delta
            upd = float(np.max(np.hypot(delta[:, 0], delta[:, 1])))
            # converged when the update, or the movement still to come predicted from the
            # geometric rate of the last two updates (rho / (1 - rho) x update), is below tol
            rho = upd / prev if prev else 1.0
            if upd < tol or (rho < 0.5 and upd * rho / (1.0 - rho) < tol):
                converged = last
                break
            prev = upd
        clock("newton_crop" if not last else "newton_full")
    shifts, lost = _fill_lost(shifts, peak)
    raw = shifts - shifts[0]
    smoothed, lam = smooth_trajectory(raw, smoothing=smoothing, weights=np.clip(peak, 1e-3, None) ** 2)
    off = smoothed[0].copy()
    smoothed = smoothed - off
    raw = raw - off
    return DriftResult(shifts_px=smoothed, raw_shifts_px=raw, ccf_peak=peak, mode="reference", iterations=it,
                       converged=converged, lattice_period_px=period, smoothing=lam, pixel_size=pixel_size,
                       extra={"bfactor_px2": bval, "ccf_size": list(spec.ccf_shape),
                              "lost_frames": np.nonzero(lost)[0].tolist(), "timing_s": clock("smoothing")})


COARSE_PASSES = 4
auto_band = True  # choose the band of the final passes (False: the whole B-factor crop)


class _Clock:
    """Wall time of the stages of an alignment: ``clock(name)`` closes a stage, returns all so far (s)."""

    def __init__(self):
        import time

        self._now = time.perf_counter
        self.last = self._now()
        self.stages: dict[str, float] = {}

    def __call__(self, name: str) -> dict:
        t = self._now()
        self.stages[name] = self.stages.get(name, 0.0) + t - self.last
        self.last = t
        return dict(self.stages)


def _ungroup(delta: np.ndarray, group: int, mu: float = 0.05) -> np.ndarray:
    """Per-frame updates from the residuals measured on groups of ``group`` neighbouring frames.

    Group g measures the mean residual of its frames, r = B d (B: the (n, n) averaging matrix of
    the groups). Giving each frame its own group's residual (d = r) makes the error evolve as
    (I - B) e, which grows for motion alternating from frame to frame (B's eigenvalue -1/3 for
    groups of 3: x 4/3 per pass) and spreads a fast frame's error onto its neighbours; the
    regularised least-squares inverse d = (B^T B + mu I)^-1 B^T r keeps every error mode decaying
    (factor mu / (lambda^2 + mu) <= 1) and corrects the smooth modes in one pass.
    """
    if group <= 1:
        return delta
    n, h = delta.shape[0], group // 2
    b = np.zeros((n, n))
    for f in range(n):
        lo, hi = max(0, f - h), min(n, f + h + 1)
        b[f, lo:hi] = 1.0 / (hi - lo)
    return np.linalg.solve(b.T @ b + mu * np.eye(n), b.T @ delta)


def _reject_jumps(s: np.ndarray, *, window: int = 5, min_px: float = 2.0) -> np.ndarray:
    """Replace frames far from the running median of their neighbours (noise peaks) by that median."""
    from scipy.ndimage import median_filter

    med = np.stack([median_filter(s[:, k], size=window, mode="nearest") for k in range(2)], 1)
    dev = np.hypot(*(s - med).T)
    mad = np.median(dev) + 1e-9
    bad = dev > max(min_px, 5 * mad)
    out = s.copy()
    out[bad] = med[bad]
    return out


def _fill_lost(s: np.ndarray, peak: np.ndarray, *, ratio: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    """Frames whose CCF peak is below ``ratio`` x the median peak have lost their signal (locked
    onto noise): their shifts are interpolated from the good frames. Returns (shifts, lost mask)."""
    lost = np.asarray(peak) < ratio * np.median(peak)
    if not lost.any() or lost.all() or (~lost).sum() < 2:
        return s, lost
    good = np.nonzero(~lost)[0]
    out = s.copy()
    for k in range(2):
        out[lost, k] = np.interp(np.nonzero(lost)[0], good, s[good, k])
    return out, lost


def _check_frames(frames) -> int:
    shape = getattr(frames, "shape", None)
    if shape is None or len(shape) != 3:
        raise ValueError(f"frames must be a 3D stack (frame, row, col), got shape {shape}")
    if shape[0] < 2:
        raise ValueError(f"need at least 2 frames to align, got {shape[0]}")
    if shape[1] < 16 or shape[2] < 16:
        raise ValueError(f"frames of {shape[1]}x{shape[2]} px are too small to align (need >= 16 px)")
    return int(shape[0])


def with_weight(spec: Spectra, full: Spectra, weight) -> Spectra:
    """``spec`` (a crop of ``full``) with its filter multiplied by ``weight`` given on ``full``'s grid."""
    from dataclasses import replace

    order = np.argsort(full.kr)
    rows = order[np.clip(np.searchsorted(full.kr[order], spec.kr), 0, len(order) - 1)]
    w = weight[rows][:, :len(spec.kc)]
    out = replace(spec, filt=(spec.filt * w).astype(np.float32))
    if "_mean_power" in spec.__dict__:  # the same frames: keep the cached mean power
        out.__dict__["_mean_power"] = spec.__dict__["_mean_power"]
    return out
