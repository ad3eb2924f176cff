"""Outline fit (cryomat.segmentation.contour) against analytic shapes and simulated low-dose images."""

import numpy as np
import pytest

from cryomat.segmentation import match_instances, segment_particles
from cryomat.segmentation.contour import fit_outline, refine_outlines
from cryomat.simulate.particles import particle_image


def _shape(kind, n=96, size=30.0):
    rr, cc = np.mgrid[:n, :n] - (n - 1) / 2
    if kind == "disc":
        return np.hypot(rr, cc) <= size / 2
    if kind == "square":  # rotated by 20 degrees: corners a blurred threshold rounds off
        a = np.deg2rad(20)
        u, v = cc * np.cos(a) - rr * np.sin(a), cc * np.sin(a) + rr * np.cos(a)
        return (np.abs(u) <= size / 2) & (np.abs(v) <= size / 2)
    if kind == "rod":  # spherocylinder 12 px wide, 44 px long, at 30 degrees
        a = np.deg2rad(30)
        u, v = cc * np.cos(a) - rr * np.sin(a), cc * np.sin(a) + rr * np.cos(a)
        return np.hypot(np.clip(np.abs(u) - 16, 0, None), v) <= 6
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["disc", "square", "rod"])
def test_fit_outline_recovers_shape_from_a_bloated_start_at_unit_snr(kind):
    # contrast 0.3 against per-pixel noise 0.37 (7.5 e/px: 0.3 e/A^2 at 5 A/px); the start is the
    # truth dilated 4 px and smoothed, as a 9 px detection Gaussian leaves it. The whole outline
    # (~100 px) fixes its offset to ~0.15 px (Fisher information of a step, see the module): 1-2 %
    # of the diameter of a 30 px disc, up to 3 % for the 12 px wide rod; so over three noise
    # realisations the median |error| is within the 3 % and the mean IoU >= its 0.85 (the
    # square's corners and the rod's ends must be recovered for that)
    from scipy import ndimage as ndi

    truth = _shape(kind)
    start = ndi.gaussian_filter(ndi.binary_dilation(truth, iterations=4).astype(float), 3) > 0.5
    assert np.sqrt(start.sum() / truth.sum()) - 1 > 0.2  # far outside both tolerances
    errs, ious = [], []
    for seed in (3, 4, 5):
        y = 0.3 * truth + np.random.default_rng(seed).normal(0, 0.37, truth.shape)
        new = fit_outline(y, start, 0.37)
        assert new is not None
        errs.append(np.sqrt(new.sum() / truth.sum()) - 1)
        ious.append((new & truth).sum() / (new | truth).sum())
    assert np.median(np.abs(errs)) <= 0.03, errs
    assert np.mean(ious) >= 0.85, ious


def test_refine_outlines_keeps_neighbours_apart_and_empty_labels():
    # two discs 2 px apart (centres 32 px, radii 15), each refined with the other's pixels left out: both stay separate
    # objects of the right size; no objects in, none out
    rng = np.random.default_rng(5)
    n = 120
    rr, cc = np.mgrid[:n, :n]
    a = np.hypot(rr - 60, cc - 40) <= 15
    b = np.hypot(rr - 60, cc - 72) <= 15
    y = 0.4 * (a | b) + rng.normal(0, 0.2, (n, n))
    from scipy import ndimage as ndi

    lab0 = np.zeros((n, n), np.int32)
    lab0[ndi.binary_dilation(a, iterations=2)] = 1
    lab0[ndi.binary_dilation(b, iterations=2) & (lab0 == 0)] = 2
    lab = refine_outlines(lab0, y, 0.2)
    assert set(np.unique(lab)) == {0, 1, 2}
    for i, m in ((1, a), (2, b)):
        # 15 px radius from ~90 px of outline at contrast/noise 2: within 2 % in diameter
        assert abs(np.sqrt((lab == i).sum() / m.sum()) - 1) < 0.02
    assert not refine_outlines(np.zeros((32, 32), np.int32), np.zeros((32, 32)), 0.1).any()


def test_low_dose_sizes_with_outline_fit():
    # 0.3 e/A^2 (the lowest dose): the outline fit (on by default there) brings the median
    # |error| of the equivalent diameter within the 3 % on two simulated images (the
    # 24-image benchmark measures ~2 %; without the fit it was 4-6 %); the mean bias, within 2 % over
    # the 24 benchmark images (+0.3 %), is held to 3 % on these two (~80 objects, ~3 % scatter each:
    # a standard error of ~0.35 %, but the two images share one seed family)
    errs, f1s = [], []
    for seed in (1000, 1001):
        s = particle_image((512, 512), dose_e_per_A2=0.3, rng=np.random.default_rng(seed))
        lab = segment_particles(s.image, pixel_size=s.pixel_size, dose_e_per_A2=0.3, split_touching=True)
        sc = match_instances(s.labels, lab)
        at, ap = np.bincount(s.labels.ravel()), np.bincount(lab.ravel())
        errs += [np.sqrt(ap[r.pred_label] / at[r.true_label]) - 1 for r in sc.matches.itertuples()]
        f1s.append(sc.f1)
    errs = np.asarray(errs)
    assert np.median(np.abs(errs)) <= 0.03, np.median(np.abs(errs))
    assert abs(errs.mean()) <= 0.03, errs.mean()
    assert min(f1s) >= 0.75  # the F1 target at 0.3 e/A^2


def test_cli_outline_fit_option(tmp_path):
    # end to end: --outline-fit on at 0.3 e/A^2 writes the table with a count near the truth (at
    # this dose the fit is also the default); a bad choice is a usage error (exit 2)
    import json

    from cryomat.cli.main import main
    from cryomat.io import write_mrc

    s = particle_image((256, 256), dose_e_per_A2=0.3, n_particles=10, rng=np.random.default_rng(7))
    a = write_mrc(tmp_path / "a.mrc", s.image, pixel_size=5.0)
    out = tmp_path / "out"
    assert main(["segment", str(a), "--out", str(out), "--dose", "0.3", "--split-touching",
                 "--outline-fit", "on"]) == 0
    res = json.loads((out / "results.json").read_text())["results"]
    n = res["per_image"][0]["count"]
    assert abs(n - len(s.table)) <= max(2, 0.25 * len(s.table)), (n, len(s.table))  # F1 ~0.9 at 0.3 e/A^2
    assert main(["segment", str(a), "--out", str(tmp_path / "o"), "--outline-fit", "maybe"]) == 2
