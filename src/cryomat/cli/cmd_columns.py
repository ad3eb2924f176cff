"""``cryomat columns IMAGE --out DIR``: atomic columns, average lattice, displacements (pm), PLD map."""

from __future__ import annotations

from cryomat.cli.common import add_out, add_pixel_size, input_file, parameters_of, positive_float

NAME = "columns"
HELP = "find and refine atomic columns (2D Gaussians), fit the average lattice, map displacements in pm and the PLD"
DESCRIPTION = (
    "Columns are found as local maxima, refined all at once with 2D Gaussians (Poisson maximum likelihood "
    "for counted data), split into sublattices by intensity, and compared with the least-squares average "
    "lattice of the brightest sublattice: columns.csv has per-column displacement vectors in pm; a periodic "
    "lattice displacement (PLD) is fitted as u = A e sin(2 pi q.ij + phi).")


def add_arguments(p):
    p.add_argument("image", type=input_file, help="atomic-resolution image (ADF/HAADF: bright columns)")
    add_out(p)
    add_pixel_size(p)
    p.add_argument("--separation", type=positive_float, metavar="A",
                   help="smallest column-to-column distance (A; default from the FFT)")
    p.add_argument("--invert", action="store_true", help="columns are dark (ABF/BF): invert the contrast first")
    p.add_argument("--sublattices", type=int, choices=[1, 2], default=2, help="split columns by intensity (default 2)")
    p.add_argument("--threshold", type=positive_float, default=0.15,
                   help="column detection threshold, fraction of the image range (default 0.15)")
    p.add_argument("--pld-q", nargs=2, type=float, metavar=("Q1", "Q2"),
                   help="PLD wave vector in reciprocal-lattice units of (a1, a2) (default: found by a DFT)")


def run(args) -> int:
    import numpy as np

    from cryomat.lattice.columns import analyse_columns, fit_modulation
    from cryomat.lattice.figures import load_image_2d
    from cryomat.outputs import OutputDir
    from cryomat.progress import status
    from cryomat.report import Report

    image, px, _ = load_image_2d(args.image, pixel_size=args.pixel_size)
    if args.invert:
        image = image.max() - image
    od = OutputDir(args.out, command=NAME, inputs=[args.image], parameters=parameters_of(args))
    status(f"columns: {image.shape[0]} x {image.shape[1]} px at {px:.4g} A/px")
    sep = args.separation / px if args.separation else None
    res = analyse_columns(image, pixel_size=px, separation_px=sep, threshold_rel=args.threshold,
                          n_sublattices=args.sublattices)
    cols, lat = res["columns"], res["lattice"]
    cols["row_A"] = cols.row_px * px
    cols["col_A"] = cols.col_px * px
    cols["displacement_pm"] = np.hypot(cols.dr_pm, cols.dc_pm)
    status(f"columns: {len(cols)} columns; lattice {lat.to_dict(px)['a1_A']:.4f} x {lat.to_dict(px)['a2_A']:.4f} A")
    m = cols.on_lattice.to_numpy()
    pld = None
    if m.sum() >= 8:
        pld = fit_modulation(cols[["i", "j"]].to_numpy()[m], cols[["dr_pm", "dc_pm"]].to_numpy()[m],
                             q=args.pld_q)
        arg = 2 * np.pi * cols[["i", "j"]].to_numpy() @ np.asarray(pld["q_rlu"])
        cols["pld_pm"] = cols[["dr_pm", "dc_pm"]].to_numpy() @ np.asarray(pld["polarization_rowcol"])
        pld = {"q_rlu": pld["q_rlu"], "amplitude_pm": pld["amplitude"], "polarization_rowcol": pld["polarization_rowcol"],
               "phase_deg": pld["phase_deg"], "residual_rms_pm": pld["residual_rms"],
               "wavelength_A": float(1.0 / max(np.linalg.norm(np.asarray(pld["q_rlu"]) @ np.linalg.inv(
                   np.stack([lat.a1, lat.a2]) * px).T), 1e-12))}
        del arg
    keep = ["row_px", "col_px", "row_A", "col_A", "sublattice", "i", "j", "on_lattice", "amplitude", "sigma_px",
            "background", "dr_pm", "dc_pm", "displacement_pm"] + (["pld_pm"] if "pld_pm" in cols else [])
    od.write_csv("columns.csv", cols[keep])
    ld = lat.to_dict(px)
    counts = {f"sublattice_{s}": int((cols.sublattice == s).sum()) for s in sorted(cols.sublattice.unique())}
    on = cols[cols.on_lattice]
    results = {"pixel_size_A": px, "n_columns": int(len(cols)), "n_columns_per_sublattice": counts,
               "lattice": ld, "lattice_a1_A": ld["a1_A"], "lattice_a2_A": ld["a2_A"],
               "displacement_rms_pm": float(np.sqrt(np.mean(on.dr_pm**2 + on.dc_pm**2))) if len(on) else None,
               "pld": pld, "separation_px": res["separation_px"]}
    _figures(od, image, cols, px, pld)
    rep = Report("Atomic columns: lattice, displacements, PLD", subtitle=str(args.image))
    rep.add_metrics({"columns": len(cols), **counts, "a1_A": ld["a1_A"], "a2_A": ld["a2_A"],
                     "angle_a1_a2_deg": ld["angle_a1_a2_deg"], "displacement_rms_pm": results["displacement_rms_pm"],
                     **({"pld_amplitude_pm": pld["amplitude_pm"], "pld_wavelength_A": pld["wavelength_A"]} if pld else {})})
    rep.add_figure("columns.png", "Refined columns coloured by sublattice")
    rep.add_figure("displacements.png", "Displacement vectors from the average lattice (exaggerated) and the PLD "
                                        "component along its polarisation (pm)")
    rep.add_table(cols[keep].round(3), title="Columns (columns.csv)")
    rep.write(od.file("report.html"))
    od.write_results(results)
    return 0


