"""Morphology classification on synthetic shape tables with known classes, fractions, tests, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cryomat.measure import particle_table
from cryomat.measure.classify import (class_fractions, cluster_shapes, compare_groups, predict_classes,
                                      shape_features, train_classifier, wilson_interval)


def _shapes_table(rng, n_per=20):
    """Particle table of digitised discs, squares, hexagons and rods (sizes 12-30 px, random
    orientation, one object per label) with their true class."""
    size = 64
    rows, truth = [], []
    rr, cc = np.mgrid[:size, :size] - size / 2
    for cls in ("disc", "square", "hexagon", "rod"):
        for _ in range(n_per):
            d = rng.uniform(14, 30)
            th = rng.uniform(0, np.pi)
            u = cc * np.cos(th) - rr * np.sin(th) + rng.uniform(-0.5, 0.5)
            v = cc * np.sin(th) + rr * np.cos(th) + rng.uniform(-0.5, 0.5)
            if cls == "disc":
                m = u**2 + v**2 <= (d / 2) ** 2
            elif cls == "square":
                m = (abs(u) <= d / 2.3) & (abs(v) <= d / 2.3)
            elif cls == "hexagon":
                m = np.ones_like(u, bool)
                for k in range(3):
                    a = np.pi / 3 * k
                    m &= abs(u * np.cos(a) + v * np.sin(a)) <= d / 2 * np.sqrt(3) / 2
            else:
                r = d / 5
                m = (np.clip(abs(u) - d / 2, 0, None) ** 2 + v**2) <= r * r
            lab = m.astype(np.int32)
            rows.append(particle_table(lab, pixel_size=5.0))
            truth.append(cls)
    t = pd.concat(rows, ignore_index=True)
    t["true"] = truth
    return t


@pytest.fixture(scope="module")
def shapes():
    return _shapes_table(np.random.default_rng(7))


def test_unsupervised_recovers_shape_classes(shapes):
    from sklearn.metrics import adjusted_rand_score

    f = shape_features(shapes, include_size=False)
    aris = []
    for seed in (0, 1):
        cl = cluster_shapes(f, n_classes="auto", seed=seed, n_bootstrap=4)
        aris.append(adjusted_rand_score(shapes["true"], cl.labels))
    # noise-free digitised shapes: the four groups are well separated (target ARI >= 0.85,
    # spread over seeds <= 0.05)
    assert min(aris) >= 0.85, aris
    assert np.ptp(aris) <= 0.05
    assert cl.stability_mean >= 0.85 and cl.embedding.shape == (len(shapes), 2)


def test_supervised_from_few_labels(shapes, rng):
    from sklearn.metrics import f1_score

    f = shape_features(shapes, include_size=False)
    idx = rng.permutation(len(shapes))
    train = np.concatenate([idx[shapes["true"].to_numpy()[idx] == c][:6] for c in ("disc", "square", "hexagon", "rod")])
    test = np.setdiff1d(np.arange(len(shapes)), train)
    clf = train_classifier(f.iloc[train], shapes["true"].iloc[train], seed=0)
    pred, prob = predict_classes(clf, f.iloc[test])
    # 6 labels per class suffice for these separable shapes (target macro-F1 >= 0.95)
    assert f1_score(shapes["true"].iloc[test], pred, average="macro") >= 0.95
    assert np.all((prob > 0) & (prob <= 1))


def test_fractions_intervals_and_group_test(rng):
    # 400 vs 400 particles with 30 %/50 % of class "a": intervals cover the truth, test rejects;
    # two groups with equal fractions: no rejection at 1 %
    g = np.repeat(["x", "y"], 400)
    c = np.where(g == "x", rng.random(800) < 0.3, rng.random(800) < 0.5)
    c = np.where(c, "a", "b")
    fr = class_fractions(g, c)
    ax = fr[(fr.group == "x") & (fr["class"] == "a")].iloc[0]
    assert ax.fraction_low95 <= 0.3 <= ax.fraction_high95
    assert abs(ax.fraction - 0.3) < 0.06  # binomial sd 0.023 -> 2.5 sigma
    assert compare_groups(g, c)["p_value"] < 1e-4
    c2 = np.where(rng.random(800) < 0.4, "a", "b")
    assert compare_groups(g, c2)["p_value"] > 0.01
    lo, hi = wilson_interval(0, 10)
    assert lo == 0 and 0.2 < hi < 0.35  # Wilson upper bound for 0/10 is 0.278


def test_cli_classify(tmp_path, shapes):
    from cryomat.cli.main import main

    t = shapes.drop(columns=["true"]).copy()
    t.insert(0, "image", np.where(np.arange(len(t)) % 2, "img1", "img2"))
    t["label"] = np.arange(1, len(t) + 1)
    t.to_csv(tmp_path / "particles.csv", index=False)
    out = tmp_path / "out"
    assert main(["classify", str(tmp_path / "particles.csv"), "--out", str(out), "--bootstrap", "2",
                 "--n-classes", "4"]) == 0
    res = json.loads((out / "results.json").read_text())["results"]
    assert res["mode"] == "unsupervised" and res["n_classes"] == 4
    fr = pd.read_csv(out / "fractions.csv")
    assert set(fr["group"]) == {"img1", "img2"}
    assert (out / "embedding.png").is_file() and (out / "report.html").is_file()
    lab = t[["image", "label"]].iloc[::3].copy()
    lab["class"] = shapes["true"].iloc[::3].to_numpy()
    lab.to_csv(tmp_path / "labels.csv", index=False)
    out2 = tmp_path / "out2"
    assert main(["classify", str(tmp_path / "particles.csv"), "--out", str(out2), "--labels",
                 str(tmp_path / "labels.csv")]) == 0
    res2 = json.loads((out2 / "results.json").read_text())["results"]
    assert res2["mode"] == "supervised" and res2["cv_macro_f1"] >= 0.9


def test_cli_classify_bad_input(tmp_path, capsys):
    from cryomat.cli.main import main

    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    assert main(["classify", str(p), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "not a particles table" in err and "Traceback" not in err
