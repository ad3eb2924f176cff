"""``cryomat convert IN OUT``: change format, keep data and pixel size."""

from __future__ import annotations

from pathlib import Path

from cryomat.cli.common import positive_float

NAME = "convert"
HELP = "convert between formats (MRC, TIFF, PNG preview, NPY), keeping the data and the pixel size"

_CALIBRATED = {".mrc", ".mrcs", ".st", ".rec", ".map", ".ali", ".tif", ".tiff"}


def add_arguments(p):
    p.add_argument("input", help="input file (any format cryomat reads)")
    p.add_argument("output", help="output file; format from the extension (.mrc .mrcs .rec .tif .png .npy)")
    p.add_argument("--pixel-size", type=positive_float, metavar="A",
                   help="pixel size in A (needed for .mrc/.tif output when the input has none)")
    p.add_argument("--signal", choices=["image", "spectrum", "eels", "eds"],
                   help="which dataset of a multi-dataset file")
    p.add_argument("--allow-nonfinite", action="store_true", help="copy NaN/inf values instead of refusing them")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run(args) -> int:
    import numpy as np

    from cryomat import io
    from cryomat.errors import InputError
    from cryomat.io import validate
    from cryomat.progress import status

    src, dst = Path(args.input), Path(args.output)
    validate.require_output_path(dst, inputs=[src])
    if dst.exists() and not args.overwrite:
        raise InputError("the output file exists; pass --overwrite to replace it", path=dst)
    img = io.read(src, signal=args.signal)
    ext = dst.suffix.lower()
    allowed = (2, 3) if ext != ".npy" else (1, 2, 3, 4)
    validate.require_ndim(img, allowed, what=f"an image, stack or volume for {ext or 'this'} output")
    px = args.pixel_size if args.pixel_size is not None else img.pixel_size
    if ext in _CALIBRATED:
        px = img.require_pixel_size(args.pixel_size)
    data = np.asarray(img.data)
    if not args.allow_nonfinite:
        validate.require_finite(data, path=src)
    if ext == ".png" and data.ndim == 3:
        data = data.sum(axis=0)
    io.write(dst, data, pixel_size=px, volume=img.signal == "volume")
    status(f"convert: {src} -> {dst} ({' x '.join(map(str, data.shape))}, pixel size {px} A)")
    return 0
