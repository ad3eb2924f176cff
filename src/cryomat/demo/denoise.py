"""Demo step: denoising a low-dose nanoparticle image without ground truth, and checking it honestly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TITLE = "Denoising without clean data: noise model, SURE-calibrated Wiener, validation by thinning"
ORDER = 40


def run(out: Path, *, seed: int) -> dict:
    from cryomat.outputs import OutputDir
    from cryomat.restoration import best_gaussian, psnr
    from cryomat.restoration.pipeline import denoise_and_validate
    from cryomat.restoration.report import write_figure_and_report
    from cryomat.simulate.nanoparticles import nanoparticle_scene, record

    rng = np.random.default_rng(seed)
    px, dose = 0.5, 16.0
    inten, parts = nanoparticle_scene((256, 256), pixel_size=px, rng=rng, contrast="haadf")
    noisy, clean, _ = record(inten, dose_e_per_px=dose, rng=rng)
    od = OutputDir(out, command="demo denoise", parameters={"pixel_size_A": px, "dose_e_per_px": dose,
                                                            "n_particles": len(parts)})
    outc = denoise_and_validate(noisy, pixel_size=px, method="fast", seed=seed)
    od.write_mrc("denoised.mrc", outc.denoised, pixel_size=px)
    results = write_figure_and_report(od, noisy, outc, pixel_size=px, title_input="simulated nanoparticles")
    v = outc.validation
    g_psnr, g_sigma, _ = best_gaussian(noisy, clean)
    mse = v["unsupervised_mse"]
    metrics = {"psnr_raw_dB": psnr(clean, noisy), "psnr_denoised_dB": psnr(clean, outc.denoised),
               "psnr_best_gaussian_dB": g_psnr, "mse_half_dose_est": mse.get("mse_half_dose_est"),
               "mse_reduction_db_est": mse.get("mse_reduction_db_est"),
               "frc_max_drop": v["frc"].get("max_drop"), "hallucination_probe_passed": v["hallucination"]["passed"],
               "detector_kind": v["noise_model"]["kind"]}
    od.write_results({**results, "truth_metrics": metrics})
    return {"summary": "A 16 e/px image of crystalline particles on carbon is denoised by the fast tier: the "
                       "noise model is detected (Poisson counts), a Fourier Wiener filter is calibrated by "
                       "Stein's unbiased risk estimate, and the result is checked without truth by binomial "
                       "thinning (MSE at half dose), FRC of the denoised half against the raw other half and "
                       "spectral hallucination probes; against the simulator's truth it beats the best-tuned "
                       "Gaussian.",
            "metrics": metrics, "figure": "denoise.png", "report": "report.html"}
