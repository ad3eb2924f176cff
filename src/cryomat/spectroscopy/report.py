"""Writing the outputs of ``cryomat spectrum``: maps, tables, figures, results.json, report.html.

This is the shell of the spectroscopy package (files and figures); the numbers come from
:mod:`cryomat.spectroscopy.pipeline`, :mod:`~cryomat.spectroscopy.profiles` and
:mod:`~cryomat.spectroscopy.decomposition`.
"""

from __future__ import annotations

import numpy as np

from cryomat.spectroscopy import decomposition as _dec
from cryomat.spectroscopy import pipeline, profiles


def _composition_of_sums(res, sums, var):
    """Quantify summed counts (n, m) with the factors of ``res``."""
    if res.kind == "EDS":
        from cryomat.spectroscopy.eds import cliff_lorimer

        k = np.array([res.factors[n] for n in res.names])
        return cliff_lorimer(sums, res.names, k, variance=var)
    from cryomat.spectroscopy.eels import quantify_edges

    c, s = quantify_edges({n: sums[i] for i, n in enumerate(res.names)}, res.factors,
                          variances={n: var[i] for i, n in enumerate(res.names)})
    return np.stack([c[n] for n in res.names]), np.stack([s[n] for n in res.names])


def overlay_rgb(image, maps, *, shift=(0.0, 0.0), smooth_px: float = 1.0):
    """Grey image with up to three maps in red, green, blue (each smoothed by a Gaussian of
    ``smooth_px`` for display only and scaled to its 99.5th percentile)."""
    from scipy import ndimage

    from cryomat.io.writers import to_display

    img = np.asarray(image, float)
    shape = maps.shape[-2:]
    if img.shape != shape:
        img = ndimage.zoom(img, (shape[0] / img.shape[0], shape[1] / img.shape[1]), order=1)
    grey = to_display(img).astype(float)
    grey = grey / max(grey.max(), 1e-12)
    rgb = np.repeat(0.55 * grey[..., None], 3, axis=-1)
    for i, m in enumerate(maps[:3]):
        m = ndimage.shift(np.nan_to_num(np.asarray(m, float)), shift, order=1)
        if smooth_px > 0:
            m = ndimage.gaussian_filter(m, smooth_px)
        hi = np.percentile(m, 99.5)
        rgb[..., i] += 0.6 * np.clip(m / hi if hi > 0 else 0 * m, 0, 1)
    return np.clip(rgb, 0, 1)


def register_image(image, total_map):
    """Translation (row, col) in map pixels aligning ``total_map`` onto ``image`` (phase correlation
    after resizing the image to the map grid; same field of view assumed), and the correlation of the
    two after the shift. Zero shift is kept unless the shift raises the correlation by > 0.02."""
    from scipy import ndimage
    from skimage.registration import phase_cross_correlation

    img = np.asarray(image, float)
    shape = total_map.shape
    if img.shape != shape:
        img = ndimage.zoom(img, (shape[0] / img.shape[0], shape[1] / img.shape[1]), order=1)
    a = (img - img.mean()) / (img.std() + 1e-12)
    b = np.nan_to_num(total_map, nan=0.0)
    b = (b - b.mean()) / (b.std() + 1e-12)
    if min(shape) < 8:
        return (0.0, 0.0), float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    shift, _, _ = phase_cross_correlation(a, b, upsample_factor=10, normalization=None)
    corr = float(np.corrcoef(a.ravel(), ndimage.shift(b, shift, order=1).ravel())[0, 1])
    corr0 = float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    # keep the files' own registration unless shifting clearly improves the match (a shift along a
    # direction in which nothing varies, e.g. parallel layers, is not determined by the data)
    if not corr > corr0 + 0.02:
        return (0.0, 0.0), corr0
    return (float(shift[0]), float(shift[1])), corr


