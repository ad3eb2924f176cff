"""``cryomat targets ATLAS --out DIR``: rank imaging targets on a low-magnification atlas."""

from __future__ import annotations

NAME = "targets"
HELP = "rank imaging targets on a low-magnification atlas and export a SerialEM navigator"
DESCRIPTION = (
    "Score an atlas (MRC with mdoc, TIFF, DM) by local object density and class, film thickness "
    "(t/lambda from an empty-beam reference), crystallinity or edges; pick the top N fields so that "
    "beam footprints never overlap; write targets.csv, an annotated atlas and targets.nav (points "
    "drawn on the map item given with --nav/--map-id, or on a synthetic map item)."
)


def add_arguments(p):
    from cryomat.cli.common import add_out, add_pixel_size, positive_float, positive_int

    p.add_argument("atlas", help="low-magnification image or montage")
    add_out(p)
    add_pixel_size(p)
    p.add_argument("--nav", help="SerialEM navigator holding the atlas map item")
    p.add_argument("--map-id", type=int, help="MapID of the atlas map item in --nav (default: the first map)")
    p.add_argument("--no-flip-y", action="store_true",
                   help="the atlas array is not y-flipped relative to SerialEM (default: flipped for MRC)")
    p.add_argument("--want", default="particles",
                   help="particles, crystalline, thin-ice, edges, or a class: round/sphere, elongated/rod, irregular")
    p.add_argument("--fov", type=positive_float, default=1.0, metavar="UM", help="field of view at high mag (um)")
    p.add_argument("--count", type=positive_int, default=20, help="number of targets")
    p.add_argument("--min-spacing", type=positive_float, metavar="UM",
                   help="minimum distance between targets (um; never less than the beam diameter)")
    p.add_argument("--min-objects", type=int, default=1, help="objects of the wanted kind a field must hold")
    p.add_argument("--min-size", type=positive_float, metavar="NM",
                   help="smallest object (equivalent diameter, nm; default 5 atlas pixels)")
    p.add_argument("--polarity", choices=("auto", "dark", "bright"), default="auto",
                   help="objects dark on bright (bright-field TEM) or bright on dark (HAADF/ADF-STEM, inverted "
                        "before analysis); auto: bright when the file or its metadata says HAADF/ADF/STEM")
    p.add_argument("--reference", help="empty-beam image at the atlas dose (for absolute t/lambda)")
    p.add_argument("--max-thickness", type=positive_float, default=1.0, metavar="T/LAMBDA",
                   help="thickest film to image (t/lambda)")


