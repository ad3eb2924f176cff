"""``cryomat spectrum`` end to end, and its bad-input handling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryomat.cli.main import main


@pytest.mark.realdata
def test_cli_fept_single_spectrum(real, tmp_path):
    path = real("exspy/EDS_TEM_FePt_nanoparticles.hspy")
    out = tmp_path / "out"
    rc = main(["spectrum", str(path), "--out", str(out), "--kfactors", "Fe_Ka=1.450226,Pt_La=5.075602",
               "--line-width", "5", "2", "--quiet"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())["results"]
    # exSpy's documented result for these k-factors and windows: 15.41 / 84.59 at.%
    assert res["composition_at_pct"]["Fe_Ka"] == pytest.approx(15.41, abs=0.05)
    for f in ("composition.csv", "spectrum.png", "report.html"):
        assert (out / f).is_file()


@pytest.mark.realdata
def test_cli_bcf_maps_profile_overlay(real, tmp_path):
    path = real("rosettasciio/test_TEM.bcf")
    out = tmp_path / "si"
    rc = main(["spectrum", str(path), "--out", str(out), "--profile", "5,5,5,60", "--width", "3",
               "--quiet"])
    assert rc == 0
    doc = json.loads((out / "results.json").read_text())
    res = doc["results"]
    assert set(res["names"]) == {"Cu_Ka", "O_Ka", "Pd_La", "Ti_Ka"}
    # at.% of the summed spectrum add to 100 (normalisation) and each is finite
    assert sum(res["composition_at_pct"].values()) == pytest.approx(100.0, abs=1e-6)
    import pandas as pd
    import tifffile

    prof = pd.read_csv(out / "profile.csv")
    assert {"distance_px", "distance_nm", "O_at_pct", "Ti_sigma_at_pct"} <= set(prof.columns)
    # 55 px long band, 1 px bins -> 56 bins; 3 nm / 0.771 nm px -> about 3-4 pixels summed per bin
    assert len(prof) == 56 and prof["npix"].between(3, 5).all()
    m = tifffile.imread(out / "maps" / "Ti_Ka_counts.tiff")
    assert m.shape == (64, 64)
    assert (out / "overlay.png").is_file() and (out / "maps.png").is_file()


def test_cli_bad_input_exit_2(tmp_path, capsys):
    rc = main(["spectrum", str(tmp_path / "missing.bcf"), "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "missing.bcf" in err and "Traceback" not in err


def test_cli_bad_profile_exit_2(tmp_path, capsys):
    f = tmp_path / "x.npy"
    np.save(f, np.zeros((4, 4)))
    rc = main(["spectrum", str(f), "--out", str(tmp_path / "o"), "--profile", "1,2,3"])
    assert rc == 2
    assert "--profile" in capsys.readouterr().err


@pytest.mark.realdata
def test_cli_eels_with_lowloss(real, tmp_path):
    cl, ll = real("exspy/Cr_L_cl.hspy"), real("exspy/Cr_L_ll.hspy")
    out = tmp_path / "eels"
    rc = main(["spectrum", str(cl), "--out", str(out), "--edges", "Cr_L3", "--lowloss", str(ll),
               "--fit-width", "10", "--delta", "20", "--quiet"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())["results"]
    # one edge -> 100 at.%; t/lambda from the low loss as exSpy's 0.945 (log-ratio, same threshold)
    assert res["composition_at_pct"]["Cr_L3"] == pytest.approx(100.0)
    assert res["t_over_lambda_mean"] == pytest.approx(0.945, abs=0.01)
    # the zero loss of this low loss sits at -0.44 eV (parabolic peak); the check reports it
    assert res["energy_calibration_offset_eV"]["zero_loss"] == pytest.approx(-0.44, abs=0.1)


@pytest.mark.realdata
def test_cli_denoise_and_pca(real, tmp_path):
    path = real("rosettasciio/test_TEM.bcf")
    out = tmp_path / "dn"
    rc = main(["spectrum", str(path), "--out", str(out), "--denoise", "--decompose", "pca", "--bin", "2", "--quiet"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())["results"]
    # sparse 8-bit counts: the noise edge keeps a handful of components, far fewer than channels
    assert 1 <= res["denoise"]["n_components"] <= 20
    assert res["decomposition"]["n_components"] == res["denoise"]["n_components"]
    assert (out / "decomposition.png").is_file()
    # the strong Ti Ka / O Ka lines sit within a quarter FWHM of their tabulated energies
    offs = res["energy_calibration_offset_eV"]
    assert "Ti_Ka" in offs and abs(offs["Ti_Ka"]) < 35.0


@pytest.mark.realdata
def test_cli_profile_on_single_spectrum_is_bad_input(real, tmp_path, capsys):
    path = real("exspy/EDS_TEM_FePt_nanoparticles.hspy")
    rc = main(["spectrum", str(path), "--out", str(tmp_path / "o"), "--profile", "0,0,1,1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "spectrum image" in err and "Traceback" not in err


@pytest.mark.realdata
def test_cli_reads_zip_member(real, tmp_path, capsys):
    z = real("rosettasciio/velox_emd_version11.zip")
    # two EMD files in the archive: without --member the CLI says which ones
    assert main(["spectrum", str(z), "--out", str(tmp_path / "a")]) == 2
    assert "--member" in capsys.readouterr().err
    out = tmp_path / "b"
    rc = main(["spectrum", str(z), "--member", "Test SI 16x16 215 kx.emd", "--out", str(out), "--quiet"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())["results"]
    # the file's element maps name C, Ca, Cu, O; the SI is 16 x 16 x 4096
    assert res["names"] == ["C_Ka", "Ca_Ka", "Cu_Ka", "O_Ka"] and res["shape"] == [16, 16, 4096]
