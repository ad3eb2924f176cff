"""``cryomat info`` on every format, ``cryomat convert`` round trips, ``cryomat simulate --list``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryomat import io
from cryomat.cli.main import main

# one real file per reader path (extension / vendor flavour), with its README pixel size (A)
INFO_FILES = [
    ("openncem/16_STOimage.emi", 0.10013), ("rosettasciio/Au_NP_EELS_2.ser", None),
    ("openncem/Acquisition_18.emd", 0.12247), ("pytemlib/EDS-STO.emd", None),
    ("particlespy/JEOL_HAADF_Image.dm4", 12.5), ("etspy/HAADF.dm3", 179.95),
    ("particlespy/SiO2_HAADF_Image.hspy", 85.5), ("atomap/test_ADF_cropped.hdf5", 0.0933),
    ("temul/Au_NP_Atom_Lattice.hdf5", None), ("rosettasciio/test_TEM.bcf", 7.7),
    ("rosettasciio/test1.blo", 128.0), ("rosettasciio/velox_EELS_EDS.zip", 1586.6),
    ("cylindra/13pf_MT.tif", 10.52), ("hrtem-fringe-mapping/ExampleImage.tif", 0.555),
    ("particlespy/trainingmask.png", None), ("temul/Au_NP_atom_positions.npy", None),
]


@pytest.mark.realdata
@pytest.mark.parametrize("rel,px", INFO_FILES, ids=[f[0] for f in INFO_FILES])
def test_info_json_every_format(real, capsys, rel, px):
    rc = main(["info", str(real(rel)), "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    d = json.loads(out)
    img = io.read(real(rel))
    assert d["shape"] == list(img.shape) and d["axes"] == list(img.axes)
    if px is None:
        assert d["pixel_size_A"] is None
    else:
        assert d["pixel_size_A"] == pytest.approx(px, rel=1e-2)  # README rounding (0.77 nm is the coarsest)


@pytest.mark.realdata
def test_info_text_lists_datasets_and_energy(real, capsys):
    assert main(["info", str(real("rosettasciio/test_TEM.bcf")), "--signal", "spectrum"]) == 0
    out = capsys.readouterr().out
    assert "64 x 64 x 2048" in out and "energy_axis_eV" in out and "dataset" in out
    assert "7.71" in out  # 0.771 nm pixels, printed in A


@pytest.mark.realdata
@pytest.mark.parametrize("rel,key,value", [
    ("etomofiles/TS_001.tlt", "n_angles", 40), ("etomofiles/TS_001.xf", "n_transforms", 40),
    ("mdocfile/tilt_series.mdoc", "tilt_axis_angle_deg", 85.3), ("etspy/SerialEM_test_000.mdoc", "pixel_size_A", 7.88),
    ("hrtem-fringe-mapping/ExampleImage_px-nm.mat", "pixel_size_A", 0.55496),
])
def test_info_on_sidecars(real, capsys, rel, key, value):
    assert main(["info", str(real(rel)), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d[key] == pytest.approx(value, rel=1e-4)


@pytest.mark.parametrize("chain", [(".mrc", ".tif", ".mrc"), (".tif", ".mrc", ".tif"), (".mrcs", ".npy", ".mrcs")])
def test_convert_round_trip_keeps_data_and_pixel_size(tmp_path, chain):
    rng = np.random.default_rng(3)
    data = rng.standard_normal((6, 40, 52)).astype(np.float32)
    px = 0.8317
    first = tmp_path / f"a0{chain[0]}"
    io.write(first, data, pixel_size=px)
    prev = first
    for i, ext in enumerate(chain[1:], 1):
        nxt = tmp_path / f"a{i}{ext}"
        extra = ["--pixel-size", str(px)] if prev.suffix == ".npy" else []  # .npy carries no calibration
        assert main(["--quiet", "convert", str(prev), str(nxt), *extra]) == 0
        prev = nxt
    back = io.read(prev)
    # float32 data pass bit-exact through MRC, TIFF and NPY
    assert np.array_equal(np.asarray(back.data), data)
    # MRC stores the voxel size as float32 (rel 6e-8); TIFF as a rational of 1/px
    assert back.pixel_size == pytest.approx(px, rel=1e-6)
    assert back.axes == ("frame", "row", "col")


def test_convert_volume_stays_a_volume(tmp_path):
    v = np.random.default_rng(0).random((8, 16, 16)).astype(np.float32)
    io.write_mrc(tmp_path / "v.rec", v, pixel_size=5.0, volume=True)
    assert main(["--quiet", "convert", str(tmp_path / "v.rec"), str(tmp_path / "v.tif")]) == 0
    assert main(["--quiet", "convert", str(tmp_path / "v.tif"), str(tmp_path / "v2.mrc")]) == 0
    back = io.read(tmp_path / "v2.mrc")
    assert back.axes == ("plane", "row", "col") and back.pixel_size == pytest.approx(5.0, rel=1e-6)
    assert np.array_equal(np.asarray(back.data), v)


@pytest.mark.realdata
def test_convert_real_dm4_to_mrc_keeps_calibration(real, tmp_path):
    src = real("particlespy/JEOL_HAADF_Image.dm4")
    assert main(["--quiet", "convert", str(src), str(tmp_path / "j.mrc")]) == 0
    a, b = io.read(src), io.read(tmp_path / "j.mrc")
    assert np.array_equal(np.asarray(a.data), np.asarray(b.data))
    assert b.pixel_size == pytest.approx(a.pixel_size, rel=1e-6)


def test_simulate_list(capsys):
    assert main(["simulate", "--list"]) == 0
    out = capsys.readouterr().out
    # the two kinds issue 2 asks for; each lists its parameters with defaults
    assert "lattice:" in out and "movie:" in out
    assert "dose_per_frame" in out


def test_simulate_writes_truth_json(tmp_path):
    from cryomat.simulate.registry import all_kinds

    assert "movie" in all_kinds()
    rc = main(["--quiet", "simulate", "movie", "--out", str(tmp_path / "m"), "--seed", "3",
               "--set", "size=64", "--set", "n_frames=3"])
    assert rc == 0
    truth = json.loads((tmp_path / "m" / "truth.json").read_text())
    assert truth["kind"] == "movie" and truth["seed"] == 3 and truth["parameters"]["n_frames"] == 3


def test_progress_only_on_a_terminal_and_not_with_quiet(monkeypatch, capsys):
    import sys

    from cryomat import progress

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    progress.set_quiet(False)
    assert not progress.enabled()  # a pipe or a log file: no bar
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert progress.enabled()
    assert list(progress.progress(range(5), total=5, desc="t")) == list(range(5))
    progress.set_quiet(True)
    try:
        assert not progress.enabled()
        progress.status("hidden")
        assert "hidden" not in capsys.readouterr().err
    finally:
        progress.set_quiet(False)


def test_nested_quiet_command_does_not_silence_its_caller(tmp_path, capsys):
    from cryomat import progress

    progress.set_quiet(False)
    p = tmp_path / "a.mrc"
    io.write_mrc(p, np.zeros((4, 4), np.float32), pixel_size=1.0)
    assert main(["--quiet", "convert", str(p), str(tmp_path / "b.tif")]) == 0
    assert not progress.is_quiet()  # a demo step calling main(["--quiet", ...]) leaves the demo's output on
    assert main(["convert", str(p), str(tmp_path / "c.tif")]) == 0
    assert "convert:" in capsys.readouterr().err


def test_info_several_files_json_and_one_bad(tmp_path, capsys):
    a, b = tmp_path / "a.mrc", tmp_path / "b.tif"
    io.write_mrc(a, np.zeros((4, 6), np.float32), pixel_size=1.5)
    io.write_tiff(b, np.zeros((3, 4, 6), np.float32), pixel_size=2.5)
    assert main(["info", str(a), str(b), "--json"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert [d["shape"] for d in docs] == [[4, 6], [3, 4, 6]]
    assert [d["pixel_size_A"] for d in docs] == pytest.approx([1.5, 2.5])
    bad = tmp_path / "c.xyz"
    bad.write_text("x")
    assert main(["info", str(a), str(bad)]) == 2
    cap = capsys.readouterr()
    assert "1.5 A" in cap.out and cap.err.count("\n") == 1 and "c.xyz" in cap.err
