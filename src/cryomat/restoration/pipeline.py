"""One call that denoises an image (or even/odd halves) and validates the result without truth.

Used by ``cryomat denoise`` and the demo; plain arrays in, arrays and a JSON-ready dict out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cryomat.restoration.classical import denoise_fast
from cryomat.restoration.noise import NoiseModel, estimate_noise_model
from cryomat.restoration.validation import (binomial_split, frc_check, hallucination_probes, is_counted,
                                            residual_stats, thinning_mse)
from cryomat.restoration.vst import anscombe

METHODS = ("auto", "fast", "n2v", "n2n", "bm3d-compare")


@dataclass
class DenoiseOutcome:
    """Result of :func:`denoise_and_validate`."""

    denoised: np.ndarray
    method: str
    noise_model: NoiseModel
    validation: dict
    details: dict = field(default_factory=dict)
    extra_images: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)


def _method_fn(method: str, *, noise_model: NoiseModel | None, learned: dict):
    """An image -> image function for ``method`` (used for the image and for its half-dose copies)."""
    if method == "fast":
        return lambda im, nm=None: denoise_fast(im, noise_model=nm).denoised
    if method in ("n2v", "n2n"):
        from cryomat.restoration.learned import predict

        model = learned["model"]
        return lambda im, nm=None: predict(model, im, tile=learned.get("tile"))
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def denoise_and_validate(image, *, pixel_size: float = 1.0, method: str = "auto", even=None, odd=None,
                         seed: int = 0, model_path=None, train_epochs: int | None = None,
                         tile: int | None = None, probe_tile: int = 128) -> DenoiseOutcome:
    """Denoise ``image`` with ``method`` and validate without ground truth.

    Parameters
    ----------
    image : (row, col) array in detector units (for even/odd input: their sum).
    pixel_size : A per px (FRC frequencies in 1/A).
    method : ``auto`` (fast tier; Noise2Noise when even/odd halves and a model or training are
        requested), ``fast``, ``n2v``, ``n2n`` (even/odd halves, or binomial thinning of counted data),
        ``bm3d-compare`` (fast tier plus
        Anscombe+BM3D for comparison, when the optional ``bm3d`` package is installed).
    even, odd : optional independent half images (sum of even / odd movie frames).
    seed : seed of the binomial split and of network training.
    model_path : a saved learned model to reuse (``.pt``).
    train_epochs : training length of the learned tier.
    tile : tile size (px) for learned inference (None: whole image at once).

    Returns
    -------
    :class:`DenoiseOutcome`.
    """
    x = np.asarray(image)
    if x.ndim != 2:
        raise ValueError(f"image must be 2D, got shape {x.shape}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    has_halves = even is not None and odd is not None
    rng = np.random.default_rng(seed)
    warnings: list[str] = []
    model, xc = estimate_noise_model(x)
    thinnable = bool(is_counted(x) and model.kind == "counting" and not model.correlated)
    if method == "n2n" and not (has_halves or thinnable):
        raise ValueError("method n2n needs even/odd halves (--even/--odd or a movie) or counted, uncorrelated data")
    if model.correlated:
        warnings.append(f"correlated noise (lag-1 row {model.rho_row:.3f}, col {model.rho_col:.3f}; row/col offsets "
                        f"{model.row_offset_std:.3g}/{model.col_offset_std:.3g}): offsets removed, noise spectrum "
                        "modelled; the unsupervised MSE by thinning is not reported")
    chosen = "fast" if method == "bm3d-compare" else method
    if method == "auto":
        chosen = ("n2n" if has_halves or thinnable else "n2v") if (model_path or train_epochs) else "fast"
    details: dict = {}
    extra: dict = {}
    learned: dict = {"tile": tile}
    if chosen in ("n2v", "n2n"):
        from cryomat.restoration import learned as L

        if model_path:
            net = L.load_model(model_path)
            if method == "auto":
                chosen = net.kind
        elif chosen == "n2n":
            net = (L.train_n2n(np.asarray(even), np.asarray(odd), epochs=train_epochs or 5, seed=seed)
                   if has_halves else L.train_n2n(x, epochs=train_epochs or 5, seed=seed))
        else:
            net = L.train_n2v(xc, epochs=train_epochs or 5, seed=seed, noise_model=model,
                              struct=("row" if abs(model.rho_col) > 0.06 else None) or
                                     ("col" if abs(model.rho_row) > 0.06 else None))
        if model_path and train_epochs:  # reuse a saved model and fine-tune it on this image
            net = (L.train_n2n(np.asarray(even) if has_halves else x, np.asarray(odd) if has_halves else None,
                               epochs=train_epochs, seed=seed, model=net)
                   if chosen == "n2n" else L.train_n2v(xc, epochs=train_epochs, seed=seed, model=net,
                                                       noise_model=model))
        if net.kind != chosen:
            raise ValueError(f"the model is a {net.kind} model, but method {chosen} was asked for")
        learned["model"] = net
        details["model"] = {**net.describe(), "trained_here": not bool(model_path) or bool(train_epochs)}
        details["_net"] = net
        den = (L.predict(net, xc, tile=tile, noise_model=model) if chosen == "n2n"
               else L.predict(net, xc, tile=tile, noise_model=model))
    else:
        res = denoise_fast(x, noise_model=model)
        den = res.denoised
        details["filter"] = {k: v for k, v in res.choice.to_dict().items() if k != "candidates"}
        details["local_pass"] = res.local_pass
    fn0 = _method_fn("fast" if chosen == "fast" else chosen, noise_model=model, learned=learned)
    cache: dict = {}

    def fn(im):  # the thinning MSE and the FRC denoise the same half: do it once
        key = id(im)
        if key not in cache:
            cache[key] = (im, fn0(im))
        return cache[key][1]

    if method == "bm3d-compare":
        try:
            from cryomat.restoration.peers import anscombe_bm3d

            extra["bm3d"] = anscombe_bm3d(x, noise_model=model)
        except ImportError as exc:
            warnings.append(f"bm3d comparison skipped: {exc}")
    validation: dict = {"noise_model": model.to_dict(), "method": chosen}
    # unsupervised MSE by binomial thinning (counted, uncorrelated data only)
    counted = is_counted(x)
    halves = None
    if counted and model.kind == "counting" and not model.correlated:
        halves = binomial_split(x, rng=rng)
        mse = thinning_mse(x, lambda im: fn(im), rng=rng, noise_model=model, halves=halves)
        raw = thinning_mse(x, lambda im: im, rng=rng, noise_model=model, halves=halves)
        mse["mse_half_dose_raw_est"] = raw["mse_half_dose_est"]
        if mse["mse_half_dose_est"] is not None and raw["mse_half_dose_est"]:
            mse["mse_reduction_db_est"] = float(10 * np.log10(raw["mse_half_dose_est"]
                                                             / max(mse["mse_half_dose_est"], 1e-30)))
        mse["units"] = "detector units^2 per pixel, at half the dose"
    else:
        reason = ("noise is correlated" if model.correlated else
                  "data are not electron counts (integrating detector or processed image)")
        mse = {"mse_half_dose_est": None, "valid": False, "reason": reason}
        warnings.append(f"no unsupervised MSE: {reason}")
    validation["unsupervised_mse"] = mse
    # FRC of the denoised half against the raw other half
    curves: dict = {}
    if has_halves:
        ha, hb, src = np.asarray(even, np.float64), np.asarray(odd, np.float64), "even/odd halves"
    elif halves is not None:
        ha, hb, src = halves[0], halves[1], "binomial thinning"
    else:
        ha = hb = None
        src = None
    if ha is not None:
        fr = frc_check(ha, hb, lambda im: fn(im), pixel_size=pixel_size)
        curves = {"freq_per_A": fr.pop("freq_per_A"), "frc_raw": fr.pop("frc_raw"),
                  "frc_denoised": fr.pop("frc_denoised")}
        fr["halves"] = src
        validation["frc"] = fr
    else:
        validation["frc"] = {"passed": None, "reason": "no independent halves (integrating or correlated data "
                                                       "and no --even/--odd)"}
    # residual statistics in the variance-stabilised domain
    zr = anscombe(xc, gain=model.gain, intercept=model.intercept)
    zd = anscombe(den, gain=model.gain, intercept=model.intercept)
    validation["residual"] = residual_stats(zr, zd)
    # Welch tiles of at most a quarter of the image, so that >= ~49 half-overlapping tiles are
    # averaged and the spectrum's scatter (~1/sqrt(tiles)) is far below the 3x / 5x thresholds
    tile_p = int(min(probe_tile, 2 ** int(np.log2(max(min(x.shape) // 4, 16)))))
    validation["hallucination"] = hallucination_probes(xc, den, tile=tile_p)
    if not validation["hallucination"]["passed"]:
        warnings.append("hallucination probe flagged spectral peaks (see validation.hallucination)")
    if "bm3d" in extra:
        validation["bm3d_compare"] = {
            "file": "denoised_bm3d.mrc",
            "hallucination": hallucination_probes(xc, extra["bm3d"], tile=tile_p),
            "residual": residual_stats(zr, anscombe(extra["bm3d"], gain=model.gain, intercept=model.intercept))}
    validation["warnings"] = warnings
    return DenoiseOutcome(denoised=den, method=chosen, noise_model=model, validation=validation,
                          details=details, extra_images=extra, curves=curves)


def split_movie(frames) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum of a movie (frame, row, col) and its even / odd frame sums (independent halves)."""
    f = np.asarray(frames)
    if f.ndim != 3 or f.shape[0] < 2:
        raise ValueError(f"a movie needs at least 2 frames of shape (frame, row, col), got {f.shape}")
    dt = np.float64 if f.dtype == np.float64 else np.float32
    even = f[0::2].sum(axis=0, dtype=np.float64).astype(dt)
    odd = f[1::2].sum(axis=0, dtype=np.float64).astype(dt)
    return even + odd, even, odd
