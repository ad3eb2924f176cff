"""``cryomat lattice IMAGE --out DIR``: FFT spots, indexing and phase identification (and a phase map)."""

from __future__ import annotations

from cryomat.cli.common import add_out, add_pixel_size, input_file, parameters_of, positive_float, positive_int

NAME = "lattice"
HELP = "find lattice spots in the FFT, index them and identify phases (ambiguous/unknown when undecided)"
DESCRIPTION = (
    "Find Bragg spots in the power spectrum (window + radial median/MAD background, subpixel DTFT "
    "refinement), index them against a phase library by spacing ratios and inter-spot angles with one "
    "global scale factor, and name the phase(s), or say 'ambiguous'/'unknown'. With --map, a sliding-window "
    "phase/orientation map and a domain table.")


def add_arguments(p):
    p.add_argument("image", type=input_file, help="HRTEM/STEM image (MRC, TIFF, DM3/DM4, EMD, SER, HSPY, ...)")
    add_out(p)
    add_pixel_size(p)
    p.add_argument("--phases", default="Li,Li2O,LiF,Li2CO3,ice-Ih,ice-Ic",
                   help="comma-separated library phases to consider (default: the SEI and ice set); 'all' for every one")
    p.add_argument("--cif", nargs="+", default=[], metavar="FILE", help="add phases from CIF files")
    p.add_argument("--temperature", type=positive_float, metavar="K",
                   help="sample temperature (K): use the library's cryogenic cells (default: room-temperature cells)")
    p.add_argument("--pixel-size-error", type=positive_float, default=0.03, metavar="FRACTION",
                   help="expected relative calibration error (prior width of the fitted scale factor, default 0.03)")
    p.add_argument("--snr-min", type=positive_float, default=12.0, help="spot significance threshold (default 12)")
    p.add_argument("--d-min", type=positive_float, metavar="A", help="smallest spacing searched (A, default 2.2 px)")
    p.add_argument("--d-max", type=positive_float, default=20.0, metavar="A", help="largest spacing searched (A)")
    p.add_argument("--max-index", type=positive_int, default=2, help="highest zone-axis index considered (default 2)")
    p.add_argument("--map", action="store_true", help="also make a sliding-window phase/orientation map")
    p.add_argument("--window", type=positive_float, metavar="A", help="map window size (A, default 64 px)")
    p.add_argument("--step", type=positive_float, metavar="A", help="map step (A, default window / 4)")


def _phase_list(args):
    from cryomat.errors import InputError
    from cryomat.lattice import get_phase, list_phases, phase_from_cif

    names = list_phases() if args.phases.strip().lower() == "all" else [s.strip() for s in args.phases.split(",") if s.strip()]
    phases = []
    for n in names:
        try:
            phases.append(get_phase(n, temperature_K=args.temperature))
        except ValueError as exc:
            raise InputError(f"--phases: {exc}") from None
    for c in args.cif:
        try:
            phases.append(phase_from_cif(c))
        except (ValueError, OSError) as exc:
            raise InputError(f"--cif: {exc}", path=c) from None
    if not phases:
        raise InputError("--phases names no phase")
    return phases


def run(args) -> int:
    import numpy as np

    from cryomat.lattice.figures import fft_figure, load_image_2d
    from cryomat.lattice.indexing import identify_phases
    from cryomat.lattice.peaks import find_fft_peaks
    from cryomat.outputs import OutputDir
    from cryomat.progress import status
    from cryomat.report import Report

    phases = _phase_list(args)
    image, px, _meta = load_image_2d(args.image, pixel_size=args.pixel_size)
    od = OutputDir(args.out, command=NAME, inputs=[args.image], parameters=parameters_of(args))
    status(f"lattice: {image.shape[0]} x {image.shape[1]} px at {px:.4g} A/px; finding FFT spots")
    peaks = find_fft_peaks(image, pixel_size=px, d_min=args.d_min, d_max=args.d_max, snr_min=args.snr_min)
    status(f"lattice: {len(peaks)} spots; indexing against {len(phases)} phases")
    k_tol = 1.0 / (min(image.shape) * px)
    pid = identify_phases(peaks, phases=phases, k_tol_per_A=k_tol, sigma_scale=args.pixel_size_error,
                          scale_tolerance=max(2 * args.pixel_size_error, 0.03), snr_min=args.snr_min,
                          max_index=args.max_index)
    table = pid.peaks
    cols = ["kx_per_A", "ky_per_A", "d_spacing_A", "angle_deg", "intensity", "snr", "hkl", "phase", "d_template_A",
            "d_fit_A", "k_per_A"]
    od.write_csv("peaks.csv", table[cols])
    fig = fft_figure(image, table, pixel_size=px, title="power spectrum: indexed spots")
    od.save_figure("fft_indexed.png", fig)
    results = {"pixel_size_A": px, "image_shape_px": list(image.shape), "n_peaks": int(len(table)),
               "phases": pid.phases, "phase": pid.phases[0]["name"] if pid.phases else "unknown"}
    main = next((p for p in pid.phases if p["name"] not in ("ambiguous", "unknown")), None)
    if main is not None:
        # the calibration implied by the identified phase: measured k = s x template k, so the
        # true pixel size is the given one times s
        results["pixel_size_implied_A"] = px * main["scale_factor"]
    rep = Report("Lattice analysis: phase identification", subtitle=str(args.image))
    rep.add_metrics({"pixel_size_A": px, "spots_found": len(table),
                     "phase": results["phase"], **({"pixel_size_implied_A": results["pixel_size_implied_A"]}
                                                   if "pixel_size_implied_A" in results else {})})
    rep.add_figure("fft_indexed.png", "Image and its power spectrum with the spots found; labels are hkl of the "
                                      "identified phase (or the spacing in A when unindexed)")
    import pandas as pd

    rep.add_table(pd.DataFrame([{k: (", ".join(str(x) for x in v) if isinstance(v, list) and k == "zone_axis" else v)
                                 for k, v in p.items() if k not in ("candidates",)} for p in pid.phases]),
                  title="Phases")
    for p in pid.phases:
        if p.get("candidates"):
            names = [c["name"] if isinstance(c, dict) else c for c in p["candidates"]]
            rep.add_text(f"{p['name']}: candidates {', '.join(names)}. {p.get('reason', '')}", note=True)
    rep.add_table(table[cols].round(4), title="Spots (peaks.csv)")
    if args.map:
        from cryomat.lattice.phasemap import phase_map, write_map_outputs

        win = int(round(args.window / px)) if args.window else 64
        step = int(round(args.step / px)) if args.step else max(win // 4, 1)
        pm = phase_map(image, pixel_size=px, phases=phases, window_px=win, step_px=step, snr_min=args.snr_min,
                       pixel_size_error=args.pixel_size_error, max_index=args.max_index)
        results["map"] = write_map_outputs(od, rep, image, pm, pixel_size=px)
    rep.write(od.file("report.html"))
    od.write_results(results)
    status(f"lattice: {results['phase']} -> {od.path}")
    return 0
