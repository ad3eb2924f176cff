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
    for i, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 6:
            raise InputError(f"line {i} has {len(parts)} numbers; an .xf line has 6", path=p)
        rows.append([float(v) for v in parts])
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
    """Parse a SerialEM ``.mdoc``: global keys plus ``frames``, one dict per ``[ZValue = n]`` section.

    Values that are numbers become floats (or lists of floats). Key names are SerialEM's own
    (``TiltAngle``, ``ExposureDose`` in e/A^2, ``PixelSpacing`` in A, ``Voltage`` in kV, ...).
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
            if kind.lower() == "zvalue":
                current = {"ZValue": int(float(val))}
                top["frames"].append(current)
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
    if not top["frames"] and "PixelSpacing" not in top and not top["titles"]:
        raise InputError("does not look like a SerialEM .mdoc (no [ZValue] sections or keys)", path=p)
    return top
