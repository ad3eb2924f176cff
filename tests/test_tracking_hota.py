"""Mask tracking of growing crystals (issue 8): two-pass detection on flat-fielded frames,
the lazy flat field, drift registration, LocA, and the ``--flat-field/--no-flat-field`` CLI switch."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from cryomat.cli.main import main
from cryomat.tracking.metrics import hota


def test_hota_reports_localisation_accuracy():
    g = [np.array([1, 2])] * 3
    p = [np.array([10, 20])] * 3
    sim = [np.array([[0.83, 0.0], [0.0, 0.62]])] * 3
    h = hota(g, p, sim)
    # alphas 0.05..0.95: pairs match while alpha <= their IoU. LocA is the mean IoU of the matched
    # pairs: 0.725 while both match (alphas 0.05-0.60, 12 of them), 0.83 with one (0.65-0.80, 4),
    # 0 (no match) for the last 3 -> (12 * 0.725 + 4 * 0.83) / 19 exactly
    assert h["LocA"] == pytest.approx((12 * 0.725 + 4 * 0.83) / 19)
    assert hota(g, g, [np.eye(2)] * 3)["LocA"] == pytest.approx(1.0)


def _textured_series(n=6, size=128, seed=0):
    rng = np.random.default_rng(seed)
    tex = ndi.gaussian_filter(rng.normal(size=(size + 40, size + 40)), 1.5)
    tex = 1 + 0.05 * tex / tex.std()
    drift = np.cumsum(np.r_[[[0, 0]], rng.normal(0, 1.5, (n - 1, 2))], axis=0)
    frames = []
    for d in drift:
        moved = ndi.shift(tex, d, order=3, mode="nearest")[20:20 + size, 20:20 + size]
        frames.append(rng.poisson(200 * moved).astype(np.float32))
    return np.array(frames), drift


def test_register_series_recovers_subpixel_drift():
    from cryomat.tracking.flatfield import register_series

    frames, drift = _textured_series()
    est = register_series(frames)
    # phase correlation refined to 1/20 px on a 5% texture of correlation length 1.5 px at 200
    # counts/px (noise 7% per pixel, 128^2 px): the correlation peak is ~2 px wide and noisy, so
    # the drift is found to ~0.2 px (measured max error 0.18 px over 5 frames); integer-pixel
    # registration would leave up to 0.5 px
    assert np.abs(est - drift).max() < 0.25
    assert np.sqrt(np.mean((est - drift) ** 2)) < 0.12


def test_flat_field_is_lazy_and_exact():
    from cryomat.tracking.flatfield import FlatField, background_canvas

    frames, drift = _textured_series(n=12, size=160, seed=1)
    labels = np.zeros(frames.shape, np.int32)
    labels[:, 60:80, 60:90] = 1  # an object (left out of the background)
    b, seen, pad = background_canvas(frames, labels, drift)
    ff = FlatField(frames, labels, drift)
    crops = [ff[t][30:70, 40:100] for t in range(len(ff))]
    full = [np.asarray(ff[t]) for t in range(len(ff))]
    # the object's pixels were never seen uncovered: left unmeasured (B = 1), and reported so
    # (objects there are judged against the rougher film); open film seen in all 12 frames is measured
    for t in (0, 11):
        fl = ff[t].flattened()  # the object sits at the same frame pixels in every frame; drift < 9 px
        assert not fl[66:74, 66:84].any() and fl[10:30, 10:30].all()
    for t in (0, 5, 11):
        # the same as dividing by the canvas moved by the drift (bilinear) and cropped
        ref = frames[t] / np.clip(ndi.shift(b, drift[t], order=1, mode="nearest")[pad:pad + 160, pad:pad + 160],
                                  0.2, None)
        assert np.allclose(full[t], ref, rtol=1e-5)
        assert np.allclose(crops[t], ref[30:70, 40:100], rtol=1e-5)
    # the texture (5% rms) is divided out where seen: what is left is the counting noise
    # (7% per pixel at 200 counts, ~1/sqrt(12) of it in B): compare 2-px smoothed film
    film = seen[pad:pad + 160, pad:pad + 160] >= 6
    film[55:85, 55:95] = False
    raw_s = ndi.gaussian_filter(frames[0] / frames[0].mean(), 2)[film]
    ff_s = ndi.gaussian_filter(full[0] / full[0].mean(), 2)[film]
    assert np.std(ff_s) < 0.5 * np.std(raw_s)


def test_flat_field_memory_does_not_grow_with_the_series():
    from cryomat.tracking.flatfield import FlatField

    def peak_of(n):
        frames, _ = _textured_series(n=n, size=128, seed=2)
        drift = 2.0 * np.c_[np.sin(np.arange(n)), np.cos(np.arange(n))]  # same canvas for any n
        labels = np.zeros(frames.shape, np.int32)
        tracemalloc.start()
        ff = FlatField(frames, labels, drift)
        total = sum(float(np.asarray(ff[t]).sum()) for t in range(len(ff)))  # every frame, one at a time
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert np.isfinite(total)
        return peak, frames[0].nbytes

    p10, frame_bytes = peak_of(10)
    p40, _ = peak_of(40)
    # lazy: the extra memory is the background canvas and a few frame-sized buffers, whatever the
    # number of frames; an eager float32 copy would add 30 frames (30 x frame_bytes) going 10 -> 40
    assert p40 < p10 + 3 * frame_bytes


def _growth(seed):
    from cryomat.simulate.growth import make_growth

    return make_growth(rng=np.random.default_rng(seed), size=320, frames=20, n_crystals=8)


@pytest.mark.parametrize("seed", [6])
def test_two_pass_flat_field_raises_hota(seed):
    from cryomat.tracking import track_series
    from cryomat.tracking.metrics import mask_tracking_scores

    imgs, truth, *_ = _growth(seed)
    s = {}
    for ff in (False, True):
        tracks, _, lab = track_series(imgs, pixel_size=5.0, fit_axes=False, flat_field=ff)
        s[ff] = mask_tracking_scores(truth, lab, tracks)
    # seed 6 was the worst of seeds 0-19 before (HOTA 0.834, LocA 0.898: masks of a blurred ellipse cut
    # at half contrast on a 4% film texture, and 4 frames where the simulator hides a crystal that the
    # truth keeps). Measured now: HOTA 0.906, LocA 0.934 with the flat field; 0.871, 0.912 without
    # (both with gap masks). The texture moves an edge by ~0.3 px, the noise left by ~0.2 px
    assert s[True]["LocA"] > s[False]["LocA"] + 0.01
    assert s[True]["HOTA"] >= 0.88 and s[True]["HOTA"] > s[False]["HOTA"]
    assert s[True]["id_switches"] == 0 and s[True]["mostly_tracked"] >= 0.9


def test_cli_flat_field_switch(tmp_path, capsys):
    from cryomat.io import read
    from cryomat.simulate import simulate
    from cryomat.tracking.metrics import _iou_matrix

    simulate("growth", tmp_path / "sim", seed=3, size=192, frames=10, n_crystals=5)
    truth = np.asarray(read(tmp_path / "sim" / "labels.mrcs").data).astype(np.int32)
    iou = {}
    for flag in ("--flat-field", "--no-flat-field"):
        out = tmp_path / flag.strip("-")
        rc = main(["--quiet", "track", str(tmp_path / "sim" / "series.mrcs"), "--out", str(out), "--frame-time", "10",
                   "--axes", "feret", flag])
        assert rc == 0
        res = json.loads((out / "results.json").read_text())
        assert res["results"]["flat_field"] is (flag == "--flat-field")
        assert res["parameters"]["flat_field"] is (flag == "--flat-field")
        lab = np.asarray(read(out / "labels.mrcs").data).astype(np.int32)
        best = []
        for f in range(len(truth)):
            _, _, s = _iou_matrix(truth[f], lab[f])
            best += list(s.max(axis=1)) if s.size else []
        iou[flag] = float(np.median(best))
    # masks cut on flat-fielded frames follow the truth's edges better (texture no longer moves them)
    assert iou["--flat-field"] > iou["--no-flat-field"]
    rc = main(["track", str(tmp_path / "sim" / "series.mrcs"), "--out", str(tmp_path / "bad"), "--flat-field=no"])
    err = capsys.readouterr().err
    assert rc == 2 and "--flat-field" in err and "Traceback" not in err


def test_gap_masks_interpolated_between_detections():
    from cryomat.tracking.series import fill_gaps

    yy, xx = np.mgrid[:80, :80]
    truth, labels, rows = [], [], []
    for f in range(5):
        d = (2 * f, -f)  # drift (px)
        disc = (yy - 40 - d[0]) ** 2 + (xx - 38 - d[1]) ** 2 <= (8 + 1.5 * f) ** 2  # radius grows 1.5 px/frame
        truth.append(disc)
        lab = np.zeros((80, 80), np.int32)
        if f != 2:  # frame 2: not detected (out of contrast)
            lab[disc] = 1
            rows.append({"track": 0, "frame": f, "label": 1, "row_px": 40.0 + d[0], "col_px": 38.0 + d[1],
                         "area_nm2": float(disc.sum()), "drift_row_px": float(d[0]), "drift_col_px": float(d[1])})
        labels.append(lab)
    tracks, labels = fill_gaps(pd.DataFrame(rows), np.array(labels))
    new = tracks[tracks["interpolated"]]
    assert len(new) == 1 and int(new["frame"].iloc[0]) == 2 and new["area_nm2"].isna().all()
    m = labels[2] == int(new["label"].iloc[0])
    iou = (m & truth[2]).sum() / (m | truth[2]).sum()
    # signed distances of the radius-9.5 and 12.5 discs averaged: radius 11 = the truth's, up to the
    # pixel rounding of the edge (a 1-px ring of a radius-11 disc is ~18% of its area; we get ~0.97)
    assert iou > 0.93
    assert abs(new["row_px"].iloc[0] - 44.0) < 0.3 and abs(new["col_px"].iloc[0] - 36.0) < 0.3
