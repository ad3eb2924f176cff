"""Fiducial-less alignment against known shifts and tilt-axis error."""

import numpy as np

from cryomat.simulate.tilt_series import simulate_tilt_series
from cryomat.tomography import align_tilt_series, shift_error
from cryomat.tomography.alignment import find_axis_orientation, remove_translation_mode


def test_alignment_recovers_shifts_and_axis_at_low_dose():
    sim = simulate_tilt_series(phantom="particles", size=96, n_tilts=61, counts_per_px=10.0, shift_sigma_px=3.0,
                               tilt_axis_error_deg=1.0, rng=11)
    ang = sim["angles_deg"]
    a = align_tilt_series(sim["stack"], ang, thickness=96)
    e = shift_error(a.shifts_px, sim["shifts_px"], ang)
    # issue targets at 10-50 counts/px: shift residual <= 0.5 px, tilt-axis error <= 0.25 deg
    # (measured on 128^2: RMS 0.18 px, axis error < 0.1 deg)
    assert np.sqrt(np.mean(e ** 2)) <= 0.5
    assert abs(a.psi_deg - sim["tilt_axis_deg"]) <= 0.25
    table = a.to_frame()
    assert {"shift_row_px", "shift_col_px", "tilt_deg", "residual_px"} <= set(table.columns)


def test_translation_mode_is_removed_exactly():
    # a 3D translation (row shift b, column shift a cos + c sin) is invisible to alignment
    ang = np.linspace(-60, 60, 41)
    th = np.deg2rad(ang)
    s = np.column_stack([np.full(41, 1.7), 2.0 * np.cos(th) - 3.0 * np.sin(th)])
    np.testing.assert_allclose(remove_translation_mode(s, ang), 0.0, atol=1e-9)


def test_axis_orientation_search_finds_a_large_rotation():
    # unknown axis direction (30 deg off the rows): the 5-degree search lands on the nearest step
    sim = simulate_tilt_series(phantom="particles", size=64, counts_per_px=50.0, shift_sigma_px=2.0,
                               tilt_axis_error_deg=30.0, rng=1)
    assert abs(find_axis_orientation(sim["stack"], sim["angles_deg"]) - 30.0) <= 5.0
