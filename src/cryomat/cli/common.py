"""Arguments and helpers shared by the commands."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from cryomat.errors import InputError


def add_out(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument("--out", required=required, metavar="DIR", help="output folder (created if missing)")


def add_pixel_size(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pixel-size", type=positive_float, metavar="A",
                        help="pixel size in Angstrom (overrides the file's calibration)")


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return v


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return v


def input_file(text: str) -> Path:
    """An existing, readable input file (checked before any work starts)."""
    p = Path(text)
    if not p.exists():
        raise InputError("no such file", path=p)
    if p.is_dir():
        raise InputError("is a folder; give a file", path=p)
    return p


def parameters_of(args: argparse.Namespace, *, skip=("func", "command", "quiet", "debug", "out")) -> dict:
    """The parsed options as a JSON-ready dict for ``results.json``."""
    out = {}
    for k, v in vars(args).items():
        if k in skip or k.startswith("_"):
            continue
        out[k] = str(v) if isinstance(v, Path) else ([str(x) for x in v] if isinstance(v, list) else v)
    return out
