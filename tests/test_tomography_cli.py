"""End-to-end ``cryomat tomo``: simulated series with known misalignment, bad input, real files."""

import json

import mrcfile
import numpy as np
import pytest

from cryomat.cli.main import main
from cryomat.simulate import simulate


def test_tomo_cli_end_to_end(tmp_path):
    sim_dir = tmp_path / "sim"
    truth = simulate("tilt_series", sim_dir, seed=5, size=64, n_tilts=41, counts_per_px=None,
                     shift_sigma_px=2.0, tilt_axis_error_deg=1.0)
    out = tmp_path / "out"
    rc = main(["--quiet", "tomo", str(sim_dir / "tilt_series.mrc"), "--out", str(out)])
    assert rc == 0
    for name in ("volume.mrc", "alignment.csv", "tiltseries.xf", "tiltseries.tlt", "orthoslices.png",
                 "report.html", "results.json", "fsc_even_odd.csv"):
        assert (out / name).is_file(), name
    res = json.loads((out / "results.json").read_text())["results"]
    # the tilt axis is found within 0.25 deg of the simulated 1 deg error (the target)
    assert abs(res["tilt_axis_psi_deg"] - truth["tilt_axis_deg"]) <= 0.25
    with mrcfile.open(out / "volume.mrc") as m:
        assert m.data.shape == (64, 64, 64)
        assert np.isclose(float(m.voxel_size.x), truth["pixel_size_A"])  # voxel size carried into the header
    # angles read from the .rawtlt beside the stack, written back as IMOD .tlt
    tlt = np.loadtxt(out / "tiltseries.tlt")
    np.testing.assert_allclose(tlt, truth["angles_deg"], atol=0.01)


def test_tomo_cli_bad_input_exit_2(tmp_path, capsys):
    bad = tmp_path / "stack.mrc"
    bad.write_bytes(b"not an mrc file at all" * 10)
    rc = main(["tomo", str(bad), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "stack.mrc" in err
    # a 2D image is not a tilt series
    from cryomat.io import write_mrc

    write_mrc(tmp_path / "img.mrc", np.zeros((16, 16), np.float32), pixel_size=1.0)
    rc = main(["tomo", str(tmp_path / "img.mrc"), "--out", str(tmp_path / "o2")])
    assert rc == 2 and "tilt series" in capsys.readouterr().err
    # --nonnegative belongs to SIRT only
    rc = main(["tomo", str(tmp_path / "img.mrc"), "--nonnegative", "--out", str(tmp_path / "o3")])
    err = capsys.readouterr().err
    assert rc == 2 and "--nonnegative" in err and "Traceback" not in err


def test_real_haadf_tilt_series_reconstructs(real, tmp_path):
    # 91 tilts, -90..90 deg in 2 deg steps, angles stored in the DM3 file itself
    path = real("etspy/HAADF.dm3")
    out = tmp_path / "haadf"
    rc = main(["--quiet", "tomo", str(path), "--out", str(out), "--thickness", "600"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())["results"]
    assert res["n_tilts"] == 91 and res["tilt_range_deg"] == [-90.0, 90.0] and res["angle_source"] == "file"
    with mrcfile.open(out / "volume.mrc") as m:
        assert np.all(np.isfinite(m.data)) and float(m.data.std()) > 0


def test_real_eds_tomography_bcf_series_reconstructs(real, tmp_path):
    # 16 Bruker .bcf files; the angle is only in the file name (tilt_-40.bcf); HAADF image inside
    files = sorted(real("openncem/idp-eds-tomo/tilt_-40.bcf").parent.glob("tilt_*.bcf"))
    assert len(files) == 16
    out = tmp_path / "eds"
    rc = main(["--quiet", "tomo", *map(str, files), "--out", str(out), "--bin", "4", "--thickness", "400"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())["results"]
    assert res["angle_source"] == "file names" and res["tilt_range_deg"] == [-40.0, 35.0]
    assert res["volume_shape_zyx"][1:] == [64, 64]


def test_tomo_cli_uses_imod_xf_and_aretomo_aln(tmp_path):
    from cryomat.io import write_xf
    from cryomat.tomography import alignment_to_xf

    sim_dir = tmp_path / "sim"
    truth = simulate("tilt_series", sim_dir, seed=2, size=48, n_tilts=31, counts_per_px=None,
                     shift_sigma_px=2.0, tilt_axis_error_deg=3.0)
    shifts = np.asarray(truth["shifts_px"])
    write_xf(tmp_path / "t.xf", alignment_to_xf(shifts, truth["tilt_axis_deg"]))
    rc = main(["--quiet", "tomo", str(sim_dir / "tilt_series.mrc"), "--xf", str(tmp_path / "t.xf"),
               "--out", str(tmp_path / "o1")])
    assert rc == 0
    tab = np.genfromtxt(tmp_path / "o1" / "alignment.csv", delimiter=",", names=True, dtype=None, encoding=None)
    # the given alignment is used as is (xf keeps 3 decimals)
    np.testing.assert_allclose(tab["shift_row_px"], shifts[:, 0], atol=2e-3)
    res = json.loads((tmp_path / "o1" / "results.json").read_text())["results"]
    assert abs(res["tilt_axis_psi_deg"] - 3.0) < 1e-3
    # the same alignment, reconstructed by nonnegative SIRT: no negative density anywhere
    rc = main(["--quiet", "tomo", str(sim_dir / "tilt_series.mrc"), "--xf", str(tmp_path / "t.xf"),
               "--method", "sirt", "--nonnegative", "--iterations", "5", "--out", str(tmp_path / "o3")])
    assert rc == 0
    with mrcfile.open(tmp_path / "o3" / "volume.mrc") as m:
        assert float(m.data.min()) >= 0.0 and float(m.data.max()) > 0.0
    lines = ["# AreTomo Alignment", "# SEC ROT GMAG TX TY SMEAN SFIT SCALE BASE TILT"]
    for i, (s, t) in enumerate(zip(shifts, truth["angles_deg"])):
        lines.append(f"{i} 3.0 1.0 {s[1]:.3f} {s[0]:.3f} 1 1 1 0 {t:.2f}")
    (tmp_path / "t.aln").write_text("\n".join(lines) + "\n")
    rc = main(["--quiet", "tomo", str(sim_dir / "tilt_series.mrc"), "--angles", str(tmp_path / "t.aln"),
               "--out", str(tmp_path / "o2")])
    assert rc == 0
    tab2 = np.genfromtxt(tmp_path / "o2" / "alignment.csv", delimiter=",", names=True, dtype=None, encoding=None)
    np.testing.assert_allclose(tab2["shift_col_px"], shifts[:, 1], atol=2e-3)
