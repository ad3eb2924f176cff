"""Projection-model features (flat square / flat disc / dome), posterior fractions, class-covariance
shrinkage, and the classify CLI with image features, against known truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cryomat.measure.fractions import posterior_fractions
from cryomat.measure.projection import PROJECTION_COLUMNS, projection_features
from cryomat.measure.supervised import SemiSupervisedGaussian


def _object_image(kind, rng, size=64, half=9.0, counts=25.0, mfp_ratio=0.35, bloat=2):
    """Poisson counts (``counts`` per support pixel, as 1 e/A^2 at 5 A/px) of one particle of
    projected thickness profile ``kind`` and its mask, grown by ``bloat`` px and rounded (what a
    low-dose segmentation of a small cube gives)."""
    from scipy import ndimage as ndi

    rr, cc = np.mgrid[:size, :size] - size / 2 + rng.uniform(-0.5, 0.5, 2)[:, None, None]
    th = rng.uniform(0, np.pi / 2)
    u, v = cc * np.cos(th) - rr * np.sin(th), cc * np.sin(th) + rr * np.cos(th)
    if kind == "square":
        t = ((abs(u) <= half) & (abs(v) <= half)).astype(float)
    elif kind == "disc":
        t = (np.hypot(u, v) <= half * 1.13).astype(float)
    else:  # dome: a sphere of the same area, peak thickness 1
        r = half * 1.13
        t = np.sqrt(np.clip(1 - (u**2 + v**2) / r**2, 0, None))
    img = rng.poisson(counts * np.exp(-mfp_ratio * t)).astype(float)
    mask = ndi.binary_dilation(t > 0, structure=np.ones((3, 3), bool) if kind == "square" else None, iterations=bloat)
    mask = ndi.binary_opening(mask, iterations=2)  # rounded corners
    return img, mask.astype(np.int32)


def test_projection_fits_tell_flat_from_domed():
    rng = np.random.default_rng(1)
    vals = {k: [] for k in ("square", "disc", "dome")}
    for kind in vals:
        for _ in range(6):
            img, lab = _object_image(kind, rng)
            f = projection_features(img, lab)
            assert list(f.columns) == ["label", *PROJECTION_COLUMNS] and len(f) == 1
            vals[kind].append(f.iloc[0][list(PROJECTION_COLUMNS)].to_numpy(float))
    sq, disc, dome = (np.array(vals[k]) for k in ("square", "disc", "dome"))
    # a 18 px square cube at 25 counts/px with a mask grown 2 px and rounded: the raw counts still
    # say flat-square (likelihood ratio vs the dome > 0 on every draw; measured +0.1-0.3), a
    # sphere of the same area says dome (< 0); a flat disc beats the dome too (second column)
    assert np.all(sq[:, 0] > 0.03) and np.all(dome[:, 0] < -0.03), (sq[:, 0], dome[:, 0])
    assert np.all(disc[:, 1] > 0.0) and np.all(dome[:, 1] < 0.0), (disc[:, 1], dome[:, 1])
    # the disc is round: the square model fits it worse than the flat disc does
    assert np.all(disc[:, 1] > disc[:, 0])


def test_projection_features_edge_cases():
    img = np.random.default_rng(0).poisson(25.0, (40, 40)).astype(float)
    lab = np.zeros((40, 40), np.int32)
    assert projection_features(img, lab).empty  # no object: empty table, not an error
    lab[0:40, 0:40] = 1  # an object with no support around it: NaN features, no crash
    f = projection_features(img, lab)
    assert len(f) == 1 and f[list(PROJECTION_COLUMNS)].isna().all(axis=None)
    with pytest.raises(ValueError, match="same 2D shape"):
        projection_features(img, lab[:10])


def test_posterior_fractions_and_intervals(rng):
    # 600 particles with calibrated posteriors: the true class is drawn from each particle's
    # probabilities, so the posterior mean is an unbiased fraction estimate (sd ~ 0.02)
    p = rng.dirichlet([2.0, 1.0, 1.0], size=600)
    truth = np.array([rng.choice(3, p=q) for q in p])
    fr = posterior_fractions(np.full(600, "g"), p, ["a", "b", "c"])
    np.testing.assert_allclose(fr["fraction"], p.mean(0), atol=1e-12)
    true_f = np.bincount(truth, minlength=3) / 600
    assert np.all(np.abs(fr["fraction"] - true_f) < 0.05)  # 2.5 sd
    assert np.all((fr["fraction_low95"] <= true_f + 0.01) & (true_f - 0.01 <= fr["fraction_high95"]))
    assert np.isclose(fr["expected_count"].sum(), 600)
    with pytest.raises(ValueError, match="probabilities"):
        posterior_fractions(np.full(600, "g"), p[:, :2], ["a", "b", "c"])


def test_class_covariance_shrinkage_helps_unequal_spreads():
    """Two classes of very different spread (sd 0.3 vs 2, means 2 apart, 10 labels each): the
    Bayes boundary is quadratic. Class covariances (shrinkage 0) reach the Bayes accuracy, the
    default partial shrinkage (0.3) lies between, one shared covariance (1) falls far below."""
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(5)
    n = 600
    y = np.repeat(["narrow", "broad"], n // 2)
    x = np.where((y == "narrow")[:, None], rng.normal(0, 0.3, (n, 2)), rng.normal(0, 2.0, (n, 2)) + [2.0, 0.0])
    lab = np.r_[0:10, n // 2:n // 2 + 10]
    rest = np.setdiff1d(np.arange(n), lab)
    dens = [multivariate_normal(m, s * np.eye(2)).pdf(x[rest]) for m, s in (([0, 0], 0.09), ([2, 0], 4.0))]
    bayes = (np.where(dens[0] > dens[1], "narrow", "broad") == y[rest]).mean()  # 0.97 for this draw
    acc = {lam: (SemiSupervisedGaussian(x[rest], shrinkage=lam).fit(x[lab], y[lab]).predict(x[rest]) == y[rest]).mean()
           for lam in (0.0, 0.3, 1.0)}
    # measured 0.969, 0.876, 0.841: EM over 580 unlabelled points fixes the two covariances
    # (a 2 % margin is ~2 standard errors of an accuracy over 580 points)
    assert acc[0.0] >= bayes - 0.02, (bayes, acc)
    assert acc[0.0] > acc[0.3] > acc[1.0] + 0.02, acc


def test_cli_classify_fits_images_and_reuses_features(tmp_path):
    """segment -> classify on one simulated 1 e/A^2 image: the projection fits run on the image
    named in the segment run's results.json, classes.csv carries them and every class's
    probability, and a second run reusing them (--image-features) gives the same classes."""
    from cryomat.cli.main import main
    from cryomat.io.writers import write_mrc
    from cryomat.simulate.particles import particle_image

    s = particle_image((384, 384), dose_e_per_A2=1.0, n_particles=24, rng=np.random.default_rng(21))
    write_mrc(tmp_path / "a.mrc", s.image, pixel_size=s.pixel_size)
    assert main(["segment", str(tmp_path / "a.mrc"), "--out", str(tmp_path / "seg"), "--dose", "1"]) == 0
    table = tmp_path / "seg" / "particles.csv"
    assert main(["classify", str(table), "--out", str(tmp_path / "c1"), "--n-classes", "3", "--bootstrap", "1"]) == 0
    res = json.loads((tmp_path / "c1" / "results.json").read_text())["results"]
    cl = pd.read_csv(tmp_path / "c1" / "classes.csv")
    assert res["n_projection_fits"] == len(cl) > 5 and set(PROJECTION_COLUMNS) <= set(cl.columns)
    prob = cl[[f"probability_class_{k}" for k in range(3)]].to_numpy()
    np.testing.assert_allclose(prob.sum(1), 1.0, atol=1e-9)
    post = pd.read_csv(tmp_path / "c1" / "fractions_posterior.csv")
    assert np.isclose(post["fraction"].sum(), 1.0)
    assert main(["classify", str(table), "--out", str(tmp_path / "c2"), "--n-classes", "3", "--bootstrap", "1",
                 "--image-features", str(tmp_path / "c1" / "classes.csv")]) == 0
    assert (pd.read_csv(tmp_path / "c2" / "classes.csv")["class"] == cl["class"]).all()
    bad = tmp_path / "bad.csv"
    bad.write_text("image,label\na,1\n")
    assert main(["classify", str(table), "--out", str(tmp_path / "c3"), "--image-features", str(bad)]) == 2
