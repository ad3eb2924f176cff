"""Readers for the formats microscopists have, all returning :class:`EMImage`.

MRC/MRCS through mrcfile (memory-mapped, voxel size in A from the header), TIFF
through tifffile (memory-mapped where the layout allows), DM3/DM4, EMD (Velox and
Berkeley), SER/EMI, HSPY, BCF and BLO through rosettasciio (lazily, as dask arrays,
where the reader supports it), atomap ``Atom_Lattice`` HDF5 through h5py, PNG/JPEG
through imageio, NPY through numpy, and a ``.zip`` that holds one of these.
"""

from __future__ import annotations

import os
import contextlib
import zipfile
from pathlib import Path

import numpy as np

from cryomat.errors import InputError
from cryomat.io.model import EMImage
from cryomat.io.units import length_unit_factor

MRC_EXT = {".mrc", ".mrcs", ".st", ".ali", ".rec", ".map", ".preali"}
TIFF_EXT = {".tif", ".tiff"}
RSCIIO_EXT = {".dm3", ".dm4", ".emd", ".ser", ".emi", ".hspy", ".hdf5", ".h5", ".bcf", ".blo", ".zspy"}
RASTER_EXT = {".png", ".jpg", ".jpeg", ".bmp"}
NPY_EXT = {".npy"}
ZIP_EXT = {".zip"}
SIDECAR_EXT = {".tlt", ".rawtlt", ".xtilt", ".xf", ".mdoc", ".mat"}
SUPPORTED = sorted(MRC_EXT | TIFF_EXT | RSCIIO_EXT | RASTER_EXT | NPY_EXT | ZIP_EXT)
_GRAY = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601 luma weights


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
    """MRC/MRCS/ST/REC: memory-mapped (``lazy``), voxel size in A from the header."""
    import mrcfile

    try:
        mrc = mrcfile.mmap(path, mode="r", permissive=False) if lazy else mrcfile.open(path, mode="r")
    except Exception as exc:  # mrcfile raises ValueError/OSError on bad headers or short files
        raise InputError(f"not a readable MRC file: truncated or corrupt ({exc})", path=path) from exc
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
                f = length_unit_factor(str(unit).replace("\\u00B5", "µ"))
                if f is not None and px_per_unit > 0:
                    return f / px_per_unit
            res_unit = tags.get("ResolutionUnit")
            code = int(res_unit.value) if res_unit is not None else 2
            if code == 3 and px_per_unit > 1:  # centimetre: only plausible for EM if tiny pixels
                cm_px = 1.0 / px_per_unit
                if cm_px < 1e-4:
                    return cm_px * 1e8
    return None


def _tiff_truncated(tif, path: Path) -> str | None:
    """Why the TIFF is incomplete, or ``None``: a page's data past the end, or fewer pages than declared."""
    size = path.stat().st_size
    for page in tif.pages:
        offs = getattr(page, "dataoffsets", ()) or ()
        counts = getattr(page, "databytecounts", ()) or ()
        if offs and counts and max(o + c for o, c in zip(offs, counts)) > size:
            return "the image data run past the end of the file"
    ij = tif.imagej_metadata or {}
    declared = int(ij.get("images", 0) or 0)
    if declared > 1:
        shape = tif.series[0].shape
        have = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        if shape and shape[-1] in (3, 4) and len(shape) > 3:
            have = int(np.prod(shape[:-3]))
        if have < declared:
            return f"ImageJ declares {declared} images but only {have} are in the file"
    return None