def run(args) -> int:
    from pathlib import Path

    import numpy as np

    from cryomat import io
    from cryomat.cli.common import parameters_of
    from cryomat.errors import InputError
    from cryomat.outputs import OutputDir
    from cryomat.progress import status
    from cryomat.targeting import (Navigator, NavItem, add_points, analyse_atlas, array_to_serialem_pixel,
                                   pixel_to_stage, rank_targets, read_nav, write_nav)
    from cryomat.targeting.report import atlas_figure, write_targets_report

    img = io.read(args.atlas)
    data = np.asarray(img.data, dtype=np.float32)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise InputError(f"the atlas must be one 2D image (or a stitched montage), got shape {data.shape}",
                         path=args.atlas)
    from cryomat.io.validate import require_finite

    require_finite(data, path=args.atlas)
    px = img.require_pixel_size(args.pixel_size)
    polarity = args.polarity if args.polarity != "auto" else _polarity_of(img, args.atlas)
    if polarity == "bright":  # dark-field: mass-thickness is bright; invert so thick = dark as in TEM
        lo, hi = np.percentile(data[:: max(1, data.shape[0] // 512), :: max(1, data.shape[1] // 512)], [0.1, 99.9])
        data = (hi + lo - data).astype(np.float32)
        if args.reference:
            raise InputError("--reference is for bright-field atlases; a dark-field atlas has no empty-beam reference")
    nav = read_nav(args.nav) if args.nav else None
    if args.map_id is not None and nav is None:
        raise InputError("--map-id needs --nav")
    ref_counts = None
    if args.reference:
        ref = np.asarray(io.read(args.reference).data, dtype=np.float64)
        ref_counts = float(ref.mean())
        if not np.isfinite(ref_counts) or ref_counts <= 0:
            raise InputError("the reference image has no positive counts", path=args.reference)
    fov_px = args.fov * 1e4 / px
    if fov_px < 4:
        raise InputError(f"--fov {args.fov} um is only {fov_px:.1f} atlas pixels; the atlas is too coarse")
    spacing_px = (args.min_spacing or args.fov) * 1e4 / px
    out = OutputDir(args.out, command="targets", inputs=[p for p in (args.atlas, args.nav, args.reference) if p],
                    parameters=parameters_of(args))
    status(f"targets: analysing {data.shape[0]} x {data.shape[1]} atlas at {px:g} A/px")
    analysis = analyse_atlas(data, pixel_size=px, reference_counts=ref_counts, fov_px=fov_px,
                             crystallinity=args.want == "crystalline", min_size_nm=args.min_size)
    table = rank_targets(analysis, want=args.want, fov_px=fov_px, count=args.count, min_spacing_px=spacing_px,
                         min_objects=args.min_objects, thickness_range=(0.02, args.max_thickness))
    if nav is not None:
        item = nav.map_item(args.map_id)
    else:
        s = 1e4 / px  # pixels per um
        nav = Navigator(header=["AdocVersion = 2.00"], items=[])
        item = NavItem(label="atlas", fields={
            "Color": "2", "StageXYZ": "0 0 0", "NumPts": "1", "Regis": "1", "Type": "2",
            "Note": "synthetic map item for the atlas: register it to the real map before acquiring",
            "MapFile": str(Path(args.atlas).resolve()), "MapID": "1", "MapMontage": "0", "MapSection": "0",
            "MapBinning": "1", "MapMagInd": "0", "MapScaleMat": f"{s:.6f} 0 0 {-s:.6f}",
            "MapWidthHeight": f"{data.shape[1]} {data.shape[0]}", "PtsX": "0", "PtsY": "0"})
        nav.items.append(item)
    wh = item.numbers("MapWidthHeight")
    binning = float(wh[0]) / data.shape[1]
    flip = (Path(args.atlas).suffix.lower() in {".mrc", ".st", ".map"}) and not args.no_flip_y
    x, y = array_to_serialem_pixel(table["row_px"], table["col_px"], height=float(wh[1]), flip_y=flip, binning=binning)
    sx, sy = pixel_to_stage(item, x, y)
    table["serialem_x_px"], table["serialem_y_px"] = x, y
    table["stage_x_um"], table["stage_y_um"] = sx, sy
    if len(table):
        add_points(nav, item, sx, sy, notes=[f"cryomat target {t}: {r}" for t, r in zip(table["target"], table["reasons"])])
    write_nav(out.file("targets.nav"), nav)
    out.write_csv("targets.csv", table)
    out.write_csv("objects.csv", analysis.objects)
    out.write_mrc("thickness_t_over_lambda.mrc", analysis.film_t_over_lambda.astype(np.float32),
                  pixel_size=px * analysis.bin)
    out.save_figure("atlas_targets.png", atlas_figure(data, analysis, table, fov_px=fov_px, pixel_size=px))
    d = np.hypot(np.subtract.outer(table["row_px"].to_numpy(), table["row_px"].to_numpy()),
                 np.subtract.outer(table["col_px"].to_numpy(), table["col_px"].to_numpy()))
    np.fill_diagonal(d, np.inf)
    results = {
        "n_targets": int(len(table)), "want": args.want, "fov_um": args.fov, "pixel_size_A": px,
        "n_objects": int(len(analysis.objects)),
        "objects_by_morphology": analysis.objects["morphology"].value_counts().to_dict() if len(analysis.objects) else {},
        "min_target_spacing_um": float(d.min() * px / 1e4) if len(table) > 1 else None,
        "reference_counts_per_px": analysis.reference_counts,
        "excluded_fraction": float(analysis.exclude.mean()),
        "analysis_binning": analysis.bin, "segmented_fraction": analysis.segmented_fraction,
        "polarity": polarity, "map_id": item.map_id, "flip_y": flip, "map_binning_of_atlas": binning,
    }
    write_targets_report(out, results, table)
    out.write_results(results)
    status(f"targets: {len(table)} targets written to {out.file('targets.csv')}")
    return 0


def _polarity_of(img, path) -> str:
    """``bright`` when the file name or metadata names a dark-field STEM detector (HAADF, ADF, DF2, DF4), else ``dark``."""
    import re

    text = f"{path} {img.signal} {str(img.original_metadata)[:200000]}"
    return "bright" if re.search(r"HAADF|\bADF\b|\bDF[24]\b", text, flags=re.I) else "dark"
