"""``cryomat timecourse DIRS... --times 48h,52h,... --out DIR``: populations across aliquots."""

from __future__ import annotations

NAME = "timecourse"
HELP = "population statistics across time points (aliquots): sizes, class fractions, JMAK fit"


def add_arguments(p):
    from cryomat.cli.common import add_out, add_pixel_size, positive_float

    p.add_argument("conditions", nargs="+", help="one folder (images or particles.csv) per time point")
    p.add_argument("--times", required=True, help="time of each folder, e.g. 48h,52h,56h,60h")
    add_out(p)
    add_pixel_size(p)
    p.add_argument("--dose", type=positive_float, metavar="E_PER_A2", help="fluence of the images (e/A^2)")
    p.add_argument("--n-classes", default="auto", help="number of morphology classes, or auto (silhouette, as in cryomat classify)")
    p.add_argument("--class-column", help="use this column of the particle tables as the class instead")
    p.add_argument("--transformed-class", help="class whose fraction is the transformed fraction "
                   "(default: the one that grows most)")
    p.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    import numpy as np
    import pandas as pd

    from cryomat.cli.common import parameters_of
    from cryomat.errors import InputError
    from cryomat.outputs import OutputDir
    from cryomat.progress import progress, status
    from cryomat.report import Report
    from cryomat.report.figures import new_figure
    from cryomat.tracking.timecourse import fit_jmak, load_condition, parse_times, population_summary

    times = parse_times(args.times)
    if len(times) != len(args.conditions):
        raise InputError(f"--times gives {len(times)} times for {len(args.conditions)} folders")
    out = OutputDir(args.out, command="timecourse", parameters=parameters_of(args))
    tables = []
    for folder, t in progress(list(zip(args.conditions, times)), total=len(times), desc="aliquots"):
        tab = load_condition(folder, pixel_size=args.pixel_size, dose_e_per_A2=args.dose)
        tab = tab.assign(condition=str(folder), time_h=t)
        tables.append(tab)
        status(f"timecourse: {folder}: {len(tab)} particles at t = {t:g} h")
    parts = pd.concat(tables, ignore_index=True)
    if parts.empty:
        raise InputError("no particles found in any folder")
    if args.class_column:
        if args.class_column not in parts.columns:
            raise InputError(f"--class-column {args.class_column!r} is not a column of the particle tables")
        classes = parts[args.class_column].astype(str).to_numpy()
        stability = None
    else:
        from cryomat.measure.classify import cluster_shapes, shape_features

        k = args.n_classes if args.n_classes == "auto" else int(args.n_classes)
        cl = cluster_shapes(shape_features(parts), n_classes=k, seed=args.seed)
        classes = np.array([f"class{c}" for c in cl.labels])
        stability = cl.stability_mean
    parts["class"] = classes
    sizes, frac, test = population_summary(parts, classes)
    piv = frac.pivot(index="time_h", columns="class", values="fraction").fillna(0.0).sort_index()
    target = args.transformed_class or str((piv.iloc[-1] - piv.iloc[0]).idxmax())
    if target not in piv.columns:
        raise InputError(f"--transformed-class {target!r} is not one of {list(piv.columns)}")
    jm = fit_jmak(piv.index.to_numpy(), piv[target].to_numpy())
    out.write_csv("particles.csv", parts)
    out.write_csv("sizes_by_time.csv", sizes)
    out.write_csv("class_fractions.csv", frac)
    fig, ax = new_figure(2, 1, size=4.2)
    ax[0, 0].stackplot(piv.index, piv.T.to_numpy(), labels=piv.columns)
    ax[0, 0].set_xlabel("time (h)")
    ax[0, 0].set_ylabel("fraction of particles")
    ax[0, 0].legend(fontsize=7, loc="upper left")
    ax[0, 0].set_title("how the forms evolve", fontsize=9)
    for t, g in parts.groupby("time_h"):
        ax[0, 1].hist(g["equivalent_diameter_nm"], bins=30, histtype="step", label=f"{t:g} h", density=True)
    ax[0, 1].set_xlabel("equivalent diameter (nm)")
    ax[0, 1].legend(fontsize=7)
    out.save_figure("timecourse.png", fig)
    results = {"n_time_points": len(times), "n_particles": int(len(parts)), "classes": sorted(set(classes)),
               "class_stability_ari": stability, "mix_changes_chi2_p_value": test.get("p_value"),
               "transformed_class": target, "jmak": jm}
    rep = Report("Time course across aliquots")
    rep.add_figure("timecourse.png", "class fractions against time and size distributions per time point")
    rep.add_metrics({k: v for k, v in results.items() if not isinstance(v, (dict, list))})
    rep.add_metrics(jm, title="JMAK fit of the transformed fraction")
    rep.add_table(sizes, title="Sizes per time point")
    rep.add_table(frac, title="Class fractions (Wilson 95% intervals)", max_rows=60)
    rep.write(out.file("report.html"))
    out.write_results(results)
    return 0
