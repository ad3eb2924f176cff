"""Time courses across aliquots: time parsing, JMAK recovery, class fractions per time point."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cryomat.cli.main import main
from cryomat.tracking.timecourse import fit_jmak, jmak, parse_times


def test_parse_times():
    assert parse_times("48h, 52h,30min,2d,1.5") == [48.0, 52.0, 0.5, 48.0, 1.5]
    with pytest.raises(ValueError, match="fortnight"):
        parse_times("48h,2fortnight")


def test_jmak_recovers_parameters():
    t = np.array([40.0, 44, 48, 52, 56, 60])
    x = jmak(t, 0.06, 2.0, 36.0)
    fit = fit_jmak(t, x)
    # noiseless data: the least-squares fit returns the generating parameters
    assert fit["applies"] and fit["avrami_n"] == pytest.approx(2.0, rel=1e-3)
    assert fit["k_per_h"] == pytest.approx(0.06, rel=1e-3) and fit["induction_time_h"] == pytest.approx(36.0, abs=0.05)


def test_cli_class_fractions_follow_truth(tmp_path):
    rng = np.random.default_rng(0)
    true_rod = [0.1, 0.3, 0.7, 0.9]
    dirs = []
    for i, f in enumerate(true_rod):
        n = 400
        kind = np.where(rng.random(n) < f, "rod", "sphere")
        d = tmp_path / f"t{i}"
        d.mkdir()
        pd.DataFrame({"equivalent_diameter_nm": rng.lognormal(np.log(20), 0.2, n), "kind": kind}).to_csv(
            d / "particles.csv", index=False)
        dirs.append(str(d))
    rc = main(["--quiet", "timecourse", *dirs, "--times", "48h,52h,56h,60h", "--out", str(tmp_path / "o"),
               "--class-column", "kind"])
    assert rc == 0
    frac = pd.read_csv(tmp_path / "o" / "class_fractions.csv")
    rods = frac[frac["class"] == "rod"].sort_values("time_h")
    # 400 particles per aliquot: binomial sd <= 2.5 pp, so 7.5 pp (3 sd) bounds every fraction;
    # a Wilson 95% interval misses its truth 5% of the time, so at least 3 of 4 must hold it
    assert np.allclose(rods["fraction"], true_rod, atol=0.075)
    inside = (rods["fraction_low95"] <= true_rod) & (np.array(true_rod) <= rods["fraction_high95"])
    assert inside.sum() >= 3
    res = json.loads((tmp_path / "o" / "results.json").read_text())["results"]
    assert res["transformed_class"] == "rod" and res["mix_changes_chi2_p_value"] < 1e-6


def test_cli_timecourse_bad_input(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    rc = main(["timecourse", str(tmp_path / "a"), "--times", "1h,2h", "--out", str(tmp_path / "o")])
    assert rc == 2 and "2 times for 1 folders" in capsys.readouterr().err
    rc = main(["timecourse", str(tmp_path / "a"), "--times", "1h", "--out", str(tmp_path / "o")])
    assert rc == 2 and "neither particles.csv nor images" in capsys.readouterr().err