def read_tiff(path: Path, *, lazy: bool = True) -> EMImage:
    """TIFF and multi-frame TIFF: memory-mapped when uncompressed; ImageJ/resolution calibration.

    RGB(A) 8-bit images (exports with a burnt-in scale bar) become gray (BT.601 luma).
    An ImageJ stack with a z ``spacing`` is a volume (``plane``, ``row``, ``col``).
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            why = _tiff_truncated(tif, path)
            if why:
                raise InputError(f"truncated TIFF: {why}", path=path)
            px = _tiff_pixel_size(tif)
            series = tif.series[0]
            shape = series.shape
            ij = tif.imagej_metadata or {}
            meta = {"imagej": {k: v for k, v in ij.items() if isinstance(v, (int, float, str, bool))},
                    "shape": list(shape)}
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
        raise InputError(f"not a readable TIFF file: truncated or corrupt ({exc})", path=path) from exc
    data = np.asarray(data) if not hasattr(data, "dtype") else data
    if data.ndim == 3 and data.shape[-1] in (3, 4) and data.dtype == np.uint8:
        data = np.asarray(data[..., :3], dtype=np.float32) @ _GRAY
        meta["converted"] = "RGB to gray (BT.601 luma)"
    data = np.squeeze(data) if data.ndim > 2 and 1 in data.shape else data
    signal = "image"
    if data.ndim == 2:
        axes = ("row", "col")
    elif data.ndim == 3:
        if ij.get("spacing") and int(ij.get("slices", 0) or 0) == data.shape[0]:
            axes, signal = ("plane", "row", "col"), "volume"
        else:
            axes = ("frame", "row", "col")
    else:
        raise InputError(f"TIFF data has shape {data.shape}; expected an image or a stack", path=path)
    return EMImage(data=data, axes=axes, pixel_size=px, source=str(path), original_metadata=meta, signal=signal)


def read_raster(path: Path, *, lazy: bool = True) -> EMImage:
    """PNG/JPEG/BMP (no calibration); colour becomes gray."""
    import imageio.v3 as iio

    try:
        data = iio.imread(path)
    except Exception as exc:
        raise InputError(f"not a readable image: truncated or corrupt ({exc})", path=path) from exc
    if data.ndim == 3:
        data = np.asarray(data[..., :3], np.float32) @ _GRAY
    return EMImage(data=data, axes=("row", "col"), pixel_size=None, source=str(path))


def read_npy(path: Path, *, lazy: bool = True) -> EMImage:
    """A ``.npy`` array. An (N, 2) or (N, 3) array is a list of positions (``signal="positions"``)."""
    try:
        data = np.load(path, mmap_mode="r" if lazy else None, allow_pickle=False)
    except Exception as exc:
        raise InputError(f"not a readable .npy file: truncated or corrupt ({exc})", path=path) from exc
    if data.ndim == 2 and data.shape[1] in (2, 3) and data.shape[0] > data.shape[1]:
        return EMImage(data=data, axes=("point", "coord"), source=str(path), signal="positions",
                       original_metadata={"note": "positions in pixels, columns as stored in the file"})
    names = {2: ("row", "col"), 3: ("frame", "row", "col")}
    if data.ndim not in names:
        raise InputError(f".npy array has shape {data.shape}; expected 2 or 3 dimensions", path=path)
    return EMImage(data=data, axes=names[data.ndim], source=str(path))


def _is_atom_lattice(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "image_data0" in f and "Experiments" not in f
    except Exception:
        return False


def read_atom_lattice(path: Path, *, lazy: bool = True) -> EMImage:
    """An atomap ``Atom_Lattice`` HDF5 (``image_data0`` plus fitted sublattice positions).

    The image is uncalibrated in such files (atomap stores ``pixel_size = 1``), so
    ``pixel_size`` is ``None``; the sublattices' ``atom_positions`` (x, y in pixels) go to
    ``original_metadata["atom_positions_px"]``.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            data = np.asarray(f["image_data0"])
            positions = {}
            for name, grp in f.items():
                if isinstance(grp, h5py.Group) and "atom_positions" in grp:
                    positions[name] = np.asarray(grp["atom_positions"])
                    px = float(grp.attrs.get("pixel_size", 1.0))
    except Exception as exc:
        raise InputError(f"not a readable atomap Atom_Lattice file ({exc})", path=path) from exc
    px_out = None if not positions or abs(px - 1.0) < 1e-12 else px
    return EMImage(data=data, axes=("row", "col"), pixel_size=px_out, source=str(path),
                   original_metadata={"format": "atomap Atom_Lattice", "atom_positions_px": positions})


def _materialize(data):
    if hasattr(data, "compute"):
        data = data.compute()
    if hasattr(data, "todense"):
        data = data.todense()
    return np.asarray(data)


@contextlib.contextmanager
def extracted_member(path: Path, *, extensions, what: str = "EM file", member: str | None = None):
    """Extract the one member of a ``.zip`` whose extension is in ``extensions`` (or ``member``) to a
    temporary folder; yields ``(inner_path, member_name)`` and removes the copy afterwards.

    Raises :class:`InputError` naming the archive when it is corrupt, holds no such file, or holds
    several and ``member`` does not pick one.
    """
    import shutil
    import tempfile

    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise InputError(f"not a readable zip archive: truncated or corrupt ({exc})", path=path) from exc
    allowed = {e.lower() for e in extensions}
    with zf:
        names = [n for n in zf.namelist() if not n.endswith("/") and not n.startswith("__MACOSX")
                 and Path(n).suffix.lower() in allowed]
        if member is not None:
            matches = [n for n in names if n == member or Path(n).name == member]
            if not matches:
                raise InputError(f"the archive has no {what} {member!r}; it holds {names}", path=path)
            names = matches[:1]
        if not names:
            raise InputError(f"the zip archive holds no {what} cryomat can read", path=path)
        if len(names) > 1:
            raise InputError(f"the zip archive holds {len(names)} {what}s ({', '.join(names)}); "
                             "pick one with member=NAME (API), --member NAME (CLI), or extract it", path=path)
        tmp = Path(tempfile.mkdtemp(prefix="cryomat-zip-"))
        try:
            yield Path(zf.extract(names[0], tmp)), names[0]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def read_zip(path: Path, *, signal: str | None = None, index: int | None = None,
             member: str | None = None) -> EMImage:
    """A ``.zip`` holding one EM file (or several, with ``member=``): extracted to a temporary
    folder, read into memory, and the temporary copy removed."""
    with extracted_member(path, extensions=set(SUPPORTED) - ZIP_EXT, member=member) as (inner, name):
        img = read(inner, lazy=False, signal=signal, index=index)
        return img.replace(data=_materialize(img.data), source=f"{path}::{name}")


