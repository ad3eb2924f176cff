"""``cryomat classify particles.csv --out DIR``: morphology classes, their stability and fractions."""

from __future__ import annotations

import json
from pathlib import Path

NAME = "classify"
HELP = "group particles by shape (unsupervised, with bootstrap stability) or classify them from a few labels"


def _n_classes(text: str):
    if text == "auto":
        return "auto"
    from cryomat.cli.common import positive_int

    return positive_int(text)


def add_arguments(p):
    from cryomat.cli.common import add_out, input_file, positive_int

    p.add_argument("tables", nargs="+", type=input_file, help="particles.csv file(s) written by cryomat segment")
    add_out(p)
    p.add_argument("--n-classes", type=_n_classes, default="auto", metavar="K|auto",
                   help="number of classes for unsupervised grouping (default auto: K = 2..7 chosen by --k-criterion; "
                        "1, no class structure, when the chosen K's silhouette is below 0.25 or does not beat that of "
                        "one Gaussian population by 0.05)")
    p.add_argument("--k-criterion", choices=["silhouette", "bic"], default="silhouette",
                   help="how auto chooses K: highest mean silhouette of the mixture's partition (default) or "
                        "lowest BIC (tends to over-split non-Gaussian classes)")
    p.add_argument("--model", choices=["auto", "gaussian", "logistic", "forest"], default="auto",
                   help="supervised classifier: gaussian (Gaussian classes, covariances shrunk toward the pooled one, "
                        "fitted by EM over the labelled and the unlabelled particles), class-balanced logistic "
                        "regression or random forest; "
                        "auto = gaussian, with the cross-validated macro-F1 of all three reported (default)")
    p.add_argument("--labels", type=input_file, metavar="CSV",
                   help="labelled objects: columns image, label, class (label = row of particles.csv) or image, "
                        "row_px, col_px, class (a point on the object, e.g. clicked in an overlay): supervised "
                        "classification")
    p.add_argument("--conditions", type=input_file, metavar="CSV",
                   help="map of images to conditions (columns image, condition); fractions and a test per condition")
    p.add_argument("--include-size", action="store_true", help="use the size as a feature (default: shape only)")
    p.add_argument("--include-border", action="store_true", help="keep particles cut by the image border")
    p.add_argument("--bootstrap", type=positive_int, default=20, help="bootstrap refits for the stability (default 20)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    feat = p.add_mutually_exclusive_group()
    feat.add_argument("--no-image-features", action="store_true",
                   help="do not fit projection models (flat square, flat disc, dome) to the images named in the "
                        "segment run's results.json (default: fit them when the images and label masks are found)")
    feat.add_argument("--image-features", type=input_file, metavar="CSV",
                   help="reuse projection-model features of an earlier run (its classes.csv, or any CSV with columns "
                        "image, label, llr_ratio_square_dome, llr_ratio_disc_dome) instead of fitting them again")


def _read_tables(paths):
    import pandas as pd

    from cryomat.errors import InputError

    out = []
    for p in paths:
        try:
            t = pd.read_csv(p)
        except Exception as exc:
            raise InputError(f"cannot read as CSV ({exc})", path=p) from exc
        need = {"image", "label", "equivalent_diameter_nm", "circularity", "aspect_ratio", "feret_max_nm",
                "feret_min_nm", "solidity", "convexity"}
        missing = need - set(t.columns)
        if missing:
            raise InputError(f"not a particles table (missing {', '.join(sorted(missing))})", path=p)
        t["_table"] = str(p)
        out.append(t)
    return pd.concat(out, ignore_index=True)


def run(args) -> int:
    import numpy as np
    import pandas as pd

    from cryomat.cli.common import parameters_of
    from cryomat.errors import InputError
    from cryomat.measure.classify import (class_fractions, class_probabilities, cluster_shapes, compare_groups,
                                          posterior_fractions, predict_classes, shape_features, train_classifier)
    from cryomat.measure.projection import PROJECTION_COLUMNS
    from cryomat.outputs import OutputDir
    from cryomat.progress import status

    inputs = list(args.tables) + [p for p in (args.labels, args.conditions) if p]
    od = OutputDir(args.out, command=NAME, inputs=inputs, parameters=parameters_of(args))
    table = _read_tables(args.tables)
    if not args.include_border and "touches_border" in table.columns:
        table = table[~table["touches_border"].astype(bool)].reset_index(drop=True)
    table["image"] = table["image"].astype(str)
    group_col = "image"
    if args.conditions:
        cond = pd.read_csv(args.conditions)
        if not {"image", "condition"} <= set(cond.columns):
            raise InputError("needs columns image, condition", path=args.conditions)
        cond["image"] = cond["image"].astype(str)
        table = table.merge(cond[["image", "condition"]], on="image", how="left")
        table["condition"] = table["condition"].fillna("unassigned").astype(str)
        group_col = "condition"
    elif "condition" in table.columns:
        group_col = "condition"
    if len(table) < 3:
        raise InputError(f"only {len(table)} particle(s) to classify; need at least 3", path=args.tables[0])
    if args.image_features:
        n_fitted = _reuse_image_features(table, args.image_features)
    else:
        n_fitted = 0 if args.no_image_features else _add_image_features(table, args.tables)
    feats = shape_features(table, include_size=args.include_size)
    results: dict = {"n_particles": int(len(table)), "features": list(feats.columns), "group_by": group_col,
                     "n_projection_fits": n_fitted}
    if args.labels:
        lab = pd.read_csv(args.labels)
        if {"image", "row_px", "col_px", "class"} <= set(lab.columns) and "label" not in lab.columns:
            lab = _labels_from_points(lab, table, args.labels)
        if not {"image", "label", "class"} <= set(lab.columns):
            raise InputError("needs columns image, label, class (or image, row_px, col_px, class)", path=args.labels)
        lab["image"] = lab["image"].astype(str)
        lab = lab.dropna(subset=["class"]).drop_duplicates(["image", "label"], keep="last")
        merged = table.reset_index().merge(lab[["image", "label", "class"]], on=["image", "label"], how="inner")
        if len(merged) < 4:
            raise InputError(f"only {len(merged)} labelled object(s) match the particles table", path=args.labels)
        clf = train_classifier(feats.loc[merged["index"]], merged["class"], seed=args.seed, model=args.model,
                               unlabelled=feats.drop(index=merged["index"]))
        pred, prob = predict_classes(clf, feats)
        table["class"], table["class_probability"] = pred, prob
        post = class_probabilities(clf, feats)
        table["labelled"] = table.index.isin(merged["index"])
        results.update({"mode": "supervised", "n_labelled": int(len(merged)),
                        "n_labels_not_matched": int(len(lab) - len(merged)),
                        "labelled_per_class": merged["class"].astype(str).value_counts().to_dict(),
                        "classes": list(clf.classes), "model": clf.kind, "cv_macro_f1": clf.cv_macro_f1,
                        "cv_macro_f1_per_model": clf.cv_per_model})
        from sklearn.decomposition import PCA

        z = np.nan_to_num((feats - feats.mean()) / feats.std(ddof=0).replace(0, 1))
        emb = PCA(2, random_state=args.seed).fit_transform(z)
    else:
        cl = cluster_shapes(feats, n_classes=args.n_classes, seed=args.seed, n_bootstrap=args.bootstrap,
                            criterion=args.k_criterion)
        table["class"] = [f"class_{k}" for k in cl.labels]
        post = pd.DataFrame(cl.probabilities, columns=[f"class_{k}" for k in range(cl.n_classes)])
        table["class_probability"] = post.max(axis=1).to_numpy()
        emb = cl.embedding
        results.update({"mode": "unsupervised", "n_classes": cl.n_classes, "k_criterion": cl.criterion,
                        "cluster_features": list(cl.columns), "partition_features": list(cl.partition_columns),
                        "k_not_eligible_small_class": list(cl.excluded_k),
                        "bic_per_k": {str(k): v for k, v in cl.bic.items()},
                        "silhouette_per_k": {str(k): v for k, v in cl.silhouette.items()},
                        "silhouette_one_gaussian_reference": cl.silhouette_reference,
                        "stability_ari_mean": cl.stability_mean, "stability_ari_std": cl.stability_std,
                        "classes": sorted(set(table["class"]))})
    fr = class_fractions(table[group_col], table["class"])
    overall = class_fractions(np.full(len(table), "all"), table["class"])
    fr_post = posterior_fractions(table[group_col], post.to_numpy(), post.columns)
    overall_post = posterior_fractions(np.full(len(table), "all"), post.to_numpy(), post.columns)
    results["fractions_overall_posterior"] = overall_post.drop(columns=["group"]).to_dict(orient="records")
    test = compare_groups(table[group_col], table["class"])
    results["fractions_overall"] = overall.drop(columns=["group"]).to_dict(orient="records")
    results["groups_differ_test"] = {"method": "chi-square test of independence (class x group)", **test}
    for c in post.columns:  # every class's probability, for fractions as posterior sums
        table[f"probability_{c}"] = post[c].to_numpy()
    out_cols = [c for c in ["image", "label", group_col if group_col != "image" else None, "class",
                            "class_probability", "labelled", "equivalent_diameter_nm"] if c and c in table.columns]
    out_cols += [f"probability_{c}" for c in post.columns]
    out_cols += [c for c in PROJECTION_COLUMNS if c in table.columns]
    od.write_csv("classes.csv", table[out_cols])
    od.write_csv("fractions.csv", fr)
    od.write_csv("fractions_posterior.csv", fr_post)
    od.save_figure("embedding.png", _embedding_figure(emb, table["class"].to_numpy()))
    galleries = _galleries(od, table, args.tables)
    results["galleries"] = galleries
    _report(od, results, fr, galleries, fr_post)
    od.write_results(results)
    status(f"classify: {len(table)} particles into {len(results['classes'])} classes -> {od.path}")
    return 0


def _segment_sources(tables) -> dict:
    """(particles table path, image name) -> (source path, frame, label-mask path) from the segment
    run's results.json next to each particles.csv (empty when there is none). Runs that share an
    image name stay apart (their labels differ). A relative source path (older segment runs wrote
    it as typed) is tried from the working directory, then from the run's parent directory."""
    sources = {}
    for t in tables:
        rj = Path(t).parent / "results.json"
        if rj.is_file():
            try:
                for row in json.loads(rj.read_text())["results"].get("per_image", []):
                    name, src = str(row["image"]), row.get("source")
                    if src and not Path(src).is_file() and (Path(t).parent.parent / src).is_file():
                        src = str(Path(t).parent.parent / src)
                    sources[(str(t), name)] = (src, row.get("frame"),
                                               Path(t).parent / "labels" / f"{name}_labels.tif")
            except (ValueError, KeyError, TypeError):
                continue
    return sources


def _read_frame(src, frame):
    import numpy as np

    from cryomat import io

    d = np.asarray(io.read(src, lazy=False).data)
    return d[frame] if (frame is not None and d.ndim == 3) else d


def _reuse_image_features(table, path) -> int:
    """Projection features from an earlier run's CSV, joined on (image, label); returns the
    number of particles that found theirs."""
    import numpy as np
    import pandas as pd

    from cryomat.errors import InputError
    from cryomat.measure.projection import PROJECTION_COLUMNS

    try:
        pf = pd.read_csv(path)
    except Exception as exc:
        raise InputError(f"cannot read as CSV ({exc})", path=path) from exc
    need = {"image", "label", *PROJECTION_COLUMNS}
    if not need <= set(pf.columns):
        raise InputError(f"needs columns {', '.join(sorted(need))}", path=path)
    pf = pf.assign(image=pf["image"].astype(str)).drop_duplicates(["image", "label"]).set_index(["image", "label"])
    key = pd.MultiIndex.from_frame(table[["image", "label"]].astype({"label": np.int64}))
    for c in PROJECTION_COLUMNS:
        table[c] = pf[c].reindex(key).to_numpy()
    n = int(table[PROJECTION_COLUMNS[0]].notna().sum())
    if n < len(table):
        from cryomat.progress import status

        status(f"classify: {len(table) - n} of {len(table)} particles have no row (image, label) in {path}; "
               "their projection features are missing")
    return n


def _add_image_features(table, tables) -> int:
    """Projection-model features (:mod:`cryomat.measure.projection`) for the particles of every
    image whose source and label mask are found; added to ``table`` in place (NaN elsewhere, or
    every column left out when no image is found). Returns the number of particles fitted."""
    import numpy as np
    import pandas as pd
    import tifffile

    from cryomat.measure.projection import PROJECTION_COLUMNS, projection_features
    from cryomat.progress import progress, status

    sources = _segment_sources(tables)
    keys = table[["_table", "image"]].drop_duplicates().itertuples(index=False, name=None)
    todo = [k for k in keys if k in sources and sources[k][0] and Path(sources[k][0]).is_file()
            and sources[k][2].is_file()]
    if not todo:
        status("classify: no segmented image found next to the particles table(s) (moved, or not from "
               "`cryomat segment`): projection features left out (--no-image-features silences this)")
        return 0
    parts = []
    for key in progress(todo, total=len(todo), desc="projection fits"):
        src, frame, lab_path = sources[key]
        try:
            img = _read_frame(src, frame)
            lab = np.asarray(tifffile.imread(lab_path)).astype(np.int64)
        except Exception:  # a moved or unreadable image: its particles keep NaN features
            continue
        if img.shape != lab.shape:
            continue
        want = table.loc[(table["_table"] == key[0]) & (table["image"] == key[1]), "label"].astype(int)
        parts.append(projection_features(img, lab, which=want).assign(_table=key[0], image=key[1]))
    if not parts:
        return 0
    pf = pd.concat(parts, ignore_index=True)
    key = pd.MultiIndex.from_frame(table[["_table", "image", "label"]].astype({"label": np.int64}))
    pf = pf.set_index(["_table", "image", "label"])
    for c in PROJECTION_COLUMNS:
        table[c] = pf[c].reindex(key).to_numpy()
    return int(len(pf))


def _labels_from_points(points, table, path):
    """Label points (image, row_px, col_px, class) -> (image, label, class): the object whose
    centroid is nearest, if the point lies within half its max Feret diameter of it."""
    import numpy as np
    import pandas as pd

    from cryomat.errors import InputError

    need = {"centroid_row_px", "centroid_col_px", "feret_max_nm", "pixel_size_A"}
    if not need <= set(table.columns):
        raise InputError(f"labels by position need particles.csv columns {sorted(need)}", path=path)
    points = points.assign(image=points["image"].astype(str))
    out = []
    for img, pts in points.groupby("image"):
        objs = table[table["image"] == img]
        if objs.empty:
            continue
        cen = objs[["centroid_row_px", "centroid_col_px"]].to_numpy(float)
        reach = objs["feret_max_nm"].to_numpy(float) * 10 / objs["pixel_size_A"].to_numpy(float) / 2
        for r in pts.itertuples():
            d = np.hypot(cen[:, 0] - float(r.row_px), cen[:, 1] - float(r.col_px))
            i = int(np.argmin(d))
            out.append({"image": img, "label": int(objs["label"].iloc[i]) if d[i] <= reach[i] else -1,
                        "class": pts.loc[r.Index, "class"]})
    return pd.DataFrame(out, columns=["image", "label", "class"])


def _embedding_figure(emb, classes):
    import numpy as np

    from cryomat.report.figures import new_figure

    fig, ax = new_figure(1, 1, size=5)
    a = ax[0, 0]
    for c in sorted(set(classes)):
        m = classes == c
        a.scatter(emb[m, 0], emb[m, 1] if emb.shape[1] > 1 else np.zeros(m.sum()), s=10, label=f"{c} ({m.sum()})")
    a.set_xlabel("principal component 1 (standardised shape features)")
    a.set_ylabel("principal component 2")
    a.legend(fontsize=7)
    return fig


def _galleries(od, table, tables) -> list:
    """Example crops per class, from the images named in the segment run's results.json."""
    import numpy as np

    from cryomat.report.figures import new_figure

    sources = {k: tuple(v[:2]) for k, v in _segment_sources(tables).items()}
    if not sources or "centroid_row_px" not in table.columns:
        return []
    cache: dict = {}
    written = []
    rng = np.random.default_rng(0)
    for c in sorted(set(table["class"])):
        rows = table[table["class"] == c]
        rows = rows.iloc[rng.permutation(len(rows))[:12]]
        crops = []
        for r, tab in zip(rows.itertuples(), rows["_table"]):
            src = sources.get((tab, str(r.image)))
            if not src or not src[0] or not Path(src[0]).is_file():
                continue
            if src not in cache:
                try:
                    cache[src] = _read_frame(*src)
                except Exception:
                    cache[src] = None
                    continue
            img = cache[src]
            if img is None:
                continue
            px = float(getattr(r, "pixel_size_A", 1.0) or 1.0)
            half = int(max(8, 1.3 * r.feret_max_nm * 10 / px / 2))
            rr, cc = int(round(r.centroid_row_px)), int(round(r.centroid_col_px))
            crop = img[max(rr - half, 0):rr + half, max(cc - half, 0):cc + half]
            if crop.size:
                crops.append(crop)
        if not crops:
            continue
        fig, ax = new_figure(len(crops), 1, size=1.3)
        for a, cr in zip(ax[0], crops):
            a.imshow(cr, cmap="gray")
            a.set_axis_off()
        fig.suptitle(f"{c}: {len(rows)} examples", fontsize=8)
        name = f"galleries/{c}.png"
        od.save_figure(name, fig)
        written.append(name)
    return written


def _report(od, results, fr, galleries, fr_post=None) -> None:
    from cryomat.report import Report

    rep = Report("Particle morphology classes", subtitle=f"{results['n_particles']} particles, {results['mode']}")
    rep.add_metrics({k: v for k, v in results.items() if not isinstance(v, (list, dict))})
    rep.add_figure("embedding.png", "Particles in the first two principal components of their shape features")
    rep.add_table(fr, title="Class fractions per group (95 % Wilson intervals)")
    if fr_post is not None:
        rep.add_table(fr_post, title="Class fractions per group as sums of class probabilities (95 % intervals)")
    t = results["groups_differ_test"]
    rep.add_text(f"Do the groups differ? chi-square = {t['chi2']:.3g}, dof = {t['dof']}, p = {t['p_value']:.3g}, "
                 f"Cramer's V = {t['cramers_v']:.3g}" if t["dof"] else "Only one group: no test.")
    for g in galleries:
        rep.add_figure(g, g.split("/")[-1][:-4])
    rep.add_link("classes.csv", "classes.csv (class of every particle)")
    rep.write(od.file("report.html"))
