"""Every data file under shared/data/real is read with the shape, axes and pixel size its README states.

Expected values come from ``shared/data/real/README.md`` (the source projects' own calibrations),
converted to Angstrom. Pixel sizes are compared with rtol 2e-3: the README rounds to 4-5
significant digits (e.g. "0.010013 nm", "13.08 nm", "0.77 nm" are rounded; 0.77 nm is the
coarsest, so that row uses 1e-2).
"""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from cryomat import io
from cryomat.errors import InputError

# (file, read kwargs, shape, axes, pixel size A or None, rtol, signal, voltage kV or None)
CASES = [
    ("openncem/16_STOimage.emi", {}, (1024, 1024), ("row", "col"), 0.10013, 2e-3, "image", 80.0),
    ("openncem/16_STOimage_1.ser", {}, (1024, 1024), ("row", "col"), 0.10013, 2e-3, "image", None),
    ("openncem/Acquisition_18.emd", {}, (1024, 1024), ("row", "col"), 0.12247, 2e-3, "image", 200.0),
    ("openncem/08_carbon.dm3", {}, (2048,), ("energy",), None, 0, "spectrum", 300.0),
    ("openncem/idp-eds-tomo/tilt_0.bcf", {}, (256, 256), ("row", "col"), 130.8, 2e-3, "image", 200.0),
    ("openncem/idp-eds-tomo/tilt_-40.bcf", {"signal": "spectrum"}, (256, 256, 2048), ("row", "col", "energy"),
     130.8, 2e-3, "spectrum", 200.0),
    ("openncem/idp-eds-tomo/After_HAADF_130mm.emi", {}, (1024, 1024), ("row", "col"), 32.7, 2e-3, "image", 200.0),
    ("etspy/HAADF.dm3", {}, (91, 64, 64), ("tilt", "row", "col"), 179.95, 2e-3, "image", 300.0),
    ("atomap/test_ADF_cropped.hdf5", {}, (400, 380), ("row", "col"), 0.0933, 2e-3, "image", None),
    ("atomap/test_ABF_cropped.hdf5", {}, (400, 380), ("row", "col"), 0.0933, 2e-3, "image", None),
    ("atomap/example_detector_image.hspy", {}, (512, 512), ("row", "col"), 310.4, 2e-3, "image", None),
    ("pytemlib/EDS-STO.emd", {"signal": "spectrum"}, (4096,), ("energy",), None, 0, "spectrum", 200.0),
    ("pytemlib/EELS_STO.dm3", {}, (2048,), ("energy",), None, 0, "spectrum", 200.0),
    ("pytemlib/AL-DFoffset0.00.dm3", {}, (2048,), ("energy",), None, 0, "spectrum", 200.0),
    ("exspy/EDS_TEM_FePt_nanoparticles.hspy", {}, (992,), ("energy",), None, 0, "spectrum", 200.0),
    ("exspy/EDS_SEM_TM002.hspy", {}, (1024,), ("energy",), None, 0, "spectrum", 10.0),
    ("exspy/Cr_L_cl.hspy", {}, (400,), ("energy",), None, 0, "spectrum", 200.0),
    ("exspy/Cr_L_ll.hspy", {}, (2035,), ("energy",), None, 0, "spectrum", 200.0),
    ("particlespy/SiO2_HAADF_Image.hspy", {}, (128, 128), ("row", "col"), 85.5, 2e-3, "image", 200.0),
    ("particlespy/SiO2_EDS_Spectrum_Image.hspy", {}, (128, 128, 2048), ("row", "col", "energy"), 85.5, 2e-3,
     "spectrum", 200.0),
    ("particlespy/trainingmask.png", {}, (128, 128), ("row", "col"), None, 0, "image", None),
    ("particlespy/JEOL_HAADF_Image.dm4", {}, (112, 112), ("row", "col"), 12.5, 2e-3, "image", 80.0),
    ("temul/Au_NP_Atom_Lattice.hdf5", {}, (479, 504), ("row", "col"), None, 0, "image", None),
    ("temul/Au_NP_atom_positions.npy", {}, (141, 2), ("point", "coord"), None, 0, "positions", None),
    ("temul/Cropped_PTO-SRO_Aligned.hspy", {}, (224, 1312), ("row", "col"), 0.15, 2e-3, "image", 300.0),
    ("temul/PTO-SRO_atom_positions1.npy", {}, (465, 2), ("point", "coord"), None, 0, "positions", None),
    ("hrtem-fringe-mapping/ExampleImage.tif", {}, (512, 512), ("row", "col"), 0.5550, 2e-3, "image", None),
    ("rosettasciio/03_Scanning_Preview.emi", {}, (5, 128, 128), ("frame", "row", "col"), 3.8435, 2e-3, "image", 200.0),
    ("rosettasciio/03_Scanning_Preview_1.ser", {}, (5, 128, 128), ("frame", "row", "col"), 3.8435, 2e-3, "image", None),
    ("rosettasciio/Au_NP_EELS_2.ser", {}, (2048,), ("energy",), None, 0, "spectrum", None),
    ("rosettasciio/test_TEM.bcf", {}, (64, 64), ("row", "col"), 7.7, 1e-2, "image", 200.0),
    ("rosettasciio/test_TEM.bcf", {"signal": "spectrum"}, (64, 64, 2048), ("row", "col", "energy"), 7.7, 1e-2,
     "spectrum", 200.0),
    ("rosettasciio/multi_signal.dm3", {}, (512, 512), ("row", "col"), 0.17752, 2e-3, "image", 300.0),
    ("rosettasciio/test1.blo", {}, (3, 2, 144, 144), ("scan_row", "scan_col", "pattern_row", "pattern_col"),
     128.0, 2e-3, "diffraction", None),
    ("rosettasciio/velox_EELS_EDS.zip", {}, (16, 20), ("row", "col"), 1586.6, 2e-3, "image", 300.0),
    ("rosettasciio/velox_EELS_EDS.zip", {"signal": "spectrum"}, (16, 20, 2048), ("row", "col", "energy"), 1586.6,
     2e-3, "spectrum", 300.0),
    ("rosettasciio/velox_emd_version11.zip", {"member": "Test SI 16x16 215 kx.emd", "signal": "spectrum"},
     (16, 16, 4096), ("row", "col", "energy"), 35.99, 2e-3, "spectrum", None),
    ("cylindra/13pf_MT.tif", {}, (36, 206, 94), ("plane", "row", "col"), 10.52, 2e-3, "volume", None),
]


