"""Checks that commands run on their inputs before any work starts.

Each raises :class:`cryomat.errors.InputError` (a ``ValueError``) whose message names the
file (or the argument) and what is wrong, so the CLI prints one line and exits with 2::

    img = io.read(path)
    data = validate.require_ndim(img, (2, 3), what="a micrograph or a movie")
    validate.require_finite(data, path=path)
    px = validate.require_pixel_size(img, args.pixel_size)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from cryomat.errors import InputError


def _name(path) -> str | None:
    return None if path is None else str(path)


def require_finite(data, *, path: str | os.PathLike | None = None, what: str = "the data",
                   chunk_bytes: int = 64 << 20):
    """Refuse data with NaN or infinite values; return ``data`` unchanged.

    Memory-mapped and dask arrays are checked in chunks of about ``chunk_bytes`` along the
    first axis, so a large movie is scanned, not copied.
    """
    arr = data
    if hasattr(arr, "dtype") and not np.issubdtype(np.dtype(arr.dtype), np.inexact):
        return data  # integer data cannot hold NaN or inf
    shape = tuple(np.shape(arr))
    if not shape:
        bad_nan = bad_inf = 0
        v = float(np.asarray(arr))
        bad_nan, bad_inf = int(np.isnan(v)), int(np.isinf(v))
    else:
        per = max(1, int(np.prod(shape[1:])) * np.dtype(getattr(arr, "dtype", np.float64)).itemsize)
        step = max(1, chunk_bytes // per)
        bad_nan = bad_inf = 0
        for start in range(0, shape[0], step):
            block = np.asarray(arr[start:start + step])
            bad_nan += int(np.count_nonzero(np.isnan(block)))
            bad_inf += int(np.count_nonzero(np.isinf(block)))
    if bad_nan or bad_inf:
        parts = [f"{bad_nan} NaN" if bad_nan else "", f"{bad_inf} infinite" if bad_inf else ""]
        raise InputError(f"{what} contain {' and '.join(p for p in parts if p)} value(s); "
                         "cryomat needs finite numbers (mask or replace them first)", path=_name(path))
    return data


def require_ndim(img, allowed: Iterable[int], *, what: str = "an image", path=None):
    """Refuse data whose number of dimensions is not in ``allowed``; return the data array.

    ``img`` is an :class:`~cryomat.io.EMImage` (its ``source`` names the file) or an array.
    """
    allowed = tuple(int(a) for a in allowed)
    data = getattr(img, "data", img)
    src = path if path is not None else getattr(img, "source", None)
    nd = len(np.shape(data))
    if nd not in allowed:
        axes = getattr(img, "axes", None)
        got = f"shape {tuple(np.shape(data))}" + (f" ({', '.join(axes)})" if axes else "")
        want = " or ".join(f"{a}D" for a in allowed)
        raise InputError(f"expected {what} ({want}), got {nd}D data of {got}", path=_name(src))
    return data


def require_signal(img, allowed: Iterable[str], *, what: str | None = None):
    """Refuse an :class:`EMImage` whose ``signal`` (image, spectrum, volume, ...) is not allowed."""
    allowed = tuple(allowed)
    if img.signal not in allowed:
        raise InputError(f"expected {what or ' or '.join(allowed)}, but the file holds a {img.signal} "
                         f"of shape {tuple(img.shape)}", path=img.source)
    return img


def require_pixel_size(img, override: float | None = None) -> float:
    """Pixel size in A: ``override`` (``--pixel-size``) if given, else the file's; a clear error if neither."""
    return img.require_pixel_size(override)


def require_output_path(out: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (),
                        folder: bool = False) -> Path:
    """Check an output file (or folder) before work starts: not an input, parent writable,
    a folder is not an existing file and a file is not an existing folder."""
    p = Path(out)
    for inp in inputs:
        try:
            if Path(inp).resolve() == p.resolve():
                raise InputError("the output would overwrite an input file", path=p)
        except OSError:
            pass
    if folder:
        if p.exists() and not p.is_dir():
            raise InputError("the output path exists and is a file, not a folder", path=p)
        parent = p if p.exists() else _existing_parent(p)
    else:
        if p.is_dir():
            raise InputError("the output is a folder; give a file name", path=p)
        parent = _existing_parent(p)
    if parent is not None and not os.access(parent, os.W_OK):
        raise InputError(f"cannot write there: {parent} is not writable", path=p)
    return p


def _existing_parent(p: Path) -> Path | None:
    q = p.resolve().parent
    while not q.exists() and q != q.parent:
        q = q.parent
    if q.exists() and not q.is_dir():
        raise InputError(f"{q} is a file, so no folder can be made under it", path=p)
    return q


def read_checked(path: str | os.PathLike, *, ndim: Iterable[int] | None = None, what: str = "an image",
                 pixel_size: float | None = None, need_pixel_size: bool = True, finite: bool = True,
                 signal: str | None = None, lazy: bool = True):
    """Read ``path`` and run the usual checks in one call; return the :class:`EMImage`.

    Parameters
    ----------
    ndim : allowed numbers of dimensions (e.g. ``(2, 3)``), or ``None`` for any.
    what : what the command expects, for the message ("a movie (frame, row, col)").
    pixel_size : the ``--pixel-size`` override in A; it replaces the file's value.
    need_pixel_size : refuse a file without calibration when no override is given.
    finite : refuse NaN/inf (scanned in chunks, no copy of a memory map).
    signal : which dataset of a multi-dataset file (see :func:`cryomat.io.read`).
    """
    from cryomat.io.readers import read

    img = read(path, lazy=lazy, signal=signal)
    if ndim is not None:
        require_ndim(img, ndim, what=what)
    if need_pixel_size or pixel_size is not None:
        img = img.replace(pixel_size=img.require_pixel_size(pixel_size))
    if finite:
        require_finite(img.data, path=path)
    return img
