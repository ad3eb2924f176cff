"""EDS: windows, line intensities and Cliff-Lorimer against exSpy on real spectra and synthetic truth."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cryomat.spectroscopy import eds, loading


def _exspy_signal(path):
    hs = pytest.importorskip("hyperspy.api")
    pytest.importorskip("exspy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hs.load(str(path))


@pytest.mark.realdata
def test_fept_cliff_lorimer_matches_exspy(real):
    path = real("exspy/EDS_TEM_FePt_nanoparticles.hspy")
    k = [1.450226, 5.075602]
    s = _exspy_signal(path)
    s.add_lines()
    bw_ref = s.estimate_background_windows(line_width=[5.0, 2.0])
    ints = s.get_lines_intensity(background_windows=bw_ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = [float(np.ravel(q.data)[0]) for q in s.quantification(ints, method="CL", factors=k)]
    spec = loading.load_spectrum(path)
    lines = eds.select_xray_lines(spec.elements, energy_range_eV=(spec.energy_eV[0], spec.energy_eV[-1]),
                                  beam_energy_kV=spec.voltage_kV)
    assert lines == ["Fe_Ka", "Pt_La"]
    bw = eds.background_windows(lines, fwhm_mnka_eV=spec.fwhm_mnka_eV, line_width=(5.0, 2.0))
    # windows are the same numbers (eV vs keV); float round-off only
    np.testing.assert_allclose(bw / 1000.0, bw_ref, rtol=1e-9)
    li = eds.line_intensities(spec.data, spec.energy_eV, lines, background_windows_eV=bw,
                              fwhm_mnka_eV=spec.fwhm_mnka_eV)
    at, sig = eds.cliff_lorimer(li.net, lines, k, variance=li.variance)
    # the acceptance: within 0.05 at.% of exSpy's 15.41 / 84.59
    assert abs(at[0] - ref[0]) < 0.05 and abs(at[1] - ref[1]) < 0.05
    assert abs(at[0] - 15.41) < 0.05
    # Poisson 1-sigma of ~18k counts: a few tenths of a percent, never zero
    assert 0.05 < sig[0] < 1.0


@pytest.mark.realdata
def test_tm002_line_intensities_match_exspy(real):
    path = real("exspy/EDS_SEM_TM002.hspy")
    s = _exspy_signal(path)
    s.add_lines()
    lines_ref = list(s.metadata.Sample.xray_lines)
    bw_ref = s.estimate_background_windows()
    ref = np.array([float(np.ravel(i.data)[0]) for i in s.get_lines_intensity(background_windows=bw_ref)])
    ref_raw = np.array([float(np.ravel(i.data)[0]) for i in s.get_lines_intensity()])
    spec = loading.load_spectrum(path)
    lines = eds.select_xray_lines(spec.elements, energy_range_eV=(spec.energy_eV[0], spec.energy_eV[-1]),
                                  beam_energy_kV=spec.voltage_kV)
    assert lines == lines_ref
    bw = eds.background_windows(lines, fwhm_mnka_eV=spec.fwhm_mnka_eV)
    net = eds.line_intensities(spec.data, spec.energy_eV, lines, background_windows_eV=bw,
                               fwhm_mnka_eV=spec.fwhm_mnka_eV).net
    raw = eds.line_intensities(spec.data, spec.energy_eV, lines, fwhm_mnka_eV=spec.fwhm_mnka_eV).net
    # acceptance: within 0.5 % of exSpy's intensities (same windows and channel rounding: identical in practice)
    np.testing.assert_allclose(net, ref, rtol=5e-3)
    np.testing.assert_allclose(raw, ref_raw, rtol=5e-3)


def test_fwhm_model_reference_points():
    # at Mn Ka the FWHM is the detector's stated resolution; FWHM^2 grows by 2.5 eV per eV above it
    assert eds.eds_fwhm_eV(5898.7, fwhm_mnka_eV=130.0) == pytest.approx(130.0)
    assert eds.eds_fwhm_eV(8898.7, fwhm_mnka_eV=130.0) == pytest.approx(np.sqrt(130.0**2 + 2.5 * 3000))
    with pytest.raises(ValueError, match="fwhm_mnka_eV"):
        eds.eds_fwhm_eV(1000.0, fwhm_mnka_eV=-1)


def test_synthetic_two_line_spectrum_recovers_composition(rng):
    """Two Gaussian lines on a Kramers continuum with known weights: CL recovers the truth."""
    e = np.arange(0, 20000, 10.0)
    lines = ["Fe_Ka", "Pt_La"]
    k = np.array([1.45, 5.08])
    true_at = np.array([30.0, 70.0])
    from cryomat.spectroscopy.tables import atomic_weights

    aw = np.array([atomic_weights()["Fe"], atomic_weights()["Pt"]])
    # weight fractions C_i ∝ at_i * A_i; CL: C_i ∝ k_i I_i  ->  I_i ∝ at_i A_i / k_i
    inten = true_at * aw / k
    inten = 4e5 * inten / inten.sum()
    spec = 3e3 * (200000 - e) / np.maximum(e, 50.0) / 200.0
    for ln, n in zip(lines, inten):
        c = eds.line_energy_eV(ln)
        sd = eds.eds_fwhm_eV(c, fwhm_mnka_eV=130.0) / 2.3548
        spec = spec + n * 10.0 * np.exp(-0.5 * ((e - c) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
    counts = rng.poisson(spec)
    bw = eds.background_windows(lines, fwhm_mnka_eV=130.0)
    li = eds.line_intensities(counts, e, lines, background_windows_eV=bw, background="powerlaw")
    at, sig = eds.cliff_lorimer(li.net, lines, k, variance=li.variance)
    # 98.1 % of each Gaussian falls in a 2-FWHM window for both lines (cancels in the ratio); the
    # power-law continuum is exact for ~1/E, so the error is Poisson: allow 4 sigma
    assert abs(at[0] - 30.0) < 4 * sig[0] + 0.05
    assert sig[0] < 0.5


def test_cliff_lorimer_rejects_mismatched_inputs():
    with pytest.raises(ValueError):
        eds.cliff_lorimer(np.ones(3), ["Fe_Ka", "Pt_La"], [1.0, 2.0])
    with pytest.raises(ValueError, match="kfactors"):
        eds.resolve_kfactors(["Fe_Ka"], [-1.0])
    with pytest.raises(ValueError, match="unknown element"):
        eds.select_xray_lines(["Xx"], energy_range_eV=(0, 20000))


def test_shipped_kfactor_close_to_measured_fe():
    # the approximate theoretical table is within 5 % of a measured Super-X k-factor for Fe Ka at 200 kV
    from cryomat.spectroscopy.tables import shipped_kfactor

    assert shipped_kfactor("Fe_Ka", voltage_kV=200) == pytest.approx(1.450226, rel=0.05)
    assert shipped_kfactor("Si_Ka", voltage_kV=200) == pytest.approx(1.0)


@pytest.mark.realdata
def test_identify_elements_on_real_spectra(real):
    from cryomat.spectroscopy.identify import identify_eds_elements

    spec = loading.load_spectrum(real("pytemlib/EDS-STO.emd"))
    found = identify_eds_elements(spec.data.astype(float), spec.energy_eV, beam_energy_kV=spec.voltage_kV)
    # SrTiO3 on a Cu grid: all four and nothing else
    assert found == ["Cu", "O", "Sr", "Ti"]
    spec = loading.load_spectrum(real("particlespy/SiO2_EDS_Spectrum_Image.hspy"))
    tot = spec.data.reshape(-1, spec.data.shape[-1]).sum(0, dtype=float)
    # silica on carbon film, Cu grid; this file's energy axis is ~35 eV off, within the tolerance
    assert identify_eds_elements(tot, spec.energy_eV) == ["C", "Cu", "O", "Si"]


def test_identify_elements_synthetic(rng):
    from cryomat.spectroscopy.identify import identify_eds_elements

    e = np.arange(0, 20000, 10.0)
    y = 2e4 * np.where(e > 100, 1.0 / np.maximum(e, 100.0), 0)
    for ln, n in (("Fe_Ka", 2e4), ("Fe_Kb", 2.6e3), ("Fe_La", 3e3), ("O_Ka", 1e4), ("Si_Ka", 6e3), ("Si_Kb", 500)):
        c = eds.line_energy_eV(ln)
        sd = eds.eds_fwhm_eV(c) / 2.3548
        y = y + n * 10 * np.exp(-0.5 * ((e - c) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
    assert identify_eds_elements(rng.poisson(y).astype(float), e, beam_energy_kV=200) == ["Fe", "O", "Si"]
