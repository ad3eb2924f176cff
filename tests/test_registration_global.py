"""Global leave-one-out drift estimation, sums and dose weighting against simulated truth."""

from __future__ import annotations

import numpy as np
import pytest

from cryomat import registration as reg
from cryomat.simulate.movie import render_movie


def _rms(est, truth):
    e = np.asarray(est) - np.asarray(truth)
    e -= e.mean(0)  # the origin of a trajectory is a gauge; compare shapes
    return float(np.sqrt(np.mean(np.sum(e**2, 1)))), float(np.abs(e).max())


@pytest.mark.parametrize("dose, tol", [(0.5, 0.10), (0.25, 0.20)])
def test_drift_low_dose(dose, tol):
    # 256^2 x 12 frames has 4x fewer pixels and 0.6x the frames of the 512^2 x 20 benchmark,
    # so the per-frame CCF SNR is ~2.5x lower and 0.25 c/px/frame here carries as many counts per
    # frame as ~0.06 at 512^2; the 0.10 / 0.25 px targets at 0.5 / 0.1 are measured on 512^2 x 20
    # over many seeds in benchmarks/bench_align.py. Measured here: ~0.03 px at 0.5, ~0.08 px at 0.25.
    frames, truth, _, _ = render_movie(n_frames=12, shape=(256, 256), dose_per_frame=dose, drift_total_px=8.0,
                                       seed=3)
    res = reg.estimate_drift(frames, pixel_size=1.0)
    rms, worst = _rms(res.shifts_px, truth["drift_px"])
    assert rms < tol
    assert worst < 2.0  # the hard limit: no frame off by more than 2 px
    assert res.shifts_px[0].tolist() == [0.0, 0.0]
    tab = res.table()
    assert list(tab.columns[:6]) == ["frame", "shift_row_px", "shift_col_px", "shift_row_A", "shift_col_A", "ccf_peak"]


def test_subpixel_bias_high_dose():
    # 20 counts/px/frame: statistical error ~0.005 px, so any systematic subpixel bias above
    # 0.02 px (the limit) would show in the mean signed error of fractional shifts.
    rng = np.random.default_rng(0)
    frames, truth, _, _ = render_movie(n_frames=6, shape=(192, 192), dose_per_frame=20.0, drift_total_px=3.3,
                                       seed=1)
    res = reg.estimate_drift(frames, pixel_size=1.0, smoothing=0)
    e = res.raw_shifts_px - truth["drift_px"]
    e -= e.mean(0)
    assert np.abs(e).max() < 0.02
    del rng


def test_aligned_sums_and_dose_weighting():
    frames, truth, _, _ = render_movie(n_frames=8, shape=(128, 128), dose_per_frame=2.0, seed=2)
    sums = reg.aligned_sums(frames, truth["drift_px"], pixel_size=1.0, dose_per_frame=2.0)
    # the plain sum conserves counts exactly (a phase ramp leaves DC alone): 1e-3 relative is float32 rounding
    assert sums.total.sum() == pytest.approx(frames.sum(), rel=1e-3)
    np.testing.assert_allclose(sums.even + sums.odd, sums.total, atol=1e-3)
    # dose weights keep DC (k = 0 has infinite critical exposure), so the mean is preserved
    assert sums.dose_weighted.mean() == pytest.approx(sums.total.mean(), rel=1e-3)
    # aligning with the truth makes the two half sums agree far better than not aligning
    raw = reg.aligned_sums(frames, np.zeros((8, 2)))
    c_al = np.corrcoef(sums.even.ravel(), sums.odd.ravel())[0, 1]
    c_raw = np.corrcoef(raw.even.ravel(), raw.odd.ravel())[0, 1]
    assert c_al > c_raw + 0.05


def test_critical_exposure_values():
    # Grant & Grigorieff 2015: Ne(k) = 0.245 k^-1.665 + 2.81 at 300 kV; at 1/4 A^-1 that is 2.81 + 0.245*4^1.665
    assert reg.critical_exposure(0.25) == pytest.approx(0.245 * 4**1.665 + 2.81, rel=1e-12)
    # 200 kV: beta^2 ratio gives the 0.8 factor used by Grant & Grigorieff and MotionCor2 (to 1%)
    assert reg.voltage_scale(200.0) == pytest.approx(0.8, abs=0.01)
    w = reg.dose_weights(10, np.array([0.0, 0.1, 0.3]), dose_per_frame=1.0)
    # normalised per frequency: sum of squares = n_frames at every frequency
    np.testing.assert_allclose((w**2).sum(0), 10.0, rtol=1e-9)
    # late frames carry less high-frequency weight than early ones
    assert w[-1, 2] < w[0, 2]


def test_apply_shifts_roundtrip():
    frames, truth, _, _ = render_movie(n_frames=4, shape=(96, 96), dose_per_frame=50.0, seed=4)
    al = reg.apply_shifts(frames, truth["drift_px"])
    # after alignment all frames show the same (noisy) image: correlation rises well above the unaligned
    assert np.corrcoef(al[0].ravel(), al[-1].ravel())[0, 1] > np.corrcoef(frames[0].ravel(), frames[-1].ravel())[0, 1]


@pytest.mark.parametrize("bad, msg", [
    (np.zeros((1, 64, 64), np.float32), "at least 2 frames"),
    (np.zeros((64, 64), np.float32), "3D stack"),
])
def test_bad_frames(bad, msg):
    with pytest.raises(ValueError, match=msg):
        reg.estimate_drift(bad)


def test_group_and_all_pairs_agree_with_truth():
    # the all-pairs solver recovers the trajectory at 0.5 c/px/frame (192^2 x 10) within 0.15 px RMS
    # (typical 0.06 px). Grouping 3 frames averages the motion over +-1 frame; the per-frame updates
    # are the regularised inverse of that averaging, so the fast first frames (~1 px/frame here) are
    # no longer biased much: 0.095-0.134 px RMS over seeds 8-13 (0.14-0.72 px when each frame took its
    # group's residual), so 0.2 px is required.
    frames, truth, _, _ = render_movie(n_frames=10, shape=(192, 192), dose_per_frame=0.5, drift_total_px=5.0,
                                       specimen="film", seed=8)
    assert _rms(reg.estimate_drift(frames, mode="all-pairs").shifts_px, truth["drift_px"])[0] < 0.15
    assert _rms(reg.estimate_drift(frames, group=3).shifts_px, truth["drift_px"])[0] < 0.2