def _figures(od, image, cols, px, pld):
    import numpy as np

    from cryomat.report.figures import new_figure, show_image

    fig, ax = new_figure(1, 1, size=6.0)
    show_image(ax[0, 0], image, pixel_size=px, title=f"{len(cols)} columns")
    for s, c in zip(sorted(cols.sublattice.unique()), ["#e41a1c", "#377eb8", "#4daf4a"]):
        sel = cols[cols.sublattice == s]
        ax[0, 0].plot(sel.col_px, sel.row_px, "o", ms=3, mfc="none", color=c, label=f"sublattice {s}")
    ax[0, 0].legend(fontsize=8, loc="upper right")
    od.save_figure("columns.png", fig)
    fig, ax = new_figure(2, 1, size=5.0)
    show_image(ax[0, 0], image, pixel_size=px, title="displacements (arrows x{})".format(
        int(max(1, round(0.3 * np.median(cols.sigma_px) * px * 100 / max(np.percentile(cols.displacement_pm, 90), 1e-3))))))
    sc = max(1, round(0.3 * np.median(cols.sigma_px) * px * 100 / max(np.percentile(cols.displacement_pm, 90), 1e-3)))
    ax[0, 0].quiver(cols.col_px, cols.row_px, cols.dc_pm / (px * 100) * sc, cols.dr_pm / (px * 100) * sc,
                    color="yellow", angles="xy", scale_units="xy", scale=1, width=0.004)
    if "pld_pm" in cols:
        lim = max(np.percentile(np.abs(cols.pld_pm), 98), 1e-3)
        im = ax[0, 1].scatter(cols.col_A, cols.row_A, c=cols.pld_pm, cmap="RdBu_r", vmin=-lim, vmax=lim, s=18)
        ax[0, 1].invert_yaxis()
        ax[0, 1].set_aspect("equal")
        ax[0, 1].set_title(f"PLD component (pm), q = {np.round(pld['q_rlu'], 3).tolist()} r.l.u.", fontsize=9)
        ax[0, 1].set_xlabel("col (A)")
        ax[0, 1].set_ylabel("row (A)")
        fig.colorbar(im, ax=ax[0, 1], shrink=0.8)
    else:
        ax[0, 1].set_axis_off()
    od.save_figure("displacements.png", fig)
