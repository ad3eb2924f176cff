"""Figures of ``cryomat track``: overlay movie (animated GIF) and growth curves."""

from __future__ import annotations

import numpy as np


def _colour(track: int) -> np.ndarray:
    rng = np.random.default_rng(int(track) * 7919 + 1)
    return rng.integers(60, 255, 3).astype(np.uint8)


def overlay_frames(frames, labels, tracks, *, max_size: int = 512) -> list[np.ndarray]:
    """RGB frames: the image in grey, each tracked object's outline in its track's colour."""
    from scipy import ndimage as ndi

    from cryomat.io.writers import to_display

    out = []
    step = max(1, int(np.ceil(max(np.shape(frames)[1:]) / max_size)))
    key = {(int(f), int(lb)): int(t) for f, lb, t in zip(tracks["frame"], tracks["label"], tracks["track"])}
    for f in range(len(frames)):
        g = (to_display(np.asarray(frames[f], np.float32)) * 255).astype(np.uint8)
        rgb = np.repeat(g[..., None], 3, axis=2)
        lab = labels[f]
        edge = lab != ndi.grey_erosion(lab, size=3)
        edge &= lab > 0
        rr, cc = np.nonzero(edge)
        for r, c in zip(rr, cc):
            t = key.get((f, int(lab[r, c])))
            if t is not None:
                rgb[r, c] = _colour(t)
        out.append(rgb[::step, ::step])
    return out


def growth_figure(tracks, growth, *, max_tracks: int = 12):
    """Axis lengths against time for the longest tracks (image-fitted axes where the tracks have
    them, else Feret diameters), with the fitted rates as lines."""
    from cryomat.report.figures import new_figure

    fig, axes = new_figure(2, 1, size=4.2)
    longest = growth.sort_values("n_frames", ascending=False).head(max_tracks)
    fitted = "major_axis_fit_nm" in tracks and tracks["major_axis_fit_nm"].notna().any()
    cols = ("major_axis_fit_nm", "minor_axis_fit_nm") if fitted else ("major_axis_nm", "minor_axis_nm")
    for row in longest.itertuples():
        g = tracks[tracks["track"] == row.track].sort_values("frame")
        g = g[g[cols[0]].notna()]
        if g.empty:
            continue
        c = _colour(row.track) / 255.0
        t = g["time_s"].to_numpy(float)
        for ax, col, rate in ((axes[0, 0], cols[0], row.major_rate_nm_per_s),
                              (axes[0, 1], cols[1], row.minor_rate_nm_per_s)):
            y = g[col].to_numpy(float)
            ax.plot(t, y, "o", ms=2.5, color=c)
            # the fitted rate drawn through the data's weighted centre
            ax.plot(t, np.mean(y) + rate * (t - np.mean(t)), "-", color=c, lw=0.8)
    kind = "fitted ellipse" if fitted else "Feret"
    axes[0, 0].set_title(f"major axis ({kind}) and fitted rate", fontsize=9)
    axes[0, 1].set_title(f"minor axis ({kind}) and fitted rate", fontsize=9)
    for ax in axes[0]:
        ax.set_xlabel("time (s)")
        ax.set_ylabel("length (nm)")
    return fig


def anisotropy_figure(growth):
    from cryomat.report.figures import new_figure

    fig, axes = new_figure(1, 1, size=4)
    ax = axes[0, 0]
    ax.errorbar(growth["minor_rate_nm_per_s"], growth["major_rate_nm_per_s"],
                xerr=growth["minor_rate_ci95_nm_per_s"], yerr=growth["major_rate_ci95_nm_per_s"], fmt="o", ms=3)
    m = float(np.nanmax(growth[["major_rate_nm_per_s", "minor_rate_nm_per_s"]].to_numpy())) if len(growth) else 1.0
    ax.plot([0, m], [0, m], "k--", lw=0.6, label="isotropic")
    ax.set_xlabel("minor-axis rate (nm/s)")
    ax.set_ylabel("major-axis rate (nm/s)")
    ax.legend(fontsize=8)
    return fig
