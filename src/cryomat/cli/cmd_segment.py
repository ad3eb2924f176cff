"""``cryomat segment IMAGES... --out DIR``: every particle, its shape descriptors and size distribution."""

from __future__ import annotations

from pathlib import Path

NAME = "segment"
HELP = "segment every particle of one or more images: label masks, particles.csv, size distribution, report"


def add_arguments(p):
    from cryomat.cli.common import add_out, add_pixel_size, input_file, nonneg_float, positive_float

    p.add_argument("images", nargs="+", type=input_file, help="image files (any format cryomat reads); "
                   "a stack is segmented frame by frame")
    add_out(p)
    p.add_argument("--method", choices=["classical", "unet"], default="classical",
                   help="classical (dose-aware, fast; default) or unet (shipped small network, CPU)")
    p.add_argument("--dose", type=positive_float, metavar="E_PER_A2",
                   help="fluence of each image in e/A^2 (sets the noise model); default: from the file or estimated")
    p.add_argument("--min-size", type=nonneg_float, metavar="NM", help="smallest equivalent diameter kept (nm)")
    p.add_argument("--split-touching", action="store_true",
                   help="split touching particles at narrow necks (fused aggregates stay whole); default: "
                        "every connected object is one particle")
    p.add_argument("--polarity", choices=["auto", "dark", "bright"], default="auto",
                   help="particles darker (bright-field TEM) or brighter (HAADF) than the support (default auto)")
    p.add_argument("--outline-fit", choices=["auto", "on", "off"], default="auto",
                   help="classical method: refit every outline as a smooth closed curve to the unsmoothed "
                        "image (size within ~2 %% at 0.3 e/A^2); auto (default): at low dose only, where the "
                        "detection smoothing is wide")
    p.add_argument("--exclude-border", action="store_true", help="drop particles cut by the image border")
    p.add_argument("--edges", choices=["mask", "image"], default="mask",
                   help="outlines for the shape descriptors: from the label masks (default) or, where the image "
                        "carries them (>= 8 noise sigmas of contrast), sub-pixel edges from its grey levels")
    add_pixel_size(p)


def _frames(img):
    """(suffix, 2D array) for each frame of an image or stack."""
    import numpy as np

    data = np.asarray(img.data)
    if data.ndim == 2:
        return [("", data)]
    if data.ndim == 3 and img.axes[-2:] == ("row", "col") or data.ndim == 3:
        return [(f"_f{i:03d}", data[i]) for i in range(data.shape[0])]
    raise ValueError(f"{img.source}: expected a 2D image or a stack of images, got shape {data.shape}")


