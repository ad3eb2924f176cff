"""Classical segmentation against the `particles` simulator's ground truth, modes, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryomat.segmentation import match_instances, segment_particles, threshold_watershed
from cryomat.simulate.particles import particle_image


@pytest.fixture(scope="module")
def sims():
    return [particle_image((384, 384), dose_e_per_A2=1.0, n_particles=22, rng=np.random.default_rng(40 + i))
            for i in range(2)]


def test_f1_at_1_e_per_A2_beats_baseline(sims):
    tp = fp = fn = 0
    btp = bfp = bfn = 0
    ious, sizes = [], []
    for s in sims:
        lab = segment_particles(s.image, pixel_size=s.pixel_size, dose_e_per_A2=1.0, split_touching=True)
        sc = match_instances(s.labels, lab)
        tp, fp, fn = tp + sc.tp, fp + sc.fp, fn + sc.fn
        b = match_instances(s.labels, threshold_watershed(s.image, pixel_size=s.pixel_size))
        btp, bfp, bfn = btp + b.tp, bfp + b.fp, bfn + b.fn
        ious += list(sc.matches["iou"])
        at, ap = np.bincount(s.labels.ravel()), np.bincount(lab.ravel())
        sizes += [np.sqrt(ap[r.pred_label] / at[r.true_label]) - 1 for r in sc.matches.itertuples()]
    f1 = 2 * tp / (2 * tp + fp + fn)
    f1b = 2 * btp / (2 * btp + bfp + bfn)
    # issue target 0.90 at 1 e/A^2 over a large set (benchmarks/bench_segment.py); on 2 small
    # images ~40 particles one miss moves F1 by 0.025, so 0.85 here
    assert f1 >= 0.85, f1
    assert f1 > f1b + 0.2, (f1, f1b)  # the Otsu + watershed baseline fails at this dose
    assert np.mean(ious) >= 0.83  # target 0.85 per class on the large set
    assert abs(np.median(sizes)) < 0.04  # equivalent-diameter bias (target 2 % on the large set)


def test_empty_and_flat_images_give_no_particles(rng):
    # pure Poisson noise on a flat support at 1 e/A^2: no object should pass 6-sigma seeds
    flat = rng.poisson(25.0, size=(256, 256)).astype(np.float32)
    assert segment_particles(flat, pixel_size=5.0, dose_e_per_A2=1.0).max() == 0
    assert segment_particles(np.zeros((64, 64)), pixel_size=5.0).max() == 0


def test_split_touching_mode_splits_pairs_keeps_aggregates():
    # two discs in contact (neck ~0) must split; a fused dimer (centres 1.2 radii apart,
    # neck 0.8 R) is one aggregate and must stay whole
    n = 200
    rr, cc = np.mgrid[:n, :n]
    img = np.full((n, n), 100.0)
    disc = lambda r0, c0, r: (rr - r0) ** 2 + (cc - c0) ** 2 <= r * r
    pair = disc(50, 50, 15) | disc(50, 81, 15)
    fused = disc(140, 60, 15) | disc(140, 78, 15)
    img[pair | fused] = 60.0
    img = np.random.default_rng(1).poisson(img).astype(np.float32)
    split = segment_particles(img, pixel_size=5.0, split_touching=True)
    whole = segment_particles(img, pixel_size=5.0, split_touching=False)
    assert len(np.unique(split[pair])) - (0 in split[pair]) == 2
    assert len(np.unique(split[fused])) - (0 in split[fused]) == 1
    assert len(np.unique(whole[pair])) - (0 in whole[pair]) == 1


def _overlapping_spheres(seed, r=6.0, shape=(320, 320), n_clusters=24):
    """HAADF-like field of monodisperse spheres in clusters of 1-4 that overlap in projection
    (centres 1.5-1.9 r apart: no neck, hardly a contrast dip); truth = nearest centre."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[: shape[0], : shape[1]].astype(float)
    centres: list = []
    for _ in range(400):
        if n_clusters == 0:
            break
        pts = [rng.uniform(2 * r + 4, np.array(shape) - 5 * r - 4)]
        for _k in range(int(rng.integers(0, 4))):
            for _t in range(50):
                a, d = rng.uniform(0, 2 * np.pi), rng.uniform(1.5, 1.9) * r
                p = pts[int(rng.integers(len(pts)))] + d * np.array([np.sin(a), np.cos(a)])
                if all(np.hypot(*(p - q)) >= 1.5 * r for q in pts):
                    pts.append(p)
                    break
        if all(np.hypot(*(p - q)) > 2.6 * r for p in pts for q in centres):
            centres += pts
            n_clusters -= 1
    t = np.zeros(shape)
    d2 = np.stack([(rr - p[0]) ** 2 + (cc - p[1]) ** 2 for p in centres])
    t = (2 * np.sqrt(np.clip(r * r - d2, 0, None))).sum(axis=0)
    truth = np.where(d2.min(axis=0) <= r * r, d2.argmin(axis=0) + 1, 0).astype(np.int32)
    from scipy import ndimage as ndi

    img = rng.poisson(ndi.gaussian_filter(10 + t, 0.8) * 20).astype(np.float32)
    return img, truth


