"""Growth-rate fits: the static background under a crystal, axis jumps, and rates against truth.

Per-detection ellipse fits (tracking.axes) are noise-limited only when the background they are
fitted on is flat. A film texture that was never seen uncovered (under the nucleation site) is
static in the crystal's frame and biases every frame of the track the same way; the static pass
(``measure_axes(static_passes=1)``) measures it from the other frames of the track and divides
it out. Axis jumps (a crystal nucleating on another) are cut by ``growth_table``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi


def _texture(rng, n_waves=60, corr_px=1.5, amp=0.04):
    """A smooth random texture as a sum of plane waves: exact at any sub-pixel shift."""
    k = rng.normal(0, 1 / (2 * np.pi * corr_px), (n_waves, 2)) * 2 * np.pi
    ph = rng.uniform(0, 2 * np.pi, n_waves)
    scale = amp * np.sqrt(2.0 / n_waves)

    def at(rows, cols):
        return scale * np.cos(rows[..., None] * k[:, 0] + cols[..., None] * k[:, 1] + ph).sum(-1)

    return at


def _movie(seed, *, n_frames=14, size=160, counts=200.0, contrast=0.35):
    """Six crystals growing linearly at known rates over a static texture that moves with the
    specimen (sub-pixel drift, exact); the texture under each nucleation site is never seen
    uncovered. Returns frames, labels (half-maximum masks), a tracks table and the truth."""
    from cryomat.simulate.growth import _ellipse_mask

    rng = np.random.default_rng(seed)
    tex = _texture(rng)
    centres = [(40 + 80 * (k // 3), 30 + 50 * (k % 3)) for k in range(6)]
    truth = [dict(a0=rng.uniform(3.5, 5), b0=rng.uniform(2.5, 3.0), va=rng.uniform(0.5, 0.8),
                  ang=rng.uniform(0, np.pi)) for _ in centres]
    for c in truth:
        c["vb"] = c["va"] / rng.uniform(1.8, 2.8)
    drift = np.cumsum(np.vstack([[0, 0], rng.normal(0, 1.0, (n_frames - 1, 2))]), axis=0)
    yy, xx = np.mgrid[:size, :size].astype(float)
    frames, labels, rows = [], [], []
    for f in range(n_frames):
        lab = np.zeros((size, size), np.int32)
        for k, ((r, c), t) in enumerate(zip(centres, truth)):
            sl, m = _ellipse_mask(lab.shape, r + drift[f, 0], c + drift[f, 1], t["a0"] + t["va"] * f,
                                  t["b0"] + t["vb"] * f, t["ang"])
            lab[sl][m] = k + 1
        soft = ndi.gaussian_filter((lab > 0).astype(float), 0.8)
        film = 1 + tex(yy - drift[f, 0], xx - drift[f, 1])
        frames.append(rng.poisson(counts * film * (1 - contrast * soft)).astype(np.float32))
        half = np.zeros_like(lab)
        for k in range(1, 7):
            own = ndi.gaussian_filter((lab == k).astype(float), 0.8) > 0.5
            half[own] = k
            rows.append({"track": k - 1, "frame": f, "label": k, "time_s": 10.0 * f, "area_nm2": float(own.sum())})
        labels.append(half)
    return np.array(frames), np.array(labels), pd.DataFrame(rows), truth


def _rate_errors(tr, truth):
    out = []
    for k, t in enumerate(truth):
        g = tr[tr.track == k].sort_values("frame")
        fa = np.polyfit(g.frame, g.major_axis_fit_nm / 0.5, 1, w=0.5 / g.major_axis_sd_nm)[0]
        fb = np.polyfit(g.frame, g.minor_axis_fit_nm / 0.5, 1, w=0.5 / g.minor_axis_sd_nm)[0]
        out.append((fa / (2 * t["va"]) - 1, fb / (2 * t["vb"]) - 1))
    return np.abs(np.array(out))


def _minor_errors_px(tr, truth):
    """Per-frame fitted minor axis minus the true full minor axis (px; 0.5 nm per px)."""
    return np.concatenate([tr[tr.track == k].minor_axis_fit_nm / 0.5 - 2 * (t["b0"] + t["vb"] * tr[tr.track == k].frame)
                           for k, t in enumerate(truth)])


@pytest.fixture(scope="module")
def static_runs():
    from cryomat.tracking.axes import measure_axes

    frames, labels, tracks, truth = _movie(11)
    runs = {p: measure_axes(tracks, frames, labels, pixel_size=5.0, min_frames=5, sigma_px=0.75, static_passes=p,
                            polarity=-1) for p in (0, 1)}
    return runs, truth


def test_static_background_under_crystals_is_divided_out(static_runs):
    runs, truth = static_runs
    e0, e1 = _rate_errors(runs[0], truth), _rate_errors(runs[1], truth)
    # the 4% texture under each crystal (never seen uncovered; no flat-field here) shifts the fitted
    # edges the same way in neighbouring frames. Measured on this movie (6 tracks x 14 frames, 200
    # counts/px): major rate |error| mean 2.9% -> 0.9%, minor 6.7% -> 4.4% with the static pass
    # (movies 12, 13: major 6.2 -> 3.2%, 4.8 -> 1.8%; minor 4.8 -> 4.1%, 5.7 -> 3.6%). Shot noise
    # alone leaves ~3-4% on the minor rate (per-frame SE ~0.17 px on 4-7 px of growth)
    assert e1[:, 0].mean() < 0.6 * e0[:, 0].mean() and e1[:, 0].mean() < 0.03
    assert e1[:, 1].mean() < e0[:, 1].mean() and e1[:, 1].mean() < 0.05
    # per-frame minor axes: the scatter (MAD) drops from 0.32 to 0.19 px (movies 12, 13: 0.26 -> 0.21,
    # 0.38 -> 0.24), to about the shot-noise SE (0.17 px) plus the pixel-centre digitisation (~0.1 px)
    mad = []
    for tr in (runs[0], runs[1]):
        e = _minor_errors_px(tr, truth)
        mad.append(1.4826 * np.median(np.abs(e - np.median(e))))
    assert mad[1] < 0.8 * mad[0] and mad[1] < 0.25


def test_static_pass_per_frame_axes_unbiased(static_runs):
    runs, truth = static_runs
    tr = runs[1]
    e = _minor_errors_px(tr, truth)
    # the correction comes from the other frames only (leave-one-out), so it does not pull a frame
    # towards its own fit: the per-frame minor axes stay unbiased (measured mean +0.02 px over 84
    # frames; movies 12, 13: -0.04, 0.00 px; the standard error of such a mean is ~0.03 px)
    assert abs(np.mean(e)) < 0.1
    # the reported standard errors follow the scatter (SE median 0.17 px vs MAD 0.19 px)
    sd = (tr.minor_axis_sd_nm / 0.5).median()
    assert 0.7 < 1.4826 * np.median(np.abs(e - np.median(e))) / sd < 1.5


def test_axis_jump_cut_keeps_single_crystal_frames():
    from cryomat.tracking.growth import axis_jump, growth_table

    rng = np.random.default_rng(2)
    t = np.arange(16) * 10.0
    sd = 0.12
    major = 5 + 0.05 * t + rng.normal(0, sd, t.size)
    minor = 2.5 + 0.02 * t + rng.normal(0, sd, t.size)
    # a decelerating (parabolic) crystal: curvature, no step
    par = np.sqrt(4 + 0.5 * t) + rng.normal(0, sd, t.size)
    k, gain, jump = axis_jump(t, par, np.full(t.size, sd))
    assert gain < 20  # a smooth course is absorbed by the quadratic baseline
    jumped = major + np.where(np.arange(t.size) >= 11, 2.0, 0.0)  # a neighbour nucleated on it at frame 11
    k, gain, jump = axis_jump(t, jumped, np.full(t.size, sd))
    assert k == 11 and jump == pytest.approx(2.0, abs=0.4) and gain > 50
    tracks = pd.DataFrame({"track": 0, "frame": np.arange(t.size), "time_s": t, "area_nm2": 50.0, "solidity": 1.0,
                           "major_axis_nm": jumped, "minor_axis_nm": minor, "major_axis_fit_nm": jumped,
                           "minor_axis_fit_nm": minor, "major_axis_sd_nm": sd, "minor_axis_sd_nm": sd,
                           "fit_chi2_near": 1.0})
    g = growth_table(tracks, min_frames=8)
    # only the 11 frames before the step are used: the rate is the single crystal's (SE 2.5%)
    assert g["n_frames"].iloc[0] == 11 and abs(g["major_rate_nm_per_s"].iloc[0] / 0.05 - 1) < 0.08
    assert growth_table(tracks, min_frames=12).empty
    assert len(growth_table(tracks, min_frames=12, max_jump_sigma=None)) == 1  # the check can be turned off


def test_growth_rates_heldout_seed_against_noise_floor():
    """Full pipeline on a seed not used to tune the method (bench_track: 10-19 are held out)."""
    import sys
    from pathlib import Path

    from cryomat.simulate.growth import make_growth
    from cryomat.tracking import growth_table, track_series

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_tracking import _truth_crystal

    imgs, _, crystals, truth, _, _ = make_growth(rng=np.random.default_rng(11), size=320, frames=20, n_crystals=8)
    truth = pd.DataFrame(truth)
    tracks, ev, _ = track_series(imgs, pixel_size=5.0, times_s=np.arange(20) * 10.0)
    g = growth_table(tracks, ev, min_frames=10, pixel_size=5.0)
    assert len(g) >= 6
    e = []
    for row in g.itertuples():
        c = crystals[_truth_crystal(truth, tracks[tracks.track == row.track])]
        va, vb = c["va_px_s"], c["vb_px_s"]  # semi-axis px/s; full axis nm/s = 2 v 0.5 nm
        e.append((row.major_rate_nm_per_s / va - 1, row.minor_rate_nm_per_s / vb - 1,
                  row.anisotropy_ratio / c["anisotropy"] - 1, row.minor_rate_se_floor_nm_per_s / vb))
    e = np.array(e)
    # measured on seed 11 (8 fits): major |error| median 1.4%, max 4.4%; minor median 1.3%, max 6.1%;
    # anisotropy max 4.4% (issue targets 5% / 10%); with the simulator's film texture moving by the
    # sub-pixel drift (whole-pixel steps before): major 1.2% / 2.4%, minor 4.2% / 7.9% (at most 3.0
    # floor errors), anisotropy max 9.0%. The minor rate's noise floor (standard error from
    # the fitted axes' shot-noise errors) is 1.5-4.8% here; over seeds 0-19 errors are 1.26x the
    # floor (MAD of error / floor; 1.3-1.6x since the texture fix) and none beyond 3.5 floor errors. Bounds: the targets for the
    # anisotropy, ~1.5 points of margin on the medians, and every minor error within 4 floor errors
    assert np.all(np.isfinite(e[:, 3])) and np.all(e[:, 3] > 0)
    assert np.median(np.abs(e[:, 0])) < 0.025 and np.abs(e[:, 0]).max() < 0.06
    assert np.median(np.abs(e[:, 1])) < 0.05 and np.all(np.abs(e[:, 1]) < 4 * e[:, 3])
    assert np.abs(e[:, 2]).max() < 0.10
