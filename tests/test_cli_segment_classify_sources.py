"""segment -> classify hand-over: the projection fits find the segmented images whatever the
working directory, two runs that share an image name stay apart, and option misuse is one
clear error. Also: the grey-level outline path leaves objects cut by the image border alone."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from cryomat.cli.main import main
from cryomat.io.writers import write_mrc
from cryomat.measure import particle_table
from cryomat.simulate.particles import particle_image
from cryomat.simulate.shapes import shape_coverage


def _segment(tmp_path, name, seed):
    s = particle_image((256, 256), dose_e_per_A2=1.0, n_particles=12, rng=np.random.default_rng(seed))
    write_mrc(tmp_path / f"{name}.mrc", s.image, pixel_size=s.pixel_size)
    return s


def test_classify_finds_images_from_any_directory_and_keeps_runs_apart(tmp_path, monkeypatch):
    (tmp_path / "r1").mkdir()
    (tmp_path / "r2").mkdir()
    _segment(tmp_path / "r1", "a", 31)
    _segment(tmp_path / "r2", "a", 32)  # same image name, different particles
    monkeypatch.chdir(tmp_path)
    # relative input paths, as a user types them
    assert main(["segment", "r1/a.mrc", "--out", "seg1", "--dose", "1"]) == 0
    assert main(["segment", "r2/a.mrc", "--out", "seg2", "--dose", "1"]) == 0
    sub = tmp_path / "elsewhere"
    sub.mkdir()
    monkeypatch.chdir(sub)
    assert main(["classify", "../seg1/particles.csv", "../seg2/particles.csv", "--out", "c", "--n-classes", "2",
                 "--bootstrap", "1"]) == 0
    res = json.loads((sub / "c" / "results.json").read_text())["results"]
    n1 = len(pd.read_csv(tmp_path / "seg1" / "particles.csv").query("~touches_border"))
    n2 = len(pd.read_csv(tmp_path / "seg2" / "particles.csv").query("~touches_border"))
    # every particle of both runs gets its projection fit (the segment run stored absolute sources)
    assert res["n_projection_fits"] == n1 + n2
    # each run's particles are fitted on its own image and mask: fitting run 2's particles alone
    # gives the same features as in the joint run (had the name clashed, run 2's mask would serve
    # both and run 1's particles would read run 2's objects)
    assert main(["classify", "../seg2/particles.csv", "--out", "c2", "--n-classes", "2", "--bootstrap", "1"]) == 0
    joint = pd.read_csv(sub / "c" / "classes.csv").iloc[n1:].reset_index(drop=True)
    alone = pd.read_csv(sub / "c2" / "classes.csv")
    np.testing.assert_allclose(joint["llr_ratio_square_dome"], alone["llr_ratio_square_dome"], rtol=1e-9)


def test_option_misuse_is_one_clear_error(tmp_path, capsys):
    _segment(tmp_path, "a", 33)
    # the outline fit belongs to the classical method: asking it of the U-Net is an error, not ignored
    assert main(["segment", str(tmp_path / "a.mrc"), "--out", str(tmp_path / "s"), "--method", "unet",
                 "--outline-fit", "on"]) == 2
    err = capsys.readouterr().err
    assert "--outline-fit" in err and "Traceback" not in err
    assert not (tmp_path / "s" / "results.json").exists()


def test_grey_outline_leaves_border_objects_to_the_mask():
    # a 20 x 30 px rectangle with its corner at (-6.3, 40.4) px: cut by the top and right borders
    cover = shape_coverage("rectangle", 30.0, 20.0, 0.0, (3.7 - 32, 55.4 - 32), 64)
    img = 100.0 - 40.0 * cover
    lab = (cover >= 0.5).astype(np.int32)
    by_mask = particle_table(lab, img, pixel_size=10.0)
    by_grey = particle_table(lab, img, pixel_size=10.0, edges="image")
    assert bool(by_grey["touches_border"].iloc[0])
    # a cut object has no closed edge to fit: both paths must read the visible mask identically
    # (the grey path had read a triangle reaching 3 px beyond the mask, Feret 30.1 px for a 28.3 px box)
    for col in ("feret_max_nm", "feret_min_nm", "circularity", "aspect_ratio"):
        assert by_grey[col].iloc[0] == by_mask[col].iloc[0]
