"""``cryomat strain IMAGE --out DIR``: geometric phase analysis strain and rotation maps."""

from __future__ import annotations

from cryomat.cli.common import add_out, add_pixel_size, input_file, parameters_of, positive_float

NAME = "strain"
HELP = "geometric phase analysis (GPA): strain (exx, eyy, exy) and rotation maps from two lattice spots"
DESCRIPTION = (
    "Demodulate the image at two non-collinear Bragg spots (the strongest, or --g1/--g2), turn the "
    "geometric phases into a displacement field and differentiate it: strain and rotation maps relative to "
    "the lattice of the reference region (default the whole image). x is along image columns, y along rows.")


def add_arguments(p):
    p.add_argument("image", type=input_file, help="lattice image (HRTEM or STEM)")
    add_out(p)
    add_pixel_size(p)
    p.add_argument("--g1", nargs=2, type=float, metavar=("KX", "KY"), help="first reflection (1/A, kx along columns)")
    p.add_argument("--g2", nargs=2, type=float, metavar=("KX", "KY"), help="second reflection (1/A)")
    p.add_argument("--resolution", type=positive_float, metavar="A",
                   help="map resolution: Gaussian low-pass width in A (default two lattice periods)")
    p.add_argument("--reference-region", nargs=4, type=int, metavar=("ROW0", "ROW1", "COL0", "COL1"),
                   help="unstrained reference region in pixels (default: the whole image)")


def run(args) -> int:
    import numpy as np

    from cryomat.errors import InputError
    from cryomat.lattice.figures import load_image_2d
    from cryomat.lattice.strain import gpa
    from cryomat.outputs import OutputDir
    from cryomat.progress import status
    from cryomat.report import Report
    from cryomat.report.figures import new_figure, show_image

    image, px, _ = load_image_2d(args.image, pixel_size=args.pixel_size)
    if (args.g1 is None) != (args.g2 is None):
        raise InputError("give both --g1 and --g2, or neither")
    mask = None
    if args.reference_region:
        r0, r1, c0, c1 = args.reference_region
        if not (0 <= r0 < r1 <= image.shape[0] and 0 <= c0 < c1 <= image.shape[1]):
            raise InputError(f"--reference-region {args.reference_region} lies outside the {image.shape} image")
        mask = np.zeros(image.shape, bool)
        mask[r0:r1, c0:c1] = True
    od = OutputDir(args.out, command=NAME, inputs=[args.image], parameters=parameters_of(args))
    status("strain: geometric phase analysis")
    r = gpa(image, pixel_size=px, g1=args.g1, g2=args.g2, sigma_A=args.resolution, reference_mask=mask)
    for name in ("exx", "eyy", "exy", "rotation_deg"):
        od.write_mrc(f"{name}.mrc", getattr(r, name).astype(np.float32), pixel_size=px)
    od.write_mrc("ux_A.mrc", r.ux_A.astype(np.float32), pixel_size=px)
    od.write_mrc("uy_A.mrc", r.uy_A.astype(np.float32), pixel_size=px)
    fig, ax = new_figure(5, 1, size=3.6)
    show_image(ax[0, 0], image, pixel_size=px, title="image")
    for a, name in zip(ax[0, 1:], ("exx", "eyy", "exy", "rotation_deg")):
        v = getattr(r, name)
        lim = max(np.nanpercentile(np.abs(v), 98), 1e-6)
        im = a.imshow(v, cmap="RdBu_r", vmin=-lim, vmax=lim)
        a.set_axis_off()
        a.set_title(name, fontsize=9)
        fig.colorbar(im, ax=a, shrink=0.7)
    od.save_figure("strain.png", fig)
    whole = r.summary()
    results = {"pixel_size_A": px, "g1_per_A": r.g1_per_A.tolist(), "g2_per_A": r.g2_per_A.tolist(),
               "d1_A": float(1 / np.linalg.norm(r.g1_per_A)), "d2_A": float(1 / np.linalg.norm(r.g2_per_A)),
               "whole_image": whole, "reference_region": r.summary(mask) if mask is not None else None,
               "edge_border_px": r.border_px,
               "units": "strain dimensionless (x along columns, y along rows); rotation in degrees; maps NaN within "
                        "edge_border_px of the image edge (lock-in filter one-sided there)"}
    rep = Report("Geometric phase analysis", subtitle=str(args.image))
    rep.add_metrics({"d1_A": results["d1_A"], "d2_A": results["d2_A"], **whole})
    rep.add_figure("strain.png", "Strain and rotation maps (x along columns, y along rows)")
    rep.write(od.file("report.html"))
    od.write_results(results)
    return 0
