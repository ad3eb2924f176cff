"""Several files of one acquisition (a tilt series saved one file per tilt) as one EMImage."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from cryomat.errors import InputError
from cryomat.io.model import EMImage

_LAST_NUMBER = re.compile(r"([-+]?\d+(?:\.\d+)?)(?!.*\d)")


def tilt_from_name(path: str | os.PathLike) -> float:
    """The last signed number in the file name's stem, as a tilt angle in degrees
    (``tilt_-40.bcf`` -> -40.0, ``TS_01_012_-21.0.mrc`` -> -21.0)."""
    stem = Path(path).stem
    m = _LAST_NUMBER.search(stem)
    if not m:
        raise InputError("no number in the file name to take as the tilt angle", path=path)
    return float(m.group(1))


def read_series(paths: Iterable[str | os.PathLike], *, signal: str | None = None,
                tilt_angles_deg: Sequence[float] | None = None, from_names: bool = False,
                lazy: bool = True) -> EMImage:
    """Read files holding one image (or spectrum image) each and stack them along a new first axis.

    Parameters
    ----------
    paths : the files, any format :func:`cryomat.io.read` reads; all must agree in shape, axes and
        pixel size (within 0.1 %).
    signal : which dataset of multi-dataset files (``"image"``, ``"spectrum"``, ...).
    tilt_angles_deg : one tilt angle (deg) per file; or
    from_names : take the tilt angle from each file name (see :func:`tilt_from_name`); used by
        vendors that write the angle only there (the Bruker EDS tomography series does).
    lazy : stack lazily (dask) when the files are read lazily, so large spectrum images are not loaded.

    Returns
    -------
    EMImage with axes ``("tilt", ...)`` sorted by tilt angle when angles are known (else
    ``("frame", ...)`` in the given order), and ``acquisition.tilt_angles_deg`` set.
    """
    files = [Path(p) for p in paths]
    if not files:
        raise InputError("no files given for the series")
    if tilt_angles_deg is not None and from_names:
        raise ValueError("give tilt_angles_deg or from_names=True, not both")
    angles = None
    if from_names:
        angles = [tilt_from_name(p) for p in files]
    elif tilt_angles_deg is not None:
        angles = [float(a) for a in tilt_angles_deg]
        if len(angles) != len(files):
            raise ValueError(f"tilt_angles_deg has {len(angles)} values for {len(files)} files")
    if angles is not None:
        order = np.argsort(angles, kind="stable")
        files = [files[i] for i in order]
        angles = [angles[i] for i in order]
        if len(set(angles)) != len(angles):
            raise InputError(f"two files have the same tilt angle: {sorted(angles)}", path=files[0].parent)
    from cryomat.io.readers import read

    imgs = [read(p, signal=signal, lazy=lazy) for p in files]
    first = imgs[0]
    for p, im in zip(files[1:], imgs[1:]):
        if im.shape != first.shape or im.axes != first.axes:
            raise InputError(f"shape {im.shape} {im.axes} differs from {files[0].name}'s {first.shape} {first.axes}",
                             path=p)
        a, b = im.pixel_size, first.pixel_size
        if (a is None) != (b is None) or (a is not None and abs(a - b) > 1e-3 * b):
            raise InputError(f"pixel size {a} A differs from {files[0].name}'s {b} A", path=p)
    datas = [im.data for im in imgs]
    if any(hasattr(d, "dask") for d in datas) and lazy:
        import dask.array as da

        data = da.stack([d if hasattr(d, "dask") else da.from_array(np.asarray(d)) for d in datas])
    else:
        data = np.stack([np.asarray(d) for d in datas])
    acq = first.acquisition
    if angles is not None:
        acq = acq.replace(tilt_angles_deg=tuple(angles))
    return EMImage(data=data, axes=("tilt" if angles is not None else "frame", *first.axes),
                   pixel_size=first.pixel_size, acquisition=acq, source=str(files[0].parent),
                   original_metadata={"files": [str(p) for p in files]}, signal=first.signal)
