"""Every real spectrum image in the shared data reads, maps and quantifies without error."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from cryomat.spectroscopy import loading
from cryomat.spectroscopy.pipeline import eds_maps, eels_maps

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def velox_dir(tmp_path_factory):
    from conftest import real_file

    out = tmp_path_factory.mktemp("velox")
    for name in ("rosettasciio/velox_EELS_EDS.zip", "rosettasciio/velox_emd_version11.zip"):
        with zipfile.ZipFile(real_file(name)) as z:
            z.extractall(out)
    return out


def _check_eds(spec, elements=None):
    res = eds_maps(spec, elements=elements)
    assert res.intensity.shape == (len(res.names),) + spec.spatial_shape
    assert np.all(np.isfinite(res.intensity))
    tot = np.array(list(res.total_percent.values()))
    if np.all(np.isfinite(tot)):
        # at.% of the summed spectrum are a normalised composition
        assert tot.sum() == pytest.approx(100.0, abs=1e-6) and np.all(tot >= 0)
    return res


@pytest.mark.parametrize("rel,shape,elements", [
    ("rosettasciio/test_TEM.bcf", (64, 64, 2048), ["Cu", "O", "Pd", "Ti"]),
    ("openncem/idp-eds-tomo/tilt_0.bcf", (256, 256, 2048), None),
])
def test_bcf_eds(real, rel, shape, elements):
    spec = loading.load_spectrum(real(rel))
    assert spec.kind == "EDS" and spec.data.shape == shape
    # the HAADF recorded with the map comes along for the overlay
    assert spec.image is not None and spec.image.shape == shape[:2]
    res = _check_eds(spec)
    if elements:
        assert sorted(res.elements) == elements
        # a TiO2-rich film on the grid: O and Ti are the majors of the summed spectrum
        top2 = sorted(res.total_percent, key=res.total_percent.get)[-2:]
        assert set(top2) == {"O_Ka", "Ti_Ka"}


def test_particlespy_sio2(real):
    spec = loading.load_spectrum(real("particlespy/SiO2_EDS_Spectrum_Image.hspy"))
    assert spec.data.shape == (128, 128, 2048) and spec.pixel_size == pytest.approx(85.52, rel=1e-3)
    res = _check_eds(spec, ["Si", "O"])
    # silica spheres: where Si is mapped, O is too (Si-O map correlation clearly positive)
    si, o = res.intensity[res.names.index("Si_Ka")], res.intensity[res.names.index("O_Ka")]
    assert np.corrcoef(si.ravel(), o.ravel())[0, 1] > 0.3


def test_pytemlib_eds_sto(real):
    spec = loading.load_spectrum(real("pytemlib/EDS-STO.emd"))
    assert spec.data.ndim == 1
    res = _check_eds(spec, ["Sr", "Ti", "O"])
    # SrTiO3 with the approximate shipped k-factors (no absorption correction): Sr and Ti within a
    # factor 1.6 of each other (truth 1:1)
    r = res.total_percent["Sr_Ka"] / res.total_percent["Ti_Ka"]
    assert 1 / 1.6 < r < 1.6


def test_velox_eds_and_eels(velox_dir):
    f = velox_dir / "example_velox_EELS_EDS.emd"
    eds_spec = loading.load_spectrum(f)
    assert eds_spec.kind == "EDS" and eds_spec.data.ndim == 3
    # elements named by the file's element maps (Fe, Co, O)
    assert sorted(eds_spec.elements) == ["Co", "Fe", "O"]
    _check_eds(eds_spec)
    eels_spec = loading.load_spectrum(f, kind="EELS")
    assert eels_spec.kind == "EELS" and eels_spec.data.shape == (16, 20, 2048)
    assert eels_spec.lowloss is not None and eels_spec.lowloss.energy_eV[0] < 0
    res = eels_maps(eels_spec, edges=["O_K", "Fe_L3"])
    assert res.intensity.shape == (2, 16, 20) and np.all(np.isfinite(res.intensity))
    assert np.all(np.isfinite(res.extra["t_over_lambda"]))


def test_velox_v11(velox_dir):
    f = velox_dir / "Test SI 16x16 215 kx.emd"
    spec = loading.load_spectrum(f)
    assert spec.data.shape == (16, 16, 4096) and sorted(spec.elements) == ["C", "Ca", "Cu", "O"]
    _check_eds(spec)
    reduced = loading.load_spectrum(velox_dir / "Test SI 16x16 ReducedData 215 kx.emd")
    _check_eds(reduced)