@pytest.mark.realdata
@pytest.mark.parametrize("rel,kwargs,shape,axes,px,rtol,signal,kv", CASES,
                         ids=[f"{c[0]}{'-' + c[1]['signal'] if 'signal' in c[1] else ''}" for c in CASES])
def test_real_file_shape_axes_pixel_size(real, rel, kwargs, shape, axes, px, rtol, signal, kv):
    img = io.read(real(rel), **kwargs)
    assert img.shape == shape
    assert img.axes == axes
    assert img.signal == signal
    if px is None:
        assert img.pixel_size is None
    else:
        assert img.pixel_size == pytest.approx(px, rel=rtol)
    if kv is not None:
        # the voltage comes from the vendor tags; the README states it to the kV
        assert img.acquisition.voltage_kV == pytest.approx(kv, abs=0.5)


ENERGY = [  # (file, kwargs, first channel eV or None, eV per channel) from the README
    ("openncem/08_carbon.dm3", {}, None, 0.1),
    ("pytemlib/EELS_STO.dm3", {}, 350.0, 0.25),  # drift tube 400 eV; the file's axis starts at 350 eV
    ("pytemlib/AL-DFoffset0.00.dm3", {}, None, 0.020126),
    ("pytemlib/EDS-STO.emd", {"signal": "spectrum"}, None, 5.0),
    ("exspy/EDS_TEM_FePt_nanoparticles.hspy", {}, None, 20.03),
    ("exspy/Cr_L_cl.hspy", {}, None, 0.1),
    ("particlespy/SiO2_EDS_Spectrum_Image.hspy", {}, 0.0, 10.0),
    ("rosettasciio/test_TEM.bcf", {"signal": "spectrum"}, None, 10.0),
    ("rosettasciio/velox_EELS_EDS.zip", {"signal": "spectrum"}, None, 0.1692),
    ("rosettasciio/Au_NP_EELS_2.ser", {}, None, 0.2),
]


