"""DM3/DM4, EMD, SER/EMI, HSPY, BCF and BLO through rosettasciio, calibrated to Angstrom.

Axis names follow numpy order: navigation axes first (``frame``/``tilt`` for series,
``scan_row``/``scan_col`` for 4D-STEM), then ``row``, ``col``; spectra end in ``energy``.
Calibration rules (each checked on a real file, see ``tests/test_io_realfiles.py``):

- lengths in nm, um, m, pm are converted to Angstrom (rosettasciio reports MRC and most
  formats in nm, Velox in um);
- a HyperSpy length axis with a scale that is not 1 but *no unit* (atomap's test files) is
  taken to be in nm, HyperSpy's convention for EM; the assumption is recorded in
  ``original_metadata["calibration_note"]`` (checked on atomap's SrTiO3 image, whose
  3.905 A lattice comes out right only in nm);
- the acceleration voltage is taken from the rosettasciio metadata, else from the vendor
  tags (DM ``Microscope Info.Voltage``, Velox ``Optics.AccelerationVoltage``, TIA
  ``High tension_kV``, Berkeley EMD ``microscope.high tension``).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from cryomat.errors import InputError
from cryomat.io.model import Acquisition, EMImage
from cryomat.io.units import length_unit_factor

_PLUGIN = {
    ".dm3": "rsciio.digitalmicrograph", ".dm4": "rsciio.digitalmicrograph",
    ".emd": "rsciio.emd", ".ser": "rsciio.tia", ".emi": "rsciio.tia",
    ".hspy": "rsciio.hspy", ".hdf5": "rsciio.hspy", ".h5": "rsciio.hspy",
    ".zspy": "rsciio.zspy", ".bcf": "rsciio.bruker", ".blo": "rsciio.blockfile",
}
_ENERGY_UNITS = {"ev": 1.0, "kev": 1000.0}
_ANGLE_UNITS = {"deg", "degree", "degrees", "°"}
_UNSET = {"", "<undefined>", "undefined", "none", "_none_"}
SIGNALS = ("image", "spectrum", "eels", "eds")
_IMAGE_TITLES = ("haadf", "adf", "df", "bf", "abf", "image", "hrtem", "stem")


def _get(d: dict, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def _unit(a: dict) -> str:
    u = a.get("units")
    return "" if u is None else str(u).strip()


def _classify(dataset: dict) -> str:
    units = [_unit(a).lower() for a in dataset["axes"]]
    if any(u in _ENERGY_UNITS for u in units):
        return "spectrum"
    sig = _get(dataset, "metadata", "Signal", "signal_type", default="") or ""
    if str(sig).upper() in {"EELS", "EDS_TEM", "EDS_SEM", "EDS"}:
        return "spectrum"
    if len(dataset["axes"]) == 1:
        return "profile"  # a 1D signal without an energy axis: a line profile / plot
    if str(sig).lower() in {"diffraction", "electron_diffraction"} or (
            sum(1 for a in dataset["axes"] if a.get("navigate")) >= 1 and len(dataset["axes"]) == 4):
        return "diffraction"
    return "image"


def _spectrum_kind(dataset: dict) -> str | None:
    sig = str(_get(dataset, "metadata", "Signal", "signal_type", default="") or "").upper()
    if sig.startswith("EELS"):
        return "eels"
    if sig.startswith("EDS"):
        return "eds"
    return None


def _voltage_kV(md: dict, om: dict) -> float | None:
    """Acceleration voltage (kV) from rosettasciio metadata or the vendor's own tags."""
    for mic in ("TEM", "SEM"):
        v = _get(md, "Acquisition_instrument", mic, "beam_energy")
        if v is not None:
            return float(v)
    candidates = [
        (_get(om, "ImageList", "TagGroup0", "ImageTags", "Microscope Info", "Voltage"), 1e-3),  # DM, volts
        (_get(om, "Optics", "AccelerationVoltage"), 1e-3),  # Velox, volts
        (_get(om, "ObjectInfo", "ExperimentalDescription", "High tension_kV"), 1.0),  # TIA
        (_get(om, "ObjectInfo", "ExperimentalConditions", "MicroscopeConditions", "AcceleratingVoltage"), 1e-3),
        (_get(om, "microscope", "high tension"), 1e-3),  # Berkeley EMD, volts
    ]
    for v, k in candidates:
        try:
            val = float(v) * k
        except (TypeError, ValueError):
            continue
        if 1.0 <= val <= 3000.0:
            return round(val, 3)
    return None


