"""Demo step: segment every particle of a low-dose image, measure shapes, compare with the truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TITLE = "Particles at 1 e/A^2: instance segmentation, exact shapes, sizes"
ORDER = 70


def run(out: Path, *, seed: int) -> dict:
    from cryomat.measure import particle_table
    from cryomat.measure.figures import overlay_figure, size_figure
    from cryomat.measure.sizes import fit_lognormal
    from cryomat.outputs import OutputDir
    from cryomat.report import Report
    from cryomat.segmentation import match_instances, segment_particles, threshold_watershed
    from cryomat.simulate.particles import particle_image

    dose, px = 1.0, 5.0
    sim = particle_image((384, 384), pixel_size=px, dose_e_per_A2=dose, n_particles=24,
                         rng=np.random.default_rng(seed))
    labels = segment_particles(sim.image, pixel_size=px, dose_e_per_A2=dose, split_touching=True)
    base = threshold_watershed(sim.image, pixel_size=px)
    ours, theirs = match_instances(sim.labels, labels), match_instances(sim.labels, base)
    table = particle_table(labels, sim.image, pixel_size=px)
    fit = fit_lognormal(table["equivalent_diameter_nm"])
    od = OutputDir(out, command="demo segment", parameters={"pixel_size_A": px, "dose_e_per_A2": dose})
    od.write_csv("particles.csv", table)
    od.save_figure("segment.png", overlay_figure(sim.image, labels, pixel_size=px, title="1 e/A^2"))
    od.save_figure("sizes.png", size_figure(table["equivalent_diameter_nm"], fit))
    metrics = {"n_true": int(len(sim.table)), "n_found": int(labels.max()), "f1_iou50": ours.f1,
               "mean_iou": ours.mean_iou, "baseline_f1_iou50": theirs.f1,
               "lognormal_median_nm": fit.median if fit else None}
    rep = Report("Particle segmentation at 1 e/A^2")
    rep.add_figure("segment.png", "Simulated spheres, rods, cubes and plates with their segmented outlines")
    rep.add_figure("sizes.png", "Equivalent diameters and the lognormal fit")
    rep.add_metrics(metrics)
    rep.write(od.file("report.html"))
    od.write_results(metrics)
    return {"summary": f"{len(sim.table)} simulated particles at {dose:g} e/A^2: the dose-aware segmentation finds "
                       f"them with instance F1 {ours.f1:.2f} (Otsu + watershed: {theirs.f1:.2f}); shapes are "
                       "measured on sub-pixel contours (Feret by rotating calipers).",
            "metrics": metrics, "figure": "segment.png", "report": "report.html"}