@pytest.mark.realdata
@pytest.mark.parametrize("rel,kwargs,start,step", ENERGY, ids=[e[0] for e in ENERGY])
def test_real_spectrum_energy_axis_in_eV(real, rel, kwargs, start, step):
    img = io.read(real(rel), **kwargs)
    e = img.acquisition.energy_axis_eV
    assert e is not None and len(e) == img.shape[-1]
    # README rounds the dispersion to 3-5 digits (0.02003 keV, 0.01 keV): 0.2 % covers it
    assert np.mean(np.diff(e)) == pytest.approx(step, rel=2e-3)
    if start is not None:
        assert e[0] == pytest.approx(start, abs=1e-3)


@pytest.mark.realdata
def test_carbon_k_edge_sits_near_285_eV(real):
    # physics check of the energy axis: the C K edge (onset 284 eV) is the steepest rise of the spectrum
    img = io.read(real("openncem/08_carbon.dm3"))
    e = img.acquisition.energy_axis_eV
    s = np.convolve(np.asarray(img.data, float), np.ones(9) / 9, mode="same")
    d = np.gradient(s)[10:-10]
    onset = e[10:-10][np.argmax(d)]
    assert 280.0 < onset < 295.0  # edge onset 284 eV, its steepest rise within ~10 eV above


@pytest.mark.realdata
def test_etspy_tilt_angles_from_dm3(real):
    img = io.read(real("etspy/HAADF.dm3"))
    t = np.asarray(img.acquisition.tilt_angles_deg)
    # README: -90..+90 deg in 2 deg steps, as written in the file
    assert t.size == 91 and t[0] == pytest.approx(-90) and t[-1] == pytest.approx(90)
    assert np.allclose(np.diff(t), 2.0)


@pytest.mark.realdata
def test_velox_eds_spectrum_image_by_technique(real, tmp_path):
    # the EELS+EDS Velox file: signal="eds" picks the sparse EDS SI, "eels" the EELS SI
    with zipfile.ZipFile(real("rosettasciio/velox_EELS_EDS.zip")) as zf:
        zf.extractall(tmp_path)
    emd = next(tmp_path.rglob("*.emd"))
    eds = io.read(emd, signal="eds")
    assert eds.shape == (128, 128, 4096) and eds.axes == ("row", "col", "energy")
    assert np.mean(np.diff(eds.acquisition.energy_axis_eV)) == pytest.approx(10.0, rel=1e-6)
    eels = io.read(emd, signal="eels")
    assert eels.shape == (16, 20, 2048)
    # the extracted file read directly and through the zip agree
    assert io.read(emd).pixel_size == pytest.approx(io.read(real("rosettasciio/velox_EELS_EDS.zip")).pixel_size)


@pytest.mark.realdata
def test_multi_signal_dm3_second_dataset_is_a_profile(real):
    # README: a HAADF image plus a line-profile "Plot"; the default is the image, index=1 the plot
    img = io.read(real("rosettasciio/multi_signal.dm3"))
    assert img.original_metadata["n_datasets"] == 2 and img.original_metadata["title"] == "HAADF"
    plot = io.read(real("rosettasciio/multi_signal.dm3"), index=1)
    assert plot.signal == "profile" and plot.axes == ("position",) and plot.shape == (512,)
    assert plot.pixel_size is None  # the plot's axis has no unit


