"""Learned (random-forest, scribble-trained) 3D segmentation against the phantom's known phases."""

import json

import numpy as np
import pytest

from cryomat.cli.main import main
from cryomat.tomography import learned_segmentation as ls
from cryomat.tomography import phantoms
from cryomat.tomography.measure3d import dice, segment_phases


def _noisy_catalyst(size, seed):
    """Nonnegative SIRT of the catalyst phantom at 50 counts/px (as in test_tomography_morph), and the
    truth in morph3d's phase order: 0 background, 1 coating, 2 support, 3 particles (increasing density)."""
    from cryomat.simulate.tilt_series import simulate_tilt_series
    from cryomat.tomography.reconstruct import reconstruct_sirt

    sim = simulate_tilt_series(phantom="particles", size=size, counts_per_px=50, rng=seed)
    st = sim["stack"] / (50 / sim["ideal"].mean())
    vol = reconstruct_sirt(st, sim["angles_deg"], iterations=60, relaxation=1.9, nonnegative=True)
    lab, L = sim["labels"], phantoms.LABELS
    truth = np.zeros(lab.shape, np.uint8)
    truth[lab == L["coating"]], truth[lab == L["support"]], truth[lab == L["particle"]] = 1, 2, 3
    return vol, truth


def _scribbles(truth):
    """What a user paints: every third line of one plane per axis, near the centre, labelled with the
    truth under it (scribble = phase + 1; 0 unlabelled). About 1 % of the background and 1.5-3 % of
    each phase's voxels."""
    n = truth.shape[0] // 2
    scr = np.zeros(truth.shape, np.int64)
    for ax, pos in ((0, n), (1, n + 5), (2, n - 7)):
        m = np.zeros(truth.shape, bool)
        sl = [slice(None)] * 3
        sl[ax] = pos
        m[tuple(sl)] = True
        m &= _lines(truth.shape, (ax + 1) % 3)
        scr[m] = truth[m].astype(np.int64) + 1
    return scr


def _lines(shape, axis):
    m = np.zeros(shape, bool)
    sl = [slice(None)] * 3
    sl[axis] = slice(0, None, 3)
    m[tuple(sl)] = True
    return m


@pytest.fixture(scope="module")
def catalyst():
    vol, truth = _noisy_catalyst(96, 3)
    return vol, truth, _scribbles(truth)


def test_learned_segmentation_vs_threshold(catalyst):
    vol, truth, scr = catalyst
    for k in range(4):  # the scribbles are sparse: <= 3.5 % of any class, as a user would draw
        assert 0 < (scr == k + 1).sum() <= 0.035 * (truth == k).sum()
    ph, clf = ls.segment_learned(vol, scr)
    th = segment_phases(vol, n_phases=3, smooth_sigma=0.5)
    d_l = {k: dice(ph == k, truth == k) for k in (1, 2, 3)}
    d_t = {k: dice(th == k, truth == k) for k in (1, 2, 3)}
    print(f"Dice learned {d_l}, threshold {d_t}, OOB {clf.oob_accuracy:.3f}")
    # measured on seeds 3, 4, 6 (96^3, 50 counts/px): learned support 0.939/0.951/0.947, particles
    # 0.888/0.877/0.918, coating 0.76-0.79; edge-midpoint thresholds support 0.887/0.889, particles
    # 0.880/0.884, coating 0.25-0.32. The targets (support >= 0.90, particles >= 0.80) hold
    # with 0.04-0.08 margin.
    assert d_l[2] >= 0.90
    assert d_l[3] >= 0.80
    # at least comparable to thresholds: better on the support (+0.05), equal within 0.03 on the (very
    # bright, threshold-friendly) particles, and the thin coating the thresholds cannot isolate is found
    assert d_l[2] >= d_t[2] + 0.02
    assert d_l[3] >= d_t[3] - 0.03
    assert d_l[1] >= d_t[1] + 0.3
    # the forest's out-of-bag accuracy on the labelled voxels (measured 0.99, mostly background) is sane
    assert 0.85 <= clf.oob_accuracy <= 1.0
    assert clf.labelled_voxels == {k + 1: int((scr == k + 1).sum()) for k in range(4)}


