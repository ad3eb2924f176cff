"""``cryomat denoise`` end to end on simulated data, and bad input."""

from __future__ import annotations

import json

import mrcfile
import numpy as np

from cryomat.cli.main import main
from cryomat.restoration import psnr
from cryomat.simulate import simulate


def test_denoise_cli_movie_end_to_end(tmp_path):
    sim = tmp_path / "sim"
    simulate("nanoparticles", sim, seed=3, size=256, dose_e_per_px=32.0, n_frames=4)
    out = tmp_path / "out"
    assert main(["--quiet", "denoise", str(sim / "movie.mrcs"), "--out", str(out)]) == 0
    for f in ("denoised.mrc", "denoise.png", "report.html", "results.json"):
        assert (out / f).is_file(), f
    with mrcfile.open(out / "denoised.mrc") as m:
        den = m.data.copy()
        assert abs(float(m.voxel_size.x) - 0.5) < 1e-6  # same pixel size as the input (0.5 A)
    assert den.dtype == np.float32
    clean = mrcfile.read(sim / "clean.mrc")
    noisy = mrcfile.read(sim / "noisy.mrc")
    # the movie's frame sum is the noisy image: the denoised one must be much closer to the truth
    assert psnr(clean, den) > psnr(clean, noisy) + 5.0
    res = json.loads((out / "results.json").read_text())["results"]
    v = res["validation"]
    assert v["noise_model"]["kind"] == "counting"
    assert v["frc"]["halves"] == "even/odd halves" and v["frc"]["passed"]
    assert v["unsupervised_mse"]["valid"] and v["unsupervised_mse"]["mse_half_dose_est"] > 0
    assert v["hallucination"]["passed"]


def test_denoise_cli_even_odd_and_integrating(tmp_path):
    sim = tmp_path / "sim"
    simulate("nanoparticles", sim, seed=4, size=256, dose_e_per_px=32.0, detector="integrating", gain=8.0,
             offset=100.0, read_noise=5.0, row_noise=6.0)
    out = tmp_path / "out"
    assert main(["--quiet", "denoise", str(sim / "noisy.mrc"), "--out", str(out)]) == 0
    v = json.loads((out / "results.json").read_text())["results"]["validation"]
    # integrating, correlated data: the thinning MSE is refused with a reason, not reported
    assert v["unsupervised_mse"]["mse_half_dose_est"] is None and v["unsupervised_mse"]["reason"]
    assert v["noise_model"]["kind"] == "integrating" and v["noise_model"]["row_offset_std"] > 3
    mov = tmp_path / "m"
    simulate("nanoparticles", mov, seed=5, size=256, dose_e_per_px=16.0, n_frames=2)
    frames = mrcfile.read(mov / "movie.mrcs")
    from cryomat.io import write_mrc

    write_mrc(tmp_path / "even.mrc", frames[0], pixel_size=0.5)
    write_mrc(tmp_path / "odd.mrc", frames[1], pixel_size=0.5)
    out2 = tmp_path / "out2"
    assert main(["--quiet", "denoise", "--even", str(tmp_path / "even.mrc"), "--odd", str(tmp_path / "odd.mrc"),
                 "--out", str(out2)]) == 0
    v2 = json.loads((out2 / "results.json").read_text())["results"]["validation"]
    assert v2["frc"]["halves"] == "even/odd halves"


def test_denoise_cli_bm3d_compare(tmp_path):
    sim = tmp_path / "sim"
    simulate("nanoparticles", sim, seed=6, size=96, dose_e_per_px=16.0)
    out = tmp_path / "out"
    assert main(["--quiet", "denoise", str(sim / "noisy.mrc"), "--out", str(out), "--method", "bm3d-compare"]) == 0
    res = json.loads((out / "results.json").read_text())["results"]
    assert res["method"] == "fast"  # BM3D is a comparison only, never the delivered result
    try:
        import bm3d  # noqa: F401
    except ImportError:
        assert any("bm3d" in w for w in res["validation"]["warnings"])
    else:
        clean = mrcfile.read(sim / "clean.mrc")
        b = mrcfile.read(out / "denoised_bm3d.mrc")
        # Anscombe+BM3D is a sound denoiser: far closer to the truth than the raw counts
        assert psnr(clean, b) > psnr(clean, mrcfile.read(sim / "noisy.mrc")) + 3.0


def test_denoise_cli_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.mrc"
    bad.write_bytes(b"not an mrc file at all")
    assert main(["denoise", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()
    assert main(["denoise", str(tmp_path / "missing.mrc"), "--out", str(tmp_path / "o")]) == 2
    small = tmp_path / "small.mrc"
    from cryomat.io import write_mrc

    write_mrc(small, np.ones((16, 16), np.float32), pixel_size=1.0)
    assert main(["denoise", str(small), "--out", str(tmp_path / "o2")]) == 2
    assert main(["denoise", "--even", str(small), "--out", str(tmp_path / "o3")]) == 2
