"""Length units to Angstrom, and the two MRC paths (mrcfile keeps A, rosettasciio reports nm)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cryomat import io
from cryomat.io.units import length_unit_factor, to_angstrom


@pytest.mark.parametrize("unit,factor", [("A", 1.0), ("Å", 1.0), ("\u212b", 1.0), ("angstrom", 1.0), ("nm", 10.0),
                                         ("n_m", 10.0), ("µm", 1e4), ("um", 1e4), ("μm", 1e4), ("mm", 1e7),
                                         ("m", 1e10), ("pm", 0.01), (" NM ", 10.0)])
def test_length_unit_factor(unit, factor):
    assert length_unit_factor(unit) == factor  # exact: powers of ten


def test_unknown_unit_is_none():
    assert length_unit_factor("furlong") is None and to_angstrom(3.0, None) is None
    assert to_angstrom(0.0155, "µm") == pytest.approx(155.0)


def test_mrc_pixel_size_same_through_mrcfile_and_rosettasciio(tmp_path):
    import rsciio.mrc

    from cryomat.io.rsciio_reader import _to_image

    p = tmp_path / "x.mrc"
    io.write_mrc(p, np.zeros((16, 24), np.float32), pixel_size=1.5)
    via_mrcfile = io.read(p)
    ds = rsciio.mrc.file_reader(str(p))[0]
    assert [a["units"] for a in ds["axes"]] == ["nm", "nm"]  # rosettasciio reports nm ...
    via_rsciio = _to_image(ds, Path(p))
    # ... and both paths give 1.5 A (float32 header precision)
    assert via_mrcfile.pixel_size == pytest.approx(1.5, rel=1e-6)
    assert via_rsciio.pixel_size == pytest.approx(1.5, rel=1e-6)
    assert via_rsciio.axes == via_mrcfile.axes == ("row", "col")


def test_mrc_without_calibration_has_no_pixel_size(tmp_path):
    p = tmp_path / "nocal.mrc"
    io.write_mrc(p, np.zeros((8, 8), np.float32))
    img = io.read(p)
    assert img.pixel_size is None
    with pytest.raises(ValueError, match="--pixel-size"):
        img.require_pixel_size()
    assert img.require_pixel_size(2.0) == 2.0


def test_tiff_in_nm_and_um(tmp_path):
    import tifffile

    for unit, px_unit, expect in (("nm", 0.25, 2.5), ("micron", 0.0155, 155.0)):
        p = tmp_path / f"t_{unit}.tif"
        tifffile.imwrite(p, np.zeros((8, 8), np.uint16), imagej=True, resolution=(1 / px_unit, 1 / px_unit),
                         metadata={"unit": unit})
        assert io.read(p).pixel_size == pytest.approx(expect, rel=1e-6)


def test_writers_refuse_wrong_dimensionality(tmp_path):
    with pytest.raises(ValueError, match="x.mrc.*shape \\(5,\\)"):
        io.write_mrc(tmp_path / "x.mrc", np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="pixel_size"):
        io.write_mrc(tmp_path / "x.mrc", np.zeros((4, 4), np.float32), pixel_size=-1.0)
    with pytest.raises(ValueError, match="PNG"):
        io.write_png(tmp_path / "x.png", np.zeros((3, 8, 8)))
    assert list(tmp_path.iterdir()) == []  # nothing half-written
