"""Bragg reflections in the power spectrum: automatic finding and integrated intensity per frame.

Spectra are taken of the periodic component of each frame (Moisan's periodic-plus-smooth
decomposition, doi:10.1007/s10851-010-0227-1), so the cross-shaped edge streak does not pose as
reflections. The smooth component's spectrum is computed here directly in Fourier space from
1D FFTs of the border jumps, which costs O(N) per frame instead of two more 2D FFTs; it is
tested against :func:`cryomat.fourier.periodic_plus_smooth`.

The intensity of a reflection is the power summed over a disk around it minus the local
background under the disk (amorphous scattering, CTF rings, noise), a quadratic surface fitted
to a surrounding annulus and integrated over the disk, as in Bragg-spot fading studies (Glaeser 1971,
doi:10.1016/S0022-5320(71)90039-6; Egerton 2019, doi:10.1016/j.micron.2019.03.009).
"""

from __future__ import annotations

import numpy as np

from cryomat.fourier import frequency_grid


def rfft_frame(frame, *, workers: int = 2) -> np.ndarray:
    """Half-plane FFT (``rfft2`` layout) of a mean-subtracted frame, complex64 for float32 input."""
    import scipy.fft

    a = np.asarray(frame)
    a = a.astype(np.float32 if a.dtype != np.float64 else np.float64, copy=False)
    spec = scipy.fft.rfft2(a, workers=workers)
    spec[0, 0] = 0.0          # the same as subtracting the mean, without a pass over the frame
    return spec


