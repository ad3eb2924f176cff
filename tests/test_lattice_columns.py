"""Atomic columns: refinement precision, lattice fit, PLD, the stem_columns simulator, real SrTiO3."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cryomat.cli.main import main
from cryomat.lattice.columns import analyse_columns, fit_lattice, fit_modulation, refine_columns
from cryomat.simulate.stem_columns import stem_column_image


def _inner(truth, shape, margin=10):
    p = truth["positions_px"]
    return (p[:, 0] > margin) & (p[:, 0] < shape[0] - margin) & (p[:, 1] > margin) & (p[:, 1] < shape[1] - margin)


def test_refinement_is_exact_without_noise():
    img, t = stem_column_image((128, 128), pixel_size=0.15, rotation_deg=11.0, pld_amplitude_pm=6.0, noise=False,
                               rng=np.random.default_rng(0))
    m = _inner(t, img.shape)
    start = t["positions_px"][m] + np.random.default_rng(1).normal(0, 1.0, (m.sum(), 2))
    r = refine_columns(img, start, radius_px=8.0)
    err_pm = (r[["row_px", "col_px"]].to_numpy() - t["positions_px"][m]) * 15.0
    # the model is exact (isotropic Gaussians); only neighbour tails inside the disc remain: < 0.05 pm
    assert np.sqrt(np.mean(err_pm**2)) < 0.05


@pytest.mark.parametrize("counts,limit_pm", [(50, 1.3), (500, 0.4)])
def test_position_precision_at_dose(counts, limit_pm):
    # issue targets per axis: 1.2 pm at 50 and 0.4 pm at 500 peak counts; 3 images (~250 A columns)
    # measured 1.07 / 0.30 pm; limits allow the sampling scatter of the RMS (~5 %) plus margin
    errs = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        img, t = stem_column_image((192, 192), pixel_size=0.15, peak_counts=counts, pld_amplitude_pm=6.0, rng=rng)
        m = _inner(t, img.shape) & (t["sublattice"] == 0)
        start = t["positions_px"][m] + rng.normal(0, 1.0, (m.sum(), 2))
        r = refine_columns(img, start, radius_px=9.0)
        errs.append((r[["row_px", "col_px"]].to_numpy() - t["positions_px"][m]) * 15.0)
    assert np.sqrt(np.mean(np.concatenate(errs) ** 2)) < limit_pm


def test_lattice_fit_and_pld_amplitude():
    rng = np.random.default_rng(5)
    img, t = stem_column_image((256, 256), pixel_size=0.15, rotation_deg=4.0, peak_counts=200, pld_amplitude_pm=6.0,
                               pld_q=(0.25, 0.0), rng=rng)
    res = analyse_columns(img, pixel_size=0.15)
    lat = res["lattice"].to_dict(0.15)
    # cubic perovskite a = 3.905 A: the average lattice from ~90 columns to 0.1 %
    assert lat["a1_A"] == pytest.approx(3.905, rel=1e-3) and lat["a2_A"] == pytest.approx(3.905, rel=1e-3)
    assert lat["angle_a1_a2_deg"] == pytest.approx(90.0, abs=0.2)
    cols = res["columns"]
    assert np.bincount(cols.sublattice).tolist() == [int((t["sublattice"] == s).sum()) for s in (0, 1)]
    on = cols[cols.on_lattice]
    mod = fit_modulation(on[["i", "j"]].to_numpy(), on[["dr_pm", "dc_pm"]].to_numpy())
    # issue target: PLD amplitude error <= 0.3 pm for a 6 pm modulation
    assert abs(mod["amplitude"] - 6.0) < 0.3
    assert sorted(np.abs(np.round(mod["q_rlu"], 2)).tolist()) == [0.0, 0.25]


def test_fit_lattice_recovers_basis_of_a_perfect_lattice():
    a1, a2 = np.array([10.0, 1.0]), np.array([-2.0, 14.0])
    ij = np.stack(np.meshgrid(np.arange(-5, 6), np.arange(-4, 5), indexing="ij"), -1).reshape(-1, 2)
    pos = np.array([50.0, 60.0]) + ij[:, :1] * a1 + ij[:, 1:] * a2
    fit = fit_lattice(pos)
    # exact data: the reduced basis spans the same lattice and the residuals vanish
    assert np.allclose(fit.residual_px, 0, atol=1e-9)
    assert abs(abs(np.cross(fit.a1, fit.a2)) - abs(np.cross(a1, a2))) < 1e-6


def test_real_srtio3_adf_lattice_and_b_columns(real):
    # atomap's test image of SrTiO3 [110] (ADF): A (Sr) columns 2.761 x 3.905 A; atomap's own test
    # finds 104 B (TiO) columns between the A columns along [001]
    from cryomat.lattice.figures import load_image_2d

    img, px, _ = load_image_2d(real("atomap/test_ADF_cropped.hdf5"))
    res = analyse_columns(img, pixel_size=px)
    lat = res["lattice"].to_dict(px)
    a = max(lat["a1_A"], lat["a2_A"])
    assert a == pytest.approx(3.905, rel=0.01)  # issue: within 1 % of 3.905 A
    assert min(lat["a1_A"], lat["a2_A"]) == pytest.approx(3.905 / np.sqrt(2), rel=0.01)
    cols = res["columns"]
    assert int((cols.sublattice == 1).sum()) == 104


def test_cli_columns_end_to_end(tmp_path):
    sim = tmp_path / "sim"
    assert main(["simulate", "stem_columns", "--out", str(sim), "--seed", "2", "--set", "size=192",
                 "--set", "peak_counts=200"]) == 0
    truth = json.loads((sim / "truth.json").read_text())
    out = tmp_path / "out"
    assert main(["columns", str(sim / "image.mrc"), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())["results"]
    assert res["n_columns"] == truth["n_columns"]
    assert res["lattice_a1_A"] == pytest.approx(3.905, rel=2e-3)
    assert res["pld"]["amplitude_pm"] == pytest.approx(6.0, abs=0.5)  # 200 counts, ~60 columns
    table = pd.read_csv(out / "columns.csv")
    assert {"row_px", "col_px", "dr_pm", "dc_pm", "sublattice"} <= set(table)
    assert (out / "report.html").exists() and (out / "displacements.png").exists()


def test_cli_columns_bad_input(tmp_path, capsys):
    bad = tmp_path / "flat.npy"
    np.save(bad, np.zeros((8, 8), np.float32))
    assert main(["columns", str(bad), "--out", str(tmp_path / "o"), "--pixel-size", "0.1"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_real_srtio3_images_identified_by_fft(real, tmp_path):
    # atomap ADF (SrTiO3 [110]) and NCEM 16_STOimage (SrTiO3 [001], 80 kV): both must index as SrTiO3
    # among look-alike cubic phases. The ADF calibration is good: the fitted scale (= measured /
    # library lattice) is within 1 %. The NCEM file's own calibration is off by a few % (its FFT and
    # columns both give a ~ 4.0 A, anisotropic: scan distortion); a STEM magnification calibration
    # is typically good to ~5 %, which is the bound used there.
    for rel, zone, tol in (("atomap/test_ADF_cropped.hdf5", [1, 1, 0], 0.01), ("openncem/16_STOimage.emi", [1, 0, 0], 0.05)):
        out = tmp_path / zone.__str__().replace(" ", "")
        assert main(["lattice", str(real(rel)), "--out", str(out), "--phases", "SrTiO3,Si,Au,Cu,Pt,LiF,Li2O",
                     "--pixel-size-error", "0.05"]) == 0
        best = json.loads((out / "results.json").read_text())["results"]["phases"][0]
        assert best["name"] == "SrTiO3" and best["zone_axis"] == zone
        assert abs(1 / best["scale_factor"] - 1) < tol
