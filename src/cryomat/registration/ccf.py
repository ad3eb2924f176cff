"""Cross-correlation machinery on Fourier-cropped half spectra.

Frames are turned once into low-pass, Fourier-cropped half spectra (``rfft2`` layout). Their
cross-power spectrum, B-factor filtered and with zero DC, gives a *cropped* cross-correlation on a
coarse grid (fast); its peak is then refined by evaluating the band-limited CCF exactly on fine
grids with matrix DFTs (Guizar-Sicairos et al. 2008, doi:10.1364/OL.33.000156) and a final
parabolic fit. Shifts are in pixels of the original frames, numpy order (row, col).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

_FFT_WORKERS = 2
_POOL = None


def _pool():
    """Two worker threads (numpy and scipy.fft release the GIL in their array operations)."""
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=_FFT_WORKERS, thread_name_prefix="cryomat-reg")
    return _POOL


def _forget_pool() -> None:
    """In a forked child the parent's worker threads do not exist: start a new pool there."""
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _workers(size: int) -> int:
    """FFT threads: 2 for frames of 1024^2 px and more; 1 below, where thread start-up and, on a
    busy machine, waiting for the second core cost more than the transform."""
    return _FFT_WORKERS if size >= 1024 * 1024 else 1


def blas_single():
    """Context that pins BLAS to one thread: the small complex matrix products of the subpixel
    refinement are ~50x slower with a multi-threaded BLAS on a busy 2-core machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn/scipy stacks
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(1, user_api="blas")


@dataclass
class Spectra:
    """Fourier-cropped half spectra of a frame stack.

    Attributes
    ----------
    data : (n, mr, mc//2 + 1) complex64, low-pass half spectra (DC set to zero).
    kr, kc : (mr,), (mc//2 + 1,) spatial frequencies in cycles per original pixel.
    shape : (rows, cols) of the original frames.
    filt : (mr, mc//2 + 1) float32, B-factor filter exp(-B k^2 / 4) with DC zeroed.
    hermite : (mc//2 + 1,) float32, 1 for the DC/Nyquist columns and 2 for the others (real-part sums).
    noise_floor : float or None, expected shot-noise power per Fourier coefficient (counting data:
        sum over pixels of counts x gain x taper^2), None when the frames do not look like counts.
    """

    data: np.ndarray
    kr: np.ndarray
    kc: np.ndarray
    shape: tuple[int, int]
    filt: np.ndarray
    hermite: np.ndarray
    noise_floor: float | None = None

    @property
    def ccf_shape(self) -> tuple[int, int]:
        return (len(self.kr), 2 * (len(self.kc) - 1))

    @property
    def ccf_step(self) -> tuple[float, float]:
        """Original pixels per CCF grid cell along (row, col)."""
        mr, mc = self.ccf_shape
        return (self.shape[0] / mr, self.shape[1] / mc)

    def mean_power(self) -> np.ndarray:
        """Mean power spectrum of the frames (float64), drift invariant; computed once and cached."""
        cached = self.__dict__.get("_mean_power")
        if cached is None:
            d = self.data
            acc = np.zeros((d.shape[1], 2 * d.shape[2]), np.float64)
            for lo in range(0, d.shape[0], 4):  # float32 squares of (re, im), summed in small blocks
                v = d[lo:lo + 4].view(np.float32)
                acc += np.einsum("fij,fij->ij", v, v)
            cached = (acc[:, 0::2] + acc[:, 1::2]) / max(d.shape[0], 1)
            self.__dict__["_mean_power"] = cached
        return cached

    def ramp(self, shift_rc) -> np.ndarray:
        """exp(+2 pi i k.s): multiplying a spectrum by it moves the image by ``-shift`` (undoes ``shift``)."""
        er = np.exp(2j * np.pi * self.kr * float(shift_rc[0])).astype(np.complex64)
        ec = np.exp(2j * np.pi * self.kc * float(shift_rc[1])).astype(np.complex64)
        return er[:, None] * ec[None, :]


def crop_size(n: int, k_max: float, max_size: int) -> int:
    """Even crop size that keeps |k| <= k_max (cycles/px) of an axis of length n, at most max_size."""
    m = int(2 * np.ceil(k_max * n))
    m = max(16, min(m, int(max_size), n))
    m -= m % 2
    return max(m, 2)


def taper(shape: tuple[int, int], fraction: float = 0.08) -> np.ndarray:
    """Separable cosine edge taper (1 inside, 0 at the border) over ``fraction`` of each axis."""
    out = []
    for n in shape:
        w = np.ones(n, np.float32)
        e = max(1, int(round(fraction * n)))
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(e) + 0.5) / e)
        w[:e] = ramp
        w[n - e:] = ramp[::-1]
        out.append(w)
    return out[0][:, None] * out[1][None, :]


def bfactor_filter(kr, kc, bfactor_px2: float) -> np.ndarray:
    """exp(-B k^2 / 4) on the (kr, kc) grid (k in cycles/px, B in px^2), DC set to 0."""
    k2 = kr[:, None] ** 2 + kc[None, :] ** 2
    f = np.exp(-float(bfactor_px2) * k2 / 4.0).astype(np.float32)
    f[0, 0] = 0.0
    return f


def make_spectra(frames, *, bfactor_px2: float = 300.0, max_size: int = 1024, corrector=None,
                 edge_taper: float = 0.08, frame_indices=None, progress_desc: str = "spectra") -> Spectra:
    """Low-pass, Fourier-cropped half spectra of every frame, reading one frame at a time.

    Each frame is corrected (``corrector``), its mean removed, edge-tapered, Fourier transformed
    in full and cropped to the frequencies the B-factor filter keeps (filter > 1e-3), at most
    ``max_size`` per axis. For a 4096^2 movie this keeps about 0.3% of the data per frame.
    """
    from cryomat.progress import progress

    shape = tuple(int(s) for s in frames.shape[-2:])
    n = frames.shape[0] if frame_indices is None else len(frame_indices)
    idx = range(frames.shape[0]) if frame_indices is None else frame_indices
    k_max = min(0.5, float(np.sqrt(4.0 * np.log(1e3) / max(bfactor_px2, 1e-6))))
    mr = crop_size(shape[0], k_max, max_size)
    mc = crop_size(shape[1], k_max, max_size)
    rows = np.r_[0:mr // 2, shape[0] - mr // 2:shape[0]]
    ncols = mc // 2 + 1
    kr = np.fft.fftfreq(shape[0])[rows]
    kc = np.fft.rfftfreq(shape[1])[:ncols]
    if mr == shape[0]:
        kr = np.fft.fftfreq(shape[0])
        rows = np.arange(shape[0])
    win = taper(shape, edge_taper) if edge_taper else None
    out = np.empty((n, len(kr), ncols), np.complex64)
    g = getattr(corrector, "gain", None) if corrector is not None else None
    w2 = (win**2).astype(np.float32) if win is not None else np.ones(shape, np.float32)
    if g is not None:
        w2 = w2 * np.asarray(g, np.float32)
    idx = list(idx)
    # the mean is removed after the transform: FT((a - m) w) = FT(a w) - m FT(w) (one pass less)
    wspec = _crop_rfft2((win if win is not None else np.ones(shape, np.float32))[None], rows, ncols, 1)[0]

    def one(j):
        """Spectrum of frame idx[j] into out[j]; the shot-noise power of the first 4 frames."""
        blk = _read_block(frames, [idx[j]], corrector, win)
        if blk.ndim != 3 or blk.shape[1:] != shape:
            raise ValueError(f"frame {idx[j]} is not a 2D image of shape {shape} (got {blk.shape[1:]})")
        f = _crop_rfft2(blk, rows, ncols, _workers(blk.size) if n < 4 else 1)[0]
        m = np.complex64(f[0, 0].real / wspec[0, 0].real)  # the frame's windowed mean
        np.multiply(wspec, m, out=out[j])
        np.subtract(f, out[j], out=out[j])
        out[j, 0, 0] = 0.0
        if j >= 4:  # the floor is an average: 4 frames give it to < 0.1%
            return None
        raw = _read_block(frames, [idx[j]], corrector, None)[0]
        if float(raw.mean(dtype=np.float64)) < 20.0 and float(raw.min()) >= 0.0:
            return float(np.vdot(raw.ravel(), w2.ravel()))  # counting data: Poisson variance = mean (x gain)
        return np.nan

    # frames are transformed one at a time (cache-sized), on two threads where there are several
    jobs = _pool().map(one, range(n)) if n >= 4 and _FFT_WORKERS > 1 else map(one, range(n))
    noise = [v for v in progress(jobs, total=n, desc=progress_desc) if v is not None]
    herm = np.full(ncols, 2.0, np.float32)
    herm[0] = 1.0
    if mc % 2 == 0:
        herm[-1] = 1.0
    nf = float(np.mean(noise)) if noise and np.all(np.isfinite(noise)) else None
    return Spectra(out, kr, kc, shape, bfactor_filter(kr, kc, bfactor_px2), herm, nf)


def _read_block(frames, sel, corrector, win) -> np.ndarray:
    """Frames ``sel`` as a new (k, row, col) float32 array, corrected and multiplied by ``win``."""
    if corrector is not None:
        blk = np.stack([np.asarray(corrector(frames[i]), dtype=np.float32) for i in sel])
        if win is not None:
            blk *= win
        return blk
    if sel == list(range(sel[0], sel[0] + len(sel))):
        src = frames[sel[0]:sel[0] + len(sel)]
    else:
        src = np.stack([np.asarray(frames[i]) for i in sel])
    if win is None:
        return np.array(src, dtype=np.float32)
    src = np.asarray(src)
    if src.dtype == np.float32:
        return src * win  # one pass: read, multiply, write
    return np.asarray(src, dtype=np.float32) * win


def _crop_rfft2(blk, rows, ncols, workers) -> np.ndarray:
    """Half spectrum of real images ``blk`` (..., row, col) cropped to ``rows`` x ``ncols`` (complex64).
    Where columns are cropped, only the kept columns are transformed along the rows (a pruned rfft2)."""
    nr, nc_full = blk.shape[-2], blk.shape[-1] // 2 + 1
    if ncols >= nc_full:
        f = sfft.rfft2(blk, workers=workers)
    else:
        f1 = np.ascontiguousarray(sfft.rfft(blk, axis=-1, workers=workers)[..., :ncols])
        f = sfft.fft(f1, axis=-2, workers=workers, overwrite_x=True)
    if len(rows) < nr:
        f = f[..., rows, :]
    return f.astype(np.complex64, copy=False)


def _dft_eval(xs, kr, kc, herm, rows_px, cols_px) -> np.ndarray:
    """Band-limited CCF (real part) at the grid ``rows_px`` x ``cols_px`` (px) from half spectrum ``xs``."""
    dt = xs.dtype
    er = np.exp(2j * np.pi * np.outer(rows_px, kr)).astype(dt)
    ec = np.exp(2j * np.pi * np.outer(kc, cols_px)).astype(dt)
    return np.real(er @ (xs @ ec)).astype(np.float64)


def _parabolic(v_m, v_0, v_p) -> float:
    d = v_m - 2 * v_0 + v_p
    return 0.0 if d >= 0 else float(np.clip(0.5 * (v_m - v_p) / d, -0.5, 0.5))


def ccf_peak(cross, spec: Spectra, *, center_px=(0.0, 0.0), radius_px: float | None = None,
             refine: bool = True) -> tuple[np.ndarray, float]:
    """Peak of the CCF whose (filtered) half cross-power spectrum is ``cross``.

    The peak is searched within ``radius_px`` of ``center_px`` (original pixels; ``None`` = the
    whole cropped CCF) and refined to about 0.005 px. Returns (shift_rc_px, peak_value).
    """
    mr, mc = spec.ccf_shape
    sr, sc = spec.ccf_step
    herm = spec.hermite
    if refine and radius_px is not None and radius_px <= 4.0 and max(sr, sc) <= 1.0:
        # small search window: evaluate the band-limited CCF directly on a 0.5 px grid around the
        # centre (matrix DFT), cheaper than the whole CCF; then the same refinement
        xw = np.asarray(cross, dtype=np.complex64) * herm[None, :]
        g = np.arange(-np.ceil(radius_px), np.ceil(radius_px) + 0.25, 0.5)
        offs_r, offs_c = center_px[0] + g, center_px[1] + g
        v = _dft_eval(xw, spec.kr, spec.kc, herm, offs_r, offs_c)
        v = np.where(g[:, None] ** 2 + g[None, :] ** 2 <= radius_px**2 + 1e-9, v, -np.inf)
        a, b = np.unravel_index(int(np.argmax(v)), v.shape)
        return _refine(xw, spec, np.array([offs_r[a], offs_c[b]]), np.array([0.5, 0.5]), center_px, radius_px)
    c = sfft.irfft2(cross, s=(mr, mc), workers=_workers(mr * mc))
    rr = np.fft.fftfreq(mr, 1.0 / mr) * sr
    cc = np.fft.fftfreq(mc, 1.0 / mc) * sc
    if radius_px is not None:
        dr = rr - center_px[0]
        dc = cc - center_px[1]
        # distances on the periodic CCF grid
        hr, hc = spec.shape[0] / 1.0, spec.shape[1] / 1.0
        dr = (dr + hr / 2) % hr - hr / 2
        dc = (dc + hc / 2) % hc - hc / 2
        inside = dr[:, None] ** 2 + dc[None, :] ** 2 <= max(radius_px, max(sr, sc)) ** 2
        c = np.where(inside, c, -np.inf)
    i, j = np.unravel_index(int(np.argmax(c)), c.shape)
    pos = np.array([rr[i], cc[j]], float)
    peak = float(c[i, j]) * mr * mc
    if not refine:
        return pos, peak
    xw = np.asarray(cross, dtype=np.complex64) * herm[None, :]
    return _refine(xw, spec, pos, np.array([sr, sc]), center_px, radius_px)


def _refine(xw, spec: Spectra, pos, step, center_px, radius_px) -> tuple[np.ndarray, float]:
    """Refine a CCF peak at ``pos`` (grid spacing ``step`` px) with two 4x finer DFT stages and a parabola."""
    sr, sc = spec.ccf_step
    herm = spec.hermite
    n = 9
    for _ in range(2):  # each stage spans +-1 spacing of the previous one, 4x finer; then a parabola
        offs_r = pos[0] + np.linspace(-1.0, 1.0, n) * step[0]
        offs_c = pos[1] + np.linspace(-1.0, 1.0, n) * step[1]
        v = _dft_eval(xw, spec.kr, spec.kc, herm, offs_r, offs_c)
        a, b = np.unravel_index(int(np.argmax(v)), v.shape)
        pos = np.array([offs_r[a], offs_c[b]])
        peak = float(v[a, b])
        step = step * (2.0 / (n - 1))
        if radius_px is not None and np.hypot(*(pos - np.asarray(center_px))) > radius_px + max(sr, sc):
            break
    a = int(np.clip(a, 1, v.shape[0] - 2))
    b = int(np.clip(b, 1, v.shape[1] - 2))
    pos = pos + np.array([_parabolic(v[a - 1, b], v[a, b], v[a + 1, b]) * step[0],
                          _parabolic(v[a, b - 1], v[a, b], v[a, b + 1]) * step[1]])
    return pos, peak


def norm(xs, spec: Spectra) -> float:
    """sqrt of the filtered power of a half spectrum (Parseval with the Hermitian weights)."""
    return float(np.sqrt(np.sum(spec.hermite[None, :] * spec.filt * (np.abs(xs) ** 2))))


def choose_bfactor(spec: Spectra, *, candidates=None, floor: float | None = None, weight=None) -> float:
    """B-factor (px^2) of the CCF low-pass that maximises the expected CCF peak-to-noise.

    The frames' mean power spectrum P(k) is drift invariant. With the white noise floor N
    (``floor``, or the 10th percentile of the radial profile of P) the signal is S = P - N and the
    expected peak-to-noise of a filter f is proportional to sum f S / sqrt(sum f^2 P^2); we pick
    the B of f = exp(-B k^2 / 4) that maximises it. Low-dose phase-contrast images keep most of
    their signal at mid frequencies (CTF), where a strong low-pass would throw it away.
    """
    p = spec.mean_power()
    k2 = spec.kr[:, None] ** 2 + spec.kc[None, :] ** 2
    herm = spec.hermite[None, :].astype(np.float64)
    if floor is None:
        floor = spec.noise_floor
    if floor is None:
        kk = np.sqrt(k2)
        bins = np.minimum((kk / 0.5 * 64).astype(int), 64)
        prof = np.bincount(bins.ravel(), weights=p.ravel(), minlength=65) / np.maximum(
            np.bincount(bins.ravel(), minlength=65), 1)
        valid = prof[4:64]
        valid = valid[valid > 0]
        floor = float(np.percentile(valid, 10)) if valid.size else 0.0
    sig = np.clip(p - floor, 0, None)
    sig[0, 0] = 0.0
    if candidates is None:
        candidates = np.logspace(0.5, 4.0, 22)
    # the low-pass depends on |k| only: the 2D sums fold into fine |k| bins (4096 up to the corner,
    # where exp(-B k^2/4) changes by < 3% across a bin for every candidate B), then all B at once
    wt = herm if weight is None else herm * np.asarray(weight, np.float64)
    num_w = wt * sig
    den_w = (wt if weight is None else wt * np.asarray(weight, np.float64)) * p**2
    num_w[0, 0] = den_w[0, 0] = 0.0
    kk = np.sqrt(k2).ravel()
    nb = 4096
    b_idx = np.minimum((kk / max(kk.max(), 1e-12) * nb).astype(np.int64), nb - 1)
    cnt = np.maximum(np.bincount(b_idx, minlength=nb), 1)
    k2_bin = np.bincount(b_idx, weights=k2.ravel(), minlength=nb) / cnt
    num = np.bincount(b_idx, weights=num_w.ravel(), minlength=nb)
    den = np.bincount(b_idx, weights=den_w.ravel(), minlength=nb)
    cand = np.asarray(candidates, np.float64)
    f = np.exp(-cand[:, None] * k2_bin[None, :] / 4.0)
    q = (f @ num) / np.sqrt((f**2) @ den + 1e-300)
    return float(cand[int(np.argmax(q))])


def with_bfactor(spec: Spectra, bfactor_px2: float) -> Spectra:
    """The same spectra with a new B-factor filter, re-cropped to the band it keeps."""
    k_max = min(0.5, float(np.sqrt(4.0 * np.log(1e3) / max(bfactor_px2, 1e-6))))
    mr = crop_size(spec.shape[0], k_max, len(spec.kr))
    mc = crop_size(spec.shape[1], k_max, spec.ccf_shape[1])
    if mr < len(spec.kr):
        rows = np.r_[0:mr // 2, len(spec.kr) - mr // 2:len(spec.kr)]
    else:
        rows = np.arange(len(spec.kr))
    nc = min(mc // 2 + 1, len(spec.kc))
    if len(rows) == len(spec.kr) and nc == len(spec.kc):
        data = spec.data  # nothing to crop: no copy
    else:
        data = np.ascontiguousarray(spec.data[:, rows, :nc])
    kr, kc = spec.kr[rows], spec.kc[:nc]
    herm = np.full(nc, 2.0, np.float32)
    herm[0] = 1.0
    if nc == len(spec.kc):
        herm[-1] = spec.hermite[-1]
    else:
        herm[-1] = 1.0 if (2 * (nc - 1)) % 2 == 0 else 2.0
    out = Spectra(data, kr, kc, spec.shape, bfactor_filter(kr, kc, bfactor_px2), herm, spec.noise_floor)
    cached = spec.__dict__.get("_mean_power")
    if cached is not None:  # the same frames: keep the mean power (cropped alike)
        out.__dict__["_mean_power"] = cached if data is spec.data else cached[rows][:, :nc]
    return out


def snr_weight(spec: Spectra, *, n_sigma: float = 4.0) -> np.ndarray:
    """Per-frequency signal-to-noise weight S / (S + N) from the drift-invariant mean power spectrum.

    S has an isotropic part (the radial profile above the white noise floor N: Thon rings of an
    amorphous film; at 0.1 e/px it is only ~2% of N per pixel but spread over many pixels) and a
    sharp part (pixels more than ``n_sigma`` standard errors above the ring: Bragg spots). Using
    it in the CCF filter is a matched filter: at 0.1 e/px a lattice is then correlated on its
    Bragg spots, not on the shot noise between them. N is the exact shot-noise power for counting
    data, else the 5th percentile of the radial profile.
    """
    n = spec.data.shape[0]
    p = spec.mean_power()
    k = np.sqrt(spec.kr[:, None] ** 2 + spec.kc[None, :] ** 2)
    nmin = min(spec.shape)
    ring = np.minimum(np.rint(k * nmin).astype(np.int64), int(nmin))
    wts = np.broadcast_to(spec.hermite[None, :], p.shape)
    cnt = np.bincount(ring.ravel(), weights=wts.ravel(), minlength=nmin + 1)
    prof = np.bincount(ring.ravel(), weights=(wts * p).ravel(), minlength=nmin + 1) / np.maximum(cnt, 1e-12)
    radial = prof[ring]
    if spec.noise_floor is not None:
        floor = spec.noise_floor
    else:
        valid = prof[max(2, nmin // 40):nmin // 2]
        floor = float(np.percentile(valid, 5)) if valid.size else float(np.median(p))
    # a ring of c pixels averages n c exponential powers: keep it where it is 3 standard errors up
    smooth = np.clip(radial - floor * (1.0 + 3.0 / np.sqrt(n * np.maximum(cnt[ring], 1.0))), 0, None)
    sd = np.sqrt(smooth**2 + floor**2 / n)
    sharp = np.clip(p - radial - n_sigma * sd, 0, None)
    sig = smooth + sharp
    w = (sig / np.maximum(sig + floor, 1e-30)).astype(np.float32)
    w[0, 0] = 0.0
    return w
