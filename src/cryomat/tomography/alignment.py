"""Fiducial-less tilt-series alignment: cosine-stretched cross-correlation, common lines, projection matching.

1. Coarse: from the zero tilt outwards, each image is stretched perpendicular to the tilt axis by
   ``cos(theta_neighbour) / cos(theta)`` and cross-correlated (band-passed, tapered) with its
   already placed neighbour (Guckenberger 1982, doi:10.1016/0304-3991(82)90267-8).
2. Tilt axis: every image summed perpendicular to the true axis gives the same 1D profile (a
   common line of all views); the axis direction maximising the shift-invariant consistency of
   these profiles is found by a grid and golden-section search, and the coarse shifts are
   re-estimated at it. When nothing is known, :func:`find_axis_orientation` scans all directions
   (or uses the mirror symmetry of views 180 deg apart).
3. Projection matching: each image is cross-correlated with a re-projection of a weighted
   back-projection of all *other* views (Dengler 1989, doi:10.1016/0304-3991(89)90033-1; Parkinson
   et al. 2012, doi:10.1016/j.jsb.2011.11.019). By default only the component along the tilt axis is
   updated: across it, the views at the ends of a limited tilt range are biased by the missing wedge.

Shifts are the content displacement ``(drow, dcol)`` in pixels of each raw image (model in
:mod:`cryomat.tomography.transforms`); a 3D translation of the whole specimen (row shift
constant, column shift ``a cos(theta) + b sin(theta)``) is not observable and is removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cryomat.tomography.transforms import align_image, align_stack, rotation


@dataclass(frozen=True)
class Alignment:
    """Result of :func:`align_tilt_series`.

    Attributes
    ----------
    angles_deg : (tilt,) tilt angles (deg).
    shifts_px : (tilt, 2) content displacement (drow, dcol) of each raw image, pixels.
    psi_deg : tilt-axis direction in the raw images (deg from the row axis, counter-clockwise).
    coarse_shifts_px : (tilt, 2) shifts after the coarse step.
    residual_px : (tilt,) size of the last projection-matching correction per tilt (pixels).
    score : (tilt,) normalised correlation of each aligned image with its re-projection.
    history : per-iteration records (mean correction px, psi deg, mean score).
    """

    angles_deg: np.ndarray
    shifts_px: np.ndarray
    psi_deg: float
    coarse_shifts_px: np.ndarray
    residual_px: np.ndarray
    score: np.ndarray
    history: list = field(default_factory=list)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame({"tilt_index": np.arange(self.angles_deg.size), "tilt_deg": self.angles_deg,
                             "shift_row_px": self.shifts_px[:, 0], "shift_col_px": self.shifts_px[:, 1],
                             "coarse_shift_row_px": self.coarse_shifts_px[:, 0],
                             "coarse_shift_col_px": self.coarse_shifts_px[:, 1],
                             "tilt_axis_psi_deg": np.full(self.angles_deg.size, self.psi_deg),
                             "residual_px": self.residual_px, "reprojection_cc": self.score})

    def to_xf(self) -> np.ndarray:
        from cryomat.tomography.conventions import alignment_to_xf

        return alignment_to_xf(self.shifts_px, self.psi_deg)


# --- helpers ---------------------------------------------------------------------------------------

def _taper(shape, frac=0.1):
    def w(n):
        m = max(1, int(frac * n))
        v = np.ones(n)
        r = 0.5 - 0.5 * np.cos(np.pi * (np.arange(m) + 0.5) / m)
        v[:m] = r
        v[-m:] = r[::-1]
        return v

    return np.outer(w(shape[0]), w(shape[1])).astype(np.float32)


def _bandpass(shape, low=0.02, high=0.25):
    fr = np.fft.fftfreq(shape[0])[:, None]
    fc = np.fft.rfftfreq(shape[1])[None, :]
    f = np.sqrt(fr ** 2 + fc ** 2)
    hp = 1 - np.exp(-(f / max(low, 1e-6)) ** 2)
    lp = np.exp(-(f / high) ** 2)
    return (hp * lp).astype(np.float32)


def _prep(img, taper, mask=None):
    a = np.asarray(img, np.float32)
    m = a[mask].mean() if mask is not None else a.mean()
    return (a - m) * taper


def cc_shift(moving, reference, *, band=None, max_shift=None, mask=None, taper=0.1) -> tuple[np.ndarray, float]:
    """Displacement (drow, dcol) of ``moving``'s content relative to ``reference`` (sub-pixel) and
    the normalised correlation peak height.

    Band-passed cross-correlation with a tapered edge; sub-pixel position from a separable
    parabola through the peak and its neighbours.
    """
    shape = np.shape(reference)
    tp = _taper(shape, taper)
    a = _prep(moving, tp)
    b = _prep(reference, tp)
    fa = np.fft.rfft2(a)
    fb = np.fft.rfft2(b)
    bp = _bandpass(shape) if band is None else band
    cross = fa * np.conj(fb) * bp * bp
    cc = np.fft.irfft2(cross, s=shape)
    norm = np.sqrt(np.sum(np.abs(fa * bp) ** 2) * np.sum(np.abs(fb * bp) ** 2)) / cc.size
    cc = np.fft.fftshift(cc)
    c0 = np.array(shape) // 2
    if max_shift is not None:
        r = np.arange(shape[0])[:, None] - c0[0]
        c = np.arange(shape[1])[None, :] - c0[1]
        cc = np.where((np.abs(r) <= max_shift) & (np.abs(c) <= max_shift), cc, -np.inf)
    pk = np.array(np.unravel_index(np.argmax(cc), cc.shape))
    sub = np.zeros(2)
    for ax in range(2):
        lo = pk.copy()
        hi = pk.copy()
        lo[ax] -= 1
        hi[ax] += 1
        if lo[ax] < 0 or hi[ax] >= shape[ax]:
            continue
        ym, y0, yp = cc[tuple(lo)], cc[tuple(pk)], cc[tuple(hi)]
        den = ym - 2 * y0 + yp
        if np.isfinite(den) and den < 0:
            sub[ax] = np.clip(0.5 * (ym - yp) / den, -0.5, 0.5)
    peak = float(cc[tuple(pk)] / norm) if norm > 0 else 0.0
    return pk - c0 + sub, peak


def remove_translation_mode(shifts, angles_deg) -> np.ndarray:
    """Subtract the unobservable 3D translation: row mean, and the least-squares
    ``a cos(theta) + b sin(theta)`` fit of the column shifts."""
    s = np.array(shifts, float)
    th = np.deg2rad(angles_deg)
    s[:, 0] -= s[:, 0].mean()
    G = np.column_stack([np.cos(th), np.sin(th)])
    coef, *_ = np.linalg.lstsq(G, s[:, 1], rcond=None)
    s[:, 1] -= G @ coef
    return s


def _bin_stack(stack, b):
    if b == 1:
        return np.asarray(stack, np.float32)
    n, r, c = np.shape(stack)
    r2, c2 = r // b, c // b
    return np.asarray(stack[:, :r2 * b, :c2 * b], np.float32).reshape(n, r2, b, c2, b).mean(axis=(2, 4))


def _normcc(a, b):
    a = a - a.mean()
    b = b - b.mean()
    d = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / d) if d > 0 else 0.0


# --- coarse ----------------------------------------------------------------------------------------

def coarse_align(stack, angles_deg, *, psi_deg: float = 0.0, max_shift_px: float | None = None,
                 highpass: float = 0.02, lowpass: float = 0.25) -> np.ndarray:
    """Coarse shifts (tilt, 2) by cross-correlating cosine-stretched neighbours outward from zero tilt."""
    ang = np.asarray(angles_deg, float)
    n = ang.size
    order = np.argsort(ang)
    i0 = int(np.argmin(np.abs(ang)))
    pos0 = int(np.nonzero(order == i0)[0][0])
    shape = np.shape(stack)[1:]
    band = _bandpass(shape, highpass, lowpass)
    rot = [align_image(stack[i], psi_deg=psi_deg, order=1) for i in range(n)]
    shifts_al = np.zeros((n, 2))  # in the axis-vertical frame
    for direction in (1, -1):
        prev = i0
        p = pos0 + direction
        while 0 <= p < n:
            i = int(order[p])
            k = np.cos(np.deg2rad(ang[i])) / max(np.cos(np.deg2rad(ang[prev])), 1e-3)
            moving = align_image(rot[i], stretch=k, order=1)
            d, _ = cc_shift(moving, rot[prev], band=band, max_shift=max_shift_px)
            # measured d = s_i / k - s_prev (column), s_i - s_prev (row); see module docstring
            shifts_al[i, 0] = d[0] + shifts_al[prev, 0]
            shifts_al[i, 1] = k * (d[1] + shifts_al[prev, 1])
            prev = i
            p += direction
    R = rotation(psi_deg)
    return shifts_al @ R.T


# --- projection matching ---------------------------------------------------------------------------

def leave_one_out_reprojections(aligned, angles_deg, *, thickness: int, filter: str = "hann",
                                sirt_iterations: int | None = None) -> np.ndarray:
    """Re-projection of each view from a weighted back-projection of all the *other* views.

    The full reconstruction is re-projected once, and each view's own contribution (its filtered,
    weighted back-projection re-projected at its own angle) is subtracted, so an image is never
    compared with itself (no self-consistency bias in projection matching).
    """
    from cryomat.tomography.projector import backproject_chunk, project_chunk
    from cryomat.tomography.reconstruct import angular_weights, filter_projections, ramp_filter

    ang = np.asarray(angles_deg, float)
    n, ny, nx = aligned.shape
    resp = ramp_filter(nx, kind=filter, sirt_iterations=sirt_iterations)
    w = angular_weights(ang)
    pt = filter_projections(np.ascontiguousarray(aligned.transpose(0, 2, 1)), resp)
    vol = backproject_chunk(pt, ang, nz=thickness, nx=nx, weights=w)
    rp = project_chunk(vol, ang, n_t=nx)
    for i in range(n):
        own = backproject_chunk(pt[i:i + 1], ang[i:i + 1], nz=thickness, nx=nx, weights=w[i:i + 1])
        rp[i] -= project_chunk(own, ang[i:i + 1], n_t=nx)[0]
    return np.ascontiguousarray(rp.transpose(0, 2, 1))


def _reprojection_round(stack, ang, shifts, psi, thickness, band, max_shift, sirt_iterations):
    al = align_stack(stack, shifts=shifts, psi_deg=psi, order=1)
    rp = leave_one_out_reprojections(al, ang, thickness=thickness, sirt_iterations=sirt_iterations)
    d = np.zeros((ang.size, 2))
    score = np.zeros(ang.size)
    for i in range(ang.size):
        d[i], _ = cc_shift(al[i], rp[i], band=band, max_shift=max_shift)
        score[i] = _normcc(al[i] * _taper(al[i].shape), rp[i] * _taper(al[i].shape))
    return d, score


def _psi_score(stack, ang, shifts, psi, mask_frac=0.1):
    """Common-line consistency of the tilt axis ``psi``: with the axis right, every image summed
    perpendicular to the axis gives the same 1D profile (the projection of the specimen onto the
    axis); returns the mean correlation of the band-passed profiles with their mean."""
    al = align_stack(stack, shifts=shifts, psi_deg=psi, order=1)
    n, ny, nx = al.shape
    wcol = _taper((1, nx), 0.15)[0]
    prof = (al * wcol[None, None, :]).sum(axis=2)
    prof = prof[:, int(mask_frac * ny):ny - int(mask_frac * ny)]
    f = np.fft.rfftfreq(prof.shape[1])
    bp = (1 - np.exp(-(f / 0.02) ** 2)) * np.exp(-(f / 0.25) ** 2)
    prof = np.fft.irfft(np.fft.rfft(prof - prof.mean(axis=1, keepdims=True), axis=1) * bp, n=prof.shape[1], axis=1)
    # shift-invariant along the axis: each profile's best 1D correlation with the mean profile
    fp = np.fft.rfft(prof, axis=1)
    nrm = np.sqrt((prof ** 2).sum(axis=1))
    for _ in range(2):
        fm = np.conj(fp.mean(axis=0))
        cc = np.fft.irfft(fp * fm[None], n=prof.shape[1], axis=1)
        k = np.argmax(cc, axis=1)
        ph = np.exp(-2j * np.pi * np.fft.rfftfreq(prof.shape[1])[None] * (-k[:, None]))
        fp = fp * ph  # integer re-centring; the score below uses the parabolic peak height
    mean_nrm = np.sqrt((np.fft.irfft(fp.mean(axis=0), n=prof.shape[1]) ** 2).sum())
    cc = np.fft.irfft(fp * np.conj(fp.mean(axis=0))[None], n=prof.shape[1], axis=1)
    m = prof.shape[1]
    pk = []
    for row in cc:
        j = int(np.argmax(row))
        ym, y0, yp = row[j - 1], row[j], row[(j + 1) % m]
        den = ym - 2 * y0 + yp
        pk.append(y0 - 0.125 * (ym - yp) ** 2 / den if den < 0 else y0)
    return float(np.mean(np.asarray(pk) / np.maximum(nrm * mean_nrm, 1e-12)))


def find_tilt_axis(stack, angles_deg, shifts_px, *, psi_deg: float = 0.0, range_deg: float = 3.0,
                   tol_deg: float = 0.02) -> float:
    """Tilt-axis direction (deg) maximising the common-line consistency score near ``psi_deg``
    (coarse grid then golden-section search)."""
    grid = psi_deg + np.linspace(-range_deg, range_deg, 13)
    sc = [_psi_score(stack, angles_deg, shifts_px, g) for g in grid]
    j = int(np.argmax(sc))
    step = grid[1] - grid[0]
    a, b = grid[max(j - 1, 0)], grid[min(j + 1, len(grid) - 1)]
    if a == b:
        return float(grid[j])
    gr = (np.sqrt(5) - 1) / 2
    c, d = b - gr * (b - a), a + gr * (b - a)
    fc, fd = _psi_score(stack, angles_deg, shifts_px, c), _psi_score(stack, angles_deg, shifts_px, d)
    while b - a > tol_deg:
        if fc > fd:
            b, d, fd = d, c, fc
            c = b - gr * (b - a)
            fc = _psi_score(stack, angles_deg, shifts_px, c)
        else:
            a, c, fc = c, d, fd
            d = a + gr * (b - a)
            fd = _psi_score(stack, angles_deg, shifts_px, d)
    del step
    return float(0.5 * (a + b))


def find_axis_orientation(stack, angles_deg, *, step_deg: float = 5.0, work_px: int = 96) -> float:
    """Coarse tilt-axis direction (deg, in [-90, 90)) when nothing is known about it: for each candidate
    the coarse shifts are estimated and the common-line consistency is scored (images binned to
    about ``work_px``); with views 180 deg apart, their mirror symmetry across the axis is scored
    instead. The best candidate is returned for :func:`align_tilt_series` to refine."""
    st = np.asarray(stack)
    b = max(1, int(round(min(st.shape[1:]) / work_px)))
    sb = _bin_stack(st, b)
    ang = np.asarray(angles_deg, float)
    # views 180 deg apart are mirror images across the tilt axis: the strongest clue when present
    pairs = [(i, int(np.argmin(np.abs(ang - (a + 180.0))))) for i, a in enumerate(ang) if a + 180.0 <= ang.max() + 0.5]
    pairs = [(i, j) for i, j in pairs if abs(ang[j] - ang[i] - 180.0) < 0.5]
    best, best_sc = 0.0, -np.inf
    for psi in np.arange(-90.0, 90.0, step_deg):
        if pairs:
            sc = float(np.mean([cc_shift(align_image(sb[j], psi_deg=psi, order=1)[:, ::-1],
                                         align_image(sb[i], psi_deg=psi, order=1))[1] for i, j in pairs]))
        else:
            sh = coarse_align(sb, ang, psi_deg=psi, max_shift_px=sb.shape[2] / 4)
            sc = _psi_score(sb, ang, sh, psi)
        if sc > best_sc:
            best, best_sc = float(psi), sc
    return best


def align_tilt_series(stack, angles_deg, *, psi_deg: float = 0.0, refine_psi: bool = True,
                      psi_range_deg: float = 2.0, iterations: int = 3, full_iterations: int = 1, refine: str = "rows",
                      thickness: int | None = None,
                      bin_to: int = 192, max_shift_px: float | None = None, lowpass: float = 0.25,
                      sirt_iterations: int | None = 10) -> Alignment:
    """Fiducial-less alignment of a tilt series (see module docstring).

    Parameters
    ----------
    stack : (tilt, row, col) raw tilt images.
    angles_deg : (tilt,) tilt angles (deg).
    psi_deg : starting tilt-axis direction (deg from the row axis, counter-clockwise as displayed).
    refine_psi : search the axis direction within ``psi_deg +/- psi_range_deg``.
    iterations : rounds of tilt-axis search (each followed by new coarse shifts), on binned images.
    full_iterations : projection-matching rounds at full size.
    refine : what projection matching changes: ``"full"`` (both shift components), ``"rows"`` (along
        the tilt axis only; across it, views at the ends of the tilt range are biased by the missing
        wedge, see ``benchmarks/bench_tomo.py``), or ``"none"`` (only measure the residual).
    thickness : depth (voxels, at full size) of the reconstruction used for matching
        (default: half the width).
    bin_to : coarse alignment and the axis search run on images binned to about this width.
    max_shift_px : largest shift searched (full-size pixels; default a quarter of the width).
    lowpass : low-pass of the correlations (cycles/px at the working size).
    sirt_iterations : SIRT-like filter of the matching reconstruction (None: plain WBP).

    Returns
    -------
    Alignment
    """
    st = np.asarray(stack)
    if st.ndim != 3:
        raise ValueError(f"tilt series must be (tilt, row, col), got shape {st.shape}")
    ang = np.asarray(angles_deg, float)
    if ang.size != st.shape[0]:
        raise ValueError(f"{ang.size} angles for {st.shape[0]} images")
    n, ny, nx = st.shape
    b = max(1, int(round(min(ny, nx) / bin_to))) if bin_to else 1
    sb = _bin_stack(st, b)
    T = thickness or nx // 2
    max_shift = max_shift_px or nx / 4
    if refine not in ("full", "rows", "none"):
        raise ValueError(f"refine must be 'full', 'rows' or 'none', got {refine!r}")
    shifts = remove_translation_mode(
        coarse_align(sb, ang, psi_deg=psi_deg, max_shift_px=max_shift / b, lowpass=lowpass) * b, ang)
    psi = float(psi_deg)
    history = []
    # binned rounds: axis search (common lines), then the coarse shifts again at the new axis
    for it in range(max(1, iterations) if refine_psi else 0):
        psi = find_tilt_axis(sb, ang, shifts / b, psi_deg=psi, range_deg=max(0.25, psi_range_deg / (2 ** it)))
        shifts = remove_translation_mode(coarse_align(sb, ang, psi_deg=psi, max_shift_px=max_shift / b,
                                                      lowpass=lowpass) * b, ang)
        history.append({"stage": "axis", "bin": b, "psi_deg": psi})
    if b > 1:  # the coarse shifts at full size, starting from the binned ones
        shifts = remove_translation_mode(coarse_align(st, ang, psi_deg=psi, max_shift_px=max_shift,
                                                      lowpass=lowpass), ang)
    coarse = shifts.copy()
    # projection matching at full size against leave-one-out re-projections
    band_f = _bandpass(st.shape[1:], 0.02 / b, lowpass)
    resid = np.full(n, np.nan)
    score = np.full(n, np.nan)
    for it in range(full_iterations):
        d, score = _reprojection_round(st, ang, shifts, psi, T, band_f, max(3.0, 2.0 * b), sirt_iterations)
        resid = np.hypot(d[:, 0], d[:, 1])
        if refine == "rows":
            d[:, 1] = 0.0
        if refine != "none":
            shifts = remove_translation_mode(shifts + d @ rotation(psi).T, ang)
        history.append({"stage": "projection matching", "bin": 1, "psi_deg": psi, "refine": refine,
                        "mean_correction_px": float(resid.mean()), "mean_cc": float(score.mean())})
    return Alignment(angles_deg=ang, shifts_px=shifts, psi_deg=psi, coarse_shifts_px=coarse, residual_px=resid,
                     score=score, history=history)


def shift_error(estimated, true, angles_deg) -> np.ndarray:
    """Per-tilt error (pixels) between shift sets after removing the unobservable 3D translation."""
    e = remove_translation_mode(np.asarray(estimated, float) - np.asarray(true, float), angles_deg)
    return np.hypot(e[:, 0], e[:, 1])
