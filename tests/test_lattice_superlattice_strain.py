"""Superlattice detection (PLD satellites, q, reference comparison) and GPA strain against known truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryomat.cli.main import main
from cryomat.lattice.strain import gpa
from cryomat.lattice.superlattice import find_superlattice, lock_in
from cryomat.simulate.stem_columns import column_positions, render_columns, stem_column_image


def _img(amp_pm, seed, size=512):
    return stem_column_image((size, size), pixel_size=0.15, peak_counts=50, pld_amplitude_pm=amp_pm, pld_q=(1 / 3, 0),
                             rotation_deg=5.0, rng=np.random.default_rng(seed))[0]


def test_superlattice_q_and_significance():
    r = find_superlattice(_img(3.0, 1), pixel_size=0.15)
    assert r["detected"]
    # basis: the 3.905 A cubic cell; q = 1/3 along one axis (which one depends on the basis order)
    assert np.allclose(sorted(np.linalg.norm(r["basis_per_A"], axis=1)), 1 / 3.905, rtol=2e-3)
    q = np.sort(np.abs(r["q_rlu"]))
    # satellites next to strong fundamentals are refined to ~0.1-0.3 Fourier px; 0.01 r.l.u. is ~0.8 px
    assert q[1] == pytest.approx(1 / 3, abs=0.01) and q[0] < 0.01


def test_no_modulation_no_detection():
    # the same lattice without a PLD: no two consistent satellites may pass the detection threshold
    for seed in (3, 4):
        assert not find_superlattice(_img(0.0, seed), pixel_size=0.15)["detected"]


def test_lock_in_amplitude_of_a_pure_cosine():
    # I = 1 + 0.2 cos(2 pi k.r): lock-in amplitude 0.2 everywhere away from the edges (Gaussian low-pass)
    px, n = 0.5, 128
    k = np.array([0.13, 0.07])
    rr, cc = np.mgrid[0:n, 0:n] * px
    img = 1 + 0.2 * np.cos(2 * np.pi * (k[0] * cc + k[1] * rr))
    amp, _ = lock_in(img, k, pixel_size=px, sigma_A=8.0)
    assert np.allclose(amp[32:96, 32:96], 0.2, rtol=0.02)


def _strain_step(shape, px):
    """Columns (a = 3.905 A, 100 counts, background 2) with exx = 1 % right of col 192, Poisson
    noise; and the reference mask (cols < 150, unstrained)."""
    pos, *_ = column_positions(shape, pixel_size=px, lattice_A=3.905, basis=((0.0, 0.0),), margin_A=-5)
    x = pos[:, 1]
    pos[:, 1] = np.where(x > 192, x + 0.01 * (x - 192), x)
    img = np.random.default_rng(0).poisson(render_columns(shape, pos, np.full(len(pos), 100.0), sigma_px=3.0,
                                                          background=2)).astype(float)
    ref = np.zeros(shape, bool)
    ref[:, :150] = True
    return img, ref


def test_gpa_recovers_a_strain_step():
    # columns with exx = 1 % right of col 192 (continuous displacement); GPA must give ~1 % there
    # and ~0 on the left (reference); tolerance 0.05 % = Poisson noise over the 4 A resolution
    px, shape = 0.15, (384, 512)
    img, ref = _strain_step(shape, px)
    r = gpa(img, pixel_size=px, sigma_A=4.0, reference_mask=ref)
    right, left = (slice(100, 280), slice(300, 400)), (slice(100, 280), slice(60, 130))
    assert r.exx[right].mean() == pytest.approx(0.01, abs=5e-4)
    assert abs(r.exx[left].mean()) < 5e-4
    assert abs(r.eyy[right].mean()) < 5e-4 and abs(r.rotation_deg[right].mean()) < 0.05


def test_cli_superlattice_and_strain(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["simulate", "stem_columns", "--out", str(a), "--seed", "1", "--set", "size=512",
                 "--set", "pld_amplitude_pm=3"]) == 0
    assert main(["simulate", "stem_columns", "--out", str(b), "--seed", "2", "--set", "size=512",
                 "--set", "pld_amplitude_pm=0"]) == 0
    out = tmp_path / "sl"
    assert main(["superlattice", str(a / "image.mrc"), "--reference", str(b / "image.mrc"), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())["results"]
    assert res["superlattice_detected"] and not res["reference"]["superlattice_detected"]
    assert res["q_wavelength_A"] == pytest.approx(3 * 3.905, rel=0.03)
    assert len(res["reference"]["only_in_image"]) >= 2
    assert (out / "lockin_amplitude.mrc").exists() and (out / "report.html").exists()
    out2 = tmp_path / "st"
    assert main(["strain", str(b / "image.mrc"), "--out", str(out2)]) == 0
    res2 = json.loads((out2 / "results.json").read_text())["results"]
    # an unstrained lattice: strain scatter from noise only (< 0.5 %), spacings of the cubic cell
    assert res2["whole_image"]["exx_std"] < 5e-3
    assert sorted([res2["d1_A"], res2["d2_A"]])[0] == pytest.approx(3.905 / np.sqrt(2), rel=5e-3) or \
        sorted([res2["d1_A"], res2["d2_A"]])[0] == pytest.approx(3.905, rel=5e-3)


def test_cli_strain_bad_region(tmp_path, capsys):
    a = tmp_path / "a"
    main(["simulate", "stem_columns", "--out", str(a), "--set", "size=96"])
    assert main(["strain", str(a / "image.mrc"), "--out", str(tmp_path / "o"),
                 "--reference-region", "0", "500", "0", "10"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_gpa_edges_do_not_wrap():
    # the strain step of the test above, checked right up to the NaN border: with the periodic
    # lock-in the right edge (exx = 1 %) mixed with the left (0 %) and the map was off by up to
    # 0.56 % inside the kept area; the zero-padded normalised convolution keeps every kept pixel
    # within 0.2 % of the truth (measured max 0.12 %: Poisson noise of the one-sided average near
    # the border, rms 0.036 %). Pixels within 3 sigma of the step itself are left out (resolution)
    px, shape, sigma = 0.15, (384, 512), 4.0
    img, ref = _strain_step(shape, px)
    r = gpa(img, pixel_size=px, sigma_A=sigma, reference_mask=ref)
    b = r.border_px
    assert b == int(np.ceil(2 * sigma / px))  # the NaN border is reported and is 2 sigma wide
    assert np.isnan(r.exx[:b]).all() and np.isnan(r.exx[:, -b:]).all() and np.isfinite(r.exx[b:-b, b:-b]).all()
    truth = np.where(np.arange(shape[1]) > 192, 0.01, 0.0)[None, :]
    far = np.abs(np.arange(shape[1]) - 192)[None, :] > 3 * sigma / px
    err = np.abs(r.exx - truth)[b:-b, b:-b][:, far[0, b:-b]]
    assert err.max() < 2e-3
    assert np.isfinite(r.summary()["exx_mean"])
