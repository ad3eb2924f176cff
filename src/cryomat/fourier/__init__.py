"""The Fourier core: spectra in physical units (1/A), radial averages, FRC/FSC with thresholds."""

from cryomat.fourier.frc import (FRCResult, fourier_ring_correlation, fourier_ring_phase_residual,
                                 half_bit_threshold, one_bit_threshold, resolution_at)
from cryomat.fourier.grids import frequency_grid, radial_frequency, ring_index
from cryomat.fourier.spectrum import periodic_plus_smooth, power_spectrum, radial_average, window

__all__ = [
    "FRCResult", "fourier_ring_correlation", "fourier_ring_phase_residual", "frequency_grid",
    "half_bit_threshold", "one_bit_threshold", "periodic_plus_smooth", "power_spectrum", "radial_average",
    "radial_frequency", "resolution_at", "ring_index", "window",
]
