"""The ``stem_series`` simulator kind and its registration in all-pairs mode (Savitzky scheme)."""

from __future__ import annotations

import numpy as np
import pytest

from cryomat import io, registration as reg
from cryomat.simulate import simulate
from cryomat.simulate.stem_series import render_stem_series


def test_stem_series_writes_counts(tmp_path):
    truth = simulate("stem_series", tmp_path, seed=0, n_frames=4, size=96, counts_per_px=0.5)
    img = io.read(tmp_path / "series.mrcs")
    assert img.shape == (4, 96, 96)
    assert img.pixel_size == pytest.approx(0.5, rel=1e-5)
    assert np.allclose(truth["drift_px"][0], 0)  # drift is relative to frame 0
    # on-column count is 0.5 e/px; the mean over the field (columns + support) must be lower but non-zero
    m = float(np.asarray(img.data).mean())
    assert 0.02 < m < 0.5


def test_stem_series_all_pairs_no_lattice_jumps():
    # 7.8 px lattice period, 8 px drift, 0.3 counts/px on the columns: the continuity guard keeps every
    # pair on the right lattice peak; subpixel accuracy ~0.05 px here, 0.15 px leaves room for seeds
    frames, truth = render_stem_series(n_frames=8, shape=(160, 160), counts_per_px=0.3, seed=3)
    res = reg.estimate_drift(frames, mode="all-pairs")
    assert res.lattice_period_px is not None
    e = res.shifts_px - np.asarray(truth["drift_px"])
    e -= e.mean(0)
    assert np.sqrt(np.mean(np.sum(e**2, 1))) < 0.15
    assert np.abs(e).max() < 1.0  # a lattice jump would be ~7.8 px
