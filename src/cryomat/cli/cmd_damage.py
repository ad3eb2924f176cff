"""``cryomat damage SERIES --out DIR``: critical dose, FRC/FRPR against fluence, fluence to MGy."""

from __future__ import annotations

from pathlib import Path

from cryomat.cli.common import add_out, add_pixel_size, nonneg_float, parameters_of, positive_float, positive_int

NAME = "damage"
HELP = "beam-damage benchmarking of a dose series: Bragg-peak decay, critical dose, FRC/FRPR vs dose"
DESCRIPTION = (
    "Follow the crystalline reflections of a dose series (a movie, or images of the same area in "
    "order), fit I/I0 = exp(-D/Dc) + offset with bootstrap 95 % intervals, per d-spacing too, and "
    "compute FRC/FRPR against cumulative fluence (vs the first frame and between consecutive frames; "
    "thresholds 0.5, 0.143, half-bit and 45 deg). Fluence is converted to MGy from the collision "
    "stopping power of --composition at --voltage. --compare A B ... plots earlier results (output "
    "folders) or series files together.")


def add_arguments(p):
    p.add_argument("series", nargs="*", help="dose series: one stack (MRC/TIFF/...) or several single images in order")
    add_out(p)
    add_pixel_size(p)
    p.add_argument("--dose-per-frame", type=positive_float, metavar="E_PER_A2", help="fluence per frame (e/A^2)")
    p.add_argument("--dose-rate", type=positive_float, metavar="E_PER_A2_PER_S", help="flux (e/A^2/s); needs --frame-time")
    p.add_argument("--frame-time", type=positive_float, metavar="S", help="exposure time per frame (s)")
    p.add_argument("--doses", metavar="LIST|FILE",
                   help="cumulative fluence at the end of each frame (e/A^2): comma-separated, or a text file, one a line")
    p.add_argument("--pre-exposure", type=nonneg_float, default=0.0, metavar="E_PER_A2",
                   help="fluence received before the first frame (e/A^2, default 0)")
    p.add_argument("--voltage", type=positive_float, metavar="KV", help="acceleration voltage (kV; default: file, else 300)")
    p.add_argument("--composition", default="H2O", metavar="FORMULA",
                   help="chemical formula for the MGy conversion (default H2O, i.e. vitreous ice)")
    p.add_argument("--density", type=positive_float, metavar="G_PER_CM3", help="density (g/cm^3; density-effect correction)")
    p.add_argument("--align", action="store_true", help="correct drift before FRC/FRPR")
    p.add_argument("--align-method", choices=["auto", "streaming", "registration"], default="auto",
                   help="'registration' (cryomat.registration, stack in memory), 'streaming' (frame by frame, "
                        "low memory); default auto: registration up to 512 MB")
    p.add_argument("--band", nargs=2, type=positive_float, metavar=("LOW_A", "HIGH_A"),
                   help="resolution band (A) for the FRC/FRPR threshold doses (default: band of the reflections)")
    p.add_argument("--frc-group", type=positive_int, metavar="N",
                   help="frames summed per FRC/FRPR point (default: enough for 5 e/pixel)")
    p.add_argument("--model", choices=["auto", "single", "two-stage"], default="auto", help="decay model (default auto)")
    p.add_argument("--z-threshold", type=positive_float, default=12.0, help="reflection detection threshold (sigma, default 12)")
    p.add_argument("--max-reflections", type=positive_int, default=60, help="strongest reflections tracked (default 60)")
    p.add_argument("--n-boot", type=positive_int, default=400, help="bootstrap replicates (default 400)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--compare", nargs="+", metavar="RESULT", help="compare earlier output folders (or series files)")


def _parse_doses(text: str):
    import numpy as np

    from cryomat.errors import InputError

    path = Path(text)
    try:
        if path.exists():
            vals = [float(v) for v in path.read_text().replace(",", " ").split()]
        else:
            vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--doses: expected numbers (e/A^2), comma-separated or one a line, got {text!r}") from None
    return np.asarray(vals)


