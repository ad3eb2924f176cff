"""Classification on a real image of one population: the SiO2 HAADF spheres (particlespy)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.realdata


def test_sio2_spheres_have_no_class_structure(real, tmp_path):
    """Monodisperse SiO2 spheres are one morphology: segment + classify --n-classes auto must
    say so, not invent classes. The spheres are 20-46 px masks, below the 64 px where a mask
    has an outline shape (a digitised disc's aspect ratio reads up to 1.2 there), so only the
    intensity features are used, and the chosen K's silhouette (measured 0.42 at K = 3) does not
    beat that of one Gaussian population of the same covariance (0.37-0.40 at K = 3)."""
    from cryomat.cli.main import main

    img = real("particlespy/SiO2_HAADF_Image.hspy")
    assert main(["segment", str(img), "--out", str(tmp_path / "seg"), "--split-touching"]) == 0
    out = tmp_path / "cls"
    assert main(["classify", str(tmp_path / "seg" / "particles.csv"), "--out", str(out), "--bootstrap", "2"]) == 0
    res = json.loads((out / "results.json").read_text())["results"]
    assert res["n_particles"] >= 150  # ~216 not border-cut spheres
    assert res["n_classes"] == 1 and res["k_criterion"].startswith("silhouette: no class structure")
    assert res["n_projection_fits"] == res["n_particles"]  # the image was found and fitted
