"""Lattice analysis of HRTEM/STEM images: phase library, FFT spots, indexing and phase ID,
phase maps, superlattices, atomic columns, displacement and strain maps.

Conventions: lengths in A, spatial frequencies in 1/A (cycles), ``kx`` along image columns and
``ky`` along rows, angles ``atan2(ky, kx)`` in degrees; positions (row, col).
"""

from cryomat.lattice.peaks import find_fft_peaks, refine_peak
from cryomat.lattice.phases import Phase, get_phase, list_phases, phase_from_cif

__all__ = ["Phase", "find_fft_peaks", "get_phase", "list_phases", "phase_from_cif", "refine_peak"]