def _load_series(paths, pixel_size):
    import numpy as np

    from cryomat import io
    from cryomat.errors import InputError

    imgs = [io.read(p) for p in paths]
    if len(imgs) == 1:
        img = imgs[0]
        if img.ndim == 2:
            raise InputError("holds a single image; a dose series needs several frames of the same area "
                             "(a stack, or several files in order)", path=paths[0])
        if img.ndim != 3 or img.signal == "spectrum":
            raise InputError(f"expected a (frame, row, col) stack, got axes {img.axes}", path=paths[0])
        return img.data, img.require_pixel_size(pixel_size), img
    shapes = {tuple(i.shape) for i in imgs}
    if any(i.ndim != 2 for i in imgs) or len(shapes) != 1:
        raise InputError(f"several series files must be single images of one shape; got shapes {sorted(shapes)}")
    return np.stack([np.asarray(i.data) for i in imgs]), imgs[0].require_pixel_size(pixel_size), imgs[0]


def _resolve_dose(args, img):
    from cryomat.errors import InputError

    acq = img.acquisition
    if args.doses:
        return None, _parse_doses(args.doses)
    if args.dose_per_frame is not None:
        if args.dose_rate is not None:
            raise InputError("give either --dose-per-frame or --dose-rate with --frame-time, not both")
        return args.dose_per_frame, None
    if args.dose_rate is not None:
        ft = args.frame_time if args.frame_time is not None else acq.frame_time_s
        if ft is None:
            raise InputError("--dose-rate needs --frame-time (s): the file does not give the frame time")
        return args.dose_rate * ft, None
    if args.frame_time is not None:
        raise InputError("--frame-time needs --dose-rate (e/A^2/s) to give the fluence per frame")
    if acq.dose_per_frame_e_per_A2:
        return float(acq.dose_per_frame_e_per_A2), None
    raise InputError("the dose is unknown: the file does not give it; pass --dose-per-frame (e/A^2), "
                     "or --dose-rate (e/A^2/s) with --frame-time (s), or --doses")


def run(args) -> int:
    from cryomat.errors import InputError

    if args.compare:
        return _run_compare(args)
    if not args.series:
        raise InputError("give a dose series file (or several images in order), or --compare RESULT ...")
    return _run_single(args)


def _analyse(args, paths):
    from cryomat.damage import analyse_dose_series

    frames, px, img = _load_series(paths, args.pixel_size)
    dpf, doses = _resolve_dose(args, img)
    voltage = args.voltage or img.acquisition.voltage_kV or 300.0
    res = analyse_dose_series(frames, pixel_size=px, dose_per_frame=dpf, doses=doses,
                              pre_exposure=args.pre_exposure, voltage_kV=voltage, composition=args.composition,
                              density_g_per_cm3=args.density, align=args.align_method if args.align else False,
                              band_A=tuple(args.band) if args.band else None, z_threshold=args.z_threshold,
                              max_reflections=args.max_reflections, n_boot=args.n_boot, model=args.model,
                              frc_group=args.frc_group, seed=args.seed)
    return res, px, voltage


