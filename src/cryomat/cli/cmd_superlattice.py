"""``cryomat superlattice IMAGE --out DIR [--reference IMAGE]``: fractional spots, q, lock-in maps."""

from __future__ import annotations

from cryomat.cli.common import add_out, add_pixel_size, input_file, parameters_of, positive_float, positive_int

NAME = "superlattice"
HELP = "find superlattice (fractional-order) spots with significance, refine q, lock-in amplitude/phase maps"
DESCRIPTION = (
    "Index FFT spots on the fundamental lattice (from the strongest spots, or --basis), report spots at "
    "fractional positions with their significance, refine the modulation vector q, and map the amplitude and "
    "phase of the strongest satellite by lock-in. With --reference (e.g. the room-temperature image) list the "
    "superlattice spots present in only one of the two.")


def add_arguments(p):
    p.add_argument("image", type=input_file, help="lattice image (HRTEM or STEM)")
    add_out(p)
    add_pixel_size(p)
    p.add_argument("--reference", type=input_file, metavar="IMAGE", help="reference image to compare with")
    p.add_argument("--snr-min", type=positive_float, default=8.0, help="spot significance threshold (default 8)")
    p.add_argument("--snr-detect", type=positive_float, default=12.0,
                   help="satellite significance needed to declare a superlattice (two satellites, default 12)")
    p.add_argument("--max-denominator", type=positive_int, default=6, help="largest denominator of fractional orders")
    p.add_argument("--lock-in-sigma", type=positive_float, metavar="A", help="lock-in low-pass width (A)")


def run(args) -> int:
    import numpy as np

    from cryomat.lattice.figures import fft_figure, load_image_2d
    from cryomat.lattice.superlattice import compare_superlattices, find_superlattice, lock_in
    from cryomat.outputs import OutputDir
    from cryomat.progress import status
    from cryomat.report import Report
    from cryomat.report.figures import new_figure, show_image

    image, px, _ = load_image_2d(args.image, pixel_size=args.pixel_size)
    ref = None
    if args.reference:
        ref_img, ref_px, _ = load_image_2d(args.reference, pixel_size=args.pixel_size)
    od = OutputDir(args.out, command=NAME, inputs=[args.image] + ([args.reference] if args.reference else []),
                   parameters=parameters_of(args))
    kw = dict(snr_min=args.snr_min, max_denominator=args.max_denominator, snr_detect=args.snr_detect)
    status("superlattice: finding and indexing spots")
    res = find_superlattice(image, pixel_size=px, **kw)
    peaks = res["peaks"]
    cols = ["kx_per_A", "ky_per_A", "d_spacing_A", "angle_deg", "snr", "f1", "f2", "kind", "fraction"]
    results = {"pixel_size_A": px, "superlattice_detected": res["detected"], "n_superlattice_peaks": res["n_superlattice"],
               "q_rlu": res["q_rlu"], "q_per_A": res["q_per_A"],
               "q_wavelength_A": (1.0 / float(np.hypot(*res["q_per_A"]))) if res["q_per_A"] else None,
               "max_satellite_snr": res["q_significance"], "basis_per_A": res["basis_per_A"].tolist()}
    rep = Report("Superlattice analysis", subtitle=str(args.image))
    table = peaks[cols].copy()
    if args.reference:
        status("superlattice: analysing the reference")
        ref = find_superlattice(ref_img, pixel_size=ref_px, basis=None, **kw)
        cmp = compare_superlattices(res, ref)
        od.write_csv("comparison.csv", cmp)
        only_img = cmp[(cmp.found_in == "image") & ~cmp.also_in_other]
        only_ref = cmp[(cmp.found_in == "reference") & ~cmp.also_in_other]
        results["reference"] = {"superlattice_detected": ref["detected"], "q_rlu": ref["q_rlu"],
                                "n_superlattice_peaks": ref["n_superlattice"],
                                "only_in_image": only_img.fraction.tolist(), "only_in_reference": only_ref.fraction.tolist()}
        rep.add_table(cmp.round(4), title="Superlattice spots: image vs reference (comparison.csv)")
    od.write_csv("superlattice_peaks.csv", table)
    fig = fft_figure(image, peaks.assign(phase=peaks.kind, hkl=peaks.fraction), pixel_size=px,
                     title="spots: fundamental / superlattice / other")
    od.save_figure("fft_superlattice.png", fig)
    rep.add_metrics({k: v for k, v in results.items() if not isinstance(v, (list, dict))})
    rep.add_figure("fft_superlattice.png", "Power spectrum; spots labelled with their fractional indices")
    sat = peaks[peaks.kind == "superlattice"].sort_values("snr", ascending=False)
    if len(sat):
        top = sat.iloc[0]
        # default low-pass: one modulation wavelength (enough cells to average, fine enough to see domains)
        sigma = args.lock_in_sigma or (results["q_wavelength_A"] or 20.0)
        amp, phase = lock_in(image, (top.kx_per_A, top.ky_per_A), pixel_size=px, sigma_A=sigma)
        od.write_mrc("lockin_amplitude.mrc", amp.astype(np.float32), pixel_size=px)
        od.write_mrc("lockin_phase.mrc", phase.astype(np.float32), pixel_size=px)
        results["lock_in"] = {"satellite_fraction": top.fraction, "lowpass_sigma_A": sigma, "k_per_A": [top.kx_per_A, top.ky_per_A],
                              "amplitude_mean": float(amp.mean()), "amplitude_cv": float(amp.std() / max(amp.mean(), 1e-12)),
                              "phase_std_rad": float(np.abs(np.exp(1j * phase).mean()) and
                                                     np.sqrt(-2 * np.log(max(abs(np.exp(1j * phase).mean()), 1e-12))))}
        fig, ax = new_figure(2, 1, size=4.5)
        show_image(ax[0, 0], amp, pixel_size=px, title=f"lock-in amplitude at {top.fraction}", cmap="magma")
        ax[0, 1].imshow(phase, cmap="twilight", vmin=-np.pi, vmax=np.pi)
        ax[0, 1].set_axis_off()
        ax[0, 1].set_title("lock-in phase (rad)", fontsize=9)
        od.save_figure("lockin.png", fig)
        rep.add_figure("lockin.png", "Local amplitude and phase of the strongest satellite (lock-in)")
    rep.add_table(table.round(4), title="Spots (superlattice_peaks.csv)")
    rep.write(od.file("report.html"))
    od.write_results(results)
    status(f"superlattice: detected={res['detected']} q={res['q_rlu']}")
    return 0
