"""``cryomat convert IN OUT``: change format, keep data and pixel size."""

from __future__ import annotations

from pathlib import Path

NAME = "convert"
HELP = "convert between formats (MRC, TIFF, PNG preview, NPY), keeping the pixel size"


def add_arguments(p):
    p.add_argument("input", help="input file")
    p.add_argument("output", help="output file; format from the extension (.mrc .mrcs .tif .png .npy)")
    p.add_argument("--pixel-size", type=float, metavar="A", help="pixel size in A if the input lacks it")
    p.add_argument("--signal", choices=["image", "spectrum"], help="which dataset of a multi-dataset file")


def run(args) -> int:
    import numpy as np

    from cryomat import io
    from cryomat.errors import InputError
    from cryomat.progress import status

    src, dst = Path(args.input), Path(args.output)
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise InputError("the output would overwrite the input", path=dst)
    if dst.is_dir():
        raise InputError("the output is a folder; give a file name", path=dst)
    img = io.read(src, signal=args.signal)
    data = np.asarray(img.data)
    px = args.pixel_size if args.pixel_size is not None else img.pixel_size
    if dst.suffix.lower() == ".png" and data.ndim == 3:
        data = data.sum(axis=0)
    io.write(dst, data, pixel_size=px)
    status(f"convert: {src} -> {dst} ({' x '.join(map(str, data.shape))}, pixel size {px} A)")
    return 0
