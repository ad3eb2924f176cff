"""The ``movie`` and ``stem_series`` simulator kinds: counts at the stated dose, truth trajectory, files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryomat import io
from cryomat.simulate import simulate
from cryomat.simulate.movie import drift_trajectory, local_displacement, render_movie


def test_movie_counts_and_truth(tmp_path):
    truth = simulate("movie", tmp_path, seed=1, n_frames=6, size=128, dose_per_frame=0.4, gain_variation=0.1,
                     n_hot_pixels=5, dead_column=True)
    img = io.read(tmp_path / "movie.mrcs")
    assert img.shape == (6, 128, 128)
    assert img.pixel_size == pytest.approx(1.0, rel=1e-5)  # 1 A pixel written into the MRC header
    data = np.asarray(img.data, dtype=np.float64)
    good = ~io.read(tmp_path / "defects.mrc").data.astype(bool)
    # Poisson counts at 0.4 e/A^2 on 1 A pixels: mean 0.4 / px / frame; the weak-phase image has mean 1
    # and the gain variation has mean 1, so 6*128*128 counts give the mean to ~1%; 5% leaves room for
    # the clipped sensitivity map.
    assert data[:, good].mean() == pytest.approx(0.4, rel=0.05)
    t = json.loads((tmp_path / "truth.json").read_text())
    assert len(t["drift_px"]) == 6 and t["drift_px"][0] == [0.0, 0.0]
    assert t["counts_per_px_per_frame"] == pytest.approx(0.4)
    assert (tmp_path / "gain.mrc").exists()


def test_drift_trajectory_path_length():
    d = drift_trajectory(20, total_px=12.0, rng=np.random.default_rng(0))
    # the trajectory is scaled so that its path length is the requested total drift
    assert np.sum(np.hypot(*np.diff(d, axis=0).T)) == pytest.approx(12.0, rel=1e-9)
    assert np.all(d[0] == 0)


def test_local_motion_peak_to_peak():
    n = 128
    rr, cc = np.mgrid[0:n, 0:n]
    u = local_displacement(np.stack([rr, cc], -1), 9, n_frames=10, center_rc=(63.5, 63.5), width_px=0.3 * n,
                           amplitude_px=3.0, tau_frames=2.5)
    # at the last frame each component spans the requested 3 px peak to peak (grid sampling: 2%)
    assert np.ptp(u[..., 0]) == pytest.approx(3.0, rel=0.02)


def test_fading_lattice_and_crystal_only():
    frames, truth, _, _ = render_movie(n_frames=4, shape=(96, 96), specimen="crystal", crystal_critical_dose=2.0,
                                       dose_per_frame=1.0, seed=0)
    # exp(-N/Nc) at mid-frame fluences 0.5, 1.5, 2.5, 3.5 e/A^2
    np.testing.assert_allclose(truth["crystal_amplitude"], np.exp(-(np.arange(4) + 0.5) / 2.0))
    assert truth["lattice_period_A"] == 6.0
