"""Denoising of single low-dose images and movies without clean ground truth, with honest validation.

Tiers: a noise-model front end (:mod:`.noise`), a fast classical tier (variance stabilisation +
SURE-calibrated Fourier Wiener filter, :mod:`.classical`), self-supervised networks in PyTorch
(:mod:`.learned`: Noise2Void-style blind spot for single images, Noise2Noise for even/odd halves),
and validation without truth (:mod:`.validation`: binomial thinning, FRC, hallucination probes).
"""

from cryomat.restoration.classical import FastResult, FilterChoice, denoise_fast, wiener_sure
from cryomat.restoration.metrics import best_gaussian, psnr, ssim
from cryomat.restoration.noise import NoiseModel, estimate_noise_model, remove_row_col_offsets
from cryomat.restoration.validation import (binomial_split, flat_field_probe, frc_check, hallucination_probes,
                                            thinning_mse)
from cryomat.restoration.vst import anscombe, inverse_anscombe

__all__ = ["FastResult", "FilterChoice", "NoiseModel", "anscombe", "best_gaussian", "binomial_split",
           "denoise_fast", "estimate_noise_model", "flat_field_probe", "frc_check", "hallucination_probes",
           "inverse_anscombe", "psnr", "remove_row_col_offsets", "ssim", "thinning_mse", "wiener_sure"]