def write_outputs(od, spec, *, elements=None, lines=None, kfactors=None, fwhm_mnka_eV=None, background="mean",
                  line_width=(2.0, 2.0), window_mode="auto", window_correction=False, edges=None, delta_eV=50.0, fit_eV=30.0, lowloss=None, deconvolve=True,
                  alpha_mrad=None, beta_mrad=None, image=None, profile=None, width=None, surface_mask=None,
                  decompose=None, components=None, denoise=False, eels_background="powerlaw") -> dict:
    """Run the analysis of ``spec`` and write everything into the :class:`~cryomat.outputs.OutputDir` ``od``."""
    import pandas as pd

    from cryomat.progress import status
    from cryomat.report import Report
    from cryomat.report.figures import new_figure, show_image

    spatial = spec.data.ndim == 3
    if not spatial:
        asked = [n for n, v in (("--profile", profile), ("--profile-from-surface", surface_mask),
                                ("--decompose", decompose), ("--denoise", denoise), ("--image", image)) if v is not None
                 and v is not False]
        if asked:
            raise ValueError(f"{', '.join(asked)} need(s) a spectrum image; {spec.source} holds one spectrum")
    denoise_info = None
    denoise_dec = None
    if denoise:
        if not spatial:
            raise ValueError("--denoise needs a spectrum image, not a single spectrum")
        import dataclasses

        den, d = _dec.pca_denoise(spec.data)
        denoise_dec = d
        denoise_info = {"method": "Poisson-weighted PCA reconstruction", "n_components": d.n_components,
                        "criterion": d.criterion}
        status(f"spectrum: PCA denoising kept {d.n_components} components")
        spec = dataclasses.replace(spec, data=den)
    if spec.kind == "EDS":
        res = pipeline.eds_maps(spec, elements=elements, lines=lines, kfactors=kfactors, background=background,
                                line_width=line_width, fwhm_mnka_eV=fwhm_mnka_eV, window_mode=window_mode,
                                window_correction=window_correction)
    else:
        res = pipeline.eels_maps(spec, edges=edges, delta_eV=delta_eV, fit_eV=fit_eV, lowloss=lowloss,
                                 deconvolve=deconvolve, alpha_mrad=alpha_mrad, beta_mrad=beta_mrad,
                                 background=eels_background)
    status(f"spectrum: {res.kind} {', '.join(res.names)} quantified")
    px_nm = None if spec.pixel_size is None else spec.pixel_size / 10.0
    rep = Report(f"{res.kind} spectrum {'image' if spatial else ''}".strip(), subtitle=str(spec.source))
    results = {"kind": res.kind, "shape": list(spec.data.shape), "pixel_size_A": spec.pixel_size,
               "energy_start_eV": float(spec.energy_eV[0]), "energy_step_eV": float(spec.energy_eV[1] - spec.energy_eV[0]),
               "names": res.names, "factor_source": res.factor_source, "assumptions": res.assumptions,
               "windows_eV": res.windows,
               "composition_at_pct": res.total_percent, "composition_sigma_at_pct": res.total_sigma,
               "factors": res.factors,
               "factor_unit": ("Cliff-Lorimer k-factor (weight fractions, dimensionless)" if res.kind == "EDS"
                               else "partial cross-section sigma(beta, Delta) in barn"),
               "net_counts": {n: float(np.sum(res.intensity[i])) for i, n in enumerate(res.names)}}
    if denoise_info:
        results["denoise"] = denoise_info
    if res.kind == "EDS":
        from cryomat.spectroscopy.eds import calibration_check

        tot_spec = np.asarray(spec.data).reshape(-1, spec.data.shape[-1]).sum(0, dtype=np.float64)
        off = calibration_check(tot_spec, spec.energy_eV, res.names,
                                fwhm_mnka_eV=float(fwhm_mnka_eV or spec.fwhm_mnka_eV or 130.0))
        results["energy_calibration_offset_eV"] = off
        if off and abs(float(np.median(list(off.values())))) > 0.2 * float(fwhm_mnka_eV or spec.fwhm_mnka_eV or 130.0):
            rep.add_text(f"Energy calibration: the lines sit {np.median(list(off.values())):+.0f} eV from their "
                         "tabulated energies; check the energy offset/gain before trusting the windows.", note=True)
    else:
        results["energy_calibration_offset_eV"] = dict(res.extra.get("edge_onset_offset_eV", {}))
        if "zero_loss_shift_eV" in res.extra:
            results["energy_calibration_offset_eV"]["zero_loss"] = float(np.nanmedian(res.extra["zero_loss_shift_eV"]))
    comp_rows = [{"element": n.split("_")[0], "line_or_edge": n, "net_counts": results["net_counts"][n],
                  ("k_factor" if res.kind == "EDS" else "cross_section_barn"): res.factors[n],
                  "at_pct": res.total_percent[n], "sigma_at_pct": res.total_sigma[n]} for n in res.names]
    od.write_csv("composition.csv", pd.DataFrame(comp_rows))
    rep.add_metrics({f"{n}_at_pct": res.total_percent[n] for n in res.names}, title="Composition of the summed spectrum")
    rep.add_text(res.assumptions + f" Factors: {res.factor_source}.", note=True)
    # spectrum figure with windows
    fig, ax = new_figure(1, 1, size=5.0)
    ax = ax[0, 0]
    total = np.asarray(spec.data).reshape(-1, spec.data.shape[-1]).sum(0, dtype=np.float64)
    ax.plot(spec.energy_eV / (1000.0 if res.kind == "EDS" else 1.0), total, lw=0.8, color="k")
    for i, n in enumerate(res.names):
        w = res.windows[n]
        f = 1000.0 if res.kind == "EDS" else 1.0
        ax.axvspan(w["integration_eV"][0] / f, w["integration_eV"][1] / f, color=f"C{i}", alpha=0.3, label=n)
        if w.get("background_eV"):
            b = w["background_eV"]
            for lo, hi in ((b[0], b[1]), (b[2], b[3])) if len(b) == 4 else ((b[0], b[1]),):
                ax.axvspan(lo / f, hi / f, color=f"C{i}", alpha=0.12, hatch="//")
    ax.set_xlabel("energy (keV)" if res.kind == "EDS" else "energy loss (eV)")
    ax.set_ylabel("counts (sum of all pixels)")
    ax.set_yscale("log" if res.kind == "EDS" else "linear")
    ax.legend(fontsize=7)
    od.save_figure("spectrum.png", fig)
    rep.add_figure("spectrum.png", "Summed spectrum with integration (shaded) and background (hatched) windows")
    summary = ", ".join(f"{n.split('_')[0]} {res.total_percent[n]:.2f} at.%" for n in res.names)
    if spatial:
        _write_maps(od, rep, res, spec, px_nm, show_image, new_figure)
        img = image if image is not None else spec.image
        if img is not None:
            tot = np.nansum(np.clip(res.intensity, 0, None), axis=0)
            shift, corr = register_image(img, tot) if image is not None else ((0.0, 0.0), None)
            order = np.argsort([-np.nansum(res.intensity[i]) for i in range(len(res.names))])[:3]
            rgb = overlay_rgb(img, res.intensity[order], shift=shift)
            fig, ax = new_figure(1, 1, size=5.0)
            ax[0, 0].imshow(rgb, interpolation="nearest")
            ax[0, 0].set_axis_off()
            ax[0, 0].set_title(" / ".join(f"{c}: {res.names[j]}" for c, j in zip(("red", "green", "blue"), order)),
                               fontsize=9)
            od.save_figure("overlay.png", fig)
            rep.add_figure("overlay.png", "Maps (Gaussian-smoothed by 1 pixel for display) overlaid on the " +
                           ("given image" if image is not None else f"simultaneously acquired {spec.image_title} image"))
            results["overlay"] = {"image": "given" if image is not None else spec.image_title,
                                  "registration_shift_px": list(shift), "registration_correlation": corr}
        if profile is not None or surface_mask is not None:
            results["profile"] = _write_profile(od, rep, res, spec, profile, width, surface_mask, px_nm, new_figure)
        if decompose:
            reuse = denoise_dec if (decompose == "pca" and not components) else None
            results["decomposition"] = _write_decomposition(od, rep, spec, decompose, components, new_figure,
                                                            precomputed=reuse)
    for key in ("t_over_lambda", "zero_loss_shift_eV"):
        if key in res.extra:
            v = np.asarray(res.extra[key], float)
            results[f"{key}_mean"] = float(np.nanmean(v))
            if v.ndim == 2:
                od.write_tiff(f"maps/{key}.tiff", v.astype(np.float32), pixel_size=spec.pixel_size)
    rep.write(od.file("report.html"))
    results["summary"] = summary
    od.write_results(results)
    return results


