"""Noise-model front end: gain and offset from variance against mean, row/column offsets, correlation.

The detected model is what every later step relies on: the variance-stabilising transform
needs the gain and the intercept of the variance-against-mean line, the self-calibrated
filter needs the noise power spectrum (white, or lag-1 correlated along rows/columns), and the
unsupervised error estimate by binomial thinning is only valid for uncorrelated counts.

References
----------
A. Foi et al., "Practical Poissonian-Gaussian noise modeling and fitting for single-image raw-data",
IEEE TIP 17, 1737 (2008), doi:10.1109/TIP.2008.2001399 (local noise level from a signal-free
high-pass statistic in blocks, a robust line against the block mean);
J. Immerkaer, "Fast noise variance estimation", CVIU 64, 300 (1996), doi:10.1006/cviu.1996.0060.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

@dataclass(frozen=True)
class NoiseModel:
    """Detected noise model of one image.

    Attributes
    ----------
    kind : ``"counting"`` (integer counts, variance = mean) or ``"integrating"`` (Poisson-Gaussian).
    gain : slope of the per-pixel noise variance against the mean (detector units per electron
        *after* the MTF): what the variance-stabilising transform needs. With an MTF-blurred
        integrating detector it is ``conversion_gain * sum(psf^2)`` (sum(psf^2) = mean MTF^2 <= 1).
    intercept : variance at zero mean (detector units^2); = read_noise^2 - gain * offset.
    offset : estimated offset (detector units) assuming read noise is small next to the shot noise
        at the darkest level; informative only.
    rho_row, rho_col : lag-1 noise correlation between vertically adjacent pixels (neighbouring rows)
        and horizontally adjacent pixels (neighbouring columns).
    row_offset_std, col_offset_std : std of the removed per-row / per-column offsets (detector units).
    correlated : True when |rho| > ``threshold`` along either axis or row/column offsets were found.
    mean : image mean (detector units). n_blocks : blocks used in the variance-mean fit.
    mtf_a, mtf_weight : when the noise is blurred by a detector MTF, its spectrum is modelled as
        mtf_weight * MTF^2 / mean(MTF^2) + (1 - mtf_weight), MTF(k) = sinc(k_r) sinc(k_c) / (1 + 4 mtf_a k^2)
        (k in cycles/px), which extrapolates the low-frequency noise that a lag-1 model misses.
    conversion_gain : detector units per electron *before* the MTF (the gain a simulator's truth or a
        detector data sheet states) = gain / sum(psf^2); equal to ``gain`` without an MTF. With an
        MTF it depends on the fitted MTF shape (``mtf_a``), which the high-frequency spectrum pins
        down only loosely: treat it as informative (factor ~2) there.
    gain_rel_uncertainty : relative standard error of the fitted variance-against-mean slope (from the
        scatter of the kept blocks). Large (> 0.25) when the image has too little spread of local
        means to separate the signal-dependent from the constant noise (weak-phase bright field,
        a flat field): the gain is then not identifiable from one image and only the noise level at
        the mean (``gain * mean + intercept``) is meaningful; above 0.25 ``gain`` falls back to the
        signal-independent model (a tiny gain) while ``conversion_gain`` keeps the raw estimate.
        It is a least-squares standard error and understates the scatter over noise realisations
        about twofold. 0 for a counting detector (gain fixed to 1).
    """

    kind: str
    gain: float
    intercept: float
    offset: float
    rho_row: float
    rho_col: float
    row_offset_std: float
    col_offset_std: float
    correlated: bool
    mean: float
    n_blocks: int
    mtf_a: float = 0.0
    mtf_weight: float = 0.0
    conversion_gain: float = 0.0
    gain_rel_uncertainty: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def electrons_per_px(self) -> float:
        """Mean dose in electrons per pixel implied by the model (mean / gain, offset removed)."""
        return float(max(self.mean - self.offset, 0.0) / self.gain)


def _axis_excess(x: np.ndarray, axis: int) -> tuple[float, float, np.ndarray]:
    """Offset variance per pixel from the excess power on a Fourier axis, its z-score, the offsets.

    Per-row offsets (axis=1) put power only on the k_col = 0 line, per-column offsets (axis=0)
    only on k_row = 0; particle and lattice spectra are smooth across that line, and white pixel
    noise is the same everywhere, so the power on the line minus the mean of its three
    neighbours on each side estimates n_along * offset variance. The offsets themselves are the
    line's Fourier coefficients shrunk by max(0, 1 - neighbours / line) (a Wiener estimate).
    """
    f = np.fft.fft2(x - x.mean())
    p = (f.real**2 + f.imag**2) / x.size
    if axis == 0:
        p, f = p.T, f.T
    n_along = p.shape[1]
    line = p[:, 0]
    nb = np.concatenate([p[:, 1:4], p[:, -3:]], axis=1).mean(axis=1)
    k = np.abs(np.fft.fftfreq(p.shape[0]))
    use = k > 0.02  # the lowest frequencies hold the large-scale shape of the field
    # a lattice fringe along the lines is a sharp peak on the line, not an offset: leave it out
    local = ndimage.median_filter(line, 15, mode="wrap")
    use &= line < 25.0 * local
    exc = line[use] - nb[use]
    if exc.size < 8:
        return 0.0, 0.0, np.zeros(p.shape[0])
    z = float(exc.mean() / (exc.std(ddof=1) / np.sqrt(exc.size) + 1e-30))
    shrink = np.where(use, np.clip(1 - nb / np.maximum(line, 1e-30), 0, 1), 0.0)
    prof = np.real(np.fft.ifft(f[:, 0] * shrink)) / n_along
    return float(max(exc.mean(), 0.0) / n_along), z, prof


def remove_row_col_offsets(image, *, z_threshold: float = 6.0):
    """Remove per-row and per-column offsets (correlated read noise) when they are significant.

    Significance comes from the excess Fourier power on the k_col = 0 (rows) or k_row = 0
    (columns) line over its neighbours (:func:`_axis_excess`, z-score above ``z_threshold``);
    the removed offsets are the Wiener-shrunk Fourier coefficients on that line, so particles
    and a lattice covering part of a line barely enter them.
    A lattice fringe running exactly along the lines through the whole field is a sharp peak
    on that Fourier line and is kept.

    Parameters
    ----------
    image : (row, col) array.

    Returns
    -------
    corrected : float64 array, row_offsets : (row,) removed, col_offsets : (col,) removed.
    """
    x = np.asarray(image, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"image must be 2D, got shape {x.shape}")
    out = x.copy()
    sub = x
    if max(x.shape) > 1024:  # the test needs whole lines, but not all of them
        sub = x[:: max(1, x.shape[0] // 1024), :: max(1, x.shape[1] // 1024)]
    offsets = []
    for axis in (1, 0):
        _, z, _ = _axis_excess(sub, axis)
        n = x.shape[0] if axis == 1 else x.shape[1]
        if z > z_threshold:
            _, _, prof = _axis_excess(out, axis)
            out = out - (prof[:, None] if axis == 1 else prof[None, :])
            offsets.append(prof)
        else:
            offsets.append(np.zeros(n))
    return out, offsets[0], offsets[1]


# 16th difference along each axis: |H(k)|^2 = (2 sin pi k_row)^32 (2 sin pi k_col)^32, a separable,
# strongly corner-selective high-pass whose response at the lattice and edge frequencies of a
# sampled image (|k| < 0.4 cycles/px) is < 0.1 % of its peak (the 8th difference leaves ~3 %, which
# biased the gain 10-20 % high at 128 e/px on HAADF lattices), so block variances of the residual
# measure noise, not signal (Foi et al. 2008, doi:10.1109/TIP.2008.2001399)
_ORDER = 16
_D8 = np.poly1d([1.0, -1.0]) ** _ORDER  # binomial n-th difference (17 taps)
_D8 = np.asarray(_D8.coeffs, dtype=np.float64)
_HALF = _D8.size // 2


def _highpass(x: np.ndarray) -> np.ndarray:
    r = ndimage.correlate1d(x, _D8, axis=-1, mode="reflect")
    return ndimage.correlate1d(r, _D8, axis=-2, mode="reflect")


def _local_mean(x: np.ndarray) -> np.ndarray:
    """Mean weighted like the noise variances that enter one :func:`_highpass` output (weights h^2).

    E[r(p)^2] = sum_k h_k^2 var(p + k) for white noise of varying variance, so the block mean of
    this weighted mean, not of x, is what the block mean square is linear in (otherwise the halo of
    the 17x17 kernel across a particle edge flattens the variance-against-mean line).
    """
    w = _D8**2 / np.sum(_D8**2)
    return ndimage.correlate1d(ndimage.correlate1d(x, w, axis=-1, mode="reflect"), w, axis=-2, mode="reflect")


def _block_stats(x: np.ndarray, block: int, max_blocks: int = 4096):
    """Block means (h^2-weighted, :func:`_local_mean`) and block mean squares of the corner-selective
    high-pass residual (:func:`_highpass`).

    At most ``max_blocks`` blocks, spread evenly over the image, are used.
    """
    nbr, nbc = x.shape[0] // block, x.shape[1] // block
    sr = max(1, int(np.ceil(np.sqrt(nbr * nbc / max_blocks))))
    bi = np.arange(0, nbr, sr)
    bj = np.arange(0, nbc, sr)
    h = _HALF
    if sr == 1:
        r = _highpass(x)
        nr, nc = nbr * block, nbc * block
        xb = _local_mean(x)[:nr, :nc].reshape(nbr, block, nbc, block).transpose(0, 2, 1, 3).reshape(-1, block, block)
        rb = r[:nr, :nc].reshape(nbr, block, nbc, block).transpose(0, 2, 1, 3).reshape(-1, block, block)
    else:
        # the selected blocks with an h-px margin, reflected at the image edges (no padded copy of x)
        def idx(b0, n):
            i = b0[:, None] * block + np.arange(-h, block + h)[None, :]
            i = np.abs(i)
            return np.where(i >= n, 2 * (n - 1) - i, i)

        ri, ci = idx(bi, x.shape[0]), idx(bj, x.shape[1])
        patches = x[ri[:, None, :, None], ci[None, :, None, :]].reshape(-1, block + 2 * h, block + 2 * h)
        rb = _highpass(patches)[:, h:-h, h:-h]
        # block mean of the h^2-weighted local mean = separable weights (box * h^2) on the patch
        u = np.convolve(np.full(block, 1.0 / block), _D8**2 / np.sum(_D8**2))
        xb = np.einsum("nij,i,j->n", patches, u, u)[:, None, None]
    # the difference kernel sums to 0: the residual has zero mean; its mean square is the noise statistic
    return xb.mean(axis=(1, 2)), np.mean(rb * rb, axis=(1, 2))


def _highpass_gain(nps_full: np.ndarray) -> float:
    """Mean square of the :func:`_highpass` response to noise with power spectrum ``nps_full``
    (full FFT grid; a per-pixel variance of 1 is ``nps_full.mean() == 1``)."""
    kr = np.fft.fftfreq(nps_full.shape[0])[:, None]
    kc = np.fft.fftfreq(nps_full.shape[1])[None, :]
    h2 = (2 * np.sin(np.pi * kr)) ** (2 * _ORDER) * (2 * np.sin(np.pi * kc)) ** (2 * _ORDER)
    return float(np.mean(h2 * nps_full))


def _robust_line(m: np.ndarray, v: np.ndarray, *, n_iter: int = 8, clip_hi: float = 2.0, clip_lo: float = 4.0):
    """Line v = a m + b fitted with one-sided outlier rejection.

    Residual signal in a block only adds to its high-pass energy, so blocks far above the line
    (> ``clip_hi`` robust sigmas) are dropped; below the line only gross outliers (> ``clip_lo``).
    The robust sigma is the MAD of the residuals relative to the fitted level (block variances
    scatter in proportion to their expectation). Returns (a, b, kept mask, standard error of a).
    """
    keep = np.ones(m.size, bool)
    a, b = 0.0, float(np.median(v))
    for _ in range(n_iter):
        if keep.sum() < 3 or np.ptp(m[keep]) <= 1e-9 * max(1.0, float(np.abs(m).max())):
            break
        a, b = np.polyfit(m[keep], v[keep], 1)
        fit = np.maximum(a * m + b, 1e-30)
        rel = v / fit - 1
        sig = 1.4826 * np.median(np.abs(rel[keep] - np.median(rel[keep]))) + 1e-12
        new = (rel < clip_hi * sig) & (rel > -clip_lo * sig)
        if np.array_equal(new, keep):
            break
        keep = new
    mk, vk = m[keep], v[keep]
    sxx = float(np.sum((mk - mk.mean()) ** 2)) if mk.size > 2 else 0.0
    res = vk - (a * mk + b)
    se = float(np.sqrt(np.sum(res**2) / max(mk.size - 2, 1) / sxx)) if sxx > 0 else float("inf")
    return float(a), float(b), keep, se


def noise_power_shape(shape, rho_row: float, rho_col: float, *, rfft: bool = True) -> np.ndarray:
    """Noise power spectrum (per-pixel variance 1) of lag-1 correlated noise on an FFT grid.

    N(k) = 1 + 2 rho_row cos(2 pi k_row) + 2 rho_col cos(2 pi k_col), floored at 0.05.
    """
    kr = np.fft.fftfreq(shape[0])[:, None]
    kc = (np.fft.rfftfreq(shape[1]) if rfft else np.fft.fftfreq(shape[1]))[None, :]
    return np.maximum(1 + 2 * rho_row * np.cos(2 * np.pi * kr) + 2 * rho_col * np.cos(2 * np.pi * kc), 0.05)


def _mtf2(kr, kc, a: float):
    return (np.sinc(kr) * np.sinc(kc) / (1 + 4 * a * (kr**2 + kc**2))) ** 2


def noise_power(model: "NoiseModel", shape, *, rfft: bool = True):
    """Noise power spectrum of ``model`` on an FFT grid, normalised to mean 1 (None when white)."""
    if model.mtf_weight > 0:
        kr = np.fft.fftfreq(shape[0])[:, None]
        kc = (np.fft.rfftfreq(shape[1]) if rfft else np.fft.fftfreq(shape[1]))[None, :]
        m2 = _mtf2(kr, kc, model.mtf_a)
        full_mean = float(np.mean(_mtf2(np.fft.fftfreq(shape[0])[:, None], np.fft.fftfreq(shape[1])[None, :],
                                        model.mtf_a)))
        return model.mtf_weight * m2 / full_mean + (1 - model.mtf_weight)
    if model.rho_row or model.rho_col:
        return noise_power_shape(shape, model.rho_row, model.rho_col, rfft=rfft)
    return None


def _high_frequency_periodogram(x: np.ndarray, half_width: float):
    """Periodogram (rfft layout) of the central <= 1024^2 crop of ``x`` and the mask of its
    signal-free high-frequency squares. Returns (p, sel, kr, kc, cropped shape)."""
    if max(x.shape) > 1024:
        r0, c0 = max(0, (x.shape[0] - 1024) // 2), max(0, (x.shape[1] - 1024) // 2)
        x = x[r0:r0 + 1024, c0:c0 + 1024]
    f = np.fft.rfft2(x - x.mean())
    p = np.abs(f) ** 2 / x.size
    kr = np.abs(np.fft.fftfreq(x.shape[0]))[:, None]
    kc = np.fft.rfftfreq(x.shape[1])[None, :]
    sel = np.zeros(p.shape, bool)
    for cr, cc in _SQUARES:
        sel |= (np.abs(kr - cr) <= half_width) & (np.abs(kc - cc) <= half_width) & (kr > 0.02) & (kc > 0.02)
    return p, sel, kr, kc, x.shape


def fit_mtf(x: np.ndarray, *, half_width: float = 0.06):
    """Fit P(k) = A MTF^2(k; a) + B to the periodogram in the signal-free high-frequency squares.

    Returns (a, A, B, relative residual); a from a grid of 40 values in [0.02, 8].
    """
    p, sel, kr, kc, _ = _high_frequency_periodogram(x, half_width)
    ii, jj = np.nonzero(sel)
    y = p[ii, jj]
    krs, kcs = kr[ii, 0], kc[0, jj]
    best = None
    from scipy.optimize import nnls

    for a in np.geomspace(0.02, 8, 40):
        m2 = _mtf2(krs, kcs, a)
        coef, res = nnls(np.stack([m2, np.ones_like(m2)], 1), y)
        rel = float(res / np.linalg.norm(y))
        if best is None or rel < best[3]:
            best = (float(a), float(coef[0]), float(coef[1]), rel)
    return best


def _lag1_residual(x: np.ndarray, s2: float, rr: float, rc: float, *, half_width: float = 0.06) -> float:
    p, sel, _, _, shape = _high_frequency_periodogram(x, half_width)
    model = s2 * noise_power_shape(shape, rr, rc)
    return float(np.linalg.norm(p[sel] - model[sel]) / np.linalg.norm(p[sel]))


# centres of the high-frequency squares (cycles/px) used to fit the noise spectrum: all their
# points lie at |k| >= 0.53 cycles/px, beyond the Nyquist circle, where images sampled at or finer
# than their information limit carry no signal (square half-width 0.06)
_SQUARES = ((0.5, 0.5), (0.5, 0.36), (0.36, 0.5), (0.46, 0.46))


def corner_level(x: np.ndarray, *, half_width: float = 0.08) -> float:
    """Mean periodogram in the corner square around (0.5, 0.5) cycles/px (|k| >= 0.59): noise only.

    For white noise this is the per-pixel variance; lag-1 correlation scales it by (1 - 2 rho_row - 2 rho_col).
    """
    if max(x.shape) > 1024:
        r0, c0 = max(0, (x.shape[0] - 1024) // 2), max(0, (x.shape[1] - 1024) // 2)
        x = x[r0:r0 + 1024, c0:c0 + 1024]
    f = np.fft.rfft2(x - x.mean())
    kr = np.abs(np.fft.fftfreq(x.shape[0]))[:, None]
    kc = np.fft.rfftfreq(x.shape[1])[None, :]
    m = (kr >= 0.5 - half_width) & (kc >= 0.5 - half_width)
    return float(np.mean(np.abs(f[np.broadcast_to(m, f.shape)]) ** 2) / x.size)


def fit_correlation(x: np.ndarray, *, half_width: float = 0.06, threshold: float = 0.04) -> tuple[float, float, float]:
    """Noise level and lag-1 correlations from the periodogram beyond the Nyquist circle.

    Fits N(k) = s2 (1 + 2 rho_row cos 2 pi k_row + 2 rho_col cos 2 pi k_col) to the mean periodogram
    in four off-axis high-frequency squares (``_SQUARES``, all beyond |k| = 0.53 cycles/px),
    where images sampled at or finer than their information limit carry no signal.
    Correlations below ``threshold`` in magnitude are not significant at usual image sizes; then
    the white model (the mean level) is returned.

    Returns
    -------
    s2 (per-pixel noise variance), rho_row, rho_col.
    """
    if max(x.shape) > 1024:  # a central 1024^2 crop holds ample noise statistics
        r0, c0 = max(0, (x.shape[0] - 1024) // 2), max(0, (x.shape[1] - 1024) // 2)
        x = x[r0:r0 + 1024, c0:c0 + 1024]
    nr, nc = x.shape
    f = np.fft.rfft2(x - x.mean())
    p = np.abs(f) ** 2 / x.size
    kr = np.abs(np.fft.fftfreq(nr))[:, None]
    kc = np.fft.rfftfreq(nc)[None, :]
    rows, ys = [], []
    for cr, cc in _SQUARES:
        m = (np.abs(kr - cr) <= half_width) & (np.abs(kc - cc) <= half_width) & (kr > 0.02) & (kc > 0.02)
        ii, jj = np.nonzero(m)
        ar = np.cos(2 * np.pi * kr[ii, 0])
        ac = np.cos(2 * np.pi * kc[0, jj])
        rows.append(np.stack([np.ones_like(ar), 2 * ar, 2 * ac], axis=1))
        ys.append(p[ii, jj])
    a = np.concatenate(rows)
    y = np.concatenate(ys)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    s2 = float(coef[0])
    if s2 <= 0:
        return float(np.mean(y)), 0.0, 0.0
    rr, rc = float(np.clip(coef[1] / s2, -0.45, 0.45)), float(np.clip(coef[2] / s2, -0.45, 0.45))
    if abs(rr) < threshold and abs(rc) < threshold:
        return float(np.mean(y)), 0.0, 0.0
    return s2, rr, rc


def _fit_gain(xc: np.ndarray, block: int, shot: np.ndarray, mtf_w: float, s2: float, mean: float):
    """Gain, intercept, conversion gain, slope, its standard error and the number of kept blocks."""
    sum_psf2 = float(shot.mean())
    q_shot = _highpass_gain(shot)
    means, ms = _block_stats(xc, block)
    # Foi et al. 2008: local noise level from a signal-free statistic against the local mean, a line
    # fitted with one-sided rejection of blocks whose residual still holds signal (lattice, edges)
    slope, icpt, keep, slope_se = _robust_line(means, ms)
    # rejecting blocks above the line trims the upper tail of the (skewed) block statistic, which
    # scales the whole line down by the same factor; rescale it to the global level that the
    # signal-free periodogram beyond the Nyquist circle predicts for the high-pass residual
    total = shot if mtf_w == 0 else mtf_w * shot / shot.mean() + (1 - mtf_w)
    level = slope * mean + icpt
    if level > 0 and np.isfinite(level):
        fix = s2 * _highpass_gain(total / total.mean()) / level
        slope, slope_se = slope * fix, slope_se * fix
    conversion_gain = slope / q_shot  # detector units per electron, before the MTF
    gain = conversion_gain * sum_psf2  # slope of the per-pixel variance against the mean
    # anchor the line at the global noise level beyond the Nyquist circle (the best-determined point)
    intercept = s2 - gain * mean
    if not np.isfinite(gain) or gain <= 1e-3 * s2 / max(abs(mean), 1e-12):
        # no measurable signal dependence (a flat field, a processed image): additive Gaussian noise,
        # written as a tiny gain so that the transform is a plain scaling
        gain = 1e-3 * s2 / max(abs(mean), 1e-12) if mean > 0 else 1e-3
        intercept = s2 - gain * mean
        conversion_gain = gain / sum_psf2
    return float(gain), float(intercept), float(conversion_gain), float(slope), float(slope_se), int(keep.sum())


def estimate_noise_model(image, *, block: int = 16, correlation_threshold: float = 0.06,
                         remove_offsets: bool = True) -> tuple[NoiseModel, np.ndarray]:
    """Estimate the Poisson-Gaussian noise model of one image and remove row/column offsets.

    Parameters
    ----------
    image : (row, col) array in detector units (counts or ADU).
    block : block size (px) for the local mean/variance pairs.
    correlation_threshold : |lag-1 correlation| above which the noise is called correlated.
    remove_offsets : remove significant per-row/per-column offsets first.

    Returns
    -------
    model : :class:`NoiseModel`.
    corrected : float64 image with row/column offsets removed (the input for denoising).
    """
    x = np.asarray(image, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"image must be 2D, got shape {x.shape}")
    if min(x.shape) < 2 * block:
        raise ValueError(f"image of shape {x.shape} is too small for a noise estimate (needs >= {2 * block} px)")
    if not np.all(np.isfinite(x)):
        raise ValueError("image contains NaN or infinite values")
    integer = bool(np.all(x >= 0) and np.allclose(x[:64, :64], np.round(x[:64, :64])))
    corner_x = corner_level(x) if integer else 0.0
    counting_like = integer and x.mean() > 0 and abs(corner_x / x.mean() - 1) < 0.1
    # a counting detector has no read-out offsets: white Poisson counts are left untouched
    if remove_offsets and not counting_like:
        xc, roff, coff = remove_row_col_offsets(x)
    else:
        xc, roff, coff = x, np.zeros(x.shape[0]), np.zeros(x.shape[1])
    s2, rho_r, rho_c = fit_correlation(xc)
    mean = float(xc.mean())
    corner = corner_x if xc is x else corner_level(xc)
    # integer counts whose noise level beyond the Nyquist circle equals the mean: a counting
    # detector with white (Poisson) noise; the corner is free of signal even at high dose
    counting = integer and mean > 0 and abs(corner / mean - 1) < 0.1
    if counting:
        s2, rho_r, rho_c = mean, 0.0, 0.0
    g128 = np.fft.fftfreq(128)
    # spectrum of the signal-dependent (shot) noise per unit pre-MTF variance, on a full FFT grid
    shot = noise_power_shape((128, 128), rho_r, rho_c, rfft=False)
    shot = shot / shot.mean()
    mtf_a = mtf_w = 0.0
    if not counting and (abs(rho_r) > correlation_threshold or abs(rho_c) > correlation_threshold):
        # a blur-like correlation: try the MTF-shaped spectrum, which extrapolates to low frequency
        a, amp, white, rel = fit_mtf(xc)
        full = _mtf2(g128[:, None], g128[None, :], a)
        s2_mtf = amp * float(full.mean()) + white
        # physical MTFs: a well inside the grid; the extrapolated level within 4x of the lag-1 one
        if amp > 0 and 0.02 < a < 4.0 and s2_mtf < 4 * s2 and rel <= _lag1_residual(xc, s2, rho_r, rho_c):
            s2 = s2_mtf
            mtf_a, mtf_w = a, amp * float(full.mean()) / s2
            # MTF(0) = 1: the shot noise is white before the MTF, blurred after it; the read noise
            # (the white part of the fit) is added after the MTF and carries no signal dependence
            shot = full
    sum_psf2 = float(shot.mean())  # pixel variance of blurred unit white noise = sum(psf^2) (1 without MTF)
    if counting:  # Poisson counts: gain 1 by definition, no fit needed
        gain, intercept, conversion_gain, slope, slope_se, n_kept = 1.0, 0.0, 1.0, 1.0, 0.0, 0
    else:
        gain, intercept, conversion_gain, slope, slope_se, n_kept = _fit_gain(xc, block, shot, mtf_w, s2, mean)
    kind = "counting" if counting else "integrating"
    rel_unc = float(min(slope_se / abs(slope), 99.0)) if slope and np.isfinite(slope_se / slope) else 99.0
    if kind == "counting":
        rel_unc = 0.0
    elif rel_unc > 0.25:
        # the slope is not identifiable (too little spread of local means): the noise level at the
        # mean is all that is known, so the transform treats the noise as signal-independent
        gain = 1e-3 * s2 / max(abs(mean), 1e-12) if mean > 0 else 1e-3
        intercept = s2 - gain * mean
    offset = float(min(np.quantile(xc, 0.001), -intercept / gain)) if kind == "integrating" else 0.0
    rstd, cstd = float(np.std(roff)), float(np.std(coff))
    correlated = bool(abs(rho_r) > correlation_threshold or abs(rho_c) > correlation_threshold
                      or rstd > 0 or cstd > 0)
    model = NoiseModel(kind=kind, gain=float(gain), intercept=float(intercept), offset=offset, rho_row=rho_r,
                       rho_col=rho_c, row_offset_std=rstd, col_offset_std=cstd, correlated=correlated,
                       mean=mean, n_blocks=n_kept, mtf_a=float(mtf_a), mtf_weight=float(mtf_w),
                       conversion_gain=float(conversion_gain),
                       gain_rel_uncertainty=rel_unc)
    return model, xc
