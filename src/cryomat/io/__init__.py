"""Reading and writing EM data with explicit calibration (pixel size in Angstrom).

>>> from cryomat import io
>>> img = io.read("movie.mrcs")        # EMImage: data, axes, pixel_size (A), acquisition
>>> io.write_mrc("sum.mrc", img.data.sum(0), pixel_size=img.pixel_size)
"""

from cryomat.io.atomic import atomic_path, write_bytes, write_text
from cryomat.io.model import Acquisition, EMImage
from cryomat.io.readers import SUPPORTED, read
from cryomat.io.series import read_series, tilt_from_name
from cryomat.io.sidecars import (describe_sidecar, mdoc_summary, read_mdoc, read_px_nm_mat, read_tlt, read_xf,
                                 write_tlt, write_xf)
from cryomat.io.units import length_unit_factor, to_angstrom
from cryomat.io.writers import to_display, write, write_mrc, write_png, write_tiff

__all__ = [
    "Acquisition", "EMImage", "SUPPORTED", "atomic_path", "length_unit_factor", "read", "read_mdoc",
    "read_tlt", "read_xf", "to_angstrom", "to_display", "write", "write_bytes", "write_mrc", "write_png",
    "write_text", "write_tiff", "write_tlt", "write_xf", "describe_sidecar", "mdoc_summary", "read_px_nm_mat",
    "read_series", "tilt_from_name",
]