def read(path: str | os.PathLike, *, lazy: bool = True, signal: str | None = None,
         index: int | None = None, member: str | None = None) -> EMImage:
    """Read an EM file into a calibrated :class:`EMImage`.

    Parameters
    ----------
    path : file to read (MRC/MRCS/ST, TIFF, DM3/DM4, EMD, SER/EMI, HSPY, BCF, BLO, atomap HDF5,
        PNG, NPY, or a ZIP holding one of these).
    lazy : memory-map or read lazily where the format allows, so large movies are not copied.
    signal : for files holding several datasets (Velox EMD, BCF): ``"image"`` picks the first
        calibrated image (HAADF/DF preferred), ``"spectrum"`` the first spectrum image (else
        spectrum), ``"eels"``/``"eds"`` narrow that to one technique. Default: the image.
    index : pick dataset number ``index`` of a multi-dataset file instead.
    member : for a ZIP holding several EM files, the one to read.

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
    elif ext in {".hdf5", ".h5"} and _is_atom_lattice(p):
        img = read_atom_lattice(p, lazy=lazy)
    elif ext in RSCIIO_EXT:
        from cryomat.io.rsciio_reader import read_rsciio

        if ext == ".emi" and not any(p.parent.glob(f"{p.stem}_*.ser")):
            raise InputError(f"a TIA .emi holds only metadata; its data file {p.stem}_1.ser is not beside it", path=p)

        img = read_rsciio(p, lazy=lazy, signal=signal, index=index)
    elif ext in RASTER_EXT:
        img = read_raster(p, lazy=lazy)
    elif ext in NPY_EXT:
        img = read_npy(p, lazy=lazy)
    elif ext in ZIP_EXT:
        return read_zip(p, signal=signal, index=index, member=member)
    elif ext in SIDECAR_EXT:
        raise InputError(f"a {ext} file holds metadata, not an image; read it with cryomat.io.read_tlt/"
                         "read_xf/read_mdoc (cryomat info shows it), or read the image it belongs to", path=p)
    else:
        raise InputError(f"unknown file type {ext or '(no extension)'!r}; cryomat reads {', '.join(SUPPORTED)}", path=p)
    return _attach_sidecars(img, p)


def _attach_sidecars(img: EMImage, path: Path) -> EMImage:
    """Fill tilt angles / dose from IMOD .tlt/.rawtlt and SerialEM .mdoc files next to ``path``,
    and the pixel size from a ``<stem>_px-nm.mat`` (MATLAB ``px_nm``, pixels per nm)."""
    from cryomat.io import sidecars

    acq = img.acquisition
    changes = {}
    if acq.tilt_angles_deg is None:
        for cand in (path.with_suffix(".tlt"), path.with_suffix(".rawtlt")):
            if cand.exists():
                angles = sidecars.read_tlt(cand)
                if img.ndim == 3 and len(angles) == img.shape[0]:
                    changes["tilt_angles_deg"] = tuple(float(a) for a in angles)
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
                if len(frames) == 1 and "FrameSet" in frames[0] and img.ndim == 3:
                    # a frame-set .mdoc describes one movie: its dose is spread over the frames
                    changes["dose_per_frame_e_per_A2"] = float(doses[0]) / img.shape[0]
                else:
                    changes["dose_per_frame_e_per_A2"] = float(np.mean(doses))
            times = [f.get("ExposureTime") for f in frames if isinstance(f.get("ExposureTime"), (int, float))]
            if acq.frame_time_s is None and times and len(times) == len(frames) and img.ndim == 3:
                single_set = len(frames) == 1 and "FrameSet" in frames[0]
                changes["frame_time_s"] = float(times[0]) / img.shape[0] if single_set else float(np.mean(times))
            if acq.voltage_kV is None and info.get("Voltage") is not None:
                changes["voltage_kV"] = float(info["Voltage"])
            if img.pixel_size is None and info.get("PixelSpacing") is not None:
                img = img.replace(pixel_size=float(info["PixelSpacing"]))
    if img.pixel_size is None:
        mat = path.with_name(f"{path.stem}_px-nm.mat")
        if mat.exists():
            px = sidecars.read_px_nm_mat(mat)
            img = img.replace(pixel_size=px, original_metadata={**img.original_metadata,
                                                                "calibration_sidecar": str(mat)})
    if changes:
        img = img.replace(acquisition=acq.replace(**changes))
    return img
