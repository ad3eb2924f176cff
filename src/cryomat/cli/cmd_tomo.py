"""``cryomat tomo TILTSERIES... --out DIR``: align and reconstruct a tilt series."""

from __future__ import annotations

NAME = "tomo"
HELP = "align (fiducial-less) and reconstruct a tilt series: volume.mrc, alignment.csv, .xf/.tlt, FSC"
DESCRIPTION = (HELP + ". Give one stack (MRC/ST/DM3/...) or one image file per tilt (angles then from "
               "--angles or the file names, e.g. tilt_-40.bcf). The tilt axis should run roughly along the "
               "image rows; --tilt-axis gives its angle in the SerialEM/IMOD convention.")


def add_arguments(p):
    from cryomat.cli.common import add_out, add_pixel_size, positive_float, positive_int

    p.add_argument("tiltseries", nargs="+", help="tilt-series stack, or one image file per tilt")
    add_out(p)
    p.add_argument("--angles", metavar="FILE",
                   help="tilt angles: .tlt, .rawtlt, .mdoc, or an AreTomo .aln (whose shifts and rotation are then used)")
    add_pixel_size(p)
    p.add_argument("--tilt-axis", type=float, metavar="DEG",
                   help="tilt-axis angle, SerialEM/IMOD convention (from the vertical, counter-clockwise with "
                        "y up); default: from the .mdoc/.aln, else searched (all directions, 5 deg steps, then refined)")
    p.add_argument("--bin", type=positive_int, default=1, metavar="N", help="bin the images N x N first (default 1)")
    p.add_argument("--method", choices=["wbp", "sirt", "sirt-fbp"], default="wbp",
                   help="weighted back-projection, SIRT, or the SIRT-like filter (default wbp)")
    p.add_argument("--iterations", type=positive_int, default=20, metavar="N",
                   help="SIRT iterations, or the iterations the SIRT-like filter mimics (default 20)")
    p.add_argument("--nonnegative", action="store_true",
                   help="SIRT: clip negative densities after each iteration (positive contrast, e.g. HAADF); "
                        "reduces missing-wedge streaks, for segmentation")
    p.add_argument("--thickness", type=positive_float, metavar="NM", help="volume thickness in nm (default: the width)")
    p.add_argument("--no-align", action="store_true", help="the stack is already aligned; reconstruct only")
    p.add_argument("--fixed-axis", action="store_true", help="keep the tilt-axis angle, refine only the shifts")
    p.add_argument("--xf", metavar="FILE", help="use an IMOD .xf alignment instead of aligning")


