"""``cryomat info FILE``: what a file holds and how it is calibrated."""

from __future__ import annotations

import json
from pathlib import Path

NAME = "info"
HELP = "show shape, axes, pixel size (A) and acquisition metadata of an EM file (or a .tlt/.xf/.mdoc sidecar)"


def add_arguments(p):
    p.add_argument("file", nargs="+", help="EM file(s) (MRC, TIFF, DM3/DM4, EMD, SER/EMI, HSPY, BCF, BLO, ZIP, ...) "
                                           "or sidecars (.tlt, .rawtlt, .xf, .mdoc, _px-nm.mat)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--signal", choices=["image", "spectrum", "eels", "eds"],
                   help="which dataset of a multi-dataset file (Velox EMD, BCF)")
    p.add_argument("--index", type=int, metavar="N", help="dataset number N of a multi-dataset file")
    p.add_argument("--member", metavar="NAME", help="file inside a .zip that holds several")


def _print_lines(d: dict) -> None:
    for k, v in d.items():
        if v is None or isinstance(v, dict):
            continue
        if isinstance(v, list) and len(v) > 6:
            nums = [x for x in v if isinstance(x, (int, float))]
            v = f"{len(v)} values from {nums[0]:g} to {nums[-1]:g}" if nums else f"{len(v)} values"
        elif isinstance(v, float):
            v = f"{v:.6g}"
        print(f"{k + ':':24s}{v}")


def run(args) -> int:
    import sys

    from cryomat.errors import InputError
    from cryomat.outputs import to_jsonable

    files = args.file if isinstance(args.file, list) else [args.file]
    if len(files) == 1:
        d = describe(files[0], signal=args.signal, index=args.index, member=args.member)
        if args.json:
            print(json.dumps(to_jsonable(d), indent=2))
        else:
            _print(d)
        return 0
    docs, bad = [], 0
    for f in files:  # several files: describe each; a bad one is one line on stderr, the rest go on
        try:
            docs.append(describe(f, signal=args.signal, index=args.index, member=args.member))
        except (InputError, ValueError, OSError) as exc:
            bad += 1
            print(f"cryomat info: error: {' '.join(str(exc).split())}", file=sys.stderr)
    if args.json:
        print(json.dumps(to_jsonable(docs), indent=2))
    else:
        for i, d in enumerate(docs):
            if i:
                print()
            _print(d)
    return 2 if bad else 0


def describe(file, *, signal=None, index=None, member=None) -> dict:
    """What ``cryomat info`` reports about one file (an EM file or a sidecar), JSON-ready."""
    from cryomat import io
    from cryomat.io.readers import SIDECAR_EXT

    path = Path(file)
    if path.suffix.lower() in SIDECAR_EXT:
        if not path.is_file():
            from cryomat.errors import InputError

            raise InputError("no such file", path=path)
        return {"sidecar": True, **io.describe_sidecar(path)}
    img = io.read(path, signal=signal, index=index, member=member)
    d = img.describe()
    n = img.original_metadata.get("n_datasets")
    if n and n > 1:
        d["n_datasets"] = n
        if path.suffix.lower() != ".zip":
            from cryomat.io.rsciio_reader import list_datasets

            d["datasets"] = list_datasets(str(path))
    if img.original_metadata.get("calibration_note"):
        d["calibration_note"] = img.original_metadata["calibration_note"]
    return d


def _print(d: dict) -> None:
    if d.get("sidecar"):
        _print_lines({k: v for k, v in d.items() if k != "sidecar"})
        return
    print(f"file:        {d['source']}")
    print(f"kind:        {d['signal']}")
    print(f"shape:       {' x '.join(map(str, d['shape']))}  ({', '.join(d['axes'])})")
    print(f"dtype:       {d['dtype']}")
    px = d["pixel_size_A"]
    print(f"pixel size:  {'unknown (pass --pixel-size to commands)' if px is None else f'{px:.6g} A ({px / 10:.6g} nm)'}")
    if d.get("calibration_note"):
        print(f"note:        {d['calibration_note']}")
    for k, v in d["acquisition"].items():
        if v is None:
            continue
        if isinstance(v, dict):
            v = ", ".join(f"{kk} {vv:g}" for kk, vv in v.items())
        elif isinstance(v, list) and len(v) > 6:
            v = f"{len(v)} values from {v[0]:g} to {v[-1]:g}"
        print(f"{k + ':':13s}{v}")
    for ds in d.get("datasets", []):
        print(f"  dataset {ds['index']:2d}: {ds['kind']:11s} {' x '.join(map(str, ds['shape'])):18s} {ds['title']}")