def smooth_spectrum(frame, rows=None, cols=None) -> np.ndarray:
    """FFT of the smooth component s of ``frame`` (u = p + s) at rfft-layout indices.

    ``rows``/``cols`` are integer index arrays into the (M, N//2+1) half-plane; without them the
    whole half-plane is returned. Subtracting this from the frame's rfft gives the spectrum of the
    periodic component.
    """
    u = np.asarray(frame)
    m, n = u.shape
    # only the border jumps matter (a constant offset cancels), so the frame is never copied
    d_row = np.fft.fft(u[-1, :].astype(np.float64) - u[0, :])   # (n,)
    d_col = np.fft.fft(u[:, -1].astype(np.float64) - u[:, 0])   # (m,)
    if rows is None:
        # whole half-plane by broadcasting 1D factors (complex64 for float32 frames keeps 4k cheap)
        ct, ft = (np.complex128, np.float64) if u.dtype == np.float64 else (np.complex64, np.float32)
        q = np.arange(m)
        r = np.arange(n // 2 + 1)
        cq = (1 - np.exp(2j * np.pi * q / m)).astype(ct)
        cr = (1 - np.exp(2j * np.pi * r / n)).astype(ct)
        den = (2 * np.cos(2 * np.pi * q / m) - 2)[:, None].astype(ft) + \
            (2 * np.cos(2 * np.pi * r / n) - 2)[None, :].astype(ft)
        den[0, 0] = 1.0
        out = d_row[r].astype(ct)[None, :] * cq[:, None]
        out += d_col.astype(ct)[:, None] * cr[None, :]
        out /= den
        out[0, 0] = 0.0
        return out
    q, r = np.asarray(rows), np.asarray(cols)
    v = d_row[r] * (1 - np.exp(2j * np.pi * q / m)) + d_col[q] * (1 - np.exp(2j * np.pi * r / n))
    den = 2 * np.cos(2 * np.pi * q / m) + 2 * np.cos(2 * np.pi * r / n) - 4
    den = np.where((q == 0) & (r == 0), 1.0, den)
    s = v / den
    return np.where((q == 0) & (r == 0), 0.0, s)


def _half_index(shape, dq, dc):
    """Map full-plane FFT offsets (row, col; any sign) to rfft half-plane indices (Hermitian)."""
    m, n = shape
    dq = np.asarray(dq)
    dc = np.asarray(dc)
    flip = dc < 0
    q = np.where(flip, -dq, dq) % m
    c = np.where(flip, -dc, dc)
    return q, c


def find_reflections(power, *, pixel_size: float, n_frames: int = 1, min_d_A: float | None = None,
                     max_d_A: float | None = None, z_threshold: float = 12.0, radius_px: int = 2,
                     max_reflections: int = 60):
    """Find crystalline reflections in a (summed) power spectrum of early frames.

    Parameters
    ----------
    power : (row, col) power spectrum, fftshift-ed (zero frequency at ``shape // 2``), of the
        periodic component, summed over ``n_frames`` frames.
    pixel_size : A per pixel.
    n_frames : how many frames were summed (the noise of a pixel is mean / sqrt(n_frames)).
    min_d_A, max_d_A : accepted d-spacing range (A); default from 2.2 pixels to 1/8 of the field.
    z_threshold : detection threshold, in standard deviations of the background-subtracted disk sum.
    radius_px : disk radius used for detection (px).
    max_reflections : keep the strongest Friedel pairs up to this number.

    Returns
    -------
    pandas.DataFrame with one row per Friedel pair (the half-plane member, col offset >= 0):
    ``reflection, row_px, col_px`` (offsets from zero frequency, sub-pixel), ``freq_per_A``,
    ``d_spacing_A``, ``angle_deg``, ``snr``.
    """
    import pandas as pd
    from scipy import ndimage

    p = np.asarray(power, dtype=np.float32)
    if p.ndim != 2:
        raise ValueError(f"power must be a 2D spectrum, got shape {p.shape}")
    m, n = p.shape
    c0 = np.array([m // 2, n // 2])
    r_in = int(radius_px)
    r_bg = 3 * r_in + 3
    box_in = ndimage.uniform_filter(p, 2 * r_in + 1, mode="wrap") * np.float32((2 * r_in + 1) ** 2)
    box_out = ndimage.uniform_filter(p, 2 * r_bg + 1, mode="wrap") * np.float32((2 * r_bg + 1) ** 2)
    area_in, area_bg = (2 * r_in + 1) ** 2, (2 * r_bg + 1) ** 2 - (2 * r_in + 1) ** 2
    bg = (box_out - box_in) / np.float32(area_bg)
    excess = box_in - np.float32(area_in) * bg
    z = excess / (np.maximum(bg, 1e-30) * np.float32(np.sqrt(area_in / max(n_frames, 1))))
    fr, fc = frequency_grid((m, n), pixel_size, shifted=True)
    kmin = 1.0 / max_d_A if max_d_A else 8.0 / (min(m, n) * pixel_size)
    kmax = 1.0 / min_d_A if min_d_A else 1.0 / (2.2 * pixel_size)
    cand_r, cand_c = np.nonzero(z > z_threshold)
    f_r, f_c = fr.ravel()[cand_r], fc.ravel()[cand_c]
    kk = np.hypot(f_r, f_c)
    # the half-plane only (Friedel mates are the same reflection), within the frequency range
    keep = (kk >= kmin) & (kk <= kmax) & ((f_c > 0) | ((f_c == 0) & (f_r > 0)))
    cand_r, cand_c = cand_r[keep], cand_c[keep]
    order = np.argsort(-z[cand_r, cand_c])[:20000]
    min_dist = max(r_in + 1, 3)
    peaks: list[tuple[int, int]] = []
    for j in order:                      # greedy non-maximum suppression, strongest first
        pr, pc = int(cand_r[j]), int(cand_c[j])
        if all(max(abs(pr - a), abs(pc - b)) > min_dist for a, b in peaks):
            peaks.append((pr, pc))
    rows = []
    for pr, pc in peaks:
        # sub-pixel centre: power-weighted centroid of the background-subtracted disk
        rr, cc = np.mgrid[-r_in:r_in + 1, -r_in:r_in + 1]
        pv = p[(pr + rr) % m, (pc + cc) % n] - bg[pr, pc]
        w = np.clip(pv, 0, None)
        sw = w.sum()
        dr = float((w * rr).sum() / sw) if sw > 0 else 0.0
        dcol = float((w * cc).sum() / sw) if sw > 0 else 0.0
        row_px, col_px = pr - c0[0] + dr, pc - c0[1] + dcol
        f_r, f_c = row_px / (m * pixel_size), col_px / (n * pixel_size)
        f = float(np.hypot(f_r, f_c))
        rows.append({"row_px": row_px, "col_px": col_px, "freq_per_A": f, "d_spacing_A": 1.0 / f,
                     "angle_deg": float(np.degrees(np.arctan2(-f_r, f_c))), "snr": float(z[pr, pc])})
    table = pd.DataFrame(rows, columns=["row_px", "col_px", "freq_per_A", "d_spacing_A", "angle_deg", "snr"])
    table = table.sort_values("snr", ascending=False).head(max_reflections)
    table = table.sort_values(["freq_per_A", "angle_deg"]).reset_index(drop=True)
    table.insert(0, "reflection", np.arange(len(table)))
    return table


def group_by_d_spacing(table, *, pixel_size: float, shape, tol_px: float = 1.5, tol_rel: float = 0.01) -> np.ndarray:
    """Shell label per reflection: reflections whose |g| agree within ``tol_px`` Fourier pixels
    (or ``tol_rel`` relative) share a d-spacing shell. Labels run from 0 (largest d)."""
    f = np.asarray(table["freq_per_A"], dtype=np.float64)
    if f.size == 0:
        return np.zeros(0, dtype=int)
    order = np.argsort(f)
    step = 1.0 / (min(shape) * pixel_size)
    labels = np.zeros(f.size, dtype=int)
    lab = 0
    for i in range(1, f.size):
        a, b = f[order[i - 1]], f[order[i]]
        if b - a > max(tol_px * step, tol_rel * b):
            lab += 1
        labels[order[i]] = lab
    return labels


class PatchIntegrator:
    """Integrated power of each reflection above its local background, from a frame's rfft.

    Parameters
    ----------
    table : reflections from :func:`find_reflections` (offsets ``row_px``, ``col_px``).
    shape : frame shape (row, col).
    radius_px : integration disk radius (px).
    bg_inner_px, bg_outer_px : background annulus radii (px).
    """

    def __init__(self, table, shape, *, radius_px: float = 3.0, bg_inner_px: float | None = None,
                 bg_outer_px: float | None = None):
        self.shape = tuple(shape)
        self.radius_px = float(radius_px)
        ri = float(bg_inner_px) if bg_inner_px is not None else self.radius_px + 2.0
        ro = float(bg_outer_px) if bg_outer_px is not None else ri + max(3.0, self.radius_px)
        self.bg_inner_px, self.bg_outer_px = ri, ro
        half = int(np.ceil(ro)) + 1
        rr, cc = np.mgrid[-half:half + 1, -half:half + 1]
        self._q, self._c, self._disk, self._ring, self._wring = [], [], [], [], []
        for row, col in zip(table["row_px"], table["col_px"]):
            ir, ic = int(round(row)), int(round(col))
            dr, dc = rr + ir - row, cc + ic - col
            dist = np.hypot(dr, dc)
            disk = dist <= self.radius_px
            ring = (dist >= ri) & (dist <= ro)
            q, c = _half_index(self.shape, rr + ir, cc + ic)
            keep = disk | ring
            self._q.append(q[keep])
            self._c.append(c[keep])
            self._disk.append(disk[keep])
            self._ring.append(ring[keep])
            # background under the disk: a quadratic surface fitted to the annulus and integrated
            # over the disk (a mean would be biased by the curvature of diffuse rings and CTF rings)
            def design(a, b):
                return np.stack([np.ones_like(a), a, b, a * a, a * b, b * b], axis=1)

            pinv = np.linalg.pinv(design(dr[ring], dc[ring]))
            self._wring.append(design(dr[disk], dc[disk]).sum(0) @ pinv)
        self.n = len(self._q)
        if self.n:
            self._all_q = np.concatenate(self._q)
            self._all_c = np.concatenate(self._c)
            self._splits = np.cumsum([q.size for q in self._q])[:-1]

    def __call__(self, spectrum, frame=None) -> tuple[np.ndarray, np.ndarray]:
        """Integrated intensity above background, and its background per pixel, of each reflection.

        ``spectrum`` is the frame's rfft (see :func:`rfft_frame`); when ``frame`` is given, the
        smooth component is removed first (periodic-plus-smooth).
        """
        if not self.n:
            return np.zeros(0), np.zeros(0)
        vals = np.asarray(spectrum[self._all_q, self._all_c], dtype=np.complex128)
        if frame is not None:
            vals = vals - smooth_spectrum(frame, self._all_q, self._all_c)
        pw = np.abs(vals) ** 2
        out, bgs = np.empty(self.n), np.empty(self.n)
        for i, part in enumerate(np.split(pw, self._splits)):
            ring = part[self._ring[i]]
            out[i] = float(part[self._disk[i]].sum() - self._wring[i] @ ring)
            bgs[i] = float(np.mean(ring))
        return out, bgs
