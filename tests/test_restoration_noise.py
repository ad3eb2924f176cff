"""Gain of the noise model (variance against mean) against the simulator's true detector gain."""

from __future__ import annotations

import numpy as np
import pytest

from cryomat.restoration import estimate_noise_model
from cryomat.simulate.nanoparticles import nanoparticle_scene, record


@pytest.fixture(scope="module")
def haadf():
    return nanoparticle_scene((1024, 1024), pixel_size=0.5, rng=np.random.default_rng(5), contrast="haadf")[0]


def test_integrating_gain_matches_truth(haadf):
    est = []
    for dose in (8, 32, 128):
        noisy, _, _ = record(haadf, dose_e_per_px=dose, rng=np.random.default_rng(dose), detector="integrating",
                             gain=8.0, offset=100.0, read_noise=5.0)
        m, _ = estimate_noise_model(noisy)
        assert m.kind == "integrating"
        # without an MTF the pixel-variance slope is the conversion gain
        assert m.conversion_gain == pytest.approx(m.gain)
        # one 1024^2 image pins the slope to ~6 % (1 sd over scenes and noise seeds; 512^2: ~15 %, and
        # an oracle fit with the true noise and clean block means scatters as much), so one image gets
        # 20 %; raw block variances (the estimator this replaces) read 11-26 on such images
        assert abs(m.conversion_gain / 8.0 - 1) < 0.2, (dose, m.conversion_gain)
        assert m.gain_rel_uncertainty < 0.1, m
        est.append(m.conversion_gain)
    # averaged over the three doses the bias (one-sided rejection low, lattice leakage high) is < 10 %
    assert abs(np.mean(est) / 8.0 - 1) < 0.1, est


def test_counting_is_poisson_gain_one_and_phase_gain_flagged(haadf):
    for dose in (8, 128):
        noisy, _, _ = record(haadf, dose_e_per_px=dose, rng=np.random.default_rng(dose + 1))
        m, _ = estimate_noise_model(noisy)
        # integer counts whose noise beyond the Nyquist circle equals the mean: Poisson, gain 1 exactly
        assert m.kind == "counting" and m.gain == 1.0 and m.conversion_gain == 1.0 and m.intercept == 0.0, m
    # weak-phase bright field: block means spread by < 0.1 % of the mean, so the slope is not
    # identifiable from one image; the model must say so rather than report a confident gain
    phase = nanoparticle_scene((256, 256), pixel_size=0.5, rng=np.random.default_rng(6), contrast="phase")[0]
    noisy, _, _ = record(phase, dose_e_per_px=32, rng=np.random.default_rng(7), detector="integrating", gain=8.0,
                         offset=100.0, read_noise=5.0)
    m, _ = estimate_noise_model(noisy)
    assert m.gain_rel_uncertainty > 0.25 or abs(m.conversion_gain / 8.0 - 1) < 0.25, m
    # whatever the slope, the noise level at the mean is right: g^2 lam + s^2 with lam = mean dose
    lam = (noisy.mean() - 100.0) / 8.0
    assert abs((m.gain * m.mean + m.intercept) / (64 * lam + 25) - 1) < 0.1, m
