"""Writers: MRC with the pixel size in the header, TIFF, PNG previews. All atomic."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cryomat.io.atomic import atomic_path

_MRC_DTYPES = (np.int8, np.int16, np.uint16, np.float32, np.complex64, np.uint8, np.float16)


def write_mrc(path: str | os.PathLike, data, *, pixel_size: float | None = None, volume: bool = False) -> Path:
    """Write ``data`` (2D image, 3D stack or volume) as MRC with voxel size ``pixel_size`` (A).

    float64 data are stored as float32 (MRC has no float64 mode); bool as int8.
    ``volume=True`` marks a 3D array as a volume (space group 1) rather than an image stack.
    """
    import mrcfile

    arr = np.asarray(data)
    if arr.ndim not in (2, 3):
        raise ValueError(f"{path}: MRC holds 2D images or 3D stacks/volumes, got data of shape {arr.shape}")
    if pixel_size is not None and (not np.isfinite(pixel_size) or pixel_size < 0):
        raise ValueError(f"{path}: pixel_size must be a positive number of Angstrom, got {pixel_size!r}")
    if pixel_size == 0:
        pixel_size = None  # MRC's own convention: 0 means not calibrated
    if arr.dtype == bool:
        arr = arr.astype(np.int8)
    elif arr.dtype == np.int32 or arr.dtype == np.int64 or arr.dtype == np.uint32:
        arr = arr.astype(np.int16) if arr.size and arr.max() < 32768 and arr.min() >= -32768 else arr.astype(np.float32)
    elif arr.dtype not in [np.dtype(d) for d in _MRC_DTYPES]:
        arr = arr.astype(np.float32)
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(arr))
            if arr.ndim == 3:
                if volume:
                    mrc.set_volume()
                else:
                    mrc.set_image_stack()
            if pixel_size is not None:
                mrc.voxel_size = float(pixel_size)
            mrc.update_header_stats()
    return Path(path)


def write_tiff(path: str | os.PathLike, data, *, pixel_size: float | None = None, volume: bool = False) -> Path:
    """Write ``data`` as (ImageJ-style) TIFF with the pixel size stored as resolution in A.

    ``volume=True`` marks a 3D array as a volume (ImageJ z ``spacing`` = pixel size), so that
    :func:`cryomat.io.read` gives it back with axes (plane, row, col).
    """
    import tifffile

    arr = np.asarray(data)
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    kwargs = {}
    if pixel_size is not None:
        kwargs["resolution"] = (1.0 / float(pixel_size), 1.0 / float(pixel_size))
        kwargs["metadata"] = {"unit": "angstrom", "axes": "ZYX" if arr.ndim == 3 else "YX"}
        if volume and arr.ndim == 3:
            kwargs["metadata"]["spacing"] = float(pixel_size)
    imagej = arr.dtype in (np.uint8, np.uint16, np.float32, np.int16) and arr.ndim in (2, 3)
    with atomic_path(path) as tmp:
        if imagej:
            tifffile.imwrite(tmp, arr, imagej=True, **kwargs)
        else:
            tifffile.imwrite(tmp, arr)
    return Path(path)


def to_display(image, *, percentiles=(0.5, 99.5)) -> np.ndarray:
    """Scale an image to 0..1 for display between robust percentiles."""
    a = np.asarray(image, dtype=np.float32)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return np.zeros_like(a)
    lo, hi = np.percentile(finite, percentiles)
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


def write_png(path: str | os.PathLike, image, *, percentiles=(0.5, 99.5)) -> Path:
    """Write an 8-bit PNG preview of a 2D image (contrast from robust percentiles)."""
    import imageio.v3 as iio

    arr = np.asarray(image)
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))):
        raise ValueError(f"{path}: a PNG preview needs a 2D image (or RGB), got data of shape {arr.shape}")
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        rgb = arr if arr.dtype == np.uint8 else (np.clip(arr, 0, 1) * 255).astype(np.uint8)
    else:
        rgb = (to_display(arr, percentiles=percentiles) * 255).astype(np.uint8)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, rgb, extension=".png")
    return Path(path)


def write(path: str | os.PathLike, data, *, pixel_size: float | None = None, volume: bool | None = None) -> Path:
    """Write by extension: .mrc/.mrcs/.st/.rec, .tif/.tiff, .png, .npy.

    ``volume`` marks a 3D array as a volume rather than a stack (default: by extension,
    .rec/.map are volumes).
    """
    from cryomat.errors import InputError

    ext = Path(path).suffix.lower()
    if ext in {".mrc", ".mrcs", ".st", ".rec", ".map", ".ali"}:
        vol = (ext in {".rec", ".map"}) if volume is None else (bool(volume) and ext not in {".mrcs", ".st", ".ali"})
        return write_mrc(path, data, pixel_size=pixel_size, volume=vol)
    if ext in {".tif", ".tiff"}:
        return write_tiff(path, data, pixel_size=pixel_size, volume=bool(volume))
    if ext == ".png":
        return write_png(path, data)
    if ext == ".npy":
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(data))
        return Path(path)
    raise InputError(f"cannot write {ext or '(no extension)'!r}; use .mrc, .tif, .png or .npy", path=str(path))
