"""``cryomat qc FILE --out DIR``: counts, dose, non-finite pixels and per-frame statistics."""

from __future__ import annotations

NAME = "qc"
HELP = "quick quality control of an image or stack (counts, dose, NaNs, per-frame statistics)"


def add_arguments(p):
    from cryomat.cli.common import add_out, add_pixel_size

    p.add_argument("input", help="image or stack")
    add_out(p)
    add_pixel_size(p)


def run(args) -> int:
    import numpy as np

    from cryomat import io
    from cryomat.cli.common import parameters_of
    from cryomat.outputs import OutputDir
    from cryomat.quality import frame_statistics, summarize
    from cryomat.report import Report
    from cryomat.report.figures import new_figure, show_image

    img = io.read(args.input)
    if img.signal == "spectrum":
        raise ValueError(f"{args.input}: holds a spectrum; qc is for images and stacks (try `cryomat spectrum`)")
    if img.ndim not in (2, 3):
        raise ValueError(f"{args.input}: expected an image or a stack, got shape {img.shape}")
    px = args.pixel_size or img.pixel_size
    out = OutputDir(args.out, command="qc", inputs=[args.input], parameters=parameters_of(args))
    table = frame_statistics(img.data)
    results = summarize(img.data, pixel_size=px)
    results["shape"] = list(img.shape)
    out.write_csv("frames.csv", table)
    first = np.asarray(img.data if img.ndim == 2 else img.data[0], dtype=np.float32)
    fig, ax = new_figure(1, 1, size=4)
    show_image(ax[0, 0], first, pixel_size=px, title="first frame")
    out.save_figure("preview.png", fig)
    rep = Report("Quality control", subtitle=str(args.input))
    rep.add_metrics(results)
    rep.add_figure("preview.png", "first frame")
    rep.write(out.file("report.html"))
    out.write_results(results)
    return 0
