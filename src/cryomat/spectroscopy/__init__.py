"""EELS and EDS spectra and spectrum images: maps, quantification, profiles, decomposition.

>>> from cryomat import spectroscopy as sp
>>> spec = sp.load_spectrum("map.bcf")                    # Spectrum: data (row, col, energy), energy_eV
>>> res = sp.eds_maps(spec, elements=["C", "O", "F"])      # line maps + Cliff-Lorimer at.% maps
>>> prof = sp.line_profile(res.intensity, (10, 5), (10, 120), width_px=20, variance=res.variance)

Builds on exSpy's conventions (line windows, two-area power law, hydrogenic GOS) so numbers agree
with it, vectorised over spectrum images. Shipped tables: ``cryomat/data/spectroscopy`` (sources in
``SOURCES.md`` there).
"""

from cryomat.spectroscopy.decomposition import (Decomposition, match_factors, nmf, pca_denoise, poisson_pca,
                                                reconstruct)
from cryomat.spectroscopy.eds import (LineIntensities, background_windows, calibration_check, cliff_lorimer, eds_fwhm_eV,
                                      integration_windows, line_intensities, resolve_kfactors, select_xray_lines)
from cryomat.spectroscopy.eels import (align_zero_loss, edge_cross_section, edge_intensity, elastic_threshold_eV,
                                       fourier_ratio_deconvolve, powerlaw_background, powerlaw_fit, quantify_edges,
                                       thickness_log_ratio, zero_loss_position)
from cryomat.spectroscopy.identify import edge_onset_measured, identify_eds_elements, identify_eels_edges
from cryomat.spectroscopy.loading import Spectrum, bin_spectrum, load_spectrum
from cryomat.spectroscopy.pipeline import MapResult, default_edge_windows, eds_maps, eels_maps
from cryomat.spectroscopy.profiles import Profile, depth_profile, interface_positions, line_profile
from cryomat.spectroscopy.tables import edge_onset_eV, line_energy_eV, shipped_kfactor

__all__ = [
    "Decomposition", "LineIntensities", "MapResult", "Profile", "Spectrum", "align_zero_loss", "background_windows",
    "bin_spectrum", "calibration_check", "cliff_lorimer", "edge_onset_measured", "identify_eds_elements",
    "identify_eels_edges", "pca_denoise", "reconstruct", "default_edge_windows", "depth_profile", "edge_cross_section", "edge_intensity",
    "edge_onset_eV", "eds_fwhm_eV", "eds_maps", "eels_maps", "elastic_threshold_eV", "fourier_ratio_deconvolve",
    "integration_windows", "interface_positions", "line_energy_eV", "line_intensities", "line_profile",
    "load_spectrum", "match_factors", "nmf", "poisson_pca", "powerlaw_background", "powerlaw_fit",
    "quantify_edges", "resolve_kfactors", "select_xray_lines", "shipped_kfactor", "thickness_log_ratio",
    "zero_loss_position",
]
