"""Reading spectra and spectrum images (EDS, EELS) with what quantification needs.

Builds on :func:`cryomat.io.read` (rosettasciio underneath): picks the spectrum image in
multi-dataset files (Velox EMD, Bruker BCF), the simultaneously acquired image (HAADF/DF), a low-loss
partner in dual-EELS files, and collects the acquisition facts from the metadata (voltage, detector
resolution at Mn Ka, convergence/collection angles, elements).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cryomat.errors import InputError

_SYMBOLS = None


def _is_element(name: str) -> bool:
    global _SYMBOLS
    if _SYMBOLS is None:
        from cryomat.spectroscopy.tables import xray_lines_table

        _SYMBOLS = set(xray_lines_table())
    return name in _SYMBOLS


@dataclass
class Spectrum:
    """A spectrum or spectrum image with its energy axis and acquisition facts.

    Attributes
    ----------
    data : numpy array (..., energy) counts; (energy,) for one spectrum, (row, col, energy) for an SI.
    energy_eV : (energy,) channel energies in eV.
    kind : ``"EDS"`` or ``"EELS"``.
    pixel_size : A, or None.
    voltage_kV, fwhm_mnka_eV, alpha_mrad, beta_mrad : acquisition facts (None when unknown).
    elements : element symbols named by the file (may be empty).
    image : simultaneously acquired image (row, col) of the same area, or None.
    lowloss : a low-loss ``Spectrum`` of the same pixels (dual EELS), or None.
    """

    data: np.ndarray
    energy_eV: np.ndarray
    kind: str
    pixel_size: float | None = None
    voltage_kV: float | None = None
    fwhm_mnka_eV: float | None = None
    alpha_mrad: float | None = None
    beta_mrad: float | None = None
    elements: list = field(default_factory=list)
    image: np.ndarray | None = None
    image_title: str = ""
    lowloss: "Spectrum | None" = None
    source: str = ""
    title: str = ""

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[:-1])


def _get(d, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def _kind_of(md: dict, energy_eV: np.ndarray) -> str:
    st = str(_get(md, "Signal", "signal_type", default="") or "").upper()
    if st.startswith("EDS") or st in {"EDX", "XEDS"}:
        return "EDS"
    if st.startswith("EELS"):
        return "EELS"
    title = str(_get(md, "General", "title", default="") or "").upper()
    if "EDS" in title or "EDX" in title:
        return "EDS"
    if "EEL" in title:
        return "EELS"
    # EDS spectra span keV with ~10 eV channels; EELS channels are finer than 2 eV
    step = float(energy_eV[1] - energy_eV[0]) if len(energy_eV) > 1 else 1.0
    return "EDS" if step >= 2.0 else "EELS"


def _facts(img) -> dict:
    md = img.original_metadata.get("metadata", {}) or {}
    tem = _get(md, "Acquisition_instrument", "TEM", default=None) or _get(md, "Acquisition_instrument", "SEM",
                                                                           default={}) or {}
    out = {
        "voltage_kV": img.acquisition.voltage_kV,
        "fwhm_mnka_eV": _get(tem, "Detector", "EDS", "energy_resolution_MnKa"),
        "alpha_mrad": _get(tem, "convergence_angle"),
        "beta_mrad": _get(tem, "Detector", "EELS", "collection_angle"),
        "elements": list(_get(md, "Sample", "elements", default=[]) or []),
        "title": str(_get(md, "General", "title", default="") or ""),
    }
    return out


def _from_emimage(img, kind_hint=None) -> Spectrum:
    md = img.original_metadata.get("metadata", {}) or {}
    energy = img.acquisition.energy_axis_eV
    if energy is None or img.axes[-1] != "energy":
        raise InputError("the dataset is not a spectrum (no energy axis last)", path=img.source)
    data = np.asarray(img.data)
    if data.ndim > 3:
        raise InputError(f"spectrum data with shape {data.shape} (more than 2 spatial axes) is not supported",
                         path=img.source)
    f = _facts(img)
    kind = kind_hint or _kind_of(md, energy)
    return Spectrum(data=data, energy_eV=np.asarray(energy, float), kind=kind, pixel_size=img.pixel_size,
                    voltage_kV=f["voltage_kV"], fwhm_mnka_eV=f["fwhm_mnka_eV"], alpha_mrad=f["alpha_mrad"],
                    beta_mrad=f["beta_mrad"], elements=[e for e in f["elements"] if _is_element(str(e))],
                    source=str(img.source), title=f["title"])


_EM_EXT = {".emd", ".bcf", ".hspy", ".hdf5", ".h5", ".dm3", ".dm4", ".ser", ".emi", ".zspy"}


def _load_from_zip(p: Path, *, index, kind, member) -> Spectrum:
    from cryomat.io.readers import extracted_member

    with extracted_member(p, extensions=_EM_EXT, what="spectrum file", member=member) as (inner, name):
        spec = load_spectrum(inner, index=index, kind=kind)
    spec.source = f"{p}!{name}"
    return spec


def load_spectrum(path, *, index: int | None = None, kind: str | None = None, member: str | None = None) -> Spectrum:
    """Read the spectrum (image) of ``path``: DM3/DM4, Velox/Berkeley EMD, BCF, HSPY, ...

    Parameters
    ----------
    path : file, or a ``.zip`` holding one (or ``member``).
    member : for a zip holding several files, the one to read.
    index : dataset number in a multi-dataset file; default: the spectrum dataset with the most
        pixels (of ``kind`` if given; in dual EELS the core-loss one).
    kind : ``"EDS"`` or ``"EELS"`` to choose between datasets or override the file's claim.

    Returns
    -------
    :class:`Spectrum`, with ``image`` (HAADF/DF of the same area) and ``lowloss`` filled where the
    file holds them.
    """
    from cryomat import io
    from cryomat.io.rsciio_reader import dataset_kind, dataset_to_image, read_datasets

    p = Path(path)
    if kind is not None:
        kind = kind.upper()
        if kind not in {"EDS", "EELS"}:
            raise ValueError(f"kind must be 'EDS' or 'EELS', got {kind!r}")
    ext = p.suffix.lower()
    if ext == ".zip":
        return _load_from_zip(p, index=index, kind=kind, member=member)
    multi = ext in {".emd", ".bcf"}
    if not multi:
        img = io.read(p, signal="spectrum", index=index) if index is not None else io.read(p, signal="spectrum")
        return _from_emimage(img, kind)
    datasets = read_datasets(p)
    listing = [{"index": i, "kind": dataset_kind(d), "shape": list(np.shape(d["data"])),
                "title": str(_get(d, "metadata", "General", "title", default="") or "")}
               for i, d in enumerate(datasets)]
    spectra = [d for d in listing if d["kind"] == "spectrum"]
    images = [d for d in listing if d["kind"] == "image" and len(d["shape"]) == 2]
    if index is not None:
        chosen = next((d for d in listing if d["index"] == index), None)
        if chosen is None or chosen["kind"] != "spectrum":
            raise InputError(f"dataset {index} is not a spectrum; spectra: {[d['index'] for d in spectra]}", path=p)
    else:
        if not spectra:
            raise InputError("the file holds no spectrum", path=p)
        cands = []
        for d in spectra:
            title = str(d["title"]).upper()
            dk = "EDS" if ("EDS" in title or "EDX" in title) else ("EELS" if "EEL" in title else None)
            if kind is not None and dk is not None and dk != kind:
                continue
            cands.append(d)
        if not cands:
            raise InputError(f"the file holds no {kind} spectrum", path=p)
        # most pixels first
        cands.sort(key=lambda d: -int(np.prod(d["shape"][:-1])) if len(d["shape"]) > 1 else 0)
        chosen = cands[0]
    spec = _from_emimage(dataset_to_image(datasets[chosen["index"]], p), kind)
    if spec.kind == "EELS" and index is None:
        # dual EELS: the core loss starting lowest above 0 eV, and the low loss (spanning 0 eV)
        same = [spec] + [_from_emimage(dataset_to_image(datasets[d["index"]], p), "EELS") for d in spectra
                         if d["index"] != chosen["index"] and d["shape"] == chosen["shape"]]
        low = [x for x in same if x.energy_eV[0] < 0 < x.energy_eV[-1]]
        core = sorted((x for x in same if x.energy_eV[0] > 0), key=lambda x: x.energy_eV[0])
        if core:
            spec = core[0]
            spec.lowloss = low[0] if low else None
    # the simultaneously acquired image: same spatial shape, a detector (not an element map)
    shape = list(spec.spatial_shape)
    element_maps = [str(d["title"]) for d in images if _is_element(str(d["title"]).split("-")[0])]
    if not spec.elements and spec.kind == "EDS":
        spec.elements = sorted({t.split("-")[0] for t in element_maps if "EELS" not in t})
    for d in images:
        if d["shape"] == shape and not _is_element(str(d["title"]).split("-")[0]):
            spec.image = np.asarray(datasets[d["index"]]["data"], float)
            spec.image_title = str(d["title"])
            break
    return spec


def bin_spectrum(spec: Spectrum, factor: int) -> Spectrum:
    """Sum ``factor`` x ``factor`` pixels of a spectrum image (counts add; pixel size grows)."""
    if factor <= 1 or spec.data.ndim != 3:
        return spec
    r, c, n = spec.data.shape
    r2, c2 = r // factor, c // factor
    if r2 == 0 or c2 == 0:
        raise ValueError(f"bin factor {factor} is larger than the image ({r} x {c} pixels)")
    d = spec.data[: r2 * factor, : c2 * factor].reshape(r2, factor, c2, factor, n).sum((1, 3))
    img = spec.image
    if img is not None and img.shape == (r, c):
        img = img[: r2 * factor, : c2 * factor].reshape(r2, factor, c2, factor).mean((1, 3))
    import dataclasses

    return dataclasses.replace(spec, data=d, image=img,
                               pixel_size=None if spec.pixel_size is None else spec.pixel_size * factor)
