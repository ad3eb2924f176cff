"""Fast leave-one-out engine: batched coarse CCF search and Newton refinement of the CCF peak.

All frames are handled together on their Fourier-cropped half spectra (:class:`Spectra`):

* the first search correlates every frame with the sum of the others on a small crop
  (a CCF of at most 256^2 for small frames), finds the integer peak inside the search radius
  with one batched inverse FFT and refines it on finer and finer matrix-DFT grids;
* the following leave-one-out passes take one Newton step on the band-limited CCF of each frame
  against the sum of the others. With the frame already moved by its current shift, the CCF
  near zero is c(d) = sum_k h_k Re(X_k exp(2 pi i k.d)) (h: Hermitian weights); its gradient and
  Hessian at d = 0 are weighted sums of X, so all frames take one real matrix product
  (frames x spectrum) @ (spectrum x 6). At convergence the shift is the exact maximum of the
  band-limited CCF (no grid, no parabola bias).

References
----------
Zheng et al., MotionCor2, Nat. Methods 14, 331 (2017), doi:10.1038/nmeth.4193 (leave-one-out);
Guizar-Sicairos et al., Opt. Lett. 33, 156 (2008), doi:10.1364/OL.33.000156 (matrix-DFT refinement).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.fft as sfft

from cryomat.registration.ccf import Spectra, _pool, ccf_peak, snr_weight

_CHUNK = 1 << 18  # complex coefficients per block of frames (2 MB of complex64: stays in cache)


def crop_spectra(spec: Spectra, mr: int, mc: int) -> Spectra:
    """``spec`` cropped in Fourier space to at most (mr, mc) CCF points (even sizes): a binned view."""
    big_r, big_c = spec.ccf_shape
    mr, mc = min(int(mr), big_r), min(int(mc), big_c)
    mr -= mr % 2
    mc -= mc % 2
    if mr >= big_r and mc >= big_c:
        return spec
    rows = np.r_[0:mr // 2, big_r - mr // 2:big_r] if mr < big_r else np.arange(big_r)
    nc = mc // 2 + 1 if mc < big_c else len(spec.kc)
    herm = spec.hermite[:nc].copy()
    if nc < len(spec.kc):
        herm[-1] = 1.0  # the new Nyquist column
    out = replace(spec, data=np.ascontiguousarray(spec.data[:, rows, :nc]), kr=spec.kr[rows], kc=spec.kc[:nc],
                  filt=np.ascontiguousarray(spec.filt[rows, :nc]), hermite=herm.astype(np.float32))
    cached = spec.__dict__.get("_mean_power")
    if cached is not None:  # the same frames: keep the mean power, cropped alike
        out.__dict__["_mean_power"] = cached[rows][:, :nc]
    return out


def _ramps(spec: Spectra, shifts: np.ndarray):
    """Separable phase ramps exp(+2 pi i k.s) of every frame: (n, mr, 1) and (n, 1, nc) complex64."""
    er = np.exp(2j * np.pi * shifts[:, 0:1] * spec.kr[None, :]).astype(np.complex64)
    ec = np.exp(2j * np.pi * shifts[:, 1:2] * spec.kc[None, :]).astype(np.complex64)
    return er[:, :, None], ec[:, None, :]


def _aligned(spec: Spectra, shifts: np.ndarray, group: int):
    """(mine, total): each frame's group sum of aligned spectra (n, mr, nc) and the total (mr, nc)."""
    er, ec = _ramps(spec, shifts)
    a = spec.data * er
    a *= ec
    total = a.sum(0)
    if group <= 1:
        return a, total
    n, h = a.shape[0], group // 2
    cs = np.cumsum(a, axis=0)
    mine = np.empty_like(a)
    for f in range(n):
        lo, hi = max(0, f - h), min(n, f + h + 1)
        mine[f] = cs[hi - 1] - (cs[lo - 1] if lo > 0 else 0)
    return mine, total


_THREAD_MIN = 1 << 19  # complex coefficients in all frames from which a pass runs on 2 threads
def _split(blocks):
    """The blocks in two halves (by count), for two threads."""
    h = (len(blocks) + 1) // 2
    return [blocks[:h], blocks[h:]] if len(blocks) > 1 else [blocks]


