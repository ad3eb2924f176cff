"""Figure and HTML report of a denoising run (the shell side of ``cryomat denoise``)."""

from __future__ import annotations

import numpy as np


def _log_ps(img):
    from cryomat.fourier import power_spectrum

    ps = power_spectrum(np.asarray(img, dtype=np.float64))
    return np.log1p(ps / (np.median(ps) + 1e-30))


def write_figure_and_report(od, raw, outc, *, pixel_size, title_input: str = "") -> dict:
    """Side-by-side figure (raw, denoised, residual; their power spectra; FRC) and report.html.

    Returns the ``results`` dict for results.json.
    """
    from cryomat.report import Report
    from cryomat.report.figures import new_figure, show_image

    den = np.asarray(outc.denoised, dtype=np.float64)
    raw = np.asarray(raw, dtype=np.float64)
    fig, ax = new_figure(3, 2, size=3.6)
    show_image(ax[0, 0], raw, pixel_size=pixel_size, title="raw")
    show_image(ax[0, 1], den, pixel_size=pixel_size, title=f"denoised ({outc.method})")
    show_image(ax[0, 2], raw - den, pixel_size=pixel_size, title="residual (raw - denoised)")
    lr, ld = _log_ps(raw), _log_ps(den)
    vmax = float(np.quantile(lr, 0.999))
    ax[1, 0].imshow(lr, cmap="gray", vmin=0, vmax=vmax)
    ax[1, 0].set_title("power spectrum, raw", fontsize=9)
    ax[1, 1].imshow(ld, cmap="gray", vmin=0, vmax=vmax)
    ax[1, 1].set_title("power spectrum, denoised (same scale)", fontsize=9)
    for a in (ax[1, 0], ax[1, 1]):
        a.set_axis_off()
    c = outc.curves
    if c:
        ax[1, 2].plot(c["freq_per_A"][1:], c["frc_raw"][1:], label="FRC raw halves")
        ax[1, 2].plot(c["freq_per_A"][1:], c["frc_denoised"][1:], label="FRC denoised half vs raw half")
        ax[1, 2].axhline(0.143, color="gray", ls="--", lw=0.8)
        ax[1, 2].set_xlabel("spatial frequency (1/A)" if pixel_size else "spatial frequency (1/px)")
        ax[1, 2].legend(fontsize=7)
    else:
        ax[1, 2].text(0.5, 0.5, "no independent halves:\nFRC not available", ha="center", va="center")
        ax[1, 2].set_axis_off()
    od.save_figure("denoise.png", fig)
    v = outc.validation
    nm = v["noise_model"]
    mse = v["unsupervised_mse"]
    frc = v["frc"]
    hal = v["hallucination"]
    res = v["residual"]
    details = {k: val for k, val in outc.details.items() if not k.startswith("_")}
    results = {
        "method": outc.method,
        "pixel_size_A": pixel_size,
        "shape_px": list(raw.shape),
        "denoised_file": "denoised.mrc",
        "dtype_policy": "denoised.mrc is float32 (denoised values are not whole counts), same pixel size",
        "details": details,
        "validation": v,
    }
    rep = Report("Denoising", subtitle=title_input)
    rep.add_figure("denoise.png", "Raw, denoised and residual; power spectra on one scale; FRC of the "
                                  "denoised half against the raw other half")
    rep.add_metrics({"method": outc.method, "detector_kind": nm["kind"], "gain_units_per_e": nm["gain"],
                     "conversion_gain_pre_mtf_units_per_e": nm.get("conversion_gain"),
                     "gain_rel_uncertainty": nm.get("gain_rel_uncertainty"),
                     "intercept_units2": nm["intercept"], "rho_row": nm["rho_row"], "rho_col": nm["rho_col"],
                     "row_offset_std": nm["row_offset_std"], "col_offset_std": nm["col_offset_std"]},
                    title="Noise model")
    rep.add_heading("Validation without ground truth")
    if mse.get("mse_half_dose_est") is not None:
        rep.add_metrics({"mse_half_dose_est": mse["mse_half_dose_est"],
                         "mse_half_dose_raw_est": mse.get("mse_half_dose_raw_est"),
                         "mse_reduction_db_est": mse.get("mse_reduction_db_est")})
    else:
        rep.add_text(f"Unsupervised MSE not reported: {mse.get('reason')}", note=True)
    if frc.get("passed") is not None:
        rep.add_metrics({"frc_halves": frc.get("halves"), "raw_frc_0143_A": frc["raw_frc_0143_A"],
                         "frc_max_drop": frc["max_drop"], "frc_passed": frc["passed"]})
    else:
        rep.add_text(f"FRC check not available: {frc.get('reason')}", note=True)
    rep.add_metrics({**res, "invented_peaks": hal["n_invented_peaks"], "flattened_peaks": hal["n_flattened_peaks"],
                     "hallucination_probe_passed": hal["passed"]})
    for w in v.get("warnings", []):
        rep.add_text(w, note=True)
    rep.write(od.file("report.html"))
    return results