def run(args) -> int:
    import numpy as np

    from cryomat.errors import InputError
    from cryomat.cli.common import parameters_of
    from cryomat.io.sidecars import read_xf, write_tlt, write_xf
    from cryomat.outputs import OutputDir
    from cryomat.progress import status
    from cryomat.report import Report
    from cryomat.tomography.conventions import axis_angle_from_psi, psi_from_axis_angle, xf_to_alignment
    from cryomat.tomography.pipeline import orthoslices_figure, run_tomo
    from cryomat.tomography.tiltio import bin_stack, load_tilt_series

    if args.nonnegative and args.method != "sirt":
        raise InputError(f"--nonnegative needs --method sirt (got --method {args.method})")
    ts = load_tilt_series(args.tiltseries, angles_file=args.angles)
    px0 = args.pixel_size if args.pixel_size is not None else ts.pixel_size
    if px0 is None:
        raise InputError("the file gives no pixel size; pass --pixel-size in Angstrom", path=args.tiltseries[0])
    px = float(px0) * args.bin
    stack = bin_stack(ts.stack, args.bin)
    n, ny, nx = stack.shape
    axis = args.tilt_axis if args.tilt_axis is not None else (ts.axis_angle_deg or 0.0)
    psi0 = psi_from_axis_angle(axis)
    thickness = None
    if args.thickness is not None:
        thickness = max(1, int(round(args.thickness * 10.0 / px)))
    shifts = None
    if args.xf:
        xf = read_xf(args.xf)
        if xf.shape[0] != n:
            raise InputError(f"{xf.shape[0]} transforms for {n} tilts", path=args.xf)
        sh, psis = xf_to_alignment(xf[ts.order])
        shifts, psi0 = sh / args.bin, float(np.median(psis))
    elif args.angles and str(args.angles).lower().endswith(".aln"):
        from cryomat.tomography.conventions import aln_to_alignment, read_aln

        a = aln_to_alignment(read_aln(args.angles)[0])
        if a["shifts_px"].shape[0] == n:  # AreTomo's own alignment of the same (raw-size) stack
            shifts, psi0 = a["shifts_px"][ts.order] / args.bin, float(np.median(a["psi_deg"]))
    inputs = list(args.tiltseries) + [a for a in (args.angles, args.xf) if a]
    od = OutputDir(args.out, command=NAME, inputs=inputs, parameters=parameters_of(args))
    res = run_tomo(stack, ts.angles_deg, pixel_size=px, psi_deg=psi0, align=not args.no_align,
                   refine_axis=not args.fixed_axis, method=args.method, iterations=args.iterations,
                   nonnegative=args.nonnegative,
                   thickness=thickness, shifts_px=shifts,
                   search_axis=(args.tilt_axis is None and ts.axis_angle_deg is None and not args.fixed_axis
                                and shifts is None))
    vol = res["volume"]
    ali = res["alignment"]
    status("tomo: writing outputs")
    od.write_mrc("volume.mrc", vol, pixel_size=px, volume=True)
    od.write_mrc("aligned_stack.mrc", res["aligned"], pixel_size=px)
    table = ali.to_frame()
    table.insert(1, "source", ts.sources)
    table["shift_row_A"] = table["shift_row_px"] * px
    table["shift_col_A"] = table["shift_col_px"] * px
    od.write_csv("alignment.csv", table)
    stem = "tiltseries"
    write_xf(od.file(f"{stem}.xf"), ali.to_xf())
    write_tlt(od.file(f"{stem}.tlt"), ts.angles_deg)
    od.save_figure("orthoslices.png", orthoslices_figure(vol, pixel_size=px, title=f"{args.method} reconstruction"))
    from cryomat.report.figures import new_figure

    fig, ax = new_figure(2, 1, size=3.6)
    ax[0, 0].plot(ts.angles_deg, table["shift_row_px"], "o-", ms=3, label="row (along axis)")
    ax[0, 0].plot(ts.angles_deg, table["shift_col_px"], "o-", ms=3, label="col (across axis)")
    ax[0, 0].set_xlabel("tilt (deg)")
    ax[0, 0].set_ylabel("shift (px)")
    ax[0, 0].legend(fontsize=8)
    fsc = res["fsc"]
    results = {"n_tilts": n, "tilt_range_deg": [float(ts.angles_deg.min()), float(ts.angles_deg.max())],
               "angle_source": ts.angle_source, "pixel_size_A": px, "volume_shape_zyx": list(vol.shape),
               "voxel_size_A": px, "tilt_axis_deg_imod": axis_angle_from_psi(res["psi_deg"]),
               "tilt_axis_psi_deg": res["psi_deg"], "method": args.method,
               "alignment_residual_px": float(np.nanmean(ali.residual_px)) if np.isfinite(ali.residual_px).any()
               else None,
               "mean_reprojection_cc": float(np.nanmean(ali.score)) if np.isfinite(ali.score).any() else None,
               "max_abs_shift_px": float(np.abs(res["shifts_px"]).max()),
               "timings_s": res["timings_s"]}
    if fsc is not None:
        fr = fsc.to_frame()
        od.write_csv("fsc_even_odd.csv", fr.rename(columns={"frc": "fsc"}))
        r143, r05 = fsc.resolution(0.143), fsc.resolution(0.5)
        results["fsc_even_odd_0143_A"] = r143
        results["fsc_even_odd_05_A"] = r05
        ax[0, 1].plot(fsc.freq_per_A[1:], fsc.frc[1:], label="even/odd tilts")
        ax[0, 1].axhline(0.143, color="gray", ls="--", lw=0.8)
        ax[0, 1].set_xlabel("spatial frequency (1/A)")
        ax[0, 1].set_ylabel("FSC")
        ax[0, 1].legend(fontsize=8)
    od.save_figure("alignment_fsc.png", fig)
    rep = Report("Tilt-series reconstruction", subtitle=", ".join(str(s) for s in args.tiltseries[:3]))
    rep.add_metrics({k: v for k, v in results.items() if not isinstance(v, (list, dict))})
    rep.add_figure("orthoslices.png", "Central orthogonal slices of the reconstruction")
    rep.add_figure("alignment_fsc.png", "Per-tilt shifts and the FSC of even/odd-tilt half reconstructions")
    for name in ("volume.mrc", "alignment.csv", f"{stem}.xf", f"{stem}.tlt"):
        rep.add_link(name, name)
    rep.write(od.file("report.html"))
    od.write_results(results)
    status(f"tomo: wrote {od.path}")
    return 0