def _blocks(n: int, per_frame: int):
    step = max(1, _CHUNK // max(per_frame, 1))
    return [(i, min(n, i + step)) for i in range(0, n, step)]


def coarse_search(spec: Spectra, shifts: np.ndarray, *, radius: float, group: int = 1,
                  refine: bool = False) -> np.ndarray:
    """Residual shift (n, 2) px of every frame against the sum of the others, searched in the whole
    disc of ``radius`` px with one batched inverse FFT of the (cropped) CCF: the grid maximum and a
    parabola through its neighbours (about a fifth of the CCF step), or, with ``refine``, matrix-DFT
    grids down to 1 px and a parabola."""
    mine, total = _aligned(spec, shifts, group)
    mr, mc = spec.ccf_shape
    sr, sc = spec.ccf_step
    rr = np.fft.fftfreq(mr, 1.0 / mr) * sr
    cc = np.fft.fftfreq(mc, 1.0 / mc) * sc
    inside = rr[:, None] ** 2 + cc[None, :] ** 2 <= max(radius, sr, sc) ** 2
    n = mine.shape[0]
    pos = np.zeros((n, 2))
    for lo, hi in _blocks(n, mr * mc):
        x = mine[lo:hi] * np.conj(total[None] - mine[lo:hi])
        x *= spec.filt
        c = sfft.irfft2(x, s=(mr, mc), workers=2 if mr * mc >= 1 << 16 else 1)
        np.copyto(c, np.float32(-np.inf), where=~inside[None])
        i, j = np.unravel_index(np.argmax(c.reshape(hi - lo, -1), axis=1), (mr, mc))
        b = np.arange(hi - lo)
        v0 = c[b, i, j]
        with np.errstate(invalid="ignore"):
            dr = _parabola(c[b, (i - 1) % mr, j], v0, c[b, (i + 1) % mr, j])
            dc = _parabola(c[b, i, (j - 1) % mc], v0, c[b, i, (j + 1) % mc])
        pos[lo:hi, 0], pos[lo:hi, 1] = rr[i] + dr * sr, cc[j] + dc * sc
        if refine:
            mine[lo:hi] = x  # keep the filtered cross spectra for the refinement
    if not refine:
        return pos
    return grid_refine(spec, mine, pos, step=max(sr, sc), stop=1.0)


def grid_refine(spec: Spectra, cross: np.ndarray, pos: np.ndarray, *, step: float, stop: float = 0.5) -> np.ndarray:
    """Refine CCF peaks ``pos`` (n, 2) px known to +-``step``/2 on 5 x 5 matrix-DFT grids, halving the
    spacing down to ``stop`` px, then a parabola through the last grid (about stop / 5 px precise)."""
    herm = spec.hermite.astype(np.complex64)
    xw = cross * herm[None, None, :]
    g = np.linspace(-1.0, 1.0, 5)
    h = max(0.5 * step, stop)
    pos = np.array(pos, float)
    kr, kc = spec.kr.astype(np.float64), spec.kc.astype(np.float64)
    while True:
        offs = pos[:, None, :] + h * g[None, :, None]  # (n, 5, 2)
        er = np.exp(2j * np.pi * offs[:, :, 0:1] * kr[None, None, :]).astype(np.complex64)  # (n, 5, mr)
        ec = np.exp(2j * np.pi * offs[:, :, 1][:, None, :] * kc[None, :, None]).astype(np.complex64)  # (n, nc, 5)
        v = np.real(np.matmul(np.matmul(er, xw), ec))  # (n, 5, 5)
        flat = v.reshape(len(pos), -1).argmax(1)
        a, b = np.unravel_index(flat, (5, 5))
        a_c, b_c = np.clip(a, 1, 3), np.clip(b, 1, 3)
        idx = np.arange(len(pos))
        if h <= stop + 1e-9:
            vm, v0, vp = v[idx, a_c - 1, b_c], v[idx, a_c, b_c], v[idx, a_c + 1, b_c]
            dr = _parabola(vm, v0, vp)
            vm, vp = v[idx, a_c, b_c - 1], v[idx, a_c, b_c + 1]
            dc = _parabola(vm, v0, vp)
            return np.stack([offs[idx, a_c, 0] + dr * h, offs[idx, b_c, 1] + dc * h], 1)
        pos = np.stack([offs[idx, a, 0], offs[idx, b, 1]], 1)
        h = max(0.5 * h, stop)


def _parabola(vm, v0, vp):
    d = vm - 2 * v0 + vp
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(d < 0, 0.5 * (vm - vp) / d, 0.0)
    return np.clip(np.nan_to_num(off), -0.5, 0.5)


def _newton_weights(spec: Spectra) -> np.ndarray:
    """(2 nc, 5) float32 column weights on the interleaved (Re, Im) rows of a cross spectrum:
    h, h kc, h kc^2 on Re and h, h kc on Im (the row factors kr are applied after the product)."""
    h = spec.hermite.astype(np.float64)
    kc = spec.kc.astype(np.float64)
    w = np.zeros((len(h), 2, 5))
    w[:, 0, 0], w[:, 0, 1], w[:, 0, 2] = h, h * kc, h * kc * kc
    w[:, 1, 3], w[:, 1, 4] = h, h * kc
    return w.reshape(-1, 5).astype(np.float32)


def _sums(x: np.ndarray, wc: np.ndarray, kr: np.ndarray) -> np.ndarray:
    """(c, 6) sums of cross spectra x (c, mr, nc): sum h Re X, sum h kr Im X, sum h kc Im X,
    sum h kr^2 Re X, sum h kr kc Re X, sum h kc^2 Re X (kr, kc in cycles/px)."""
    c, mr, nc = x.shape
    u = (x.reshape(c * mr, nc).view(np.float32) @ wc).reshape(c, mr, 5).astype(np.float64)
    out = np.empty((c, 6))
    out[:, 0] = u[:, :, 0].sum(1)
    out[:, 1] = u[:, :, 3] @ kr
    out[:, 2] = u[:, :, 4].sum(1)
    out[:, 3] = u[:, :, 0] @ (kr * kr)
    out[:, 4] = u[:, :, 1] @ kr
    out[:, 5] = u[:, :, 2].sum(1)
    return out


class NewtonLOO:
    """Leave-one-out Newton passes on one :class:`Spectra`; the shift-independent terms (each frame's
    own filtered power and its weighted sums) are computed once."""

    def __init__(self, spec: Spectra, group: int = 1):
        self.spec, self.group = spec, int(group)
        self.wc = _newton_weights(spec)
        self.kr = spec.kr.astype(np.float64)
        self.filt = spec.filt.astype(np.float32)
        self.hf = (spec.hermite[None, :] * spec.filt).astype(np.float32)
        n = spec.data.shape[0]
        self.own_sums = np.zeros((n, 6))  # weighted sums of filt |F_f|^2 (real): the own-noise term
        self.own2 = np.zeros(n)           # sum h filt |F_f|^2
        if self.group <= 1:
            wre = np.ascontiguousarray(self.wc[0::2, :3])  # the Re weights h, h kc, h kc^2
            mr, nc = spec.filt.shape
            for lo, hi in _blocks(n, spec.data[0].size):
                v = spec.data[lo:hi].view(np.float32)
                v2 = v * v
                p = (v2[..., 0::2] + v2[..., 1::2]) * self.filt  # filt |F_f|^2 (real)
                u = (p.reshape(-1, nc) @ wre).reshape(hi - lo, mr, 3).astype(np.float64)
                self.own_sums[lo:hi, 0] = u[:, :, 0].sum(1)
                self.own_sums[lo:hi, 3] = u[:, :, 0] @ (self.kr * self.kr)
                self.own_sums[lo:hi, 4] = u[:, :, 1] @ self.kr
                self.own_sums[lo:hi, 5] = u[:, :, 2].sum(1)
                self.own2[lo:hi] = self.own_sums[lo:hi, 0]

    def cross(self, shifts: np.ndarray, f: int) -> np.ndarray:
        """Filtered cross spectrum of frame (group) ``f`` against the sum of the others."""
        mine, total = _aligned(self.spec, shifts, self.group)
        return (mine[f] * np.conj(total - mine[f]) * self.filt).astype(np.complex64)

    def step(self, shifts: np.ndarray, *, max_step: float = 1.0,
             fallback_radius: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
        """One pass: Newton step (n, 2) px of every frame towards the maximum of its band-limited CCF
        with the sum of the others, and the normalised CCF value at the current shifts (n,).

        With c = sum h Re X, grad c = -2 pi sum h k Im X and Hess c = -4 pi^2 sum h k k^T Re X at d = 0
        (X: filtered cross spectrum of the aligned frame and its reference), the step is Newton's on
        log c: d = -H^-1 g with g = grad c / c and H = Hess c / c - g g^T. Where c <= 0 or H is not
        negative definite (far from a peak) the frame is searched on a 0.5 px grid within ``fallback_radius``.
        Steps are clipped to ``max_step`` px (the next pass continues).
        """
        spec = self.spec
        n = spec.data.shape[0]
        blocks = _blocks(n, spec.data[0].size)
        sums = np.empty((n, 6))
        if self.group <= 1:
            er, ec = _ramps(spec, shifts)

            def part_total(bl):  # small blocks: the aligned spectra stay in cache, never stored
                t = np.zeros(spec.data.shape[1:], np.complex64)
                for lo, hi in bl:
                    a = spec.data[lo:hi] * er[lo:hi]
                    a *= ec[lo:hi]
                    t += a.sum(0)
                return t

            def part_sums(bl):  # X_f = filt A_f conj(T) - filt |F_f|^2 (rows of ``sums`` are disjoint)
                for lo, hi in bl:
                    a = spec.data[lo:hi] * er[lo:hi]
                    a *= ec[lo:hi]
                    a *= bt
                    sums[lo:hi] = _sums(a, self.wc, self.kr) - self.own_sums[lo:hi]

            halves = _split(blocks) if spec.data.size >= _THREAD_MIN else [blocks]
            if len(halves) > 1:
                pool = _pool()
                total = sum(pool.map(part_total, halves))
                bt = (np.conj(total) * self.filt).astype(np.complex64)
                list(pool.map(part_sums, halves))
            else:
                total = part_total(blocks)
                bt = (np.conj(total) * self.filt).astype(np.complex64)
                part_sums(blocks)
            own2 = self.own2
        else:
            mine, total = _aligned(spec, shifts, self.group)
            own2 = np.zeros(n)
            for lo, hi in blocks:
                m = mine[lo:hi]
                own2[lo:hi] = np.einsum("fij,ij->f", m.real**2 + m.imag**2, self.hf, dtype=np.float64)
                x = m * np.conj(total[None] - m)
                x *= self.filt
                sums[lo:hi] = _sums(x, self.wc, self.kr)
        tot2 = float(np.sum(self.hf * (total.real**2 + total.imag**2), dtype=np.float64))
        c0 = sums[:, 0]
        # Newton on log c(d): exact in one step for a Gaussian peak (the B-factor envelope), where a
        # Newton step on c itself overshoots by (x/sigma)^2 when started x away from the peak
        cpos = np.where(c0 > 0, c0, 1.0)
        g = -2 * np.pi * sums[:, 1:3] / cpos[:, None]
        hrr = -4 * np.pi**2 * sums[:, 3] / cpos - g[:, 0] ** 2
        hrc = -4 * np.pi**2 * sums[:, 4] / cpos - g[:, 0] * g[:, 1]
        hcc = -4 * np.pi**2 * sums[:, 5] / cpos - g[:, 1] ** 2
        det = hrr * hcc - hrc**2
        ok = (c0 > 0) & (det > 0) & (hrr < 0)  # negative definite: a maximum
        d = np.where(ok, det, 1.0)
        delta = np.zeros((n, 2))
        delta[:, 0] = -(hcc * g[:, 0] - hrc * g[:, 1]) / d
        delta[:, 1] = -(hrr * g[:, 1] - hrc * g[:, 0]) / d
        delta[~ok] = 0.0
        mag = np.hypot(delta[:, 0], delta[:, 1])
        big = mag > max_step
        delta[big] *= (max_step / mag[big])[:, None]
        bad = np.nonzero(~ok)[0]
        if bad.size:
            mine, tot = _aligned(spec, shifts, self.group)  # once for all the frames searched
            for f in bad:
                x = (mine[f] * np.conj(tot - mine[f]) * self.filt).astype(np.complex64)
                delta[f], _ = ccf_peak(x, spec, center_px=(0.0, 0.0), radius_px=fallback_radius)
        ref2 = np.maximum(tot2 - 2 * c0 - own2, 1e-30)  # |T - M|^2 = |T|^2 - 2 Re(M T*) + |M|^2
        peak = c0 / np.sqrt(np.maximum(own2, 1e-30) * ref2)
        return delta, peak


def progressive(spec: Spectra, *, radius: float) -> np.ndarray:
    """Continuity-guarded first trajectory: frame f against the aligned sum of frames < f, searched on a
    1 px matrix-DFT grid within ``radius`` px of the linear extrapolation of the previous frames."""
    n = spec.data.shape[0]
    s = np.zeros((n, 2))
    acc = spec.data[0].copy()
    xw_h = spec.hermite.astype(np.complex64)[None, :]
    r = int(np.ceil(radius))
    g = np.arange(-r, r + 1, dtype=np.float64)
    inside = g[:, None] ** 2 + g[None, :] ** 2 <= radius**2 + 1e-9
    kr, kc = spec.kr.astype(np.float64), spec.kc.astype(np.float64)
    for f in range(1, n):
        pred = s[f - 1] + (0.5 * (s[f - 1] - s[f - 3]) if f >= 3 else 0.0)
        x = spec.data[f] * np.conj(acc)
        x *= spec.filt
        x *= xw_h
        er = np.exp(2j * np.pi * np.outer(pred[0] + g, kr)).astype(np.complex64)
        ec = np.exp(2j * np.pi * np.outer(kc, pred[1] + g)).astype(np.complex64)
        v = np.where(inside, np.real(er @ x @ ec), -np.inf)
        a, b = np.unravel_index(int(np.argmax(v)), v.shape)
        a_c, b_c = int(np.clip(a, 1, len(g) - 2)), int(np.clip(b, 1, len(g) - 2))
        v0 = v[a_c, b_c]
        dr = _parabola(np.array(v[a_c - 1, b_c]), np.array(v0), np.array(v[a_c + 1, b_c])) if np.isfinite(
            [v[a_c - 1, b_c], v[a_c + 1, b_c]]).all() else 0.0
        dc = _parabola(np.array(v[a_c, b_c - 1]), np.array(v0), np.array(v[a_c, b_c + 1])) if np.isfinite(
            [v[a_c, b_c - 1], v[a_c, b_c + 1]]).all() else 0.0
        s[f] = pred + np.array([g[a] + (float(dr) if a == a_c else 0.0), g[b] + (float(dc) if b == b_c else 0.0)])
        er1, ec1 = _ramps(spec, s[f:f + 1])
        acc += spec.data[f] * er1[0] * ec1[0]
    return s


def choose_band(spec: Spectra, n_frames: int, *, floor: float | None = None, candidates=None) -> int:
    """CCF size (per axis, px) of the final passes that minimises the expected variance of the
    leave-one-out shift estimate; candidates are sizes of ``spec``'s own crop and below.

    With signal power S(k) per frame (ring averages of the drift-invariant mean power above the
    white shot-noise floor N, and lattice spots: :func:`cryomat.registration.ccf.snr_weight`) and n frames, the cross spectrum of a frame with the sum of the n - 1 others
    has mean (n - 1) S and variance (S + N)((n - 1) S + N) (n - 1). For the filter f of ``spec``
    and band |k| < k_max, a shift estimated from the CCF slope has variance proportional to
    sum f^2 k^2 (S + N)((n - 1) S + N) (n - 1) / (sum f k^2 (n - 1) S)^2: a band where S << N adds
    to the numerator (noise, weighted by k^2) more than to the denominator. At 0.1 counts/px/frame
    on 512^2 frames the outer half of the band adds noise, at 0.5 it still helps.
    """
    mr, mc = spec.ccf_shape
    big = max(mr, mc)
    if candidates is None:
        candidates = sorted({min(big, int(c)) for c in np.linspace(min(256, big), big, 5)})
    if floor is None:
        floor = spec.noise_floor
    if floor is None or len(candidates) < 2:
        return int(big)
    # S from the ring averages (and the spots that stand out of them): clipping the per-pixel
    # P - N would turn the noise of P into a positive "signal" everywhere
    w = snr_weight(spec).astype(np.float64)
    sig = floor * w / np.maximum(1.0 - w, 1e-6)
    n1 = max(n_frames - 1, 1)
    k2 = spec.kr[:, None] ** 2 + spec.kc[None, :] ** 2
    herm = spec.hermite[None, :].astype(np.float64)
    f = spec.filt.astype(np.float64)
    num = herm * f**2 * k2 * (sig + floor) * (n1 * sig + floor) * n1
    den = herm * f * k2 * n1 * sig
    # the square crop of size c keeps |kr|, |kc| < c / (2 x frame size) on both axes: each
    # coefficient joins at the first candidate that keeps it, so the sums are cumulative
    cand = np.asarray(candidates, np.float64)
    half = np.maximum(np.abs(spec.kr)[:, None] * spec.shape[0], np.abs(spec.kc)[None, :] * spec.shape[1])
    level = np.searchsorted(0.5 * cand + 1e-6, half.ravel())
    num_c = np.cumsum(np.bincount(level, weights=num.ravel(), minlength=len(cand) + 1))[:len(cand)]
    den_c = np.cumsum(np.bincount(level, weights=den.ravel(), minlength=len(cand) + 1))[:len(cand)]
    best, best_c = np.inf, int(big)
    for c, a, d in zip(candidates, num_c, den_c):
        v = float(a) / float(d) ** 2 if d > 0 else np.inf
        if v < best * 0.98:  # a larger band must lower the variance by 2% to be worth its cost
            best, best_c = v, int(c)
    return best_c
