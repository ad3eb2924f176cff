"""``cryomat info FILE``: what a file holds and how it is calibrated."""

from __future__ import annotations

import json

NAME = "info"
HELP = "show shape, axes, pixel size (A) and acquisition metadata of an EM file"


def add_arguments(p):
    p.add_argument("file", help="EM file (MRC, TIFF, DM3/DM4, EMD, SER/EMI, HSPY, BCF, ...)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--signal", choices=["image", "spectrum"], help="which dataset of a multi-dataset file")


def run(args) -> int:
    from cryomat import io
    from cryomat.outputs import to_jsonable

    img = io.read(args.file, signal=args.signal)
    d = img.describe()
    if args.json:
        print(json.dumps(to_jsonable(d), indent=2))
        return 0
    print(f"file:        {d['source']}")
    print(f"kind:        {d['signal']}")
    print(f"shape:       {' x '.join(map(str, d['shape']))}  ({', '.join(d['axes'])})")
    print(f"dtype:       {d['dtype']}")
    px = d["pixel_size_A"]
    print(f"pixel size:  {'unknown (pass --pixel-size to commands)' if px is None else f'{px:.6g} A ({px / 10:.6g} nm)'}")
    for k, v in d["acquisition"].items():
        if v is not None:
            if isinstance(v, list) and len(v) > 6:
                v = f"{len(v)} values from {v[0]:g} to {v[-1]:g}"
            print(f"{k + ':':13s}{v}")
    return 0
