"""Conventions of other programs (IMOD .tlt/.xf, SerialEM .mdoc, AreTomo .aln) and handedness."""

import numpy as np
import pytest

from cryomat.io import read_tlt, read_xf, write_tlt, write_xf
from cryomat.tomography import (align_stack, alignment_to_xf, forward_project, misalign_image, read_aln,
                                read_angles, reconstruct_wbp, xf_to_alignment)
from cryomat.tomography.conventions import aln_to_alignment, axis_angle_from_psi, psi_from_axis_angle


def _chiral_phantom(n=48):
    """Three blobs of different size on the +z, +row and +col half-axes: mirror images differ."""
    z, y, x = np.mgrid[:n, :n, :n] - (n - 1) / 2
    v = np.zeros((n, n, n), np.float32)
    for (cz, cy, cx), r in (((10, 0, 0), 4.0), ((0, 14, 0), 3.0), ((0, 0, 7), 5.0), ((0, 0, 0), 2.5)):
        v += ((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= r * r)
    return v


def _handed(vol, phantom):
    """Correlation with the phantom minus correlation with its z-mirror (> 0: right hand).

    Only the +z blob breaks the mirror symmetry, so a correct reconstruction scores about +0.2
    and a mirrored one about -0.2; the tests use +/-0.1 (half of that) as the decision level.
    """
    def cc(a, b):
        a, b = a - a.mean(), b - b.mean()
        return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))
    return cc(vol, phantom) - cc(vol, phantom[::-1])


@pytest.fixture(scope="module")
def chiral():
    ph = _chiral_phantom()
    ang = np.linspace(-60, 60, 31)
    proj = forward_project(ph, ang)
    rng = np.random.default_rng(1)
    shifts = rng.normal(0, 2, (ang.size, 2))
    psi = 4.0
    raw = np.stack([misalign_image(p, shift=s, psi_deg=psi) for p, s in zip(proj, shifts)])
    return ph, ang, proj, raw, shifts, psi


def test_tlt_round_trip_keeps_handedness(chiral, tmp_path):
    ph, ang, proj, *_ = chiral
    write_tlt(tmp_path / "a.tlt", ang)
    back = read_tlt(tmp_path / "a.tlt")
    np.testing.assert_allclose(back, ang, atol=0.006)  # written with 2 decimals
    assert _handed(reconstruct_wbp(proj, back), ph) > 0.1
    # the test can tell: negated angles (the other handedness) give the mirror image
    assert _handed(reconstruct_wbp(proj, -back), ph) < -0.1


def test_xf_round_trip_restores_alignment_and_handedness(chiral, tmp_path):
    ph, ang, proj, raw, shifts, psi = chiral
    write_xf(tmp_path / "a.xf", alignment_to_xf(shifts, psi))
    sh, ps = xf_to_alignment(read_xf(tmp_path / "a.xf"))
    np.testing.assert_allclose(sh, shifts, atol=2e-3)  # .xf keeps 3 decimals of DX, DY
    np.testing.assert_allclose(ps, psi, atol=1e-4)
    vol = reconstruct_wbp(align_stack(raw, shifts=sh, psi_deg=float(ps[0])), ang)
    assert _handed(vol, ph) > 0.1


def test_xf_matches_imod_rotation_sign():
    # IMOD's etomo TS_001.xf rotates by about -84 deg (A11 = cos, A21 = sin) for a tilt axis near 84 deg
    # (SerialEM/IMOD convention); cryomat's psi is minus that axis angle, and the xf rotation is psi
    xf = alignment_to_xf(np.zeros((1, 2)), psi_from_axis_angle(84.1))[0]
    assert np.isclose(np.rad2deg(np.arctan2(xf[2], xf[0])), -84.1)
    assert axis_angle_from_psi(psi_from_axis_angle(85.3)) == 85.3


def test_real_etomo_xf_and_tlt_read(real):
    xf = read_xf(real("etomofiles/TS_001.xf"))
    sh, ps = xf_to_alignment(xf)
    tlt = read_tlt(real("etomofiles/TS_001.tlt"))
    assert xf.shape[0] == tlt.size and np.all(np.isfinite(sh))
    # the whole series shares one rotation near -84 deg (tilt axis ~84 deg)
    assert np.ptp(ps) < 1.0 and -86 < np.median(ps) < -82


def test_mdoc_angles_and_axis(real):
    ang, axis = read_angles(real("mdocfile/tilt_series.mdoc"))
    assert axis == pytest.approx(85.3)  # "Tilt axis angle = 85.3" in the title line
    assert ang.size > 10 and np.abs(ang).max() <= 70


ALN = """# AreTomo Alignment / Priims bprmMn
# RawSize = 64 64 3
# NumPatches = 0
# SEC     ROT         GMAG       TX          TY      SMEAN     SFIT    SCALE     BASE     TILT
    0     4.0000    1.00000      1.500     -2.000     1.00     1.00     1.00     0.00    -30.00
    1     4.0000    1.00000      0.000      0.000     1.00     1.00     1.00     0.00      0.00
    2     4.0000    1.00000     -0.750      3.250     1.00     1.00     1.00     0.00     30.00
"""


def test_aln_reader_and_conversion(tmp_path):
    p = tmp_path / "ts.aln"
    p.write_text(ALN)
    table, header = read_aln(p)
    assert header["RawSize"] == [64.0, 64.0, 3.0] and len(table) == 3
    a = aln_to_alignment(table)
    # TX, TY are x/y = (col, row) content shifts; cryomat stores (row, col)
    np.testing.assert_allclose(a["shifts_px"][0], [-2.0, 1.5])
    np.testing.assert_allclose(a["angles_deg"], [-30, 0, 30])
    ang, axis = read_angles(p)
    assert axis == pytest.approx(-4.0)


def test_aln_handedness_with_chiral_phantom(chiral, tmp_path):
    ph, ang, proj, raw, shifts, psi = chiral
    lines = ["# AreTomo Alignment", "# SEC ROT GMAG TX TY SMEAN SFIT SCALE BASE TILT"]
    for i, (s, t) in enumerate(zip(shifts, ang)):
        lines.append(f"{i} {psi:.4f} 1.0 {s[1]:.3f} {s[0]:.3f} 1 1 1 0 {t:.2f}")
    (tmp_path / "c.aln").write_text("\n".join(lines) + "\n")
    a = aln_to_alignment(read_aln(tmp_path / "c.aln")[0])
    vol = reconstruct_wbp(align_stack(raw, shifts=a["shifts_px"], psi_deg=float(a["psi_deg"][0])), a["angles_deg"])
    assert _handed(vol, ph) > 0.1
