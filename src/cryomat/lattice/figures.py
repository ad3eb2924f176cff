"""Figures and input helpers shared by the lattice commands (the shell, not the core)."""

from __future__ import annotations

import numpy as np

_COLORS = ["#e41a1c", "#377eb8", "#4daf4a", "#ff7f00", "#984ea3", "#a65628", "#f781bf", "#999999"]


def load_image_2d(path, *, pixel_size: float | None = None) -> tuple[np.ndarray, float, object]:
    """Read an image file as a 2D float array with its pixel size (A).

    A stack (frames, rows, cols) is summed over frames. Raises ``InputError`` when the file has
    no 2D image or no pixel size (and none is given).
    """
    from cryomat import io
    from cryomat.errors import InputError

    img = io.read(path, signal="image")
    px = img.require_pixel_size(pixel_size)
    data = np.asarray(img.data)
    if data.ndim == 3 and data.shape[0] <= 4096:
        data = data.astype(np.float64).sum(axis=0)
    if data.ndim != 2:
        raise InputError(f"expected a 2D image (or a stack of frames), got shape {data.shape}", path=path)
    if min(data.shape) < 32:
        raise InputError(f"image is too small for lattice analysis ({data.shape[0]} x {data.shape[1]} px)", path=path)
    data = data.astype(np.float64)
    if not np.all(np.isfinite(data)):
        raise InputError("the image contains NaN or infinite values", path=path)
    return data, px, img


def fft_figure(image, peaks, *, pixel_size: float, title: str = "", k_max: float | None = None):
    """Log power spectrum with the found spots circled and labelled (hkl, phase); returns the figure."""
    from cryomat.lattice.peaks import prepare
    from cryomat.report.figures import new_figure, show_image

    u = prepare(image)
    ps = np.fft.fftshift(np.abs(np.fft.fft2(u)) ** 2)
    nr, nc = ps.shape
    fig, ax = new_figure(2, 1, size=5.0)
    show_image(ax[0, 0], image, pixel_size=pixel_size, title="image")
    lo, hi = np.percentile(np.log1p(ps), [50, 99.95])
    ext = [-0.5 / pixel_size, 0.5 / pixel_size, 0.5 / pixel_size, -0.5 / pixel_size]
    a = ax[0, 1]
    a.imshow(np.log1p(ps), cmap="gray", vmin=lo, vmax=hi, extent=ext)
    phases = [p for p in dict.fromkeys(peaks.get("phase", [])) if p] if len(peaks) else []
    for r in peaks.itertuples():
        ph = getattr(r, "phase", "") or ""
        col = _COLORS[phases.index(ph) % len(_COLORS)] if ph in phases else "yellow"
        for sgn in (1, -1):
            a.add_patch(_circle((sgn * r.kx_per_A, sgn * r.ky_per_A), 0.012 / pixel_size * pixel_size * 1.5, col))
        lab = getattr(r, "hkl", "") or f"{r.d_spacing_A:.2f}"
        a.text(r.kx_per_A, r.ky_per_A - 0.03, str(lab), color=col, fontsize=7, ha="center", va="bottom")
    for i, ph in enumerate(phases):
        a.plot([], [], "o", mfc="none", color=_COLORS[i % len(_COLORS)], label=ph)
    if phases:
        a.legend(fontsize=8, loc="upper right")
    km = k_max or (1.2 * float(peaks.k_per_A.max()) if len(peaks) else 0.5 / pixel_size)
    km = min(km, 0.5 / pixel_size)
    a.set_xlim(-km, km)
    a.set_ylim(km, -km)
    a.set_xlabel("kx (1/A)")
    a.set_ylabel("ky (1/A)")
    a.set_title(title or "power spectrum, indexed spots", fontsize=9)
    return fig


def _circle(xy, r, color):
    from matplotlib.patches import Circle

    return Circle(xy, r, fill=False, color=color, lw=1.0)
