"""Demo step: cryo-ET of a catalyst-layer phantom: alignment, reconstruction, FSC, local thickness."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TITLE = "Cryo-ET: fiducial-less alignment, CPU reconstruction, local thickness"
ORDER = 60


def run(out: Path, *, seed: int) -> dict:
    from cryomat.fourier import fourier_ring_correlation
    from cryomat.outputs import OutputDir
    from cryomat.report import Report
    from cryomat.simulate.tilt_series import simulate_tilt_series
    from cryomat.tomography import align_tilt_series, reconstruct_wbp, shift_error
    from cryomat.tomography.phantoms import LABELS
    from cryomat.tomography.pipeline import orthoslices_figure
    from cryomat.tomography.thickness import local_thickness
    from cryomat.tomography.transforms import align_stack

    px, counts = 5.0, 50.0
    sim = simulate_tilt_series(phantom="particles", size=64, n_tilts=41, counts_per_px=counts, shift_sigma_px=2.0,
                               tilt_axis_error_deg=1.0, rng=seed)
    ang = sim["angles_deg"]
    ali = align_tilt_series(sim["stack"], ang, iterations=1, full_iterations=1, thickness=48)
    err = shift_error(ali.shifts_px, sim["shifts_px"], ang)
    # a 3D translation of the whole specimen is unobservable; put the estimate in the truth's gauge
    # before comparing the volume with the phantom
    from cryomat.tomography.alignment import remove_translation_mode

    gauge = sim["shifts_px"] - remove_translation_mode(sim["shifts_px"], ang)
    aligned = align_stack(sim["stack"], shifts=ali.shifts_px + gauge, psi_deg=ali.psi_deg)
    vol = reconstruct_wbp(aligned / (counts / sim["ideal"].mean()), ang)
    fsc = fourier_ring_correlation(vol, sim["volume"], pixel_size=px)
    coat = sim["labels"] == LABELS["coating"]
    lt = local_thickness(coat, voxel_size=px / 10)
    od = OutputDir(out, command="demo tomo", parameters={"pixel_size_A": px, "counts_per_px": counts,
                                                         "n_tilts": int(ang.size), "tilt_range_deg": 60})
    od.write_mrc("volume.mrc", vol, pixel_size=px, volume=True)
    od.save_figure("tomo.png", orthoslices_figure(vol, pixel_size=px, title="aligned WBP of the catalyst phantom"))
    metrics = {"shift_rms_error_px": float(np.sqrt(np.mean(err ** 2))),
               "tilt_axis_error_deg": float(ali.psi_deg - sim["tilt_axis_deg"]),
               "fsc_vs_phantom_05_A": fsc.resolution(0.5),
               "coating_thickness_true_nm": float(2 * px / 10),
               "coating_thickness_mean_nm": float(lt[coat].mean())}
    rep = Report("Cryo-ET demo")
    rep.add_figure("tomo.png", "Central slices after alignment and weighted back-projection")
    rep.add_metrics(metrics)
    rep.write(od.file("report.html"))
    od.write_results(metrics)
    return {"summary": "A tilt series (41 views, +/-60 deg, 50 counts/px) of Pt-like particles on a carbon support "
                       "under a thin ionomer coating, with random shifts and a 1 deg tilt-axis error, is aligned "
                       "without fiducials and reconstructed by weighted back-projection; the FSC against the "
                       "phantom and the coating's local thickness are checked against the truth.",
            "metrics": metrics, "figure": "tomo.png", "report": "report.html"}
