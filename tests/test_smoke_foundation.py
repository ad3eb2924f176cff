"""Foundation smoke tests: CLI wiring, FRC physics, atomic output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryomat.cli.main import main
from cryomat.fourier import fourier_ring_correlation, half_bit_threshold


def test_frc_identical_is_one(rng):
    a = rng.standard_normal((128, 128))
    r = fourier_ring_correlation(a, a, pixel_size=1.0)
    # identical images correlate perfectly in every ring (floating-point tolerance)
    assert np.allclose(r.frc[1:], 1.0, atol=1e-12)


def test_frc_independent_noise_is_zero(rng):
    a = rng.standard_normal((256, 256))
    b = rng.standard_normal((256, 256))
    r = fourier_ring_correlation(a, b, pixel_size=1.0)
    # pure noise: each ring's FRC is ~N(0, 1/n); 4/sqrt(n) bounds all rings with high probability
    assert np.all(np.abs(r.frc[2:]) < 4 / np.sqrt(r.n_pixels[2:]))


def test_half_bit_formula():
    n = np.array([10.0, 100.0, 1e4])
    expected = (0.2071 + 1.9102 / np.sqrt(n)) / (1.2071 + 0.9102 / np.sqrt(n))
    assert np.allclose(half_bit_threshold(n), expected, rtol=0, atol=1e-12)


def test_cli_bad_file_exit_2(tmp_path, capsys):
    bad = tmp_path / "x.xyz"
    bad.write_text("nope")
    rc = main(["info", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and "x.xyz" in err and "Traceback" not in err


def test_demo_runs(tmp_path):
    rc = main(["--quiet", "demo", "--out", str(tmp_path / "d"), "--only", "imaging"])
    assert rc == 0
    doc = json.loads((tmp_path / "d" / "results.json").read_text())
    assert doc["results"]["failed_steps"] == []
    assert (tmp_path / "d" / "report.html").exists()
    m = doc["results"]["steps"]["imaging"]
    # ice ring: power-weighted centre of a ring 0.08 1/A wide; 4 seeds gave 3.714-3.723 A -> 2 %
    assert m["ice_ring_measured_A"] == pytest.approx(3.7, rel=0.02)
    # first Thon zero from a radial profile with 1/512 1/A bins: one bin at 1/17.4 A is 3.4 %
    assert m["first_ctf_zero_measured_A"] == pytest.approx(m["first_ctf_zero_analytic_A"], rel=0.04)
    # outer 0.143 crossing of the measured FRC vs the dose-predicted S/(S+N): 4 seeds within 1 %
    assert m["frc_outer_0143_measured_A"] == pytest.approx(m["frc_outer_0143_predicted_A"], rel=0.03)
