"""DM3/DM4, EMD, SER/EMI, HSPY, BCF and BLO through rosettasciio, calibrated to Angstrom."""

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


def _get(d: dict, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def _classify(dataset: dict) -> str:
    units = [str(a.get("units") or "").lower() for a in dataset["axes"]]
    if any(u in _ENERGY_UNITS for u in units):
        return "spectrum"
    sig = _get(dataset, "metadata", "Signal", "signal_type", default="") or ""
    if str(sig).upper() in {"EELS", "EDS_TEM", "EDS_SEM", "EDS"}:
        return "spectrum"
    return "image"


def _to_image(dataset: dict, path: Path) -> EMImage:
    data = dataset["data"]
    axes_meta = list(dataset["axes"])
    if hasattr(data, "ndim") and data.ndim != len(axes_meta):
        axes_meta = axes_meta[: data.ndim]
    kind = _classify(dataset)
    names: list[str] = []
    px = None
    energy = None
    tilts = None
    nspatial = sum(1 for a in axes_meta if length_unit_factor(a.get("units")) is not None)
    for a in axes_meta:
        unit = str(a.get("units") or "")
        f = length_unit_factor(unit)
        scale = float(a.get("scale", 1.0) or 1.0)
        size = int(a.get("size", 1))
        if unit.lower() in _ENERGY_UNITS:
            names.append("energy")
            k = _ENERGY_UNITS[unit.lower()]
            energy = (float(a.get("offset", 0.0)) + scale * np.arange(size)) * k
        elif f is not None:
            names.append("row" if "row" not in names else "col")
            if px is None:
                px = scale * f
        elif unit.lower() in {"deg", "degree", "degrees", "°"}:
            names.append("tilt")
            tilts = tuple(float(a.get("offset", 0.0)) + scale * np.arange(size))
        else:
            names.append("frame" if kind == "image" else "index")
    # two spatial axes named row/col; unitless ones before them are frames (series)
    if kind == "image" and nspatial == 0 and len(names) >= 2:
        names = names[:-2] + ["row", "col"]
    if len(set(names)) != len(names):
        names = [f"{n}{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]
    md = dataset.get("metadata", {})
    voltage = _get(md, "Acquisition_instrument", "TEM", "beam_energy")
    if voltage is None:
        voltage = _get(md, "Acquisition_instrument", "SEM", "beam_energy")
    ts = _get(md, "General", "date")
    if ts and _get(md, "General", "time"):
        ts = f"{ts}T{_get(md, 'General', 'time')}"
    acq = Acquisition(voltage_kV=float(voltage) if voltage is not None else None,
                      energy_axis_eV=energy, tilt_angles_deg=tilts, timestamp=ts)
    return EMImage(data=data, axes=tuple(names), pixel_size=px, acquisition=acq, source=str(path),
                   original_metadata={"metadata": md, "original_metadata": dataset.get("original_metadata", {})},
                   signal=kind)


def read_rsciio(path: Path, *, lazy: bool = True, signal: str | None = None, index: int | None = None) -> EMImage:
    """Read ``path`` with the rosettasciio plugin chosen from its extension."""
    ext = path.suffix.lower()
    mod = importlib.import_module(_PLUGIN[ext])
    kwargs = {}
    if ext in {".hspy", ".hdf5", ".h5", ".emd", ".bcf", ".dm3", ".dm4", ".ser", ".emi", ".zspy", ".blo"}:
        kwargs["lazy"] = lazy
    try:
        try:
            datasets = mod.file_reader(str(path), **kwargs)
        except TypeError:
            datasets = mod.file_reader(str(path))
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"could not read as {ext[1:].upper()} ({type(exc).__name__}: {exc})", path=path) from exc
    if not datasets:
        raise InputError("the file holds no datasets", path=path)
    if index is not None:
        if not 0 <= index < len(datasets):
            raise InputError(f"dataset index {index} out of range (the file holds {len(datasets)})", path=path)
        chosen = datasets[index]
    else:
        want = signal or "image"
        matching = [d for d in datasets if _classify(d) == want]
        if signal is not None and not matching:
            raise InputError(f"the file holds no {signal} dataset", path=path)
        chosen = matching[0] if matching else datasets[0]
    img = _to_image(chosen, path)
    return img.replace(original_metadata={**img.original_metadata, "n_datasets": len(datasets)})


def list_datasets(path: str) -> list[dict]:
    """Short description of every dataset a multi-dataset file holds (shape, kind, title)."""
    p = Path(path)
    mod = importlib.import_module(_PLUGIN[p.suffix.lower()])
    out = []
    for i, d in enumerate(mod.file_reader(str(p), lazy=True)):
        out.append({"index": i, "kind": _classify(d), "shape": list(np.shape(d["data"])),
                    "title": _get(d, "metadata", "General", "title", default="")})
    return out
