"""Figures of a dose-series analysis (the report shell; library functions never plot)."""

from __future__ import annotations

import numpy as np

from cryomat.report.figures import new_figure


def _mgy_axis(ax, mgy):
    if mgy:
        sec = ax.secondary_xaxis("top", functions=(lambda x: x * mgy, lambda x: x / mgy))
        sec.set_xlabel("absorbed dose (MGy)", fontsize=8)


def decay_figure(result, *, mgy: float | None = None):
    """Bragg intensity I/I0 against fluence: summed, per d-spacing shell, with the fits."""
    import matplotlib.pyplot as plt

    fig, axes = new_figure(2, 1, size=4.2)
    ax, ax2 = axes[0, 0], axes[0, 1]
    c = result.curve
    d = c["cumulative_dose_e_per_A2"].to_numpy()
    dd = np.linspace(0, d[-1], 300)
    if "bragg_intensity_rel" in c and result.fit is not None:
        f = result.fit
        ax.plot(d, c["bragg_intensity_rel"], "o", ms=3, color="k", label="all reflections")
        ax.plot(dd, f.predict(dd) / f.i0, "-", color="k", lw=1.2,
                label=f"fit: Dc = {f.critical_dose_e_per_A2:.3g} e/A² ({f.model})")
        cmap = plt.get_cmap("viridis")
        sh = result.shells
        for k, (s, fs) in enumerate(result.shell_fits):
            key = f"bragg_intensity_rel_shell{s}"
            if fs is None or key not in c or not fs.reliable:
                continue
            tot = c[key].to_numpy()
            col = cmap(k / max(len(result.shell_fits) - 1, 1))
            ax2.plot(d, tot, "o", ms=2.5, color=col)
            ax2.plot(dd, fs.predict(dd) / fs.i0, "-", color=col, lw=1,
                     label=f"d = {sh.loc[sh['shell'] == s, 'd_spacing_A'].iloc[0]:.3g} A: "
                           f"Dc = {fs.critical_dose_e_per_A2:.3g}")
    for a, title in ((ax, "Bragg intensity (sum of tracked reflections)"), (ax2, "per d-spacing")):
        a.axhline(1 / np.e, color="gray", ls=":", lw=0.8)
        a.set_xlabel("cumulative fluence (e/A²)")
        a.set_ylabel("I / I0")
        a.set_title(title, fontsize=9)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=7)
        else:
            a.text(0.5, 0.5, "no crystalline reflection found", ha="center", transform=a.transAxes, fontsize=9)
        _mgy_axis(a, mgy)
    fig.tight_layout()
    return fig


def frc_figure(result, *, mgy: float | None = None):
    """Band FRC and FRPR against fluence in both conventions, and FRC curves against frequency."""
    import matplotlib.pyplot as plt

    fig, axes = new_figure(3, 1, size=4.0)
    c = result.curve.drop_duplicates("frc_group")
    d = c["frc_group_dose_e_per_A2"].to_numpy()
    ax = axes[0, 0]
    ax.plot(d, c["frc_band"], "o-", ms=3, label="vs first frame")
    ax.plot(d, c["frc_band_consecutive"], "s--", ms=3, label="consecutive frames")
    ax.axhline(0.5, color="gray", ls=":", lw=0.8)
    ax.set_ylabel("FRC over the band")
    ax = axes[0, 1]
    ax.plot(d, c["frpr_deg"], "o-", ms=3, label="vs first frame")
    ax.plot(d, c["frpr_deg_consecutive"], "s--", ms=3, label="consecutive frames")
    ax.axhline(45, color="gray", ls=":", lw=0.8)
    ax.set_ylabel("FRPR over the band (deg)")
    lo, hi = result.summary.get("frc_band_A", [None, None])
    for a in axes[0, :2]:
        a.set_xlabel("cumulative fluence (e/A²)")
        a.legend(fontsize=7)
        a.set_title(f"band {lo:.3g}-{hi:.3g} A", fontsize=9)
        _mgy_axis(a, mgy)
    ax = axes[0, 2]
    cmap = plt.get_cmap("plasma")
    f = result.freq_per_A
    ng = result.frc_first.shape[0]
    for g in range(1, ng):
        ax.plot(f[1:], result.frc_first[g, 1:], color=cmap(g / max(ng - 1, 1)), lw=0.8)
    ax.axhline(0.143, color="gray", ls=":", lw=0.8)
    ax.axhline(0.5, color="gray", ls=":", lw=0.8)
    ax.set_xlabel("spatial frequency (1/A)")
    ax.set_ylabel("FRC vs first frame")
    ax.set_title("FRC curves (colour: fluence)", fontsize=9)
    fig.tight_layout()
    return fig


