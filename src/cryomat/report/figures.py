"""Shared figure helpers (matplotlib, Agg backend, no screen needed)."""

from __future__ import annotations

import numpy as np


def new_figure(ncols: int = 1, nrows: int = 1, *, size: float = 4.0):
    """A matplotlib figure and axes on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    return fig, axes


def show_image(ax, image, *, pixel_size: float | None = None, title: str = "", cmap: str = "gray",
               scalebar: bool = True) -> None:
    """Display an image with robust contrast and a scale bar in nm when the pixel size (A) is known."""
    from cryomat.io.writers import to_display

    ax.imshow(to_display(image), cmap=cmap, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    if scalebar and pixel_size:
        ncol = np.shape(image)[1]
        width_nm = ncol * pixel_size / 10.0
        nice = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]
        length_nm = max([n for n in nice if n <= width_nm / 4] or [nice[0]])
        length_px = length_nm * 10.0 / pixel_size
        nrow = np.shape(image)[0]
        y = nrow * 0.94
        x0 = ncol * 0.05
        ax.plot([x0, x0 + length_px], [y, y], color="white", lw=3, solid_capstyle="butt")
        label = f"{length_nm:g} nm" if length_nm < 1000 else f"{length_nm / 1000:g} µm"
        ax.text(x0 + length_px / 2, y - nrow * 0.025, label, color="white", ha="center", va="bottom", fontsize=8)
