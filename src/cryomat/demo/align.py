"""Demo step: drift correction and dose weighting of a simulated low-dose movie."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TITLE = "Drift correction and dose weighting of a low-dose movie (cryomat align)"
ORDER = 30


def run(out: Path, *, seed: int) -> dict:
    from cryomat import registration as reg
    from cryomat.fourier import fourier_ring_correlation
    from cryomat.outputs import OutputDir
    from cryomat.report import Report
    from cryomat.report.figures import new_figure, show_image
    from cryomat.simulate.movie import render_movie

    n, size, dose = 16, 384, 0.3
    frames, truth, gain, defects = render_movie(n_frames=n, shape=(size, size), dose_per_frame=dose,
                                                gain_variation=0.05, n_hot_pixels=20, drift_total_px=12.0,
                                                seed=seed)
    corr = reg.build_corrector(frames, gain=gain)
    res = reg.estimate_drift(frames, pixel_size=1.0, corrector=corr)
    sums = reg.aligned_sums(frames, res.shifts_px, corrector=corr, pixel_size=1.0, dose_per_frame=dose)
    raw = reg.aligned_sums(frames, np.zeros((n, 2)), corrector=corr)
    e = res.shifts_px - truth["drift_px"]
    e -= e.mean(0)
    rms = float(np.sqrt(np.mean(np.sum(e**2, 1))))
    frc_al = fourier_ring_correlation(sums.even, sums.odd, pixel_size=1.0)
    frc_raw = fourier_ring_correlation(raw.even, raw.odd, pixel_size=1.0)
    od = OutputDir(out, command="demo align", parameters={"n_frames": n, "size_px": size,
                                                          "dose_per_frame_e_per_A2": dose, "seed": seed})
    od.write_mrc("aligned_sum_dw.mrc", sums.dose_weighted, pixel_size=1.0)
    od.write_csv("shifts.csv", res.table())
    fig, ax = new_figure(3, 1, size=3.6)
    t = np.asarray(truth["drift_px"])
    ax[0, 0].plot(t[:, 1], t[:, 0], "k-", lw=1.5, label="truth")
    ax[0, 0].plot(res.shifts_px[:, 1], res.shifts_px[:, 0], "o", ms=4, mfc="none", label="estimated")
    ax[0, 0].invert_yaxis()
    ax[0, 0].set_xlabel("col (px)")
    ax[0, 0].set_ylabel("row (px)")
    ax[0, 0].legend(fontsize=8)
    ax[0, 0].set_title(f"drift, RMS error {rms:.3f} px at {dose:g} e/px/frame", fontsize=9)
    from scipy.ndimage import gaussian_filter

    show_image(ax[0, 1], gaussian_filter(sums.dose_weighted, 1.0), pixel_size=1.0,
               title="aligned, dose-weighted sum (display low-pass 1 px)")
    f = frc_al.freq_per_A
    ax[0, 2].plot(f[1:], np.convolve(frc_al.frc, np.ones(5) / 5, "same")[1:], label="aligned")
    ax[0, 2].plot(f[1:], np.convolve(frc_raw.frc, np.ones(5) / 5, "same")[1:], label="not aligned")
    ax[0, 2].axhline(0.143, color="gray", ls="--", lw=0.8)
    ax[0, 2].set_xlabel("spatial frequency (1/A)")
    ax[0, 2].set_title("FRC of even vs odd half sums", fontsize=9)
    ax[0, 2].legend(fontsize=8)
    od.save_figure("align.png", fig)
    metrics = {"rms_shift_error_px": rms, "max_shift_error_px": float(np.abs(e).max()),
               "total_drift_px": res.total_drift_px, "true_total_drift_px": 12.0,
               "hot_pixels_found": int(corr.defects.sum()) if corr.defects is not None else 0,
               "hot_pixels_true": 20, "counts_per_px_per_frame": dose}
    rep = Report("Drift correction and dose weighting")
    rep.add_figure("align.png", "Estimated vs true drift; dose-weighted aligned sum; even/odd FRC with and "
                                "without alignment")
    rep.add_metrics(metrics)
    rep.write(od.file("report.html"))
    od.write_results(metrics)
    return {"summary": f"A {n}-frame movie at {dose:g} electrons per pixel per frame (weak-phase image of an "
                       "amorphous film with a crystalline patch, 12 px of beam-induced and stage drift, gain "
                       "variation and hot pixels) is aligned by leave-one-out cross-correlation: the drift is "
                       f"recovered to {rms:.3f} px RMS, hot pixels are found and replaced, and the even/odd FRC "
                       "shows the information that alignment restores.",
            "metrics": metrics, "figure": "align.png", "report": "report.html"}
