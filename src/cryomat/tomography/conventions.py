"""Tomography conventions of other programs: IMOD ``.xf``, SerialEM/IMOD tilt-axis angle, AreTomo ``.aln``.

cryomat's own model (:mod:`cryomat.tomography.transforms`): raw image = ideal projection rotated by
``psi`` (tilt-axis direction from the row axis, counter-clockwise as displayed with row 0 at the
top) and then moved by ``s = (drow, dcol)`` about the centre ``c = (n - 1) / 2`` (index units).

IMOD ``.xf`` (one line per view ``A11 A12 A21 A22 DX DY``) maps raw to aligned image coordinates
``X' = A X + D`` with ``X = (x, y) = (col, row)`` measured from the image centre. IMOD's centre is
``(nx / 2, ny / 2)`` in its pixel coordinates, in which pixel ``i`` covers ``[i, i + 1)``; that is
index ``(n - 1) / 2``, the same point as cryomat's centre, so no half-pixel offset enters.
With these, ``A = R(psi)`` (counter-clockwise in x/y) and ``D = -A (dcol, drow)``.

SerialEM's ``Tilt axis angle`` and IMOD's image rotation are measured from the vertical with y up
(IMOD displays row 0 at the bottom), so ``psi = -angle``.

AreTomo ``.aln``: columns ``SEC ROT GMAG TX TY SMEAN SFIT SCALE BASE TILT``; ``ROT`` is the xf
rotation (``psi``) and ``TX, TY`` the content displacement in x/y pixels, so the usual conversion
``A = R(ROT)``, ``D = -A (TX, TY)`` holds (as the teamtomo tools write it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryomat.errors import InputError


def psi_from_axis_angle(axis_angle_deg: float) -> float:
    """cryomat ``psi`` (deg) from a SerialEM ``.mdoc`` / IMOD tilt-axis angle (deg)."""
    return -float(axis_angle_deg)


def axis_angle_from_psi(psi_deg: float) -> float:
    """SerialEM/IMOD tilt-axis angle (deg) from cryomat ``psi``."""
    return -float(psi_deg)


def alignment_to_xf(shifts_px, psi_deg, *, stretch=None) -> np.ndarray:
    """IMOD ``.xf`` rows (n, 6) from per-tilt content shifts ``(drow, dcol)`` and the axis ``psi``.

    ``psi_deg`` may be one number or one per tilt.
    """
    s = np.asarray(shifts_px, float).reshape(-1, 2)
    n = s.shape[0]
    psi = np.broadcast_to(np.asarray(psi_deg, float), (n,))
    out = np.empty((n, 6))
    for i in range(n):
        a = np.deg2rad(psi[i])
        A = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        d = -A @ np.array([s[i, 1], s[i, 0]])
        out[i] = [A[0, 0], A[0, 1], A[1, 0], A[1, 1], d[0], d[1]]
    return out


def xf_to_alignment(xf) -> tuple[np.ndarray, np.ndarray]:
    """Per-tilt content shifts ``(drow, dcol)`` (n, 2) and ``psi`` (n,) from IMOD ``.xf`` rows.

    Magnification/skew in the matrix are ignored for ``psi`` (taken from the rotation part);
    the shift uses the full matrix inverse.
    """
    xf = np.asarray(xf, float).reshape(-1, 6)
    shifts = np.empty((xf.shape[0], 2))
    psi = np.empty(xf.shape[0])
    for i, (a11, a12, a21, a22, dx, dy) in enumerate(xf):
        A = np.array([[a11, a12], [a21, a22]])
        psi[i] = np.rad2deg(np.arctan2(a21 - a12, a11 + a22))
        sx, sy = -np.linalg.solve(A, [dx, dy])
        shifts[i] = [sy, sx]
    return shifts, psi


def read_aln(path: str | Path):
    """Read an AreTomo ``.aln`` file: global alignment table plus header values.

    Returns
    -------
    (table, header): pandas DataFrame with ``sec, rot_deg, gmag, tx_px, ty_px, smean, sfit, scale,
    base, tilt_deg`` and a dict of the ``# KEY = value`` header lines (``RawSize``, ``AlphaOffset``,
    ``Thickness``, dark frames as ``DarkFrame`` list). Local-alignment blocks are skipped.
    """
    import pandas as pd

    p = Path(path)
    try:
        lines = p.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read .aln ({exc})", path=p) from exc
    header: dict = {}
    rows = []
    in_local = False
    for line in lines:
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            body = s[1:].strip()
            if body.lower().startswith("local alignment"):
                in_local = True
            if "=" in body:
                k, v = (t.strip() for t in body.split("=", 1))
                vals = v.split()
                try:
                    num = [float(t) for t in vals]
                    val = num[0] if len(num) == 1 else num
                except ValueError:
                    val = v
                if k == "DarkFrame":
                    header.setdefault("DarkFrame", []).append(val)
                else:
                    header[k] = val
            continue
        if in_local:
            continue
        parts = s.split()
        if len(parts) < 10:
            continue
        try:
            rows.append([float(t) for t in parts[:10]])
        except ValueError as exc:
            raise InputError(f"unexpected line in .aln: {s!r}", path=p) from exc
    if not rows:
        raise InputError("no global-alignment rows found; not an AreTomo .aln file?", path=p)
    cols = ["sec", "rot_deg", "gmag", "tx_px", "ty_px", "smean", "sfit", "scale", "base", "tilt_deg"]
    t = pd.DataFrame(rows, columns=cols)
    t["sec"] = t["sec"].astype(int)
    return t, header


def aln_to_alignment(table) -> dict:
    """cryomat alignment (``shifts_px`` (n, 2) as (drow, dcol), ``psi_deg`` (n,), ``angles_deg``) from
    the table of :func:`read_aln`."""
    shifts = np.column_stack([table["ty_px"].to_numpy(float), table["tx_px"].to_numpy(float)])
    return {"shifts_px": shifts, "psi_deg": table["rot_deg"].to_numpy(float),
            "angles_deg": table["tilt_deg"].to_numpy(float)}


def aln_to_xf(table) -> np.ndarray:
    """IMOD ``.xf`` rows from an AreTomo ``.aln`` table (``A = R(ROT)``, ``D = -A (TX, TY)``)."""
    a = aln_to_alignment(table)
    return alignment_to_xf(a["shifts_px"], a["psi_deg"])
