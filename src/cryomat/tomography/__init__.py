"""Cryo-electron tomography of materials: tilt-series alignment, CPU reconstruction, 3D quantification.

Geometry and conventions: :mod:`cryomat.tomography.projector` (volume ``(z, row, col)``, tilt axis
along ``row``), :mod:`cryomat.tomography.transforms` (shifts and tilt-axis direction ``psi``),
:mod:`cryomat.tomography.conventions` (IMOD ``.xf``, SerialEM axis angle, AreTomo ``.aln``).
"""

from cryomat.tomography.alignment import Alignment, align_tilt_series, coarse_align, shift_error
from cryomat.tomography.conventions import (alignment_to_xf, aln_to_alignment, aln_to_xf, psi_from_axis_angle,
                                            read_aln, xf_to_alignment)
from cryomat.tomography.projector import forward_project
from cryomat.tomography.reconstruct import (angular_weights, ramp_filter, reconstruct, reconstruct_sirt,
                                            reconstruct_wbp)
from cryomat.tomography.tiltio import TiltSeries, load_tilt_series, read_angles
from cryomat.tomography.transforms import align_image, align_stack, misalign_image

__all__ = [
    "Alignment", "TiltSeries", "align_image", "align_stack", "align_tilt_series", "alignment_to_xf",
    "aln_to_alignment", "aln_to_xf", "angular_weights", "coarse_align", "forward_project", "load_tilt_series",
    "misalign_image", "psi_from_axis_angle", "ramp_filter", "read_aln", "read_angles", "reconstruct",
    "reconstruct_sirt", "reconstruct_wbp", "shift_error", "xf_to_alignment",
]
