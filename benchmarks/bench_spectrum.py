"""Benchmark of ``cryomat.spectroscopy`` against exSpy: accuracy on real spectra, truth on synthetic ones, speed.

Accuracy (real files in ../shared/data/real, exSpy run side by side with the same windows):
- EDS Cliff-Lorimer on FePt (k = 1.450226 Fe Ka, 5.075602 Pt La, exSpy's windows): at.% difference.
- EDS line intensities on TM002: largest relative difference to exSpy's ``get_lines_intensity``.
- EELS Ti L / O K edge-intensity ratio on EELS_STO.dm3 (same windows, hydrogenic cross-sections).
- EELS Cr L3/L2 ratio after Fourier-ratio deconvolution with the low loss (Cr_L_cl/ll).
Truth (synthetic, ``cryomat.simulate.spectrum_image``): SEI line scan composition error (mean/max at.%)
and interface positions (EDS and EELS); 3-phase Poisson EDS cube: factor correlation of NMF, PCA count.
Speed: maps (5 lines, windows + background + Cliff-Lorimer per pixel) of a 128 x 128 x 2048 Poisson
EDS cube, cryomat vs exSpy ``get_lines_intensity`` + ``quantification(method="CL")``.

    python benchmarks/bench_spectrum.py [--size 128] [--skip-exspy-speed]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def _hs():
    warnings.simplefilter("ignore")
    import exspy  # noqa: F401
    import hyperspy.api as hs

    return hs


def accuracy_real() -> dict:
    from cryomat.spectroscopy import eds, eels, loading

    hs = _hs()
    out = {}
    # FePt Cliff-Lorimer
    p = REAL / "exspy/EDS_TEM_FePt_nanoparticles.hspy"
    s = hs.load(str(p))
    s.add_lines()
    bw = s.estimate_background_windows(line_width=[5.0, 2.0])
    k = [1.450226, 5.075602]
    ref = [float(np.ravel(q.data)[0]) for q in s.quantification(s.get_lines_intensity(background_windows=bw),
                                                                  method="CL", factors=k)]
    spec = loading.load_spectrum(p)
    lines = ["Fe_Ka", "Pt_La"]
    li = eds.line_intensities(spec.data, spec.energy_eV, lines, fwhm_mnka_eV=spec.fwhm_mnka_eV,
                              background_windows_eV=eds.background_windows(lines, fwhm_mnka_eV=spec.fwhm_mnka_eV,
                                                                           line_width=(5.0, 2.0)))
    at, _ = eds.cliff_lorimer(li.net, lines, k, variance=li.variance)
    out["fept_exspy_at_pct"] = ref
    out["fept_cryomat_at_pct"] = at.tolist()
    out["fept_max_abs_diff_at_pct"] = float(np.max(np.abs(at - ref)))
    # TM002 line intensities
    p = REAL / "exspy/EDS_SEM_TM002.hspy"
    s = hs.load(str(p))
    s.add_lines()
    ref = np.array([float(np.ravel(i.data)[0]) for i in s.get_lines_intensity(
        background_windows=s.estimate_background_windows())])
    spec = loading.load_spectrum(p)
    lines = list(s.metadata.Sample.xray_lines)
    net = eds.line_intensities(spec.data, spec.energy_eV, lines, fwhm_mnka_eV=spec.fwhm_mnka_eV,
                               background_windows_eV=eds.background_windows(lines, fwhm_mnka_eV=spec.fwhm_mnka_eV)).net
    out["tm002_lines"] = lines
    out["tm002_max_rel_diff"] = float(np.max(np.abs(net / ref - 1)))
    # STO Ti L / O K
    from exspy.components import EELSCLEdge

    p = REAL / "pytemlib/EELS_STO.dm3"
    s = hs.load(str(p))
    s.set_signal_type("EELS")
    spec = loading.load_spectrum(p)
    win = {"Ti_L3": ((410.0, 450.0), (456.0, 506.0)), "O_K": ((480.0, 525.0), (532.0, 582.0))}
    rr, rm = {}, {}
    for ed, (b, iw) in win.items():
        sb = s.remove_background(signal_range=b, background_type="PowerLaw", fast=True)
        i_ref = float(np.ravel(sb.isig[iw[0]:iw[1]].integrate1D(-1).data)[0])
        c = EELSCLEdge(ed, GOS="hydrogenic")
        c.set_microscope_parameters(E0=200.0, alpha=30.0, beta=33.0, energy_scale=0.25)
        ax = s.axes_manager[-1].axis
        sig_ref = float(c.function(ax[(ax >= iw[0]) & (ax < iw[0] + 50)]).sum() * 0.25)
        i_me, _, _ = eels.edge_intensity(spec.data, spec.energy_eV, background_window_eV=b, integration_window_eV=iw)
        sig_me = eels.edge_cross_section(ed, window_eV=50.0, voltage_kV=200.0, beta_mrad=33.0, alpha_mrad=30.0,
                                         onset_eV=iw[0])
        rr[ed], rm[ed] = i_ref / sig_ref, float(i_me) / sig_me
    out["sto_ti_over_o_exspy"] = rr["Ti_L3"] / rr["O_K"]
    out["sto_ti_over_o_cryomat"] = rm["Ti_L3"] / rm["O_K"]
    out["sto_rel_diff"] = out["sto_ti_over_o_cryomat"] / out["sto_ti_over_o_exspy"] - 1
    # Cr L Fourier-ratio
    cl = hs.load(str(REAL / "exspy/Cr_L_cl.hspy"))
    ll = hs.load(str(REAL / "exspy/Cr_L_ll.hspy"))
    d_ref = cl.fourier_ratio_deconvolution(ll).data
    c, lo = loading.load_spectrum(REAL / "exspy/Cr_L_cl.hspy"), loading.load_spectrum(REAL / "exspy/Cr_L_ll.hspy")
    d = eels.fourier_ratio_deconvolve(c.data, c.energy_eV, lo.data, lo.energy_eV)
    ratios = []
    for arr in (d_ref, d):
        i3, _, _ = eels.edge_intensity(arr, c.energy_eV, background_window_eV=(562.0, 572.0),
                                       integration_window_eV=(574.0, 582.0))
        i2, _, _ = eels.edge_intensity(arr, c.energy_eV, background_window_eV=(562.0, 572.0),
                                       integration_window_eV=(582.0, 592.0))
        ratios.append(float(i3 / i2))
    out["cr_l3_l2_exspy"], out["cr_l3_l2_cryomat"] = ratios
    out["cr_rel_diff"] = ratios[1] / ratios[0] - 1
    tl_ref = float(np.ravel(ll.estimate_thickness(threshold=ll.estimate_elastic_scattering_threshold()).data)[0])
    out["cr_t_over_lambda_exspy"] = tl_ref
    out["cr_t_over_lambda_cryomat"] = float(eels.thickness_log_ratio(lo.data, lo.energy_eV))
    return out


def accuracy_synthetic() -> dict:
    from cryomat.simulate.spectrum_image import EELS_EDGES, simulate_spectrum_image
    from cryomat.spectroscopy import decomposition, eds, loading, profiles
    from cryomat.spectroscopy.pipeline import eds_maps, eels_maps
    from cryomat.spectroscopy.report import _composition_of_sums

    out = {}
    errs_mean, errs_max, iface = [], [], []
    for seed in range(3):
        data, e, truth = simulate_spectrum_image(seed=seed, modality="eds")
        spec = loading.Spectrum(data=data, energy_eV=e, kind="EDS", pixel_size=10.0, voltage_kV=200.0,
                                fwhm_mnka_eV=130.0)
        res = eds_maps(spec, lines=truth["lines"], kfactors=truth["kfactors"], background="powerlaw",
                       window_correction=True)
        rows, cols = data.shape[:2]
        pr = profiles.line_profile(res.intensity, ((rows - 1) / 2, 0), ((rows - 1) / 2, cols - 1), width_px=rows,
                                   variance=res.variance)
        k = np.array([res.factors[n] for n in res.names])
        comp, _ = eds.cliff_lorimer(pr.sums, res.names, k, variance=pr.variance)
        err = np.abs(comp - np.array(truth["eds_at_pct_by_column"]))[:, 22:]
        errs_mean.append(float(err.mean()))
        errs_max.append(float(err.max()))
        f = profiles.interface_positions(pr.distance_px, comp, weights=np.clip(pr.sums, 0, None).sum(0))
        iface.append(float(np.max(np.abs(np.array(f) - truth["interfaces_px"]))) if len(f) == 3 else None)
    out["sei_eds_composition_error_mean_at_pct"] = errs_mean
    out["sei_eds_composition_error_max_at_pct"] = errs_max
    out["sei_eds_interface_max_error_px"] = iface
    data, e, truth = simulate_spectrum_image(seed=0, modality="eels", counts_per_pixel=5000.0,
                                             background_per_pixel=1000.0)
    spec = loading.Spectrum(data=data, energy_eV=e, kind="EELS", pixel_size=10.0, voltage_kV=200.0, beta_mrad=20.0)
    res = eels_maps(spec, edges=list(EELS_EDGES))
    rows, cols = data.shape[:2]
    pr = profiles.line_profile(res.intensity, ((rows - 1) / 2, 0), ((rows - 1) / 2, cols - 1), width_px=rows,
                               variance=res.variance)
    comp, _ = _composition_of_sums(res, pr.sums, pr.variance)
    err = np.abs(comp - np.array(truth["eels_at_pct_by_column"]))
    out["sei_eels_composition_error_mean_at_pct"] = float(err.mean())
    out["sei_eels_composition_error_max_at_pct"] = float(err.max())
    f = profiles.interface_positions(pr.distance_px, comp)
    out["sei_eels_interfaces_px"] = f
    out["sei_truth_interfaces_px"] = truth["interfaces_px"]
    # 3-phase Poisson cube
    from cryomat.spectroscopy.eds import eds_fwhm_eV, line_energy_eV

    rng = np.random.default_rng(0)
    en = np.arange(1024) * 10.0

    def phase(lines, w):
        sp = np.zeros_like(en)
        for ln, a in zip(lines, w):
            c0 = line_energy_eV(ln)
            sd = eds_fwhm_eV(c0) / 2.3548
            sp += a * np.exp(-0.5 * ((en - c0) / sd) ** 2)
        sp += 0.3 * np.where(en > 100, 1.0 / np.maximum(en, 100.0), 0.0) * 100
        return sp / sp.sum()

    fac = np.stack([phase(["Fe_Ka", "O_Ka"], [1, 0.6]), phase(["Si_Ka", "O_Ka"], [1, 1.5]),
                    phase(["Cu_Ka", "Cu_La"], [1, 0.5])])
    yy, xx = np.mgrid[0:64, 0:64]
    load = np.stack([np.exp(-((yy - 20) ** 2 + (xx - 20) ** 2) / 200.0),
                     np.exp(-((yy - 40) ** 2 + (xx - 45) ** 2) / 300.0), xx / 64.0])
    load /= load.sum(0, keepdims=True)
    cube = rng.poisson(200.0 * np.einsum("krc,ke->rce", load, fac))
    pca = decomposition.poisson_pca(cube)
    t0 = time.perf_counter()
    nm = decomposition.nmf(cube, n_components=3)
    out["decomposition_cube"] = "64 x 64 x 1024, 200 counts/pixel, 3 phases"
    out["pca_n_components"] = pca.n_components
    out["nmf_factor_correlation"] = decomposition.match_factors(nm.factors, fac).tolist()
    out["nmf_time_s"] = time.perf_counter() - t0
    return out


def speed(size: int, with_exspy: bool) -> dict:
    from cryomat.spectroscopy import loading
    from cryomat.spectroscopy.pipeline import eds_maps

    rng = np.random.default_rng(1)
    e = np.arange(2048) * 10.0
    lines = ["C_Ka", "O_Ka", "Si_Ka", "Fe_Ka", "Cu_Ka"]
    from cryomat.spectroscopy.eds import eds_fwhm_eV, line_energy_eV

    mean = np.where(e > 100, 1000.0 / np.maximum(e, 100.0), 0.0)
    for ln in lines:
        c0 = line_energy_eV(ln)
        sd = eds_fwhm_eV(c0) / 2.3548
        mean = mean + 3.0 * np.exp(-0.5 * ((e - c0) / sd) ** 2)
    cube = rng.poisson(np.broadcast_to(mean, (size, size, e.size)) * rng.uniform(0.5, 1.5, (size, size, 1))
                       ).astype(np.uint16)
    spec = loading.Spectrum(data=cube, energy_eV=e, kind="EDS", voltage_kV=200.0, fwhm_mnka_eV=130.0)
    k = dict(zip(lines, [1.3, 1.1, 1.0, 1.44, 1.68]))
    t0 = time.perf_counter()
    res = eds_maps(spec, lines=lines, kfactors=k, background="mean")
    t_ours = time.perf_counter() - t0
    out = {"cube": f"{size} x {size} x 2048 uint16, {int(cube.sum() / size**2)} counts/pixel",
           "lines": lines, "cryomat_maps_s": t_ours}
    if with_exspy:
        hs = _hs()
        s = hs.signals.Signal1D(cube)
        s.set_signal_type("EDS_TEM")
        ax = s.axes_manager.signal_axes[0]
        ax.scale, ax.offset, ax.units = 0.01, 0.0, "keV"
        s.metadata.set_item("Acquisition_instrument.TEM.beam_energy", 200.0)
        s.metadata.set_item("Acquisition_instrument.TEM.Detector.EDS.energy_resolution_MnKa", 130.0)
        s.set_lines(lines)
        t0 = time.perf_counter()
        bw = s.estimate_background_windows()
        ints = s.get_lines_intensity(background_windows=bw)
        q = s.quantification(ints, method="CL", factors=[k[x] for x in sorted(lines)])
        t_ex = time.perf_counter() - t0
        out["exspy_maps_s"] = t_ex
        out["speedup_vs_exspy"] = t_ex / t_ours
        order = [sorted(lines).index(x) for x in lines]
        ex = np.stack([q[i].data for i in order])
        ok = np.all(res.intensity > 0.1, axis=0)  # exSpy zeroes/one-hots pixels with a line <= 0.1 counts
        out["pixels_compared"] = int(ok.sum())
        out["max_abs_diff_vs_exspy_at_pct"] = float(np.max(np.abs(res.composition[:, ok] - ex[:, ok])))
    # end to end: the CLI on the real 128 x 128 x 2048 SiO2 spectrum image (read, maps, files, figures)
    real = REAL / "particlespy/SiO2_EDS_Spectrum_Image.hspy"
    if real.exists():
        import tempfile

        from cryomat.cli.main import main as cli

        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            rc = cli(["spectrum", str(real), "--out", tmp, "--elements", "Si,O,C", "--quiet"])
            out["cli_real_128x128x2048_s"] = time.perf_counter() - t0
            out["cli_rc"] = rc
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--skip-exspy-speed", action="store_true")
    a = ap.parse_args(argv)
    payload = {"accuracy_real": accuracy_real(), "accuracy_synthetic": accuracy_synthetic(),
               "speed": speed(a.size, not a.skip_exspy_speed)}
    payload["targets"] = {"fept_within_0.05_at_pct": payload["accuracy_real"]["fept_max_abs_diff_at_pct"] <= 0.05,
                          "tm002_within_0.5_pct": payload["accuracy_real"]["tm002_max_rel_diff"] <= 0.005,
                          "eels_ratios_within_1_pct": abs(payload["accuracy_real"]["sto_rel_diff"]) <= 0.01
                          and abs(payload["accuracy_real"]["cr_rel_diff"]) <= 0.01,
                          "sei_mean_le_0.5_max_le_1.5": max(payload["accuracy_synthetic"]["sei_eds_composition_error_mean_at_pct"]) <= 0.5
                          and max(payload["accuracy_synthetic"]["sei_eds_composition_error_max_at_pct"]) <= 1.5,
                          "factor_correlation_ge_0.98": min(payload["accuracy_synthetic"]["nmf_factor_correlation"]) >= 0.98,
                          "maps_le_10_s": payload["speed"]["cryomat_maps_s"] <= 10.0}
    write_result("spectrum", payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