@pytest.mark.realdata
def test_zip_with_two_files_needs_member(real):
    with pytest.raises(InputError, match="member"):
        io.read(real("rosettasciio/velox_emd_version11.zip"))


def _period_A(profile, pixel_size, lo_A, hi_A):
    """Strongest period (A) of a 1D profile between lo_A and hi_A (32x zero-padded periodogram)."""
    p = (profile - profile.mean()) * np.hanning(profile.size)
    n = profile.size * 32
    power = np.abs(np.fft.rfft(p, n)) ** 2
    f = np.fft.rfftfreq(n, pixel_size)
    band = (f > 1 / hi_A) & (f < 1 / lo_A)
    return 1 / f[band][np.argmax(power[band])]


@pytest.mark.realdata
@pytest.mark.parametrize("rel", ["atomap/test_ADF_cropped.hdf5", "atomap/test_ABF_cropped.hdf5"])
def test_atomap_unitless_scale_is_nm_by_the_srtio3_lattice(real, rel):
    """The atomap files store scale 0.00933 with no unit. Taken as nm, the SrTiO3 [110] projection
    (a = 3.905 A) shows a 3.905 A period along the columns and a/sqrt(2) = 2.761 A along the rows;
    taken as A every period would be 10x too small (0.39 A, below any atomic spacing)."""
    img = io.read(real(rel))
    assert "nm" in img.original_metadata["calibration_note"]
    a = np.asarray(img.data, float)
    # 1 % : the 32x padded periodogram resolves ~0.1 %; scan distortion of a real STEM image ~0.5 %
    assert _period_A(a.mean(axis=0), img.pixel_size, 3.0, 5.0) == pytest.approx(3.905, rel=0.01)
    assert _period_A(a.mean(axis=1), img.pixel_size, 2.2, 3.3) == pytest.approx(3.905 / np.sqrt(2), rel=0.015)


@pytest.mark.realdata
def test_atom_lattice_positions(real):
    img = io.read(real("temul/Au_NP_Atom_Lattice.hdf5"))
    pos = img.original_metadata["atom_positions_px"]
    assert sum(len(v) for v in pos.values()) == 141  # README: 141 fitted columns
    npy = np.load(real("temul/Au_NP_atom_positions.npy"))
    assert np.allclose(np.sort(next(iter(pos.values())), axis=0), np.sort(npy, axis=0), atol=1e-6)


@pytest.mark.realdata
def test_rgb_tif_to_gray_with_mat_calibration(real):
    img = io.read(real("hrtem-fringe-mapping/ExampleImage.tif"))
    assert img.data.ndim == 2
    # 18.019 px/nm -> 0.5550 A; the .mat beside the tif is the only calibration
    assert img.pixel_size == pytest.approx(10 / 18.01941748, rel=1e-9)
    assert img.original_metadata["calibration_sidecar"].endswith("_px-nm.mat")


# --- sidecars -------------------------------------------------------------------------
@pytest.mark.realdata
def test_imod_tlt_rawtlt_xtilt(real):
    tlt = io.read_tlt(real("etomofiles/TS_001.tlt"))
    raw = io.read_tlt(real("etomofiles/TS_001.rawtlt"))
    xt = io.read_tlt(real("etomofiles/TS_001.xtilt"))
    assert tlt.size == raw.size == xt.size == 40
    # the file is written to 0.01 deg: -60.00 .. 56.99 in 3 deg steps
    assert raw[0] == pytest.approx(-60.0, abs=0.005) and raw[-1] == pytest.approx(56.99, abs=0.005)
    assert np.allclose(np.diff(raw), 3.0, atol=0.011)
    # README: refined tilts span -57..+60 deg (-57.12 .. 59.84 in the file, 0.01 deg precision)
    assert tlt.min() == pytest.approx(-57.12, abs=0.005) and tlt.max() == pytest.approx(59.84, abs=0.005)
    assert np.all(np.abs(xt) < 1.0)  # x-axis tilt is a small correction