def run(args) -> int:
    import numpy as np
    import pandas as pd

    from cryomat import io
    from cryomat.cli.common import parameters_of
    from cryomat.errors import InputError
    from cryomat.measure.descriptors import COLUMNS, particle_table
    from cryomat.measure.sizes import fit_lognormal, size_summary
    from cryomat.outputs import OutputDir
    from cryomat.progress import progress, status
    from cryomat.measure.figures import overlay_figure, size_figure
    from cryomat.segmentation import segment_particles

    if args.method == "unet" and args.outline_fit == "on":
        raise InputError("--outline-fit on applies to --method classical only (the U-Net has no outline fit)")
    od = OutputDir(args.out, command=NAME, inputs=args.images, parameters=parameters_of(args))
    loaded = []
    for path in args.images:  # read and check every input before any work
        try:
            img = io.read(path, lazy=False)
        except InputError:
            raise
        except Exception as exc:  # unreadable file: one clear line
            raise InputError(f"cannot read as an image ({exc})", path=path) from exc
        px = img.require_pixel_size(args.pixel_size)
        loaded.append((Path(path), img, px))
    tables, per_image = [], []
    names = set()
    for path, img, px in progress(loaded, total=len(loaded), desc="segment"):
        dose = args.dose
        if dose is None:
            dose = getattr(img.acquisition, "dose_per_frame_e_per_A2", None) or None
        for fi, (suffix, frame) in enumerate(_frames(img)):
            name = path.stem + suffix
            while name in names:
                name += "_"
            names.add(name)
            frame = np.asarray(frame, dtype=np.float32 if frame.dtype == np.float32 else np.float64)
            labels = segment_particles(frame, pixel_size=px, dose_e_per_A2=dose, method=args.method,
                                       min_size_nm=args.min_size, split_touching=args.split_touching,
                                       polarity=args.polarity,
                                       outline_fit={"auto": None, "on": True, "off": False}[args.outline_fit])
            table = particle_table(labels, frame, pixel_size=px, edges=args.edges)
            if args.exclude_border and len(table):
                drop = table.loc[table["touches_border"], "label"].to_numpy()
                labels[np.isin(labels, drop)] = 0
                table = table[~table["touches_border"]].reset_index(drop=True)
            table.insert(0, "image", name)
            table.insert(2, "pixel_size_A", px)
            lab_out = labels.astype(np.uint16) if labels.max(initial=0) < 65535 else labels.astype(np.int32)
            od.write_tiff(f"labels/{name}_labels.tif", lab_out, pixel_size=px)
            od.save_figure(f"overlays/{name}_overlay.png", overlay_figure(frame, labels, pixel_size=px, title=name))
            tables.append(table)
            summ = size_summary(table["equivalent_diameter_nm"])
            per_image.append({"image": name, "source": str(Path(path).resolve()), "frame": fi if suffix else None,
                              "pixel_size_A": px, "dose_e_per_A2": dose,
                              "count": summ["count"],
                              "median_equivalent_diameter_nm": summ["median_nm"],
                              "iqr_equivalent_diameter_nm": summ["iqr_nm"]})
    cols = ["image", "label", "pixel_size_A"] + [c for c in COLUMNS if c != "label"]
    allt = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=cols)
    allt = allt[cols] if len(allt) else pd.DataFrame(columns=cols)
    od.write_csv("particles.csv", allt)
    d = allt["equivalent_diameter_nm"].to_numpy(dtype=float) if len(allt) else np.zeros(0)
    fit = fit_lognormal(d)
    od.save_figure("size_distribution.png", size_figure(d, fit))
    overall = size_summary(d)
    results = {
        "n_images": len(per_image),
        "count_total": int(len(allt)),
        "median_equivalent_diameter_nm": overall["median_nm"],
        "iqr_equivalent_diameter_nm": overall["iqr_nm"],
        "lognormal_median_nm": fit.median if fit else None,
        "lognormal_geometric_std": fit.geometric_std if fit else None,
        "lognormal_ks_pvalue": fit.ks_pvalue if fit else None,
        "method": args.method,
        "split_touching": bool(args.split_touching),
        "per_image": per_image,
    }
    _report(od, allt, per_image, results)
    od.write_results(results)
    status(f"segment: {len(allt)} particles in {len(per_image)} image(s) -> {od.path}")
    return 0


def _report(od, allt, per_image, results) -> None:
    import pandas as pd

    from cryomat.report import Report

    rep = Report("Particle segmentation", subtitle=f"{results['count_total']} particles in "
                                                   f"{results['n_images']} image(s), method {results['method']}")
    rep.add_metrics({k: v for k, v in results.items() if not isinstance(v, (list, dict))})
    rep.add_figure("size_distribution.png", "Equivalent diameters with the maximum-likelihood lognormal fit")
    rep.add_table(pd.DataFrame(per_image), title="Per image")
    for row in per_image[:20]:
        rep.add_figure(f"overlays/{row['image']}_overlay.png", f"{row['image']}: {row['count']} particles")
    if len(allt):
        rep.add_table(allt.head(30), title="First particles (all in particles.csv)")
    rep.add_link("particles.csv", "particles.csv (one row per particle)")
    rep.write(od.file("report.html"))
