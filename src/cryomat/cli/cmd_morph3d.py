"""``cryomat morph3d VOLUME --out DIR``: 3D segmentation and morphology of a reconstruction."""

from __future__ import annotations

NAME = "morph3d"
HELP = ("3D morphology of a tomogram: phases, components (volume, surface, sphericity), volume fractions, "
        "local thickness in nm, skeleton graph, distances between phases")


def add_arguments(p):
    from cryomat.cli.common import add_out, add_pixel_size, nonneg_float, positive_int

    p.add_argument("volume", help="reconstructed volume (MRC, z/row/col)")
    add_out(p)
    add_pixel_size(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--labels", metavar="MASKS.mrc", help="phase labels (0 background, 1..N phases) instead of segmenting")
    g.add_argument("--segment", action="store_true", help="segment by thresholds (the default without --labels)")
    p.add_argument("--phases", type=positive_int, default=1, metavar="N",
                   help="phases besides the background, in order of increasing density (default 1)")
    p.add_argument("--smooth", type=nonneg_float, default=0.5, metavar="VOXELS",
                   help="Gaussian smoothing before thresholds (default 0.5 voxel)")
    p.add_argument("--threshold-method", choices=["edge", "otsu"], default="edge",
                   help="phase thresholds: multi-Otsu moved to each phase's edge midpoint (default), or plain multi-Otsu")
    p.add_argument("--segment-method", choices=["threshold", "learned"], default="threshold",
                   help="threshold (default; --phases, --threshold-method) or learned: a random-forest voxel "
                        "classifier (ilastik / Trainable Weka style) trained from --scribbles or read from --model")
    p.add_argument("--scribbles", metavar="SCRIBBLES.mrc",
                   help="learned: sparse user labels, same shape as the volume: 0 unlabelled, 1 background, "
                        "2..N+1 phases 1..N (phases.mrc gets 0 background, 1..N)")
    p.add_argument("--model", metavar="FILE",
                   help="learned: a classifier written by --save-model (instead of training)")
    p.add_argument("--save-model", metavar="FILE", help="learned: write the trained classifier for the next volumes")
    p.add_argument("--balance-classes", action="store_true",
                   help="learned: weigh every scribble class equally (default: as painted, like ilastik/Weka)")
    p.add_argument("--particle-phase", type=int, metavar="K",
                   help="phase whose components are split and measured as particles (default: the densest)")
    p.add_argument("--distance-to", type=int, metavar="K",
                   help="report each particle's distance to phase K (default: phase 1 when particles are another phase)")
    p.add_argument("--graph-phase", type=int, metavar="K", help="skeleton graph of phase K (graph.graphml)")
    p.add_argument("--min-voxels", type=positive_int, default=4, metavar="N", help="ignore components smaller than N voxels")
    p.add_argument("--prune", type=nonneg_float, default=2.0, metavar="RATIO",
                   help="graph: drop end branches shorter than RATIO x the local thickness (default 2)")


def run(args) -> int:
    import numpy as np
    import pandas as pd

    from cryomat import io
    from cryomat.cli.common import parameters_of
    from cryomat.errors import InputError
    from cryomat.outputs import OutputDir
    from cryomat.progress import status
    from cryomat.report import Report
    from cryomat.report.figures import new_figure, show_image
    from cryomat.tomography import measure3d
    from cryomat.tomography.thickness import local_thickness

    learned = None
    if args.segment_method != "learned" and (args.scribbles or args.model or args.save_model or args.balance_classes):
        raise InputError("--scribbles, --model, --save-model and --balance-classes need --segment-method learned")
    img = io.read(args.volume)
    vol = np.asarray(img.data, np.float32)
    if vol.ndim != 3:
        raise InputError(f"expected a 3D volume, got shape {vol.shape}", path=args.volume)
    px_A = img.require_pixel_size(args.pixel_size)
    vs = px_A / 10.0  # nm per voxel
    if args.labels:
        lab_img = io.read(args.labels)
        phase = np.asarray(lab_img.data).astype(np.int64)
        if phase.shape != vol.shape:
            raise InputError(f"labels shape {phase.shape} differs from the volume's {vol.shape}", path=args.labels)
        if phase.min() < 0:
            raise InputError("labels must be >= 0 (0 is background)", path=args.labels)
        phase = phase.astype(np.uint8)
        n_ph = int(phase.max())
    elif args.segment_method == "learned":
        phase, n_ph, learned = _segment_learned(args, vol)
    else:
        status(f"morph3d: segmenting {args.phases} phase(s)")
        phase = measure3d.segment_phases(vol, n_phases=args.phases, smooth_sigma=args.smooth,
                                         method=args.threshold_method)
        n_ph = args.phases
    if n_ph < 1:
        raise InputError("no phase found (all background); check --phases or the labels", path=args.volume)
    pp = args.particle_phase if args.particle_phase is not None else n_ph
    for name, k in (("--particle-phase", pp), ("--distance-to", args.distance_to), ("--graph-phase", args.graph_phase)):
        if k is not None and not 1 <= k <= n_ph:
            raise InputError(f"{name} {k} is not a phase (1..{n_ph})")
    od = OutputDir(args.out, command=NAME, inputs=[args.volume] + [f for f in (args.labels, args.scribbles, args.model)
                                                                   if f],
                   parameters=parameters_of(args))
    status("morph3d: components")
    comp = measure3d.split_components(phase == pp, min_distance=2)
    table = measure3d.component_table(comp, voxel_size=vs, phase=phase)
    if len(table):
        table = table[table["voxels"] >= args.min_voxels].reset_index(drop=True)
    dist_to = args.distance_to if args.distance_to is not None else (1 if pp != 1 else None)
    if dist_to is not None and len(table):
        d = measure3d.distance_to_phase(comp, phase == dist_to, voxel_size=vs)
        table[f"distance_to_phase{dist_to}_nm"] = d[table["label"].to_numpy() - 1]
    od.write_csv("components.csv", table)
    status("morph3d: local thickness")
    lt = np.zeros(vol.shape, np.float32)
    rows = []
    for k in range(1, n_ph + 1):
        m = phase == k
        if not m.any():
            continue
        t = local_thickness(m, voxel_size=vs)
        lt[m] = t[m]
        vals = t[m]
        rows.append({"phase": k, "voxels": int(m.sum()), "mean_thickness_nm": float(vals.mean()),
                     "median_thickness_nm": float(np.median(vals)), "std_thickness_nm": float(vals.std()),
                     "p10_thickness_nm": float(np.percentile(vals, 10)), "p90_thickness_nm": float(np.percentile(vals, 90))})
    thick = pd.DataFrame(rows)
    od.write_csv("thickness.csv", thick)
    od.write_mrc("thickness.mrc", lt, pixel_size=px_A, volume=True)
    od.write_mrc("phases.mrc", phase.astype(np.int8), pixel_size=px_A, volume=True)
    fractions = measure3d.phase_fractions(phase)
    results = {"voxel_size_nm": vs, "volume_shape_zyx": list(vol.shape), "n_phases": n_ph,
               "volume_fraction_per_phase": {str(k): v for k, v in fractions.items()},
               "particle_phase": pp, "n_particles": int(len(table)),
               "segmentation_method": "labels" if args.labels else args.segment_method,
               "thickness_per_phase_nm": {str(r["phase"]): {k: v for k, v in r.items() if k.endswith("_nm")}
                                          for r in rows}}
    if learned is not None:
        results["learned_segmentation"] = learned
    if len(table):
        results["mean_particle_equivalent_diameter_nm"] = float(table["equivalent_diameter_nm"].mean())
        results["mean_particle_sphericity"] = float(table["sphericity"].mean())
        if dist_to is not None:
            results[f"mean_particle_distance_to_phase{dist_to}_nm"] = float(table[f"distance_to_phase{dist_to}_nm"].mean())
    if args.graph_phase is not None:
        from cryomat.tomography.skeleton import skeleton_graph, write_graphml

        status("morph3d: skeleton graph")
        from scipy import ndimage as ndi

        gm = phase == args.graph_phase
        # segmentation specks (< 1 % of the largest piece) and enclosed holes would add false nodes
        lab, nlab = ndi.label(gm)
        if nlab > 1:
            sizes = np.bincount(lab.ravel())[1:]
            gm = np.isin(lab, 1 + np.nonzero(sizes >= max(0.01 * sizes.max(), args.min_voxels))[0])
        gm = ndi.binary_fill_holes(gm)
        sg = skeleton_graph(gm, voxel_size=vs, prune_ratio=args.prune,
                            thickness=local_thickness(gm, voxel_size=vs) if args.labels is None else lt * gm)
        write_graphml(sg, od.file("graph.graphml"))
        od.write_csv("graph_nodes.csv", sg.nodes_frame().rename(columns={"thickness": "thickness_nm"}))
        od.write_csv("graph_edges.csv", sg.edges_frame().rename(columns={"length": "length_nm",
                                                                        "wall_thickness": "wall_thickness_nm"}))
        results["graph"] = sg.summary("nm")
    fig, ax = new_figure(3, 1, size=3.6)
    zc = vol.shape[0] // 2
    show_image(ax[0, 0], vol[zc], pixel_size=px_A, title=f"volume, plane z = {zc}")
    ax[0, 1].imshow(phase[zc], cmap="viridis", interpolation="nearest")
    ax[0, 1].set_axis_off()
    ax[0, 1].set_title("phases", fontsize=9)
    for r in rows:
        k = r["phase"]
        ax[0, 2].hist(lt[phase == k], bins=40, histtype="step", label=f"phase {k}")
    ax[0, 2].set_xlabel("local thickness (nm)")
    ax[0, 2].legend(fontsize=8)
    od.save_figure("morphology.png", fig)
    rep = Report("3D morphology", subtitle=str(args.volume))
    rep.add_metrics({k: v for k, v in results.items() if not isinstance(v, (dict, list))})
    rep.add_figure("morphology.png", "Central plane, phases and local-thickness distributions")
    if learned is not None:
        rep.add_metrics({"out-of-bag voxel accuracy": learned["oob_voxel_accuracy"],
                         **{f"labelled voxels, scribble class {k}": v
                            for k, v in learned["labelled_voxels_per_class"].items()}},
                        title="Learned segmentation (random forest on scribbles)")
    if len(thick):
        rep.add_table(thick, title="Local thickness per phase (nm)")
    if len(table):
        rep.add_table(table.head(30), title="Components (first 30)")
    if "graph" in results:
        rep.add_metrics({k: v for k, v in results["graph"].items() if not isinstance(v, dict)}, title="Skeleton graph")
    rep.write(od.file("report.html"))
    od.write_results(results)
    status(f"morph3d: wrote {od.path}")
    return 0


def _segment_learned(args, vol):
    """``--segment-method learned``: train on ``--scribbles`` (or read ``--model``), classify every voxel."""
    import numpy as np

    from cryomat import io
    from cryomat.errors import InputError
    from cryomat.progress import status
    from cryomat.tomography import learned_segmentation as ls

    if args.labels:
        raise InputError("--segment-method learned segments the volume; it cannot be combined with --labels")
    if args.model and args.scribbles:
        raise InputError("give either --scribbles (train) or --model (reuse a trained classifier), not both")
    if args.model:
        try:
            clf = ls.PixelClassifier.load(args.model)
        except Exception as e:  # noqa: BLE001 - unreadable or foreign pickle
            raise InputError(f"--model: cannot read a classifier ({e})", path=args.model) from None
    elif not args.scribbles:
        raise InputError("--segment-method learned needs --scribbles SCRIBBLES.mrc (0 unlabelled, 1 background, "
                         "2.. phases) or --model FILE")
    else:
        scr = np.asarray(io.read(args.scribbles).data)
        try:
            scr = ls.check_scribbles(scr, vol.shape)
        except ValueError as e:
            raise InputError(f"--scribbles: {e}", path=args.scribbles) from None
        status(f"morph3d: training a random forest on {int((scr > 0).sum())} labelled voxels")
        clf = ls.train(vol, scr, class_weight="balanced" if args.balance_classes else None)
    if args.save_model:
        clf.save(args.save_model)
    status("morph3d: classifying every voxel")
    phase = ls.predict(clf, vol)
    info = {"source": "model" if args.model else "scribbles",
            "labelled_voxels_per_class": {str(k): v for k, v in clf.labelled_voxels.items()},
            "class_convention": "scribble 1 background -> phase 0, scribble k >= 2 -> phase k-1",
            "oob_voxel_accuracy": clf.oob_accuracy,
            "feature_sigmas_px": [clf.params.sigma_min, clf.params.sigma_max, clf.params.num_sigma]}
    return phase, clf.n_phases, info