def test_size_prior_splits_overlapping_monodisperse_spheres():
    from cryomat.segmentation.classical import segment_classical

    tp = fp = fn = 0
    for seed in (0, 1):
        img, truth = _overlapping_spheres(seed)
        lab, det = segment_classical(img, pixel_size=5.0, split_touching=True, return_details=True)
        # the single-sphere area (pi 36 px^2 in truth; the segmented edge of a blurred dome sits ~0.6 px
        # inside it, measured 91-98 px^2)
        assert det["size_prior_area_px"] == pytest.approx(np.pi * 36, rel=0.25)
        sc = match_instances(truth, lab)
        tp, fp, fn = tp + sc.tp, fp + sc.fp, fn + sc.fn
    # measured 0.98-1.0 (contrast and neck splitting alone: 0.54-0.77 on such clusters)
    assert 2 * tp / (2 * tp + fp + fn) >= 0.93


def test_size_prior_stays_off_for_mixed_shapes(sims):
    from cryomat.segmentation.classical import segment_classical

    # spheres, rods, cubes and plates of 10-30 nm: no common single-particle size, no prior
    for s in sims:
        _, det = segment_classical(s.image, pixel_size=s.pixel_size, dose_e_per_A2=1.0, split_touching=True,
                                   return_details=True)
        assert det["size_prior_area_px"] is None


def test_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        segment_particles(np.zeros((8, 8)), pixel_size=1.0, method="magic")
    with pytest.raises(ValueError, match="2D"):
        segment_particles(np.zeros((2, 8, 8)), pixel_size=1.0)
    with pytest.raises(ValueError, match="pixel_size"):
        segment_particles(np.ones((8, 8)), pixel_size=0.0)


def test_cli_segment_end_to_end(tmp_path, capsys):
    from cryomat.cli.main import main
    from cryomat.io.writers import write_mrc

    s = particle_image((256, 256), dose_e_per_A2=1.0, n_particles=10, rng=np.random.default_rng(3))
    a = write_mrc(tmp_path / "a.mrc", s.image, pixel_size=5.0)
    b = write_mrc(tmp_path / "b.mrc", s.image[:128, :128], pixel_size=2.5)  # other pixel size
    empty = write_mrc(tmp_path / "empty.mrc", np.full((128, 128), 25.0, np.float32), pixel_size=5.0)
    out = tmp_path / "out"
    rc = main(["segment", str(a), str(b), str(empty), "--out", str(out), "--dose", "1", "--split-touching"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())["results"]
    per = {r["image"]: r for r in res["per_image"]}
    assert per["empty"]["count"] == 0  # no particles: empty rows, not an error
    assert per["a"]["pixel_size_A"] == 5.0 and per["b"]["pixel_size_A"] == 2.5
    # counts within 15 % of the truth (touching-border fragments may differ)
    assert abs(per["a"]["count"] - len(s.table)) <= max(2, 0.15 * len(s.table))
    import pandas as pd

    t = pd.read_csv(out / "particles.csv")
    assert {"image", "label", "area_nm2", "equivalent_diameter_nm", "feret_max_nm", "touches_border"} <= set(t.columns)
    for f in ["report.html", "size_distribution.png", "labels/a_labels.tif", "overlays/a_overlay.png"]:
        assert (out / f).is_file(), f


def test_cli_segment_bad_input(tmp_path, capsys):
    from cryomat.cli.main import main

    bad = tmp_path / "x.mrc"
    bad.write_bytes(b"not an mrc")
    rc = main(["segment", str(bad), "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "x.mrc" in err
    assert main(["segment", str(tmp_path / "missing.mrc"), "--out", str(tmp_path / "o")]) == 2
