"""Lattice analysis of HRTEM/STEM images: phase library, FFT spots, indexing and phase ID,
phase maps, superlattices, atomic columns, displacement and strain maps.

Conventions: lengths in A, spatial frequencies in 1/A (cycles), ``kx`` along image columns and
``ky`` along rows, angles ``atan2(ky, kx)`` in degrees; positions (row, col).

>>> from cryomat.lattice import find_fft_peaks, identify_phases
>>> peaks = find_fft_peaks(image, pixel_size=0.2)
>>> identify_phases(peaks, phases=["Li", "Li2O", "LiF", "Li2CO3"]).phases
"""

from cryomat.lattice.columns import (LatticeFit, analyse_columns, estimate_separation, find_columns, fit_lattice,
                                     fit_modulation, refine_columns)
from cryomat.lattice.indexing import DEFAULT_PHASES, PhaseID, ZoneMatch, identify_phases
from cryomat.lattice.peaks import background_snr, find_fft_peaks, refine_peak
from cryomat.lattice.phasemap import PhaseMap, label_image, phase_map
from cryomat.lattice.phases import Phase, get_phase, list_phases, phase_from_cif
from cryomat.lattice.strain import GPAResult, gpa
from cryomat.lattice.superlattice import compare_superlattices, find_superlattice, fundamental_basis, lock_in

__all__ = [
    "DEFAULT_PHASES", "GPAResult", "LatticeFit", "Phase", "PhaseID", "PhaseMap", "ZoneMatch", "analyse_columns",
    "background_snr", "compare_superlattices", "estimate_separation", "find_columns", "find_fft_peaks",
    "find_superlattice", "fit_lattice", "fit_modulation", "fundamental_basis", "get_phase", "gpa",
    "identify_phases", "label_image", "list_phases", "phase_from_cif", "phase_map", "refine_columns", "refine_peak",
    "lock_in",
]
