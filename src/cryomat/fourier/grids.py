"""Spatial-frequency grids in 1/A for numpy-ordered arrays (2D or 3D)."""

from __future__ import annotations

import numpy as np


def _check_pixel_size(pixel_size: float) -> float:
    if pixel_size is None or not np.isfinite(pixel_size) or pixel_size <= 0:
        raise ValueError(f"pixel_size must be a positive number of Angstrom, got {pixel_size!r}")
    return float(pixel_size)


def frequency_grid(shape: tuple[int, ...], pixel_size: float = 1.0, *, shifted: bool = False,
                   rfft: bool = False) -> list[np.ndarray]:
    """Per-axis spatial frequencies (1/A), broadcastable to ``shape``.

    ``shifted`` gives the fftshift-ed (zero in the centre) layout; ``rfft`` the half-spectrum
    layout of :func:`numpy.fft.rfftn` along the last axis.
    """
    px = _check_pixel_size(pixel_size)
    grids = []
    nd = len(shape)
    for ax, n in enumerate(shape):
        if rfft and ax == nd - 1:
            f = np.fft.rfftfreq(n, d=px)
        else:
            f = np.fft.fftfreq(n, d=px)
            if shifted:
                f = np.fft.fftshift(f)
        sl = [1] * nd
        sl[ax] = f.size
        grids.append(f.reshape(sl))
    return grids


def radial_frequency(shape: tuple[int, ...], pixel_size: float = 1.0, *, shifted: bool = False,
                     rfft: bool = False) -> np.ndarray:
    """|k| in 1/A on the grid of :func:`frequency_grid`."""
    grids = frequency_grid(shape, pixel_size, shifted=shifted, rfft=rfft)
    k2 = sum(g.astype(np.float64) ** 2 for g in grids)
    return np.sqrt(k2)


def ring_index(shape: tuple[int, ...], *, shifted: bool = False, rfft: bool = False) -> np.ndarray:
    """Integer ring (shell) number of every Fourier pixel, in units of 1/N of the smallest axis.

    Ring r holds frequencies with ``r - 0.5 <= |k| * N < r + 0.5`` where ``N = min(shape)``,
    which makes rings isotropic for non-square arrays.
    """
    n = min(shape)
    grids = frequency_grid(shape, 1.0, shifted=shifted, rfft=rfft)
    k = np.sqrt(sum(g.astype(np.float64) ** 2 for g in grids))
    return np.rint(k * n).astype(np.int64)
