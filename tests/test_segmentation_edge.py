"""Per-object edge placement (cryomat.segmentation.edge) against analytic edges, and the size bias
per particle class that it removes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from cryomat.segmentation import match_instances, segment_particles
from cryomat.segmentation.edge import fit_edge, offset_outline, signed_distance
from cryomat.simulate.particles import particle_image


def _object(shape: str, radius: float, sigma: float, noise: float, rng):
    """(blurred noisy contrast, true mask) of a disc-shaped object of ``radius`` px: a flat plate
    (step) or a sphere's projected thickness (dome, peak 1 at the centre), centre off-grid."""
    n = int(2 * radius + 24)
    rr, cc = np.mgrid[:n, :n].astype(float)
    r2 = (rr - n / 2 - 0.3) ** 2 + (cc - n / 2 + 0.17) ** 2
    # 4 x 4 supersampled truth for the contrast, pixel-centre truth for the mask
    sub = (np.arange(4) + 0.5) / 4 - 0.5
    big = np.zeros((n, n))
    for a in sub:
        for b in sub:
            d2 = (rr + a - n / 2 - 0.3) ** 2 + (cc + b - n / 2 + 0.17) ** 2
            big += (d2 <= radius**2) if shape == "step" else np.sqrt(np.clip(1 - d2 / radius**2, 0, None))
    y = ndi.gaussian_filter(big / 16, sigma) + noise * ndi.gaussian_filter(rng.standard_normal((n, n)), sigma) * (
        2 * np.sqrt(np.pi) * sigma)
    return y, r2 <= radius**2


def _fitted_radius(shape, radius, noise, seed, sigma=2.0):
    y, truth = _object(shape, radius, sigma, noise=noise, rng=np.random.default_rng(seed))
    # start from an outline ~2 px too small (what a threshold at a fraction of a dome's contrast
    # gives) and let the profile fit move it
    sd = signed_distance(signed_distance(truth) > 1.5)
    e, found = fit_edge(y.ravel(), sd.ravel(), float(np.hypot(sigma, 0.4)), radius=float(sd.max()) + 0.5)
    return np.sqrt(offset_outline(sd, e).sum() / np.pi) - np.sqrt(truth.sum() / np.pi), found


@pytest.mark.parametrize("shape", ["step", "dome"])
@pytest.mark.parametrize("radius", [8.0, 25.0])
def test_fit_edge_recovers_the_true_outline(shape, radius):
    err, found = _fitted_radius(shape, radius, 0.0, 0)
    assert found == shape  # a sphere's profile is told from a plate's
    # noiseless: what is left is the pixel quantisation of the offset mask (~0.1 px); the size
    # target (3 % of the diameter) is 0.24 px at r = 8
    assert abs(err) <= 0.15, err


@pytest.mark.parametrize("shape", ["step", "dome"])
def test_fit_edge_unbiased_in_noise(shape):
    # noise std 6 % of the peak contrast after the 2 px Gaussian (the refinement's noise rule
    # allows 12 %); the errors of one object are correlated along its outline, so 8 objects:
    # the mean (bias) within 0.25 px (2 % of the diameter at r = 25) and the spread below 0.4 px
    errs = np.array([_fitted_radius(shape, 25.0, 0.06, seed)[0] for seed in range(8)])
    assert abs(errs.mean()) <= 0.25, errs
    assert errs.std() <= 0.4, errs


def test_fit_edge_too_few_samples_leaves_outline():
    assert fit_edge(np.ones(5), np.zeros(5), 1.0) == (0.0, "none")


def test_size_bias_per_class_at_1_e_per_A2():
    """Domed (sphere, rod) and flat (cube, plate) particles are sized alike: before the profile
    fit, spheres and rods came out 3-5 % small and cubes and plates 1-2 % large."""
    errs: dict = {}
    for i in range(2):
        s = particle_image((384, 384), dose_e_per_A2=1.0, n_particles=24, rng=np.random.default_rng(70 + i))
        lab = segment_particles(s.image, pixel_size=s.pixel_size, dose_e_per_A2=1.0, split_touching=True)
        sc = match_instances(s.labels, lab)
        at, ap = np.bincount(s.labels.ravel()), np.bincount(lab.ravel())
        cls = dict(zip(s.table["label"], s.table["class"]))
        for r in sc.matches.itertuples():
            errs.setdefault(cls[r.true_label], []).append(np.sqrt(ap[r.pred_label] / at[r.true_label]) - 1)
    allerr = np.concatenate([np.asarray(v) for v in errs.values()])
    # issue target: median |error| <= 3 %, bias within 2 % (benchmarks: 1.9-2.1 % and < 0.7 % on
    # 4 sets of 6 images); ~80 objects here, so 3.5 % and 2.5 %
    assert np.median(np.abs(allerr)) <= 0.035, np.median(np.abs(allerr))
    assert abs(np.mean(allerr)) <= 0.025, np.mean(allerr)
    # domed (sphere, rod) and flat (cube, plate) particles pooled, ~15-30 each: their median
    # within 3 % (the threshold alone gave -5.5 % and +1 % here)
    dome = np.concatenate([errs.get("sphere", []), errs.get("rod", [])])
    flat = np.concatenate([errs.get("cube", []), errs.get("plate", [])])
    assert abs(np.median(dome)) <= 0.03, np.median(dome)
    assert abs(np.median(flat)) <= 0.03, np.median(flat)
