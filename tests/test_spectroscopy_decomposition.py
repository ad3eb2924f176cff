"""Decomposition of a synthetic 3-phase Poisson EDS cube: component number and factor recovery."""

from __future__ import annotations

import numpy as np
import pytest

from cryomat.spectroscopy import decomposition as dec
from cryomat.spectroscopy import eds


def _phase(e, lines, weights):
    s = np.zeros_like(e)
    for ln, a in zip(lines, weights):
        c = eds.line_energy_eV(ln)
        sd = eds.eds_fwhm_eV(c) / 2.3548
        s += a * np.exp(-0.5 * ((e - c) / sd) ** 2)
    s += 0.3 * np.where(e > 100, 1.0 / np.maximum(e, 100.0), 0.0) * 100.0  # Kramers-like continuum
    return s / s.sum()


@pytest.fixture(scope="module")
def cube():
    rng = np.random.default_rng(7)
    e = np.arange(512) * 20.0
    f = np.stack([_phase(e, ["Fe_Ka", "O_Ka"], [1, 0.6]), _phase(e, ["Si_Ka", "O_Ka"], [1, 1.5]),
                  _phase(e, ["Cu_Ka", "Cu_La"], [1, 0.5])])
    yy, xx = np.mgrid[0:40, 0:40]
    load = np.stack([np.exp(-((yy - 12) ** 2 + (xx - 12) ** 2) / 80.0),
                     np.exp(-((yy - 26) ** 2 + (xx - 28) ** 2) / 120.0), xx / 40.0])
    load = load / load.sum(0, keepdims=True)
    dose = 150.0  # counts per pixel: a low-dose map
    return rng.poisson(dose * np.einsum("krc,ke->rce", load, f)), f, load


def test_poisson_pca_finds_three_components(cube):
    x, f, _ = cube
    d = dec.poisson_pca(x)
    # three phases -> three eigenvalues above the Marchenko-Pastur noise edge, the fourth below it
    assert d.n_components == 3
    assert d.explained_variance[3] < 1.1 * d.noise_edge < d.explained_variance[2]


def test_nmf_recovers_phase_spectra_and_maps(cube):
    x, f, load = cube
    d = dec.nmf(x, n_components=3)
    corr = dec.match_factors(d.factors, f)
    # the acceptance: factor correlation with the truth >= 0.98 for every phase
    assert corr.min() >= 0.98
    lc = dec.match_factors(d.loadings.reshape(3, -1), load.reshape(3, -1))
    # maps are noisier (150 counts per pixel spread over 3 phases); 0.9 leaves room for Poisson noise
    assert lc.min() >= 0.9


def test_decomposition_rejects_single_spectrum():
    with pytest.raises(ValueError, match="spectrum image"):
        dec.poisson_pca(np.ones(100))
    with pytest.raises(ValueError, match="n_components"):
        dec.nmf(np.ones((4, 4, 10)), n_components=0)


def test_pca_denoise_reduces_error_to_truth(cube):
    x, f, load = cube
    truth = 150.0 * np.einsum("krc,ke->rce", load, f)
    den, d = dec.pca_denoise(x)
    assert d.n_components == 3
    # keeping 3 of 512 dimensions removes most of the Poisson noise: the error to the noise-free cube
    # drops by well over a factor 3 (expected ~sqrt(512/3) for white noise)
    assert np.sqrt(np.mean((den - truth) ** 2)) < np.sqrt(np.mean((x - truth) ** 2)) / 3


def test_calibration_check_finds_offset():
    e = np.arange(0, 10000, 10.0)
    c = eds.line_energy_eV("Fe_Ka") + 25.0  # axis 25 eV off
    sd = eds.eds_fwhm_eV(c) / 2.3548
    y = 50 + 1e4 * np.exp(-0.5 * ((e - c) / sd) ** 2)
    off = eds.calibration_check(y, e, ["Fe_Ka", "Cu_Ka"])
    # a Gaussian sampled every 10 eV: centroid within 2 eV; Cu Ka absent -> skipped
    assert off["Fe_Ka"] == pytest.approx(25.0, abs=2.0) and "Cu_Ka" not in off
