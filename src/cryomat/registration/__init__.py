"""Drift correction, dose weighting and frame registration of movies and STEM frame series.

>>> from cryomat import registration as reg
>>> res = reg.estimate_drift(frames, pixel_size=1.0)          # DriftResult: shifts_px (n, 2), ...
>>> sums = reg.aligned_sums(frames, res.shifts_px, pixel_size=1.0, dose_per_frame=0.5)
>>> aligned = reg.apply_shifts(frames, res.shifts_px)          # (n, row, col) float32

Convention: ``shifts_px[f]`` is the displacement (row, col) in px of frame ``f``'s content
relative to frame 0; aligning moves frame ``f`` by ``-shifts_px[f]``.
"""

from cryomat.registration.apply import AlignedSums, aligned_sums, apply_shifts
from cryomat.registration.dose import critical_exposure, dose_weights, voltage_scale
from cryomat.registration.drift import DriftResult, estimate_drift, lattice_period
from cryomat.registration.preprocess import (Corrector, build_corrector, defect_mask_from_boxes, detect_hot_pixels,
                                             orient_gain)
from cryomat.registration.smooth import smooth_trajectory

__all__ = [
    "AlignedSums", "Corrector", "DriftResult", "aligned_sums", "apply_shifts", "build_corrector",
    "critical_exposure", "defect_mask_from_boxes", "detect_hot_pixels", "dose_weights", "estimate_drift",
    "lattice_period", "orient_gain", "smooth_trajectory", "voltage_scale",
]
