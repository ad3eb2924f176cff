"""Readers for the formats microscopists have, all returning :class:`EMImage`.

MRC/MRCS through mrcfile (memory-mapped, voxel size in A from the header), TIFF
through tifffile (memory-mapped where the layout allows), DM3/DM4, EMD (Velox and
Berkeley), SER/EMI, HSPY, BCF and BLO through rosettasciio (lazily, as dask arrays,
where the reader supports it), PNG/JPEG through imageio, NPY through numpy.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cryomat.errors import InputError
from cryomat.io.model import Acquisition, EMImage
from cryomat.io.units import length_unit_factor

MRC_EXT = {".mrc", ".mrcs", ".st", ".ali", ".rec", ".map", ".preali"}
TIFF_EXT = {".tif", ".tiff"}
RSCIIO_EXT = {".dm3", ".dm4", ".emd", ".ser", ".emi", ".hspy", ".hdf5", ".h5", ".bcf", ".blo", ".zspy"}
RASTER_EXT = {".png", ".jpg", ".jpeg", ".bmp"}
NPY_EXT = {".npy"}
SUPPORTED = sorted(MRC_EXT | TIFF_EXT | RSCIIO_EXT | RASTER_EXT | NPY_EXT)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError("no such file", path=path)
    if path.is_dir():
        raise InputError("is a folder, not a file", path=path)
    if path.stat().st_size == 0:
        raise InputError("the file is empty (0 bytes)", path=path)
    if not os.access(path, os.R_OK):
        raise InputError("the file is not readable (permissions)", path=path)


def read_mrc(path: Path, *, lazy: bool = True) -> EMImage:
    import mrcfile

    try:
        mrc = mrcfile.mmap(path, mode="r", permissive=False) if lazy else mrcfile.open(path, mode="r")
    except Exception as exc:  # mrcfile raises ValueError/OSError on bad headers or short files
        raise InputError(f"not a readable MRC file ({exc})", path=path) from exc
    data = mrc.data
    if data is None:
        raise InputError("MRC file holds no data", path=path)
    vs = mrc.voxel_size
    px = float(vs.x) if float(vs.x) > 0 else None
    if px is not None and abs(px - 1.0) < 1e-9 and int(mrc.header.mx) == 0:
        px = None
    ext = path.suffix.lower()
    if data.ndim == 2:
        axes = ("row", "col")
    elif data.ndim == 3:
        is_volume = bool(mrc.header.ispg == 1) or ext in {".rec", ".map"}
        axes = ("plane", "row", "col") if is_volume and ext not in {".mrcs", ".st", ".ali", ".preali"} else ("frame", "row", "col")
        if ext in {".st", ".ali", ".preali"}:
            axes = ("tilt", "row", "col")
    else:
        raise InputError(f"MRC data has {data.ndim} dimensions; expected 2 or 3", path=path)
    header = {name: (mrc.header[name].tolist()) for name in mrc.header.dtype.names if name != "label"}
    return EMImage(data=data, axes=axes, pixel_size=px, source=str(path),
                   original_metadata={"mrc_header": header}, signal="volume" if axes[0] == "plane" else "image")


def _tiff_pixel_size(tif) -> float | None:
    ij = tif.imagej_metadata or {}
    page = tif.pages[0]
    tags = page.tags
    unit = ij.get("unit")
    if "XResolution" in tags:
        num, den = tags["XResolution"].value
        if num and den:
            px_per_unit = num / den
            if unit:
                f = length_unit_factor(unit.replace("\\u00B5", "µ"))
                if f is not None and px_per_unit > 0:
                    return f / px_per_unit
            res_unit = tags.get("ResolutionUnit")
            code = int(res_unit.value) if res_unit is not None else 2
            if code == 3 and px_per_unit > 1:  # centimetre: only plausible for EM if tiny pixels
                cm_px = 1.0 / px_per_unit
                if cm_px < 1e-4:
                    return cm_px * 1e8
    if ij.get("spacing") and unit:
        pass
    return None


def read_tiff(path: Path, *, lazy: bool = True) -> EMImage:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            px = _tiff_pixel_size(tif)
            series = tif.series[0]
            shape = series.shape
            meta = {"imagej": tif.imagej_metadata or {}, "shape": list(shape)}
            data = None
            if lazy:
                try:
                    data = tifffile.memmap(path, mode="r")
                except Exception:
                    data = None
            if data is None:
                data = series.asarray()
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"not a readable TIFF file ({exc})", path=path) from exc
    data = np.asarray(data) if not hasattr(data, "dtype") else data
    if data.ndim == 3 and data.shape[-1] in (3, 4) and data.dtype == np.uint8:
        data = np.asarray(data[..., :3], dtype=np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    data = np.squeeze(data) if data.ndim > 2 and 1 in data.shape else data
    if data.ndim == 2:
        axes = ("row", "col")
    elif data.ndim == 3:
        axes = ("frame", "row", "col")
    else:
        raise InputError(f"TIFF data has shape {data.shape}; expected an image or a stack", path=path)
    return EMImage(data=data, axes=axes, pixel_size=px, source=str(path), original_metadata=meta)


def read_raster(path: Path, *, lazy: bool = True) -> EMImage:
    import imageio.v3 as iio

    try:
        data = iio.imread(path)
    except Exception as exc:
        raise InputError(f"not a readable image ({exc})", path=path) from exc
    if data.ndim == 3:
        data = np.asarray(data[..., :3], np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return EMImage(data=data, axes=("row", "col"), pixel_size=None, source=str(path))


def read_npy(path: Path, *, lazy: bool = True) -> EMImage:
    try:
        data = np.load(path, mmap_mode="r" if lazy else None, allow_pickle=False)
    except Exception as exc:
        raise InputError(f"not a readable .npy file ({exc})", path=path) from exc
    names = {2: ("row", "col"), 3: ("frame", "row", "col")}
    if data.ndim not in names:
        raise InputError(f".npy array has shape {data.shape}; expected 2 or 3 dimensions", path=path)
    return EMImage(data=data, axes=names[data.ndim], source=str(path))


def read(path: str | os.PathLike, *, lazy: bool = True, signal: str | None = None,
         index: int | None = None) -> EMImage:
    """Read an EM file into a calibrated :class:`EMImage`.

    Parameters
    ----------
    path : file to read (MRC/MRCS/ST, TIFF, DM3/DM4, EMD, SER/EMI, HSPY, BCF, BLO, PNG, NPY).
    lazy : memory-map or read lazily where the format allows, so large movies are not copied.
    signal : for files holding several datasets (Velox EMD, BCF): ``"image"`` or
        ``"spectrum"`` picks the first of that kind; default: the first image, else the first dataset.
    index : pick dataset number ``index`` of a multi-dataset file instead.

    Returns
    -------
    EMImage with ``pixel_size`` in Angstrom (``None`` when the file does not say).

    Raises
    ------
    InputError naming the file and what is wrong with it.
    """
    p = Path(path)
    _check_file(p)
    ext = p.suffix.lower()
    if ext in MRC_EXT:
        img = read_mrc(p, lazy=lazy)
    elif ext in TIFF_EXT:
        img = read_tiff(p, lazy=lazy)
    elif ext in RSCIIO_EXT:
        from cryomat.io.rsciio_reader import read_rsciio

        img = read_rsciio(p, lazy=lazy, signal=signal, index=index)
    elif ext in RASTER_EXT:
        img = read_raster(p, lazy=lazy)
    elif ext in NPY_EXT:
        img = read_npy(p, lazy=lazy)
    else:
        raise InputError(f"unknown file type {ext or '(no extension)'!r}; cryomat reads {', '.join(SUPPORTED)}", path=p)
    return _attach_sidecars(img, p)


def _attach_sidecars(img: EMImage, path: Path) -> EMImage:
    """Fill tilt angles / dose from IMOD .tlt/.rawtlt and SerialEM .mdoc files next to ``path``."""
    from cryomat.io import sidecars

    acq = img.acquisition
    changes = {}
    if acq.tilt_angles_deg is None:
        for cand in (path.with_suffix(".tlt"), path.with_suffix(".rawtlt")):
            if cand.exists():
                angles = sidecars.read_tlt(cand)
                if img.ndim == 3 and len(angles) == img.shape[0]:
                    changes["tilt_angles_deg"] = tuple(angles)
                    break
    mdoc = Path(str(path) + ".mdoc")
    if not mdoc.exists():
        mdoc = path.with_suffix(".mdoc")
    if mdoc.exists():
        try:
            info = sidecars.read_mdoc(mdoc)
        except InputError:
            info = None
        if info is not None:
            frames = info.get("frames", [])
            if img.ndim == 3 and len(frames) == img.shape[0]:
                tilts = [f.get("TiltAngle") for f in frames]
                if acq.tilt_angles_deg is None and all(t is not None for t in tilts):
                    changes["tilt_angles_deg"] = tuple(float(t) for t in tilts)
            doses = [f.get("ExposureDose") for f in frames if f.get("ExposureDose") is not None]
            if acq.dose_per_frame_e_per_A2 is None and doses and len(doses) == len(frames):
                changes["dose_per_frame_e_per_A2"] = float(np.mean(doses))
            if acq.voltage_kV is None and info.get("Voltage") is not None:
                changes["voltage_kV"] = float(info["Voltage"])
            if img.pixel_size is None and info.get("PixelSpacing") is not None:
                img = img.replace(pixel_size=float(info["PixelSpacing"]))
    if changes:
        img = img.replace(acquisition=acq.replace(**changes))
    return img