def _squeeze(data, axes_meta: list[dict]):
    """Drop length-1 axes (a (1, 2048) 'spectrum list' is one spectrum)."""
    keep = [i for i, a in enumerate(axes_meta) if int(a.get("size", 2)) != 1]
    if len(keep) == len(axes_meta) or not keep:
        return data, axes_meta
    index = tuple(slice(None) if i in keep else 0 for i in range(len(axes_meta)))
    return data[index], [axes_meta[i] for i in keep]


def _to_image(dataset: dict, path: Path) -> EMImage:
    data = dataset["data"]
    axes_meta = list(dataset["axes"])
    if hasattr(data, "ndim") and data.ndim != len(axes_meta):
        axes_meta = axes_meta[: data.ndim]
    data, axes_meta = _squeeze(data, axes_meta)
    kind = _classify({**dataset, "axes": axes_meta})
    names: list[str] = []
    px = None
    energy = None
    tilts = None
    note = None
    is_hspy = path.suffix.lower() in {".hspy", ".hdf5", ".h5", ".zspy"}
    for a in axes_meta:
        unit = _unit(a)
        f = length_unit_factor(unit)
        scale = float(a.get("scale", 1.0) or 1.0)
        size = int(a.get("size", 1))
        nav = bool(a.get("navigate", False))
        if f is None and unit.lower() in _UNSET and is_hspy and abs(scale - 1.0) > 1e-9 and kind == "image":
            f = 10.0
            note = (f"axis {a.get('name')!r} has scale {scale:g} and no unit; taken as nm "
                    "(HyperSpy's convention for EM images)")
        if unit.lower() in _ENERGY_UNITS:
            names.append("energy")
            energy = (float(a.get("offset", 0.0) or 0.0) + scale * np.arange(size)) * _ENERGY_UNITS[unit.lower()]
        elif unit.lower() in _ANGLE_UNITS:
            names.append("tilt")
            tilts = tuple(float(t) for t in float(a.get("offset", 0.0) or 0.0) + scale * np.arange(size))
        elif kind == "profile":
            names.append("position")
            if f is not None:
                px = scale * f
        elif kind == "diffraction":
            if nav:
                names.append("scan_row" if "scan_row" not in names else "scan_col")
                if px is None and f is not None:
                    px = scale * f
            else:
                names.append("pattern_row" if "pattern_row" not in names else "pattern_col")
        elif f is not None:
            names.append("row" if "row" not in names else "col")
            if px is None:
                px = scale * f
        else:
            names.append("frame" if kind == "image" else "index")
    # two spatial axes named row/col; unitless ones before them are frames (series)
    nspatial = sum(1 for n in names if n in ("row", "col"))
    if kind == "image" and nspatial == 0 and len(names) >= 2:
        names = names[:-2] + ["row", "col"]
    if kind == "spectrum" and names.count("index") in (1, 2) and "row" not in names:
        # an uncalibrated spectrum image: the navigation axes are still (row, col)
        names = [("row" if i == 0 else "col") if n == "index" and names.count("index") == 2 else n
                 for i, n in enumerate(names)]
    if len(set(names)) != len(names):
        names = [f"{n}{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]
    md = dataset.get("metadata", {}) or {}
    om = dataset.get("original_metadata", {}) or {}
    ts = _get(md, "General", "date")
    if ts and _get(md, "General", "time"):
        ts = f"{ts}T{_get(md, 'General', 'time')}"
    acq = Acquisition(voltage_kV=_voltage_kV(md, om), energy_axis_eV=energy, tilt_angles_deg=tilts,
                      timestamp=ts)
    extra = {"metadata": md, "original_metadata": om, "title": _get(md, "General", "title", default="")}
    if note:
        extra["calibration_note"] = note
    sk = _spectrum_kind(dataset)
    if sk:
        extra["spectrum_kind"] = sk
    return EMImage(data=data, axes=tuple(names), pixel_size=px, acquisition=acq, source=str(path),
                   original_metadata=extra, signal=kind)


def _open(path: Path, lazy: bool, **extra) -> list[dict]:
    ext = path.suffix.lower()
    mod = importlib.import_module(_PLUGIN[ext])
    try:
        try:
            datasets = mod.file_reader(str(path), lazy=lazy, **extra)
        except TypeError:
            datasets = mod.file_reader(str(path), **extra)
    except InputError:
        raise
    except ModuleNotFoundError as exc:
        raise InputError(f"reading this {ext[1:].upper()} file needs the Python package {exc.name!r}; "
                         f"install it with pip install {exc.name}", path=path) from exc
    except Exception as exc:
        raise InputError(f"could not read as {ext[1:].upper()}: truncated, corrupt or not this format "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                         path=path) from exc
    if not datasets:
        raise InputError("the file holds no datasets", path=path)
    return datasets


def _is_spectrum_image(d: dict) -> bool:
    return _classify(d) == "spectrum" and len(d["axes"]) >= 3


def _image_rank(d: dict) -> tuple:
    """Sort key for the default image of a multi-dataset file: calibrated, then HAADF/DF, then larger."""
    calibrated = any(length_unit_factor(_unit(a)) is not None for a in d["axes"])
    title = str(_get(d, "metadata", "General", "title", default="") or "").lower()
    named = any(title == t or title.startswith(t) or title.endswith(t) for t in _IMAGE_TITLES)
    return (not calibrated, not named)


def choose(datasets: list[dict], *, signal: str | None, index: int | None, path: Path) -> dict:
    """Pick one dataset of a multi-dataset file (see :func:`cryomat.io.read`)."""
    if index is not None:
        if not 0 <= index < len(datasets):
            raise InputError(f"dataset index {index} out of range (the file holds {len(datasets)})", path=path)
        return datasets[index]
    if signal is not None and signal not in SIGNALS:
        raise InputError(f"signal must be one of {', '.join(SIGNALS)}, got {signal!r}", path=path)
    if signal in ("spectrum", "eels", "eds"):
        spectra = [d for d in datasets if _classify(d) == "spectrum"]
        if signal != "spectrum":
            spectra = [d for d in spectra if _spectrum_kind(d) in (signal, None)]
        if not spectra:
            raise InputError(f"the file holds no {signal} dataset", path=path)
        si = [d for d in spectra if _is_spectrum_image(d)]
        return (si or spectra)[0]
    images = [d for d in datasets if _classify(d) in ("image", "diffraction")]
    if signal == "image" and not images:
        raise InputError("the file holds no image dataset", path=path)
    if not images:
        return datasets[0]
    order = sorted(range(len(images)), key=lambda i: (_image_rank(images[i]), i))
    return images[order[0]]


def read_rsciio(path: Path, *, lazy: bool = True, signal: str | None = None, index: int | None = None) -> EMImage:
    """Read ``path`` with the rosettasciio plugin chosen from its extension."""
    datasets = None
    if path.suffix.lower() == ".emd" and index is None and signal in (None, "image"):
        # Velox: decode only the images (the sparse EDS stream takes 10x longer). Not done for
        # spectra: rosettasciio 0.15 then sizes the EDS SI of velox_EELS_EDS.emd from the EELS SI
        # (16 x 20) instead of its own 128 x 128.
        try:
            part = _open(path, lazy, select_type="images")
        except InputError:
            part = None  # not Velox, or the reader refuses: read everything below
        if part:
            datasets = part
    if datasets is None:
        datasets = _open(path, lazy)
    chosen = choose(datasets, signal=signal, index=index, path=path)
    img = _to_image(chosen, path)
    return img.replace(original_metadata={**img.original_metadata, "n_datasets": len(datasets)})


def read_datasets(path, *, lazy: bool = False) -> list[dict]:
    """Every dataset of a (multi-dataset) file as rosettasciio dictionaries, read once.

    Raises :class:`InputError` naming the file when it cannot be read."""
    p = Path(path)
    if p.suffix.lower() not in _PLUGIN:
        raise InputError(f"not a rosettasciio format ({p.suffix or 'no extension'})", path=p)
    return _open(p, lazy)


def dataset_kind(dataset: dict) -> str:
    """``"image"``, ``"spectrum"``, ``"diffraction"`` ... of one rosettasciio dataset."""
    return _classify(dataset)


def dataset_to_image(dataset: dict, path) -> EMImage:
    """One rosettasciio dataset as a calibrated :class:`EMImage` (lengths in Angstrom)."""
    return _to_image(dataset, Path(path))


def list_datasets(path: str) -> list[dict]:
    """Short description of every dataset a multi-dataset file holds (index, kind, shape, title)."""
    return [{"index": i, "kind": _classify(d), "shape": list(np.shape(d["data"])),
             "title": _get(d, "metadata", "General", "title", default="")}
            for i, d in enumerate(read_datasets(path, lazy=True))]