def test_block_prediction_has_no_seams(catalyst):
    # features in blocks with a 3 sigma_max halo: the same labels as on the whole (sub)volume, up to
    # the Gaussian tails beyond 3 sigma (0.3 % of the kernel weight) flipping rare boundary voxels
    vol, truth, scr = catalyst
    crop = (slice(34, 62), slice(16, 80), slice(16, 80))
    sub, s_sub = vol[crop], scr[crop]
    p = ls.FeatureParams(sigma_min=1.0, sigma_max=4.0, num_sigma=3)
    clf = ls.train(sub, s_sub, params=p, block=10, class_weight="balanced")
    whole = ls.predict(clf, sub, block=64)
    blocks = ls.predict(clf, sub, block=23)  # 2 x 3 x 3 blocks, uneven at the far edges
    assert np.mean(whole != blocks) <= 0.002


def test_morph3d_learned_cli_and_model_reuse(tmp_path):
    from cryomat.io import write_mrc

    vol, truth = _noisy_catalyst(64, 5)
    scr = _scribbles(truth)
    write_mrc(tmp_path / "vol.mrc", vol.astype(np.float32), pixel_size=5.0)
    write_mrc(tmp_path / "scr.mrc", scr.astype(np.int8), pixel_size=5.0)
    out, model = tmp_path / "out", tmp_path / "forest.joblib"
    rc = main(["--quiet", "morph3d", str(tmp_path / "vol.mrc"), "--segment-method", "learned",
               "--scribbles", str(tmp_path / "scr.mrc"), "--save-model", str(model), "--out", str(out)])
    assert rc == 0 and model.is_file()
    for name in ("phases.mrc", "components.csv", "thickness.csv", "report.html", "results.json"):
        assert (out / name).is_file(), name
    res = json.loads((out / "results.json").read_text())["results"]
    assert res["segmentation_method"] == "learned" and res["n_phases"] == 3
    ll = res["learned_segmentation"]
    assert ll["labelled_voxels_per_class"] == {str(k + 1): int((scr == k + 1).sum()) for k in range(4)}
    assert 0.8 <= ll["oob_voxel_accuracy"] <= 1.0
    from cryomat.io import read

    ph = np.asarray(read(out / "phases.mrc").data)
    # 64^3: the support (radius ~7 voxels) has a larger share of blurred edge than at 96^3 (0.94):
    # measured 0.90 (seed 5; particles 0.90, coating 0.76), bound 0.85
    assert dice(ph == 2, truth == 2) >= 0.85
    # the saved forest applied to the same volume gives the same phases
    rc = main(["--quiet", "morph3d", str(tmp_path / "vol.mrc"), "--segment-method", "learned",
               "--model", str(model), "--out", str(tmp_path / "out2")])
    assert rc == 0
    assert np.array_equal(np.asarray(read(tmp_path / "out2" / "phases.mrc").data), ph)


def test_morph3d_learned_bad_input(tmp_path, capsys):
    from cryomat.io import write_mrc

    vol = np.random.default_rng(0).normal(size=(16, 20, 20)).astype(np.float32)
    write_mrc(tmp_path / "vol.mrc", vol, pixel_size=5.0)
    bad = {"shape.mrc": np.ones((16, 20, 21), np.int8), "empty.mrc": np.zeros((16, 20, 20), np.int8),
           "one.mrc": np.pad(np.ones((4, 4, 4), np.int8), ((0, 12), (0, 16), (0, 16)))}
    for name, a in bad.items():
        write_mrc(tmp_path / name, a, pixel_size=5.0)
    base = ["morph3d", str(tmp_path / "vol.mrc"), "--out", str(tmp_path / "o")]
    cases = [(["--segment-method", "learned"], "--scribbles"),
             (["--segment-method", "learned", "--scribbles", str(tmp_path / "shape.mrc")], "shape"),
             (["--segment-method", "learned", "--scribbles", str(tmp_path / "empty.mrc")], "no labelled voxel"),
             (["--segment-method", "learned", "--scribbles", str(tmp_path / "one.mrc")], "one class"),
             (["--scribbles", str(tmp_path / "one.mrc")], "--segment-method learned"),
             (["--segment-method", "learned", "--model", str(tmp_path / "vol.mrc")], "--model")]
    for extra, word in cases:
        capsys.readouterr()
        rc = main(base + extra)
        err = capsys.readouterr().err
        assert rc == 2 and word in err and "Traceback" not in err, (extra, err)
        if "--scribbles" in extra:
            assert "--scribbles" in err