def _write_maps(od, rep, res, spec, px_nm, show_image, new_figure):
    import pandas as pd

    n = len(res.names)
    for i, name in enumerate(res.names):
        el = name.split("_")[0]
        od.write_tiff(f"maps/{name}_counts.tiff", res.intensity[i].astype(np.float32), pixel_size=spec.pixel_size)
        od.write_tiff(f"maps/{el}_at_pct.tiff", np.nan_to_num(res.composition[i]).astype(np.float32),
                      pixel_size=spec.pixel_size)
    ncol = min(n, 6)
    nrow = 2 * int(np.ceil(n / ncol))
    fig, ax = new_figure(ncol, nrow, size=2.2)
    for a in ax.ravel():
        a.set_axis_off()
    for i, name in enumerate(res.names):
        r0, c0 = 2 * (i // ncol), i % ncol
        show_image(ax[r0, c0], res.intensity[i], pixel_size=spec.pixel_size, title=f"{name} net counts",
                   cmap="viridis")
        ax[r0 + 1, c0].imshow(np.nan_to_num(res.composition[i]), cmap="magma", vmin=0, vmax=100,
                              interpolation="nearest")
        ax[r0 + 1, c0].set_title(f"{name.split('_')[0]} at.% (0-100)", fontsize=8)
    od.save_figure("maps.png", fig)
    rep.add_figure("maps.png", "Background-subtracted maps and, below each, the composition in at.%")
    rr, cc = np.mgrid[0: res.intensity.shape[1], 0: res.intensity.shape[2]]
    table = {"row": rr.ravel(), "col": cc.ravel()}
    for i, name in enumerate(res.names):
        el = name.split("_")[0]
        table[f"{name}_counts"] = res.intensity[i].ravel()
        table[f"{el}_at_pct"] = res.composition[i].ravel()
        table[f"{el}_sigma_at_pct"] = res.sigma[i].ravel()
    df = pd.DataFrame(table)
    if len(df) <= 16384:
        od.write_csv("composition_maps.csv", df)
    else:  # large spectrum images: Parquet is ~10x faster and smaller than CSV
        try:
            od.write_parquet("composition_maps.parquet", df)
        except ImportError:
            od.write_csv("composition_maps.csv", df)


def _write_profile(od, rep, res, spec, profile, width, surface_mask, px_nm, new_figure):
    import pandas as pd

    if profile is not None:
        wpx = 1.0 if width is None else (width / px_nm if px_nm else width)
        pr = profiles.line_profile(res.intensity, profile[0], profile[1], width_px=wpx, variance=res.variance)
        kind = {"type": "line", "start_px": list(profile[0]), "end_px": list(profile[1]), "width_px": wpx}
    else:
        pr = profiles.depth_profile(res.intensity, surface_mask, variance=res.variance)
        kind = {"type": "depth_from_surface"}
    comp, sig = _composition_of_sums(res, pr.sums, pr.variance)
    # no element detected in a bin (total net counts below 3 sigma, e.g. Li metal in EDS, vacuum):
    # its composition is undefined, reported as empty
    tot = np.clip(pr.sums, 0, None).sum(0)
    undetected = tot < 3 * np.sqrt(np.clip(pr.variance, 0, None).sum(0))
    comp[:, undetected] = np.nan
    sig[:, undetected] = np.nan
    keep = pr.npix > 0
    d = pr.distance_px[keep]
    tab = {"distance_px": d, "npix": pr.npix[keep]}
    if px_nm:
        tab["distance_nm"] = d * px_nm
    for i, name in enumerate(res.names):
        el = name.split("_")[0]
        tab[f"{name}_counts"] = pr.sums[i, keep]
        tab[f"{el}_at_pct"] = comp[i, keep]
        tab[f"{el}_sigma_at_pct"] = sig[i, keep]
    od.write_csv("profile.csv", pd.DataFrame(tab))
    wts = np.clip(pr.sums[:, keep], 0, None).sum(0) / np.maximum(pr.npix[keep], 1)
    iface = profiles.interface_positions(d, np.nan_to_num(comp[:, keep]), weights=wts) if keep.sum() >= 5 else []
    fig, ax = new_figure(1, 1, size=5.0)
    x = d * px_nm if px_nm else d
    for i, name in enumerate(res.names):
        ax[0, 0].errorbar(x, comp[i, keep], yerr=sig[i, keep], lw=1, capsize=0, label=name.split("_")[0])
    for p in iface:
        ax[0, 0].axvline(p * px_nm if px_nm else p, color="gray", ls="--", lw=0.8)
    ax[0, 0].set_xlabel("distance (nm)" if px_nm else "distance (px)")
    ax[0, 0].set_ylabel("at.%")
    ax[0, 0].legend(fontsize=8)
    od.save_figure("profile.png", fig)
    rep.add_figure("profile.png", "Composition profile (summed counts per bin, 1-sigma bars); dashed: interfaces")
    kind.update({"interfaces_px": iface, "interfaces_nm": [p * px_nm for p in iface] if px_nm else None,
                 "bins": int(keep.sum())})
    return kind


def _write_decomposition(od, rep, spec, method, components, new_figure, precomputed=None):
    data = np.asarray(spec.data, np.float32)
    if precomputed is not None:
        dec = precomputed
    elif method == "pca":
        dec = _dec.poisson_pca(data, n_components=components)
    else:
        k = components or _dec.poisson_pca(data).n_components
        dec = _dec.nmf(data, n_components=k)
    for i in range(dec.n_components):
        od.write_tiff(f"maps/{method}_loading_{i}.tiff", dec.loadings[i].astype(np.float32), pixel_size=spec.pixel_size)
    k = dec.n_components
    fig, ax = new_figure(k + 1, 2, size=2.8)
    for i in range(k):
        ax[0, i].plot(spec.energy_eV, dec.factors[i], lw=0.7)
        ax[0, i].set_title(f"factor {i}", fontsize=9)
        ax[1, i].imshow(dec.loadings[i], cmap="viridis", interpolation="nearest")
        ax[1, i].set_axis_off()
    if dec.explained_variance is not None:
        ev = dec.explained_variance[:30]
        ax[0, k].semilogy(np.arange(len(ev)), ev, "o-", ms=3)
        ax[0, k].axhline(dec.noise_edge, color="r", ls="--", lw=0.8)
        ax[0, k].set_title("scree (red: noise edge)", fontsize=9)
    ax[1, k].set_axis_off()
    od.save_figure("decomposition.png", fig)
    rep.add_figure("decomposition.png", f"{method.upper()}: factors (top) and loadings (bottom). {dec.criterion}")
    return {"method": method, "n_components": k, "criterion": dec.criterion}
