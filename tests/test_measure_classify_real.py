"""Classification on a real image of one population: the SiO2 HAADF spheres (particlespy)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.realdata


def test_sio2_spheres_have_no_class_structure(real, tmp_path):
    """Monodisperse SiO2 spheres are one morphology: segment + classify --n-classes auto must
    say so (best mean silhouette below 0.25, Kaufman & Rousseeuw's 'no substantial structure';
    measured 0.21 at K = 3, 0.13 at K = 2), not invent classes."""
    from cryomat.cli.main import main

    img = real("particlespy/SiO2_HAADF_Image.hspy")
    assert main(["segment", str(img), "--out", str(tmp_path / "seg"), "--split-touching"]) == 0
    out = tmp_path / "cls"
    assert main(["classify", str(tmp_path / "seg" / "particles.csv"), "--out", str(out), "--bootstrap", "2"]) == 0
    res = json.loads((out / "results.json").read_text())["results"]
    assert res["n_particles"] >= 150  # ~216 not border-cut spheres
    assert res["n_classes"] == 1 and res["k_criterion"] == "silhouette: no class structure"
    assert max(res["silhouette_per_k"].values()) < 0.25