@pytest.mark.realdata
def test_imod_xf(real):
    xf = io.read_xf(real("etomofiles/TS_001.xf"))
    assert xf.shape == (40, 6)
    m = xf[:, :4].reshape(-1, 2, 2)
    # the 2x2 parts are near-rotations (det ~ 1): magnification changes are small
    assert np.allclose(np.linalg.det(m), 1.0, atol=0.05)
    rot = np.degrees(np.arctan2(xf[:, 2], xf[:, 0]))
    assert np.all(np.abs(rot + 84.1) < 2.0)  # tilt axis ~84 deg from the image axis (first row: -84.14)


@pytest.mark.realdata
def test_mdoc_tilt_series(real):
    s = io.mdoc_summary(real("mdocfile/tilt_series.mdoc"))
    assert s["pixel_size_A"] == pytest.approx(5.4)
    assert s["tilt_axis_angle_deg"] == pytest.approx(85.3)
    assert s["n_images"] == len(s["tilt_angles_deg"]) > 30
    assert s["tilt_min_deg"] < -50 and s["tilt_max_deg"] > 50
    assert all(t is not None for t in s["tilt_angles_deg"])


@pytest.mark.realdata
def test_mdoc_frame_set_dose(real):
    d = io.read_mdoc(real("mdocfile/frame_set_single.mdoc"))
    s = io.mdoc_summary(d)
    assert s["n_images"] == 1 and s["voltage_kV"] == pytest.approx(300)
    assert s["pixel_size_A"] == pytest.approx(1.2827)
    assert s["total_dose_e_per_A2"] == pytest.approx(7.65892)
    # FrameDosesAndNumber = 0.63824 e/A^2 x 12 frames = 7.659: consistent with ExposureDose to 0.01 %
    per, n = d["frames"][0]["FrameDosesAndNumber"]
    assert per * n == pytest.approx(s["total_dose_e_per_A2"], rel=1e-4)


@pytest.mark.realdata
def test_mdoc_etspy(real):
    s = io.mdoc_summary(real("etspy/SerialEM_test_000.mdoc"))
    assert s["pixel_size_A"] == pytest.approx(7.88) and s["voltage_kV"] == pytest.approx(300)
    assert s["tilt_axis_angle_deg"] == pytest.approx(-90.0)
    assert s["n_images"] == 2


@pytest.mark.realdata
def test_sidecar_describe(real):
    d = io.describe_sidecar(real("hrtem-fringe-mapping/ExampleImage_px-nm.mat"))
    assert d["pixel_size_A"] == pytest.approx(0.5550, rel=1e-3)
    d = io.describe_sidecar(real("etspy/HAADF.rawtlt"))
    # README: 77 angles, -76..+76 in 2 deg steps (does NOT match HAADF.dm3's 91 slices)
    assert d["n_angles"] == 77 and d["min_deg"] == -76 and d["max_deg"] == 76


@pytest.mark.realdata
def test_mdoc_next_to_a_stack_fills_tilts_and_dose(real, tmp_path):
    # a stack with a matching SerialEM .mdoc beside it gets tilts, pixel size and voltage from it
    src = real("etspy/SerialEM_test_000.mdoc")
    io.write_mrc(tmp_path / "test0.mrc", np.zeros((2, 8, 8), np.float32))
    (tmp_path / "test0.mrc.mdoc").write_bytes(src.read_bytes())
    img = io.read(tmp_path / "test0.mrc")
    assert img.pixel_size == pytest.approx(7.88)
    assert img.acquisition.voltage_kV == pytest.approx(300)
    assert img.acquisition.tilt_angles_deg == pytest.approx((-0.000488, -0.000488))


