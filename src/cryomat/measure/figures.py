"""Figures for segmentation and classification reports (used by the CLI and the demo only)."""

from __future__ import annotations

import numpy as np


def overlay_figure(image, labels, *, pixel_size: float | None = None, title: str = ""):
    """The image with each particle's outline in a cycling colour."""
    from skimage.segmentation import find_boundaries

    from cryomat.report.figures import new_figure, show_image

    h, w = np.shape(image)
    fig, ax = new_figure(1, 1, size=min(7.0, 3.0 + 4.0 * max(h, w) / 1024))
    show_image(ax[0, 0], image, pixel_size=pixel_size, title=f"{title}: {int(labels.max(initial=0))} particles")
    lab = np.asarray(labels)
    if lab.max(initial=0) > 0:
        b = find_boundaries(lab, mode="inner")
        rgba = np.zeros(lab.shape + (4,), np.float32)
        colours = np.array([[1, 0.2, 0.2], [0.2, 1, 0.2], [0.3, 0.6, 1], [1, 0.8, 0.1], [1, 0.3, 1], [0.2, 1, 1]])
        rgba[..., :3] = colours[(lab % len(colours))]
        rgba[..., 3] = b * 0.9
        ax[0, 0].imshow(rgba, interpolation="nearest")
    return fig


def size_figure(diameters_nm, fit=None, *, title: str = "Equivalent diameter"):
    """Histogram of diameters (nm) with the lognormal fit overlaid."""
    from cryomat.report.figures import new_figure

    fig, ax = new_figure(1, 1, size=4.5)
    a = ax[0, 0]
    d = np.asarray(diameters_nm, dtype=float)
    d = d[np.isfinite(d) & (d > 0)]
    if d.size:
        bins = min(40, max(5, int(np.sqrt(d.size)) + 1))
        a.hist(d, bins=bins, density=True, color="0.7", edgecolor="0.3", label=f"{d.size} particles")
        if fit is not None:
            x = np.linspace(d.min() * 0.8, d.max() * 1.2, 300)
            a.plot(x, fit.pdf(x), "r-", label=f"lognormal: median {fit.median:.3g} nm, sigma_g {fit.geometric_std:.3f}")
        a.legend(fontsize=8)
    else:
        a.text(0.5, 0.5, "no particles", ha="center", va="center", transform=a.transAxes)
    a.set_xlabel("equivalent diameter (nm)")
    a.set_ylabel("probability density (1/nm)")
    a.set_title(title, fontsize=9)
    return fig
