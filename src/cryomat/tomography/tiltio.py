"""Loading tilt series and their angles from where they are stored.

Angles come, in this order, from an explicit file (IMOD ``.tlt``/``.rawtlt``, SerialEM ``.mdoc``,
AreTomo ``.aln``), from the data file itself (DM tilt axis, sidecars found by :func:`cryomat.io.read`),
or, for a series of single-image files (e.g. Bruker ``.bcf`` EDS tomography), from a number in each
file name (``tilt_-40.bcf`` -> -40 deg).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryomat.errors import InputError

_NUM = re.compile(r"[-+]?\d+(?:\.\d+)?")
_AXIS = re.compile(r"tilt\s*axis\s*angle\s*=\s*([-+]?\d+(?:\.\d*)?)", re.I)


@dataclass(frozen=True)
class TiltSeries:
    """A tilt series in memory: ``stack`` (tilt, row, col) float32 sorted by angle, ``angles_deg``,
    ``pixel_size`` (A or None), ``axis_angle_deg`` (SerialEM/IMOD convention, or None), ``angle_source``,
    ``sources`` (file per tilt) and ``order`` (index of each sorted tilt in the input)."""

    stack: np.ndarray
    angles_deg: np.ndarray
    pixel_size: float | None
    axis_angle_deg: float | None
    angle_source: str
    sources: list
    order: np.ndarray


def angle_from_name(path: str | Path) -> float | None:
    """The last signed number in a file's stem (``tilt_-40`` -> -40.0), or None."""
    nums = _NUM.findall(Path(path).stem)
    return float(nums[-1]) if nums else None


def axis_angle_from_mdoc(info: dict) -> float | None:
    """Tilt-axis angle (deg) from a parsed ``.mdoc`` (title line ``Tilt axis angle = ...``)."""
    for t in info.get("titles", []):
        m = _AXIS.search(str(t))
        if m:
            return float(m.group(1))
    return None


def read_angles(path: str | Path) -> tuple[np.ndarray, float | None]:
    """Tilt angles (deg) and the tilt-axis angle if the file has one, from ``.tlt``/``.rawtlt``/
    ``.mdoc``/``.aln`` (any other suffix is read as a one-angle-per-line text file)."""
    from cryomat.io.sidecars import read_mdoc, read_tlt

    p = Path(path)
    if not p.exists():
        raise InputError("no such angle file", path=p)
    suf = p.suffix.lower()
    if suf == ".mdoc":
        info = read_mdoc(p)
        tilts = [f.get("TiltAngle") for f in info.get("frames", [])]
        if not tilts or any(t is None for t in tilts):
            raise InputError("the .mdoc has no TiltAngle for every section", path=p)
        return np.asarray(tilts, float), axis_angle_from_mdoc(info)
    if suf == ".aln":
        from cryomat.tomography.conventions import axis_angle_from_psi, read_aln

        table, _ = read_aln(p)
        return table["tilt_deg"].to_numpy(float), axis_angle_from_psi(float(table["rot_deg"].median()))
    return read_tlt(p), None


def load_tilt_series(paths, *, angles_file=None) -> TiltSeries:
    """Read one stack file or several single-image files into a :class:`TiltSeries`.

    Raises
    ------
    InputError when the angles cannot be found or do not match the number of images.
    """
    from cryomat import io

    paths = [Path(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
    if not paths:
        raise InputError("no tilt-series file given")
    axis = None
    if len(paths) == 1:
        img = io.read(paths[0], signal="image")
        data = np.asarray(img.data, dtype=np.float32)
        if data.ndim != 3:
            raise InputError(f"a tilt series needs a 3D stack (tilt, row, col); got shape {data.shape}. "
                             "Give one file per tilt to build a series", path=paths[0])
        px = img.pixel_size
        sources = [str(paths[0])] * data.shape[0]
        angles, src = (None, "")
        if img.acquisition.tilt_angles_deg is not None:
            angles, src = np.asarray(img.acquisition.tilt_angles_deg, float), "file"
        mdoc = Path(str(paths[0]) + ".mdoc")
        if mdoc.exists() and angles_file is None:
            try:
                from cryomat.io.sidecars import read_mdoc

                axis = axis_angle_from_mdoc(read_mdoc(mdoc))
            except InputError:
                axis = None
    else:
        imgs = []
        for p in paths:
            im = io.read(p, signal="image")
            a = np.asarray(im.data, np.float32)
            if a.ndim != 2:
                raise InputError(f"expected one image per file, got shape {a.shape}", path=p)
            imgs.append((p, a, im))
        shapes = {a.shape for _, a, _ in imgs}
        if len(shapes) != 1:
            raise InputError(f"the images differ in shape: {sorted(shapes)}")
        data = np.stack([a for _, a, _ in imgs])
        px = imgs[0][2].pixel_size
        sources = [str(p) for p in paths]
        angles, src = None, ""
        names = [angle_from_name(p) for p in paths]
        if all(v is not None for v in names):
            angles, src = np.asarray(names, float), "file names"
    if angles_file is not None:
        angles, axis_f = read_angles(angles_file)
        axis = axis_f if axis_f is not None else axis
        src = str(angles_file)
    if angles is None:
        raise InputError("no tilt angles: pass --angles FILE (.tlt, .rawtlt, .mdoc, .aln), or name single-image "
                         "files by angle (tilt_-40.tif)", path=paths[0])
    if angles.size != data.shape[0]:
        raise InputError(f"{angles.size} tilt angles for {data.shape[0]} images", path=angles_file or paths[0])
    if np.any(np.abs(angles) > 90.0 + 1e-6):
        raise InputError("tilt angles beyond +/-90 deg", path=angles_file or paths[0])
    order = np.argsort(angles, kind="stable")
    return TiltSeries(stack=np.ascontiguousarray(data[order]), angles_deg=angles[order], pixel_size=px,
                      axis_angle_deg=axis, angle_source=src, sources=[sources[i] for i in order], order=order)


def bin_stack(stack, factor: int) -> np.ndarray:
    """Mean-bin the last two axes by an integer ``factor`` (edges that do not fill a bin are cut)."""
    f = int(factor)
    if f < 1:
        raise ValueError(f"bin factor must be >= 1, got {factor}")
    if f == 1:
        return np.asarray(stack, np.float32)
    n, r, c = stack.shape
    r2, c2 = r // f, c // f
    if r2 < 8 or c2 < 8:
        raise ValueError(f"binning by {f} leaves only {r2} x {c2} pixels")
    return np.asarray(stack[:, :r2 * f, :c2 * f], np.float32).reshape(n, r2, f, c2, f).mean(axis=(2, 4))