TILTS = list(range(-40, 40, 5))  # README: -40..+35 deg in 5 deg steps, 16 files


@pytest.mark.realdata
@pytest.mark.parametrize("tilt", TILTS)
def test_idp_eds_tomo_bcf_series(real, tilt):
    img = io.read(real(f"openncem/idp-eds-tomo/tilt_{tilt}.bcf"))
    assert img.shape == (256, 256) and img.axes == ("row", "col")
    assert img.pixel_size == pytest.approx(130.8, rel=2e-3)  # README: 13.08 nm
    si = io.read(real(f"openncem/idp-eds-tomo/tilt_{tilt}.bcf"), signal="spectrum")
    assert si.shape == (256, 256, 2048)  # lazy: only the shape is read, no 268 MB decode
    assert hasattr(si.data, "dask") or hasattr(si.data, "chunks")


@pytest.mark.realdata
def test_every_real_data_file_is_covered(real):
    """Every data file in the folder appears in one of the tests above (so none is forgotten)."""
    root = real("README.md").parent
    covered = {c[0] for c in CASES} | {e[0] for e in ENERGY}
    covered |= {f"openncem/idp-eds-tomo/tilt_{t}.bcf" for t in TILTS}
    covered |= {"openncem/idp-eds-tomo/After_HAADF_130mm_1.ser"}  # the .emi's partner, read via the .emi
    metadata = {".tlt", ".rawtlt", ".xtilt", ".xf", ".mdoc", ".mat", ".txt", ".edf", ".md"}
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
             and p.suffix.lower() not in metadata and p.name != "SHA256SUMS"}
    assert files - covered == set()


@pytest.mark.realdata
def test_bruker_eds_tomography_series_with_tilts_from_names(real):
    # README: the tilt angle is only in the file names (the bcf stage tilt reads 0): -40..+35 deg, 5 deg steps
    files = sorted(real("openncem/idp-eds-tomo/tilt_0.bcf").parent.glob("tilt_*.bcf"))
    ser = io.read_series(files, from_names=True)
    assert ser.shape == (16, 256, 256) and ser.axes == ("tilt", "row", "col")
    assert ser.acquisition.tilt_angles_deg == tuple(float(t) for t in TILTS)  # sorted, not file order
    assert ser.pixel_size == pytest.approx(130.8, rel=2e-3)
    si = io.read_series(files[:3], from_names=True, signal="spectrum")
    assert si.shape == (3, 256, 256, 2048) and si.axes == ("tilt", "row", "col", "energy")
    assert hasattr(si.data, "dask")  # 3 x 268 MB stay on disk until asked for
    with pytest.raises(InputError, match="differs"):
        io.read_series([files[0], real("rosettasciio/test_TEM.bcf")])


def test_tilt_from_name():
    assert io.tilt_from_name("tilt_-40.bcf") == -40.0
    assert io.tilt_from_name("TS_01_012_-21.5.mrc") == -21.5
    assert io.tilt_from_name("a+3.tif") == 3.0
    with pytest.raises(InputError):
        io.tilt_from_name("notilt.mrc")


@pytest.mark.realdata
def test_frame_set_mdoc_beside_a_movie_gives_dose_and_time_per_frame(real, tmp_path):
    # frame_set_single.mdoc: 7.65892 e/A^2 and 1.07856 s over the movie's 12 frames
    io.write_mrc(tmp_path / "mov.mrcs", np.zeros((12, 8, 8), np.float32))
    (tmp_path / "mov.mrcs.mdoc").write_bytes(real("mdocfile/frame_set_single.mdoc").read_bytes())
    acq = io.read(tmp_path / "mov.mrcs").acquisition
    assert acq.dose_per_frame_e_per_A2 == pytest.approx(7.65892 / 12, rel=1e-9)
    assert acq.frame_time_s == pytest.approx(1.07856 / 12, rel=1e-9)
    assert acq.voltage_kV == pytest.approx(300)