def spectrum_figure(result, *, pixel_size: float):
    """Early-frame power spectrum with the tracked reflections, and Dc against d-spacing."""
    fig, axes = new_figure(2, 1, size=4.2)
    ax = axes[0, 0]
    p = result.early_power
    if p is not None:
        m, n = p.shape
        ax.imshow(np.log1p(p / np.median(p)), cmap="gray")
        for _, r in result.reflections.iterrows():
            for sgn in (1, -1):
                ax.add_patch(_circle((n // 2 + sgn * r["col_px"], m // 2 + sgn * r["row_px"]),
                                     result.summary.get("peak_radius_px", 3) + 3))
        ax.set_title(f"early frames: {len(result.reflections)} reflections tracked", fontsize=9)
    ax.set_axis_off()
    ax = axes[0, 1]
    sh = result.shells
    sh = sh[sh["reliable"].astype(bool)] if len(sh) else sh
    if len(sh):
        yerr = np.abs(np.vstack([sh["critical_dose_e_per_A2"] - sh["ci_low_e_per_A2"],
                                 sh["ci_high_e_per_A2"] - sh["critical_dose_e_per_A2"]]))
        ax.errorbar(sh["d_spacing_A"], sh["critical_dose_e_per_A2"], yerr=yerr, fmt="o", capsize=3)
        ax.set_xlabel("d-spacing (A)")
        ax.set_ylabel("critical dose (e/A²)")
        ax.set_title("critical dose by d-spacing (95 % interval; reliable fits)", fontsize=9)
    fig.tight_layout()
    return fig


def _circle(xy, r):
    from matplotlib.patches import Circle

    return Circle(xy, r, fill=False, color="tab:orange", lw=0.8)


def compare_figure(entries):
    """Several series on one plot: I/I0 against fluence with their critical doses."""
    fig, axes = new_figure(2, 1, size=4.2)
    ax = axes[0, 0]
    for e in entries:
        c = e["curve"]
        if "bragg_intensity_rel" not in c:
            continue
        dc = e["critical_dose_e_per_A2"]
        ax.plot(c["cumulative_dose_e_per_A2"], c["bragg_intensity_rel"], "o-", ms=2.5, lw=0.8,
                label=f"{e['name']}: Dc = {dc:.3g} e/A²" if dc else e["name"])
    ax.axhline(1 / np.e, color="gray", ls=":", lw=0.8)
    ax.set_xlabel("cumulative fluence (e/A²)")
    ax.set_ylabel("I / I0")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    names = [e["name"] for e in entries]
    vals = [e["critical_dose_e_per_A2"] or np.nan for e in entries]
    lo = [e["ci"][0] if e["ci"] and e["ci"][0] is not None else np.nan for e in entries]
    hi = [e["ci"][1] if e["ci"] and e["ci"][1] is not None else np.nan for e in entries]
    x = np.arange(len(entries))
    ax.errorbar(x, vals, yerr=np.abs(np.vstack([np.subtract(vals, lo), np.subtract(hi, vals)])), fmt="o", capsize=3)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("critical dose (e/A²)")
    fig.tight_layout()
    return fig