def _run_single(args) -> int:
    import pandas as pd

    from cryomat.damage.figures import decay_figure, frc_figure, spectrum_figure
    from cryomat.damage.stopping import material
    from cryomat.outputs import OutputDir
    from cryomat.progress import status
    from cryomat.report import Report

    paths = [Path(p) for p in args.series]
    out = OutputDir(args.out, command="damage", inputs=paths, parameters=parameters_of(args))
    res, px, voltage = _analyse(args, paths)
    s = dict(res.summary)
    s["voltage_kV"] = voltage
    s["pixel_size_A"] = px
    s["material"] = material(args.composition, density_g_per_cm3=args.density).to_dict()
    s["n_frames"] = int(len(res.curve))
    mgy = s["dose_MGy_per_e_per_A2"]
    out.write_csv("dose_curve.csv", res.curve)
    out.write_csv("reflections.csv", res.reflections)
    out.write_csv("fits_by_d_spacing.csv", res.shells)
    rows = []
    for g in range(res.frc_first.shape[0]):
        rows.append(pd.DataFrame({"frc_group": g, "freq_per_A": res.freq_per_A, "frc_vs_first": res.frc_first[g],
                                  "frc_consecutive": res.frc_consecutive[g], "frpr_vs_first_deg": res.frpr_first[g]}))
    out.write_csv("frc_curves.csv", pd.concat(rows, ignore_index=True))
    fits = {"summed": res.fit.to_dict() if res.fit else None,
            "by_d_spacing": [{"shell": sh, "d_spacing_A": float(res.shells.loc[res.shells["shell"] == sh,
                                                                                "d_spacing_A"].iloc[0]),
                              **(f.to_dict() if f else {"model": "failed"})} for sh, f in res.shell_fits],
            "by_reflection": [{"reflection": j, **(f.to_dict() if f else {"model": "failed"})}
                              for j, f in enumerate(res.reflection_fits)]}
    out.write_json("fits.json", fits)
    out.save_figure("decay.png", decay_figure(res, mgy=mgy))
    out.save_figure("frc_frpr.png", frc_figure(res, mgy=mgy))
    out.save_figure("reflections.png", spectrum_figure(res, pixel_size=px))
    rep = Report("Beam damage: critical dose and FRC/FRPR against fluence", subtitle=", ".join(map(str, paths)))
    headline = {k: v for k, v in s.items() if not isinstance(v, (list, dict)) and k not in
                ("dose_convention", "frc_convention", "recommended_dose_budget_basis")}
    rep.add_metrics(headline)
    if not s["n_reflections"]:
        rep.add_text("No crystalline reflection was found in the early frames (threshold --z-threshold); "
                     "no critical dose can be fitted. FRC/FRPR against dose are still reported.", note=True)
    rep.add_text(f"Recommended dose budget: {s['recommended_dose_budget_basis']}.", note=True)
    rep.add_text(f"FRC/FRPR conventions: {s['frc_convention']}. Dose: {s['dose_convention']}.", note=True)
    rep.add_figure("decay.png", "Bragg intensity against cumulative fluence, with the fitted decays")
    rep.add_figure("frc_frpr.png", "FRC and FRPR against fluence (both conventions), FRC curves")
    rep.add_figure("reflections.png", "Tracked reflections; critical dose against d-spacing")
    if len(res.shells):
        rep.add_table(res.shells, title="Critical dose by d-spacing")
    rep.add_link("dose_curve.csv", "Per-frame table (dose_curve.csv)")
    rep.write(out.file("report.html"))
    out.write_results(s)
    dc = s["critical_dose_e_per_A2"]
    status(f"damage: {s['n_reflections']} reflections; critical dose "
           f"{'n/a' if dc is None else f'{dc:.3g} e/A^2 ({dc * mgy:.3g} MGy)'}; report {out.path / 'report.html'}")
    return 0


def _run_compare(args) -> int:
    import json

    import pandas as pd

    from cryomat.damage.figures import compare_figure
    from cryomat.errors import InputError
    from cryomat.outputs import OutputDir
    from cryomat.report import Report

    paths = [Path(p) for p in args.compare]
    inputs = [p / "results.json" if p.is_dir() else p for p in paths]
    out = OutputDir(args.out, command="damage --compare", inputs=inputs, parameters=parameters_of(args))
    entries = []
    for p in paths:
        if p.is_dir():
            rj, cj = p / "results.json", p / "dose_curve.csv"
            if not rj.exists() or not cj.exists():
                raise InputError("not a 'cryomat damage' output folder (no results.json / dose_curve.csv)", path=p)
            r = json.loads(rj.read_text()).get("results", {})
            curve = pd.read_csv(cj)
        else:
            res, _, _ = _analyse(args, [p])
            r, curve = res.summary, res.curve
        entries.append({"name": p.name, "curve": curve, "critical_dose_e_per_A2": r.get("critical_dose_e_per_A2"),
                        "ci": r.get("critical_dose_ci95_e_per_A2"),
                        "critical_dose_MGy": r.get("critical_dose_MGy"),
                        "frc_threshold_dose_e_per_A2": r.get("frc_threshold_dose_e_per_A2"),
                        "frpr_threshold_dose_e_per_A2": r.get("frpr_threshold_dose_e_per_A2")})
    table = pd.DataFrame([{k: (v if k != "ci" else None) for k, v in e.items() if k not in ("curve", "ci")}
                          | {"ci_low_e_per_A2": (e["ci"] or [None, None])[0],
                             "ci_high_e_per_A2": (e["ci"] or [None, None])[1]} for e in entries])
    out.write_csv("compare.csv", table)
    out.save_figure("compare.png", compare_figure(entries))
    rep = Report("Beam damage: comparison of dose series")
    rep.add_figure("compare.png", "Bragg intensity against fluence and critical doses")
    rep.add_table(table)
    rep.write(out.file("report.html"))
    out.write_results({"series": table.to_dict(orient="records")})
    return 0

