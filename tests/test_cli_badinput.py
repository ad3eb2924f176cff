"""Bad input gets one clear line naming the file, exit code 2, no traceback (issue 2, item 4).

Each case is checked through the command line (``cryomat.cli.main.main``) and, where the
check lives in the library, through the API (``InputError``, a ``ValueError``).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from cryomat import io
from cryomat.cli.main import main
from cryomat.errors import InputError
from cryomat.outputs import OutputDir, sha256_file


def _run(capsys, argv):
    rc = main(["--quiet", *argv])
    cap = capsys.readouterr()
    return rc, cap.err


def _assert_one_line_error(rc, err, name):
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err  # one line on stderr, nothing else
    assert name in lines[0]


def _mrc(tmp_path, name="a.mrc", shape=(4, 32, 32), px=1.5):
    p = tmp_path / name
    io.write_mrc(p, np.random.default_rng(0).random(shape).astype(np.float32), pixel_size=px)
    return p


def _truncate(p, frac=0.5):
    b = p.read_bytes()
    p.write_bytes(b[: int(len(b) * frac)])
    return p


# --- files that cannot be read ------------------------------------------------------------
def test_unknown_extension(tmp_path, capsys):
    p = tmp_path / "data.xyz"
    p.write_text("not EM data")
    rc, err = _run(capsys, ["info", str(p)])
    _assert_one_line_error(rc, err, "data.xyz")
    assert "unknown file type" in err
    with pytest.raises(InputError, match="data.xyz"):
        io.read(p)


def test_missing_file(tmp_path, capsys):
    rc, err = _run(capsys, ["info", str(tmp_path / "nothere.mrc")])
    _assert_one_line_error(rc, err, "nothere.mrc")
    assert "no such file" in err


def test_empty_file(tmp_path, capsys):
    p = tmp_path / "empty.mrc"
    p.write_bytes(b"")
    rc, err = _run(capsys, ["info", str(p)])
    _assert_one_line_error(rc, err, "empty.mrc")
    assert "empty" in err


@pytest.mark.parametrize("frac", [0.5, 0.01])
def test_truncated_mrc(tmp_path, capsys, frac):
    p = _truncate(_mrc(tmp_path, "movie.mrcs"), frac)
    rc, err = _run(capsys, ["info", str(p)])
    _assert_one_line_error(rc, err, "movie.mrcs")
    with pytest.raises(InputError, match="truncated"):
        io.read(p)


@pytest.mark.parametrize("frac", [0.6, 0.02])
def test_truncated_tiff(tmp_path, capsys, frac):
    # a multi-frame TIFF cut in the middle: tifffile alone would hand back fewer frames silently
    p = tmp_path / "stack.tif"
    io.write_tiff(p, np.ones((4, 64, 64), np.float32), pixel_size=1.0)
    _truncate(p, frac)
    rc, err = _run(capsys, ["info", str(p)])
    _assert_one_line_error(rc, err, "stack.tif")
    with pytest.raises(InputError, match="truncated"):
        io.read(p)


@pytest.mark.realdata
@pytest.mark.parametrize("rel", ["particlespy/JEOL_HAADF_Image.dm4", "openncem/08_carbon.dm3",
                                 "particlespy/SiO2_HAADF_Image.hspy", "openncem/Acquisition_18.emd"])
def test_truncated_vendor_files(real, tmp_path, capsys, rel):
    src = real(rel)
    p = tmp_path / src.name
    p.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    rc, err = _run(capsys, ["info", str(p)])
    _assert_one_line_error(rc, err, src.name)
    assert "truncated" in err


def test_corrupt_zip(tmp_path, capsys):
    p = tmp_path / "bundle.zip"
    p.write_bytes(b"PK\x03\x04garbage")
    rc, err = _run(capsys, ["info", str(p)])
    _assert_one_line_error(rc, err, "bundle.zip")


# --- data that cannot be used -------------------------------------------------------------
@pytest.mark.realdata
def test_wrong_dimensionality_spectrum_to_mrc(real, tmp_path, capsys):
    # a 1D EELS spectrum is not an image: convert to MRC refuses it, naming the file and the shape
    rc, err = _run(capsys, ["convert", str(real("openncem/08_carbon.dm3")), str(tmp_path / "o.mrc"),
                            "--pixel-size", "1"])
    _assert_one_line_error(rc, err, "08_carbon.dm3")
    assert "1D" in err and not (tmp_path / "o.mrc").exists()


def test_wrong_dimensionality_api(tmp_path):
    from cryomat.io import validate

    img = io.read(_mrc(tmp_path))
    with pytest.raises(InputError, match=r"a.mrc.*expected a micrograph \(2D\), got 3D"):
        validate.require_ndim(img, (2,), what="a micrograph")
    assert validate.require_ndim(img, (3,)) is img.data


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_data(tmp_path, capsys, bad):
    a = np.ones((32, 32), np.float32)
    a[3, 4] = bad
    p = tmp_path / "holes.npy"
    np.save(p, a)
    rc, err = _run(capsys, ["convert", str(p), str(tmp_path / "o.mrc"), "--pixel-size", "1"])
    _assert_one_line_error(rc, err, "holes.npy")
    assert ("NaN" in err) if np.isnan(bad) else ("infinite" in err)
    assert not (tmp_path / "o.mrc").exists()


def test_require_finite_scans_memmap_in_chunks(tmp_path):
    from cryomat.io import validate

    a = np.zeros((50, 64, 64), np.float32)
    a[37, 5, 5] = np.nan  # deep in the stack: the chunked scan must reach it
    p = tmp_path / "m.mrcs"
    io.write_mrc(p, a, pixel_size=1.0)
    img = io.read(p)
    with pytest.raises(InputError, match="1 NaN"):
        validate.require_finite(img.data, path=p, chunk_bytes=64 * 64 * 4 * 3)
    ok = np.zeros((3, 3), np.int16)
    assert validate.require_finite(ok) is ok  # integers cannot hold NaN


def test_missing_pixel_size_asks_for_option(tmp_path, capsys):
    p = tmp_path / "preview.png"
    io.write_png(p, np.random.default_rng(1).random((32, 32)))
    rc, err = _run(capsys, ["convert", str(p), str(tmp_path / "o.mrc")])
    _assert_one_line_error(rc, err, "preview.png")
    assert "--pixel-size" in err
    with pytest.raises(InputError, match="--pixel-size"):
        io.read(p).require_pixel_size()
    # with the option it works, and the MRC carries it
    rc, _ = _run(capsys, ["convert", str(p), str(tmp_path / "o.mrc"), "--pixel-size", "2.5"])
    assert rc == 0 and io.read(tmp_path / "o.mrc").pixel_size == pytest.approx(2.5)


def test_bad_option_value(tmp_path, capsys):
    rc, err = _run(capsys, ["convert", str(_mrc(tmp_path)), str(tmp_path / "o.tif"), "--pixel-size", "-3"])
    assert rc == 2 and "Traceback" not in err and "positive" in err


# --- outputs that would lose something ----------------------------------------------------
def test_output_dir_is_a_file(tmp_path, capsys):
    f = tmp_path / "taken.txt"
    f.write_text("x")
    rc, err = _run(capsys, ["demo", "--out", str(f), "--only", "imaging"])
    _assert_one_line_error(rc, err, "taken.txt")
    assert f.read_text() == "x"
    with pytest.raises(InputError, match="is a file"):
        OutputDir(f, command="t")


def test_output_dir_under_a_file(tmp_path, capsys):
    f = tmp_path / "taken.txt"
    f.write_text("x")
    rc, err = _run(capsys, ["simulate", "movie", "--out", str(f / "sub"), "--set", "size=32",
                            "--set", "n_frames=2"])
    _assert_one_line_error(rc, err, "taken.txt")


def test_output_dir_not_writable(tmp_path, monkeypatch, capsys):
    # root ignores permission bits, so make the check itself see a read-only folder
    d = tmp_path / "ro"
    d.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if str(p) == str(d) and mode == os.W_OK
                        else real_access(p, mode, *a, **k))
    with pytest.raises(InputError, match="not writable"):
        OutputDir(d, command="t")
    rc, err = _run(capsys, ["demo", "--out", str(d), "--only", "imaging"])
    _assert_one_line_error(rc, err, "ro")
    assert "not writable" in err


def test_convert_would_overwrite_input(tmp_path, capsys):
    p = _mrc(tmp_path)
    before = sha256_file(p)
    rc, err = _run(capsys, ["convert", str(p), str(p)])
    _assert_one_line_error(rc, err, "a.mrc")
    assert "overwrite" in err and sha256_file(p) == before


def test_convert_refuses_existing_output(tmp_path, capsys):
    p = _mrc(tmp_path)
    out = tmp_path / "o.tif"
    out.write_bytes(b"keep me")
    rc, err = _run(capsys, ["convert", str(p), str(out)])
    _assert_one_line_error(rc, err, "o.tif")
    assert out.read_bytes() == b"keep me"
    rc, _ = _run(capsys, ["convert", str(p), str(out), "--overwrite"])
    assert rc == 0 and io.read(out).shape == (4, 32, 32)


def test_outputdir_refuses_to_overwrite_an_input(tmp_path):
    p = _mrc(tmp_path, "in.mrc")
    od = OutputDir(tmp_path, command="t", inputs=[p])
    with pytest.raises(InputError, match="overwrite the input"):
        od.write_mrc("in.mrc", np.zeros((2, 2), np.float32))
    assert io.read(p).shape == (4, 32, 32)


def test_inputs_never_modified(tmp_path, capsys):
    p = _mrc(tmp_path)
    before, mtime = sha256_file(p), p.stat().st_mtime_ns
    for out in ("o.tif", "o.png", "o.npy", "o.mrcs"):
        assert _run(capsys, ["convert", str(p), str(tmp_path / out)])[0] == 0
    assert _run(capsys, ["info", str(p)])[0] == 0
    assert sha256_file(p) == before and p.stat().st_mtime_ns == mtime


# --- simulate ------------------------------------------------------------------------------
def test_simulate_unknown_kind(tmp_path, capsys):
    rc, err = _run(capsys, ["simulate", "unicorn", "--out", str(tmp_path / "s")])
    assert rc == 2 and "unicorn" in err and "known kinds" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_simulate_unknown_and_mistyped_parameter(tmp_path, capsys):
    rc, err = _run(capsys, ["simulate", "movie", "--out", str(tmp_path / "s"), "--set", "colour=3"])
    assert rc == 2 and "colour" in err and "Traceback" not in err
    rc, err = _run(capsys, ["simulate", "movie", "--out", str(tmp_path / "s"), "--set", "n_frames=many"])
    assert rc == 2 and "n_frames" in err and "many" in err and "Traceback" not in err
    rc, err = _run(capsys, ["simulate", "movie", "--out", str(tmp_path / "s"), "--set", "n_frames"])
    assert rc == 2 and "NAME=VALUE" in err


def test_read_checked_runs_all_checks(tmp_path):
    from cryomat.io import validate

    p = _mrc(tmp_path, "m.mrcs", px=1.25)
    img = validate.read_checked(p, ndim=(3,), what="a movie")
    assert img.pixel_size == pytest.approx(1.25) and img.shape == (4, 32, 32)
    assert validate.read_checked(p, pixel_size=2.0).pixel_size == 2.0  # --pixel-size overrides the file
    with pytest.raises(InputError, match="expected a micrograph"):
        validate.read_checked(p, ndim=(2,), what="a micrograph")
    q = tmp_path / "nocal.npy"
    np.save(q, np.ones((8, 8), np.float32))
    with pytest.raises(InputError, match="--pixel-size"):
        validate.read_checked(q)
    assert validate.read_checked(q, need_pixel_size=False).pixel_size is None


@pytest.mark.realdata
def test_tia_emi_without_its_ser(real, tmp_path, capsys):
    p = tmp_path / "lonely.emi"
    p.write_bytes(real("openncem/16_STOimage.emi").read_bytes())
    rc, err = _run(capsys, ["info", str(p)])
    _assert_one_line_error(rc, err, "lonely.emi")
    assert "lonely_1.ser" in err
