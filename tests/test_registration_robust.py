"""Lattice-period jump guard (reference and all-pairs modes) and patch-based local motion."""

from __future__ import annotations

import numpy as np
import pytest

from cryomat import registration as reg
from cryomat.registration.allpairs import solve_pairs
from cryomat.registration.local import estimate_local_motion
from cryomat.simulate.movie import local_displacement, render_movie


def test_lattice_only_no_period_jumps():
    # a whole-field square lattice (6 px period) is ambiguous modulo the period; the guard tracks it
    # by continuity. 0.5 c/px/frame on 256^2 x 12 has the counts per frame of 0.125 at 512^2
    # (the 0.1 c/px, 512^2 x 20 lattice phantom over many seeds is in benchmarks/bench_align.py).
    frames, truth, _, _ = render_movie(n_frames=12, shape=(256, 256), specimen="crystal", dose_per_frame=0.5,
                                       drift_total_px=8.0, seed=2)
    res = reg.estimate_drift(frames)
    assert res.lattice_period_px == pytest.approx(6.0, abs=0.5)  # the simulated lattice period
    e = res.shifts_px - truth["drift_px"]
    e -= e.mean(0)
    # a jump would be an error of a whole period (6 px); any frame within 1 px has not jumped
    assert np.abs(e).max() < 1.0


def test_solve_pairs_flags_an_inconsistent_pair():
    rng = np.random.default_rng(0)
    s = np.cumsum(rng.normal(0, 1, (8, 2)), 0)
    s -= s[0]
    pairs = [(i, j) for i in range(8) for j in range(i + 1, 8)]
    d = np.array([s[i] - s[j] for i, j in pairs]) + rng.normal(0, 0.02, (len(pairs), 2))
    d[5] += [6.0, 0.0]  # one pair locked onto the neighbouring lattice peak
    est, res, w, scale = solve_pairs(8, pairs, d)
    # the Huber re-weighting isolates the bad pair: the solution stays at the 0.02 px noise level
    assert np.abs(est - s).max() < 0.1
    assert np.argmax(np.hypot(*res.T)) == 5


def test_local_motion_doming():
    # doming bulge of 3 px peak to peak; global alignment alone leaves ~1 px RMS; the cubic patch model
    # must be at least 2x better (issue) - 0.45 px here on a small 256^2 x 12 movie (0.3 px on 512^2 x 20
    # in benchmarks/bench_align.py)
    n = 12
    frames, truth, _, _ = render_movie(n_frames=n, shape=(256, 256), dose_per_frame=1.0, local_motion_px=3.0,
                                       drift_total_px=6.0, seed=1)
    g = reg.estimate_drift(frames)
    loc = estimate_local_motion(frames, g, grid=(4, 4))
    lm = truth["local_motion"]
    rr, cc = np.mgrid[24:232:8, 24:232:8]
    pts = np.stack([rr, cc], -1).astype(float)
    eg, el = [], []
    for f in range(n):
        tru = truth["drift_px"][f] + local_displacement(pts, f, n_frames=n, center_rc=lm["center_rc_px"],
                                                        width_px=lm["width_px"], amplitude_px=3.0,
                                                        tau_frames=lm["tau_frames"])
        eg.append(g.shifts_px[f] - tru)
        el.append(g.shifts_px[f] + loc.displacement(pts, f) - tru)
    eg, el = np.array(eg).reshape(-1, 2), np.array(el).reshape(-1, 2)
    rms_g = np.sqrt(np.mean(np.sum((eg - eg.mean(0)) ** 2, 1)))
    rms_l = np.sqrt(np.mean(np.sum((el - el.mean(0)) ** 2, 1)))
    assert rms_l < 0.45
    assert rms_l < rms_g / 2
    sums = reg.aligned_sums(frames, g.shifts_px, local=loc)
    assert sums.total.shape == (256, 256) and np.isfinite(sums.total).all()
