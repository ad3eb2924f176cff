"""Power spectra without edge streaks, windows, and radial averages in 1/A."""

from __future__ import annotations

import numpy as np

from cryomat.fourier.grids import _check_pixel_size, radial_frequency


def _as_float(image) -> np.ndarray:
    a = np.asarray(image)
    return a if a.dtype == np.float32 else a.astype(np.float64)


def periodic_plus_smooth(image) -> tuple[np.ndarray, np.ndarray]:
    """Split a 2D image into a periodic part and a smooth part (u = p + s).

    The periodic part has no jump across the image borders, so its FFT has no cross-shaped
    edge streaks; the smooth part carries the border discontinuity.

    Returns
    -------
    periodic, smooth : arrays of the image's shape.

    References
    ----------
    L. Moisan, "Periodic plus smooth image decomposition", J. Math. Imaging Vis. 39, 167 (2011),
    doi:10.1007/s10851-010-0227-1.
    """
    u = _as_float(image)
    if u.ndim != 2:
        raise ValueError(f"image must be 2D, got shape {u.shape}")
    nr, nc = u.shape
    v = np.zeros_like(u, dtype=np.float64)
    d_row = u[-1, :] - u[0, :]
    d_col = u[:, -1] - u[:, 0]
    v[0, :] += d_row
    v[-1, :] -= d_row
    v[:, 0] += d_col
    v[:, -1] -= d_col
    q = np.arange(nr).reshape(-1, 1)
    r = np.arange(nc).reshape(1, -1)
    denom = 2 * np.cos(2 * np.pi * q / nr) + 2 * np.cos(2 * np.pi * r / nc) - 4
    denom[0, 0] = 1.0
    s_hat = np.fft.fft2(v) / denom
    s_hat[0, 0] = 0.0
    smooth = np.real(np.fft.ifft2(s_hat)).astype(u.dtype, copy=False)
    return u - smooth, smooth


def window(shape: tuple[int, int], kind: str = "hann") -> np.ndarray:
    """Separable 2D window (``hann``, ``tukey`` with alpha 0.2, or ``none``)."""
    from scipy.signal import windows

    if kind == "none":
        return np.ones(shape)
    ws = []
    for n in shape:
        if kind == "hann":
            ws.append(windows.hann(n, sym=False))
        elif kind == "tukey":
            ws.append(windows.tukey(n, 0.2, sym=False))
        else:
            raise ValueError(f"window kind must be 'hann', 'tukey' or 'none', got {kind!r}")
    return np.outer(ws[0], ws[1])


def power_spectrum(image, *, edge: str = "periodic", shift: bool = True) -> np.ndarray:
    """|FFT|^2 of a 2D image with edge-artefact suppression.

    Parameters
    ----------
    image : (row, col) array.
    edge : ``"periodic"`` (periodic-plus-smooth, keeps full resolution and amplitudes),
        ``"hann"``/``"tukey"`` (window), or ``"none"``.
    shift : put zero frequency in the centre (``fftshift``).

    Returns
    -------
    Power spectrum, float64, same shape as the image. The mean is removed first, so the
    zero-frequency pixel holds only the window's leakage.
    """
    u = np.asarray(image, dtype=np.float64)
    if u.ndim != 2:
        raise ValueError(f"image must be 2D, got shape {u.shape}")
    if not np.all(np.isfinite(u)):
        raise ValueError("image contains NaN or infinite values")
    u = u - u.mean()
    if edge == "periodic":
        u, _ = periodic_plus_smooth(u)
    elif edge in ("hann", "tukey"):
        u = u * window(u.shape, edge)
    elif edge != "none":
        raise ValueError(f"edge must be 'periodic', 'hann', 'tukey' or 'none', got {edge!r}")
    ps = np.abs(np.fft.fft2(u)) ** 2
    return np.fft.fftshift(ps) if shift else ps


def radial_average(spectrum, *, pixel_size: float = 1.0, shifted: bool = True, n_bins: int | None = None,
                   statistic: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """Rotational average of a 2D (or 3D) spectrum against spatial frequency.

    Returns
    -------
    freq_per_A : bin centres (1/A), from 0 to the Nyquist frequency 1/(2 pixel_size).
    values : mean (or median with ``statistic="median"``) of each bin.
    """
    px = _check_pixel_size(pixel_size)
    s = np.asarray(spectrum, dtype=np.float64)
    k = radial_frequency(s.shape, px, shifted=shifted)
    nyq = 0.5 / px
    nb = n_bins or min(s.shape) // 2
    edges = np.linspace(0, nyq, nb + 1)
    idx = np.digitize(k.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < nb)
    if statistic == "mean":
        sums = np.bincount(idx[ok], weights=s.ravel()[ok], minlength=nb)
        counts = np.bincount(idx[ok], minlength=nb)
        with np.errstate(invalid="ignore", divide="ignore"):
            vals = sums / counts
    elif statistic == "median":
        flat = s.ravel()[ok]
        ii = idx[ok]
        order = np.argsort(ii, kind="stable")
        splits = np.searchsorted(ii[order], np.arange(1, nb))
        vals = np.array([np.median(g) if g.size else np.nan for g in np.split(flat[order], splits)])
    else:
        raise ValueError(f"statistic must be 'mean' or 'median', got {statistic!r}")
    return 0.5 * (edges[:-1] + edges[1:]), vals
