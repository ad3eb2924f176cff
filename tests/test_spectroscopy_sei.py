"""Synthetic SEI line scans (simulator kind ``spectrum_image``): composition profiles and interfaces."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryomat.simulate.spectrum_image import simulate_spectrum_image
from cryomat.spectroscopy import eds, loading, profiles
from cryomat.spectroscopy.pipeline import eds_maps


@pytest.fixture(scope="module")
def eds_scan():
    data, e, truth = simulate_spectrum_image(seed=3, modality="eds")
    spec = loading.Spectrum(data=data, energy_eV=e, kind="EDS", pixel_size=10.0, voltage_kV=200.0,
                            fwhm_mnka_eV=130.0)
    res = eds_maps(spec, lines=truth["lines"], kfactors=truth["kfactors"], background="powerlaw",
                   window_correction=True)
    return spec, res, truth


def test_eds_line_scan_composition_and_interfaces(eds_scan):
    spec, res, truth = eds_scan
    rows, cols = spec.data.shape[:2]
    pr = profiles.line_profile(res.intensity, ((rows - 1) / 2, 0), ((rows - 1) / 2, cols - 1), width_px=rows,
                               variance=res.variance)
    assert len(pr.distance_px) == cols and np.all(pr.npix == rows)
    k = np.array([res.factors[n] for n in res.names])
    comp, sig = eds.cliff_lorimer(pr.sums, res.names, k, variance=pr.variance)
    tr = np.array(truth["eds_at_pct_by_column"])
    # Li is invisible to EDS: evaluate where the film holds C/O/F/P, i.e. from 2.5 interface widths past
    # the lithium surface (19.5 px) on
    ev = np.arange(cols) >= 22
    err = np.abs(comp - tr)[:, ev]
    # the acceptance: <= 0.5 at.% mean, <= 1.5 at.% max (Poisson sigma here ~0.3 at.%)
    assert err.mean() <= 0.5
    assert err.max() <= 1.5
    found = profiles.interface_positions(pr.distance_px, comp, weights=np.clip(pr.sums, 0, None).sum(0))
    # three interfaces, each within one pixel of the truth
    assert len(found) == 3
    np.testing.assert_allclose(found, truth["interfaces_px"], atol=1.0)


def test_depth_profile_from_surface_equals_line_scan(eds_scan):
    spec, res, truth = eds_scan
    rows, cols = spec.data.shape[:2]
    mask = np.zeros((rows, cols), bool)
    mask[:, :20] = True  # lithium metal
    dp = profiles.depth_profile(res.intensity, mask, variance=res.variance)
    # depth of column j (outside the mask) is j - 19.5 px: bins of 1 px hold whole columns
    outside = dp.distance_px > 0
    np.testing.assert_allclose(dp.distance_px[outside][:5], [0.5, 1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(dp.sums[:, outside][:, 0], res.intensity[:, :, 20].sum(1))
    with pytest.raises(ValueError, match="mask"):
        profiles.depth_profile(res.intensity, np.zeros((rows, cols), bool))


def test_line_profile_rejects_outside_points():
    with pytest.raises(ValueError, match="outside"):
        profiles.line_profile(np.zeros((3, 10, 10)), (0, 0), (12, 3))


def test_simulate_cli_and_spectrum_cli_depth_profile(tmp_path):
    from cryomat.cli.main import main

    sim = tmp_path / "sim"
    assert main(["simulate", "spectrum_image", "--out", str(sim), "--seed", "1", "--quiet"]) == 0
    truth = json.loads((sim / "truth.json").read_text())
    out = tmp_path / "out"
    k = ",".join(f"{ln}={v}" for ln, v in truth["kfactors"].items())
    rc = main(["spectrum", str(sim / "si.hspy"), "--out", str(out), "--kfactors", k, "--background", "powerlaw",
               "--window-correction", "--profile-from-surface", str(sim / "surface_mask.tif"),
               "--image", str(sim / "haadf.tif"), "--decompose", "nmf", "--components", "3", "--quiet"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())["results"]
    import pandas as pd

    prof = pd.read_csv(out / "profile.csv")
    # depth of column j is j - 19.5 px: bins centred at 2.5, 3.5, ... hold columns 22, 23, ...
    inside = prof[prof["distance_px"] >= 2.5]
    tr = np.array(truth["eds_at_pct_by_column"])[:, 22:]
    got = inside[["C_at_pct", "O_at_pct", "F_at_pct", "P_at_pct"]].to_numpy().T
    assert got.shape == tr.shape
    # same acceptance as the library test, through the file format and the CLI
    assert np.abs(got - tr).mean() <= 0.5 and np.abs(got - tr).max() <= 1.5
    # interfaces reported as depth from the Li surface: 25 and 60 px (+ the surface itself at ~0)
    ifs = res["profile"]["interfaces_px"]
    assert any(abs(v - 25.0) <= 1.0 for v in ifs) and any(abs(v - 60.0) <= 1.0 for v in ifs)
    # the given image is the same field of view: registration finds no shift
    assert np.hypot(*res["overlay"]["registration_shift_px"]) <= 1.0
    assert (out / "maps" / "nmf_loading_2.tiff").is_file() and (out / "decomposition.png").is_file()
