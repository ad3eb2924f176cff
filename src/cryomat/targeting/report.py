"""Figures and report of ``cryomat targets``."""

from __future__ import annotations

import numpy as np


def atlas_figure(image, analysis, table, *, fov_px: float, pixel_size: float):
    """The atlas with excluded areas shaded, objects by class, and numbered target fields."""
    from matplotlib.patches import Circle, Rectangle

    from cryomat.report.figures import new_figure, show_image

    from cryomat.targeting.features import block_mean

    fig, axes = new_figure(1, 1, size=8)
    ax = axes[0, 0]
    b = getattr(analysis, "bin", 1)  # large atlases are shown on the analysis grid
    shown = block_mean(image, b) if b > 1 else image
    show_image(ax, shown, pixel_size=pixel_size * b, title="targets (numbered), excluded areas (red)")
    ov = np.zeros(analysis.exclude.shape + (4,), np.float32)
    ov[analysis.exclude] = (1, 0, 0, 0.25)
    ax.imshow(ov)
    if len(analysis.area_order) > 1:  # the tiles that were segmented (objects are known there)
        for t in analysis.segmented:
            r0, r1, c0, c1 = analysis.core_box(t)
            ax.add_patch(Rectangle((c0 / b - 0.5, r0 / b - 0.5), (c1 - c0) / b, (r1 - r0) / b, fill=False,
                                   ec="cyan", lw=0.4, ls=":"))
    fov_px = fov_px / b
    objs = analysis.objects
    colours = {"round": "#1f77b4", "elongated": "#ff7f0e", "irregular": "#9467bd"}
    for m, c in colours.items():
        sel = objs[objs["morphology"] == m] if len(objs) else objs
        if len(sel):
            ax.scatter((sel["centroid_col_px"] - (b - 1) / 2) / b, (sel["centroid_row_px"] - (b - 1) / 2) / b,
                       s=4 if b == 1 else 1, c=c, label=m, linewidths=0)
    for _, t in table.iterrows():
        r, c = (t["row_px"] - (b - 1) / 2) / b, (t["col_px"] - (b - 1) / 2) / b
        ax.add_patch(Rectangle((c - fov_px / 2, r - fov_px / 2), fov_px, fov_px, fill=False, ec="lime", lw=1.2))
        ax.add_patch(Circle((c, r), fov_px / np.sqrt(2), fill=False, ec="yellow", lw=0.6, ls="--"))
        ax.text(c, r - fov_px / 2 - 2, str(int(t["target"])), color="lime", ha="center", va="bottom", fontsize=8)
    if len(objs):
        ax.legend(loc="upper left", fontsize=7, markerscale=3)
    return fig


def write_targets_report(out, results: dict, table) -> None:
    from cryomat.report import Report

    rep = Report("Imaging targets on the atlas")
    rep.add_text("Fields of view (green squares) with the beam footprint that covers them (yellow circles); "
                 "no footprint overlaps another, so no target is pre-exposed. Red: grid bars, contamination "
                 "and film too thick to image.", note=True)
    rep.add_figure("atlas_targets.png", "annotated atlas")
    rep.add_metrics({k: v for k, v in results.items() if not isinstance(v, dict)})
    rep.add_table(table, title="Targets")
    rep.add_link("targets.nav", "SerialEM navigator with the targets (targets.nav)")
    rep.write(out.file("report.html"))
