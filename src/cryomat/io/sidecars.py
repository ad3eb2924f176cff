"""Sidecar metadata: IMOD tilt lists (.tlt/.rawtlt), transforms (.xf) and SerialEM .mdoc."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from cryomat.errors import InputError


def read_tlt(path: str | Path) -> np.ndarray:
    """Tilt angles in degrees from an IMOD ``.tlt``/``.rawtlt`` file (one number per line)."""
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read tilt-angle file ({exc})", path=p) from exc
    vals = []
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            vals.append(float(line.split()[0]))
        except ValueError as exc:
            raise InputError(f"line {i} is not a tilt angle: {line!r}", path=p) from exc
    if not vals:
        raise InputError("no tilt angles found", path=p)
    return np.asarray(vals, dtype=float)


def write_tlt(path: str | Path, angles_deg) -> Path:
    """Write tilt angles (deg) as an IMOD ``.tlt`` file, atomically."""
    from cryomat.io.atomic import write_text

    return write_text(path, "".join(f"{a:9.2f}\n" for a in np.asarray(angles_deg, float)))


def read_xf(path: str | Path) -> np.ndarray:
    """IMOD ``.xf`` transforms, shape (n, 6): A11 A12 A21 A22 DX DY per tilt (IMOD's x/y, pixels)."""
    p = Path(path)
    rows = []
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read .xf file ({exc})", path=p) from exc
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 6:
            raise InputError(f"line {i} has {len(parts)} numbers; an .xf line has 6", path=p)
        try:
            rows.append([float(v) for v in parts])
        except ValueError as exc:
            raise InputError(f"line {i} is not six numbers: {line.strip()!r}", path=p) from exc
    if not rows:
        raise InputError("no transforms found", path=p)
    return np.asarray(rows, dtype=float)


def write_xf(path: str | Path, xf) -> Path:
    """Write IMOD ``.xf`` transforms (n, 6) atomically."""
    from cryomat.io.atomic import write_text

    xf = np.asarray(xf, float)
    return write_text(path, "".join("%12.7f%12.7f%12.7f%12.7f%12.3f%12.3f\n" % tuple(r) for r in xf))


_KV = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*$")
_SECTION = re.compile(r"^\s*\[\s*([A-Za-z]+)\s*=\s*([^\]]*)\]\s*$")


def _parse_value(text: str):
    parts = text.split()
    try:
        nums = [float(v) for v in parts]
    except ValueError:
        return text
    if not nums:
        return text
    return nums[0] if len(nums) == 1 else nums


def read_mdoc(path: str | Path) -> dict:
    """Parse a SerialEM ``.mdoc``: global keys plus ``frames``, one dict per image section.

    Image sections are ``[ZValue = n]`` (tilt series, montages) and ``[FrameSet = n]``
    (frame-set files of a single movie). Values that are numbers become floats (or lists of
    floats). Key names are SerialEM's own (``TiltAngle`` in deg, ``ExposureDose`` in e/A^2,
    ``PixelSpacing`` in A, ``Voltage`` in kV, ...). Title lines (``T = ...`` or ``[T = ...]``)
    go to ``titles``; the tilt axis written there ("Tilt axis angle = 85.3") becomes
    ``TiltAxisAngle`` (deg). See :func:`mdoc_summary` for the calibrated essentials.

    References
    ----------
    Mastronarde, "Automated electron microscope tomography using robust prediction of specimen
    movements", J. Struct. Biol. 152, 36 (2005), doi:10.1016/j.jsb.2005.07.007 (SerialEM).
    """
    p = Path(path)
    try:
        text = p.read_text(errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read .mdoc ({exc})", path=p) from exc
    top: dict = {"frames": [], "titles": []}
    current = top
    for line in text.splitlines():
        m = _SECTION.match(line)
        if m:
            kind, val = m.group(1), m.group(2).strip()
            if kind.lower() in ("zvalue", "frameset"):
                current = {"ZValue" if kind.lower() == "zvalue" else "FrameSet": int(float(val))}
                top["frames"].append(current)
            elif kind == "T":
                top["titles"].append(val)
            else:
                current = {"section": kind, "value": val}
                top.setdefault("sections", []).append(current)
            continue
        m = _KV.match(line)
        if m:
            key, val = m.group(1), m.group(2)
            if key == "T":
                top["titles"].append(val)
                continue
            current[key] = _parse_value(val)
    for t in top["titles"]:
        m = re.search(r"Tilt axis angle\s*=\s*([-+0-9.eE]+)", t)
        if m and "TiltAxisAngle" not in top:
            top["TiltAxisAngle"] = float(m.group(1))
    if not top["frames"] and "PixelSpacing" not in top and not top["titles"]:
        raise InputError("does not look like a SerialEM .mdoc (no [ZValue] sections or keys)", path=p)
    return top


def mdoc_summary(mdoc: dict | str | Path) -> dict:
    """The calibrated essentials of a parsed ``.mdoc`` (units in the keys).

    Returns
    -------
    dict with ``n_images``, ``tilt_angles_deg`` (list), ``tilt_min_deg``, ``tilt_max_deg``,
    ``tilt_axis_angle_deg``, ``pixel_size_A``, ``voltage_kV``, ``dose_per_image_e_per_A2``
    (list), ``total_dose_e_per_A2``, ``exposure_time_s`` (list), ``defocus_um`` (list), with
    ``None`` where the file does not say.
    """
    d = read_mdoc(mdoc) if not isinstance(mdoc, dict) else mdoc
    frames = d.get("frames", [])

    def col(key):
        vals = [f.get(key) for f in frames]
        return [float(v) if isinstance(v, (int, float)) else None for v in vals]

    tilts = col("TiltAngle")
    doses = col("ExposureDose")
    px = d.get("PixelSpacing")
    if px is None and frames:
        px = frames[0].get("PixelSpacing")
    finite_t = [t for t in tilts if t is not None]
    known_d = [x for x in doses if x is not None]
    return {
        "n_images": len(frames),
        "tilt_angles_deg": tilts,
        "tilt_min_deg": min(finite_t) if finite_t else None,
        "tilt_max_deg": max(finite_t) if finite_t else None,
        "tilt_axis_angle_deg": d.get("TiltAxisAngle"),
        "pixel_size_A": float(px) if isinstance(px, (int, float)) else None,
        "voltage_kV": float(d["Voltage"]) if isinstance(d.get("Voltage"), (int, float)) else None,
        "dose_per_image_e_per_A2": doses,
        "total_dose_e_per_A2": float(sum(known_d)) if known_d else None,
        "exposure_time_s": col("ExposureTime"),
        "defocus_um": col("Defocus"),
    }


def read_px_nm_mat(path: str | Path) -> float:
    """Pixel size (A) from a MATLAB file holding ``px_nm`` (pixels per nm), as written by
    HRTEM fringe-mapping tools next to ``<stem>.tif`` (``<stem>_px-nm.mat``)."""
    import scipy.io

    p = Path(path)
    try:
        m = scipy.io.loadmat(p)
    except Exception as exc:
        raise InputError(f"not a readable MATLAB .mat file ({exc})", path=p) from exc
    if "px_nm" not in m:
        raise InputError(f"no 'px_nm' variable (pixels per nm); found {sorted(k for k in m if not k.startswith('__'))}",
                         path=p)
    px_nm = float(np.asarray(m["px_nm"]).ravel()[0])
    if not np.isfinite(px_nm) or px_nm <= 0:
        raise InputError(f"px_nm must be a positive number of pixels per nm, got {px_nm!r}", path=p)
    return 10.0 / px_nm


def describe_sidecar(path: str | Path) -> dict:
    """A JSON-ready summary of a metadata sidecar (.tlt/.rawtlt/.xtilt, .xf, .mdoc, px-nm .mat)."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext in (".tlt", ".rawtlt", ".xtilt"):
        a = read_tlt(p)
        return {"source": str(p), "kind": "IMOD tilt angles", "n_angles": int(a.size),
                "min_deg": float(a.min()), "max_deg": float(a.max()),
                "mean_step_deg": float(np.mean(np.diff(np.sort(a)))) if a.size > 1 else None}
    if ext == ".xf":
        xf = read_xf(p)
        rot = np.degrees(np.arctan2(xf[:, 2], xf[:, 0]))
        return {"source": str(p), "kind": "IMOD 2D transforms", "n_transforms": int(len(xf)),
                "rotation_mean_deg": float(np.mean(rot)),
                "shift_max_px": float(np.max(np.hypot(xf[:, 4], xf[:, 5]))) if len(xf) else None}
    if ext == ".mdoc":
        s = mdoc_summary(p)
        s.pop("tilt_angles_deg")
        for k in ("dose_per_image_e_per_A2", "exposure_time_s", "defocus_um"):
            s.pop(k)
        return {"source": str(p), "kind": "SerialEM mdoc", **s}
    if ext == ".mat":
        return {"source": str(p), "kind": "pixel-size .mat", "pixel_size_A": read_px_nm_mat(p)}
    raise InputError(f"not a metadata sidecar ({ext})", path=p)
