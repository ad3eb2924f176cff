"""``cryomat align`` end to end, bad input, and the real STEM frame and tilt series."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cryomat import io
from cryomat.cli.main import main
from cryomat.simulate import simulate


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    d = tmp_path_factory.mktemp("movie")
    truth = simulate("movie", d, seed=5, n_frames=10, size=192, dose_per_frame=0.8, gain_variation=0.1,
                     n_hot_pixels=8, dead_column=True, drift_total_px=6.0)
    return d, truth


def test_align_cli_end_to_end(sim, tmp_path):
    d, truth = sim
    out = tmp_path / "out"
    rc = main(["align", str(d / "movie.mrcs"), "--out", str(out), "--dose-per-frame", "0.8", "--gain",
               str(d / "gain.mrc"), "--defects", str(d / "defects.mrc"), "--quiet"])
    assert rc == 0
    for f in ("aligned_sum.mrc", "aligned_sum_dw.mrc", "even_sum.mrc", "odd_sum.mrc", "shifts.csv", "drift.png",
              "report.html", "results.json"):
        assert (out / f).exists(), f
    tab = pd.read_csv(out / "shifts.csv")
    assert list(tab.columns[:6]) == ["frame", "shift_row_px", "shift_col_px", "shift_row_A", "shift_col_A", "ccf_peak"]
    e = tab[["shift_row_px", "shift_col_px"]].to_numpy() - np.asarray(truth["drift_px"])
    e -= e.mean(0)
    # 192^2 x 10 frames at 0.8 c/px/frame with gain variation, hot pixels and a dead column, all
    # corrected: ~0.05 px is typical; 0.15 px allows for the small frame
    assert np.sqrt(np.mean(np.sum(e**2, 1))) < 0.15
    qc = json.loads((out / "results.json").read_text())["results"]["qc"]
    for k in ("total_drift_A", "residual_rms_px", "outlier_pairs", "frc_even_odd_0143_A"):
        assert k in qc
    # the path length of the truth is 6 px by construction; smoothing and noise change it a little
    assert qc["total_drift_A"] == pytest.approx(6.0, abs=1.0)
    assert io.read(out / "aligned_sum.mrc").pixel_size == pytest.approx(1.0, rel=1e-5)


def test_align_cli_patches_and_allpairs(sim, tmp_path):
    d, _ = sim
    out = tmp_path / "p"
    assert main(["align", str(d / "movie.mrcs"), "--out", str(out), "--mode", "all-pairs", "--patches", "2x2",
                 "--quiet"]) == 0
    assert (out / "local_motion.csv").exists()
    qc = json.loads((out / "results.json").read_text())["results"]["qc"]
    assert qc["mode"] == "all-pairs" and qc["n_patches"] == 4


def test_align_cli_bad_inputs(sim, tmp_path, capsys):
    d, _ = sim
    one = tmp_path / "one.mrc"
    io.write_mrc(one, np.ones((64, 64), np.float32), pixel_size=1.0)
    assert main(["align", str(one), "--out", str(tmp_path / "o1")]) == 2
    err = capsys.readouterr().err
    assert "single frame" in err and "Traceback" not in err
    wrong = tmp_path / "gain.mrc"
    io.write_mrc(wrong, np.ones((64, 64), np.float32), pixel_size=1.0)
    assert main(["align", str(d / "movie.mrcs"), "--out", str(tmp_path / "o2"), "--gain", str(wrong)]) == 2
    assert "gain reference has shape" in capsys.readouterr().err
    nan = tmp_path / "nan.mrcs"
    a = np.ones((3, 64, 64), np.float32)
    a[1, 3, 3] = np.nan
    io.write_mrc(nan, a, pixel_size=1.0)
    assert main(["align", str(nan), "--out", str(tmp_path / "o3")]) == 2
    assert "frame 1 contains NaN" in capsys.readouterr().err
    zero = tmp_path / "zero.mrcs"
    a = np.ones((3, 64, 64), np.float32)
    a[2] = 0
    io.write_mrc(zero, a, pixel_size=1.0)
    assert main(["align", str(zero), "--out", str(tmp_path / "o4")]) == 2
    assert "frame 2 is all zero" in capsys.readouterr().err
    f1, f2 = tmp_path / "f1.mrc", tmp_path / "f2.mrc"
    io.write_mrc(f1, np.ones((64, 64), np.float32))
    io.write_mrc(f2, np.ones((64, 72), np.float32))
    assert main(["align", str(f1), str(f2), "--out", str(tmp_path / "o5")]) == 2
    assert "different shapes" in capsys.readouterr().err


def test_real_stem_series(real, tmp_path):
    # 5-frame TIA STEM series of nanoparticles (128^2, 3.84 A px): a short series, so auto = all-pairs.
    p = real("rosettasciio/03_Scanning_Preview.emi")
    out = tmp_path / "stem"
    assert main(["align", str(p), "--out", str(out), "--quiet"]) == 0
    tab = pd.read_csv(out / "shifts.csv")
    qc = json.loads((out / "results.json").read_text())["results"]["qc"]
    assert qc["mode"] == "all-pairs" and len(tab) == 5
    # a sensible trace: a few px of drift between consecutive 128^2 scans, not a lock onto noise
    step = np.hypot(*np.diff(tab[["shift_row_px", "shift_col_px"]].to_numpy(), axis=0).T)
    assert np.all(step < 10) and np.all(np.isfinite(step))
    # the pair shifts agree with one another (transitivity) to better than a pixel
    assert qc["outlier_pairs"] <= 1


def test_real_tilt_series(real, tmp_path):
    # 91-tilt HAADF series of a needle (64^2, binned 16x): neighbouring tilts are registered
    p = real("etspy/HAADF.dm3")
    out = tmp_path / "tilt"
    assert main(["align", str(p), "--out", str(out), "--quiet"]) == 0
    tab = pd.read_csv(out / "shifts.csv")
    assert len(tab) == 91
    s = tab[["shift_row_px", "shift_col_px"]].to_numpy()
    assert np.all(np.isfinite(s))
    # the needle stays in the 64 px field: shifts stay well inside the frame
    assert np.abs(s - s.mean(0)).max() < 32
