"""Tracking: link accuracy on synthetic detections, dense drifting films, growth rates vs truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cryomat.cli.main import main
from cryomat.tracking import growth_table, link, link_scores, track_series
from cryomat.tracking.metrics import hota, identity_metrics


def brownian(n=300, frames=30, size=600, step=1.0, drift=(0.0, 0.0), p_birth=0.01, p_death=0.01, p_miss=0.02,
             seed=0):
    """Ground-truth detections: Brownian particles with births, deaths, missed detections and drift."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, size, (n, 2))
    ids = np.arange(n)
    nid = n
    rows = []
    off = np.zeros(2)
    for t in range(frames):
        seen = rng.random(len(ids)) > p_miss
        for k in np.flatnonzero(seen):
            rows.append((t, pos[k, 0] + off[0], pos[k, 1] + off[1], ids[k]))
        pos = pos + rng.normal(0, step, pos.shape)
        off = off + np.asarray(drift)
        alive = rng.random(len(ids)) >= p_death
        pos, ids = pos[alive], ids[alive]
        nb = rng.poisson(p_birth * n)
        pos = np.vstack([pos, rng.uniform(0, size, (nb, 2))])
        ids = np.concatenate([ids, np.arange(nid, nid + nb)])
        nid += nb
    return pd.DataFrame(rows, columns=["frame", "row_px", "col_px", "true"])


def test_link_precision_recall_sparse():
    df = brownian(seed=1)
    out = link(df, search_range=6, memory=2)
    s = link_scores(out["frame"], out["true"], out["track"])
    # issue target >= 0.995 for births, deaths and 2% missed detections at this density
    assert s["link_precision"] >= 0.995 and s["link_recall"] >= 0.995
    ident = identity_metrics(out["frame"], out["true"], out["track"])
    assert ident["mostly_tracked"] >= 0.95


def test_link_dense_with_drift_no_exception():
    # 3 px/frame drift, mean spacing ~13 px, 1 px Brownian steps: trackpy's subnet search gives up here
    df = brownian(n=1200, size=450, drift=(3.0, 2.0), seed=2)
    out = link(df, search_range=6, memory=2)
    s = link_scores(out["frame"], out["true"], out["track"])
    assert s["link_precision"] >= 0.95 and s["link_recall"] >= 0.95
    # the estimated drift follows the true 3, 2 px/frame within the Brownian scatter of the median
    per_frame = out.groupby("frame")[["drift_row_px", "drift_col_px"]].first().diff().dropna()
    assert np.allclose(per_frame.mean().to_numpy(), [3.0, 2.0], atol=0.1)


def test_link_survives_a_stage_jump():
    """A stage that jumps (here by 9 px after drifting steadily at 2 px/frame) breaks the previous
    frame's shift as a guess; the consensus search finds the jump and every link survives."""
    rng = np.random.default_rng(3)
    grid = np.stack(np.meshgrid(np.arange(5), np.arange(8), indexing="ij"), -1).reshape(-1, 2) * 40.0
    pos = grid + rng.uniform(-10, 10, grid.shape)  # 40 points, >= 20 px apart (0.3 px noise: never confused)
    steps = np.tile([2.0, 1.0], (12, 1))
    steps[6] = [-6.0, 7.0]  # the jump: 10.3 px from the guessed (2, 1)
    off = np.vstack([[0, 0], np.cumsum(steps, axis=0)])
    rows = [(t, *(p + off[t] + rng.normal(0, 0.3, 2)), k) for t in range(13) for k, p in enumerate(pos)]
    df = pd.DataFrame(rows, columns=["frame", "row_px", "col_px", "true"])
    out = link(df, search_range=4, memory=0)
    s = link_scores(out["frame"], out["true"], out["track"])
    # without the consensus search all 40 links across the jump were lost (measured: recall 0.917, 80 tracks)
    assert s["link_precision"] == 1.0 and s["link_recall"] == 1.0
    assert out["track"].nunique() == 40
    jump = out.groupby("frame")[["drift_row_px", "drift_col_px"]].first().diff().loc[7].to_numpy()
    assert np.allclose(jump, [-6.0, 7.0], atol=0.3)  # the median of 40 displacements with 0.3 px noise


def test_hota_perfect_and_swapped():
    g = [np.array([1, 2]), np.array([1, 2]), np.array([1, 2])]
    sim = [np.eye(2)] * 3
    assert hota(g, g, sim)["HOTA"] == pytest.approx(1.0)
    p = [np.array([1, 2]), np.array([2, 1]), np.array([2, 1])]  # identities swapped after frame 0
    assert hota(g, p, sim)["AssA"] < 0.7


@pytest.fixture(scope="module")
def growth_run():
    from cryomat.simulate.growth import make_growth

    imgs, labels, crystals, truth_tracks, events, drift = make_growth(rng=np.random.default_rng(0), size=320,
                                                                     frames=20, n_crystals=8)
    tracks, ev, lab = track_series(imgs, pixel_size=5.0, times_s=np.arange(20) * 10.0)
    return crystals, pd.DataFrame(truth_tracks), tracks, ev, lab, labels


def _truth_crystal(truth, track_rows):
    """The simulated crystal a track follows: majority vote of the nearest true centre per frame."""
    votes = []
    for r in track_rows.itertuples():
        cand = truth[truth.frame == r.frame]
        if len(cand):
            votes.append(int(cand.crystal.iloc[int(np.argmin(np.hypot(cand.row_px - r.row_px, cand.col_px - r.col_px)))]))
    return int(np.bincount(votes).argmax())


def test_growth_rates_against_truth(growth_run):
    crystals, truth, tracks, ev, lab, _ = growth_run
    g = growth_table(tracks, ev, min_frames=10, pixel_size=5.0)
    assert len(g) >= 6
    errs_maj, errs_min, errs_an = [], [], []
    for row in g.itertuples():
        c = crystals[_truth_crystal(truth, tracks[tracks.track == row.track])]
        errs_maj.append(row.major_rate_nm_per_s / (2 * c["va_px_s"] * 0.5) - 1)
        errs_min.append(row.minor_rate_nm_per_s / (2 * c["vb_px_s"] * 0.5) - 1)
        errs_an.append(row.anisotropy_ratio / c["anisotropy"] - 1)
    # measured on this series (seed 0, axes fitted to the image, Huber-weighted rates) with the film
    # texture drifting with the crystals (as a real specimen does). The texture is then static in
    # specimen coordinates and its error in a fitted edge would not average out over frames, so the
    # axes are fitted on frames divided by the film background measured where the film is seen
    # uncovered (tracking.flatfield). Seed 0: major |error| median 1.5% / max 2.9% (2.6% / 7.6% before
    # the flat-field), minor 1.9% / 10.3% (2.7% / 12%), anisotropy 2.8% / 8.5% (3.9% / 8.0%). Over seeds 0-9
    # (bench_track, 74 fits) major median 1.6% (was 3.0%), minor 2.7% (4.2%), anisotropy 3.3% (5.2%).
    # The minor axis grows only 4-12 px over a track, so single fits still scatter by several per
    # cent; bounds leave ~1-3 points of margin. With the static-background pass per track
    # (tracking.axes) and two-pass detection: seed 0 major median 1.4% / max 2.6%, minor 2.4% / 4.7%,
    # anisotropy 2.2% / 3.5%; the minor rate's noise floor (shot-noise standard error) on this seed
    # reaches 6.1% (a track with 4 px of minor growth), so its max bound stays wide. Since the simulator's
    # film texture moves by the sub-pixel drift (it moved in whole-pixel steps before, which the flat
    # field partly profited from): seed 0 major median 2.8% / max 4.2%, minor 2.5% / 5.6%, anisotropy
    # 1.6% / 3.7%. Since the simulator renders crystals by their projected area (pixel-centre masks
    # before, a digitisation jitter of ~0.1-0.2 px per edge and frame that no real crystal has): seed 0
    # major median 1.3% / max 2.3%, minor 2.4% / 5.3% (the 5.3% on a floor of 2.2%), anisotropy
    # 1.6% / 5.1% (issue targets 5% per axis, 10% anisotropy); bounds ~1-3 points above
    assert np.median(np.abs(errs_maj)) < 0.025 and np.max(np.abs(errs_maj)) < 0.04
    assert np.median(np.abs(errs_min)) < 0.035 and np.max(np.abs(errs_min)) < 0.08
    assert np.median(np.abs(errs_an)) < 0.03 and np.max(np.abs(errs_an)) < 0.08  # issue target <= 10%
    # every fitted track used the image-fitted axes
    assert (g["axes"] == "fit").all()


def test_fit_ellipse_subpixel_axes():
    from scipy import ndimage as ndi

    from cryomat.simulate.growth import _ellipse_mask
    from cryomat.tracking.axes import fit_ellipse

    rng = np.random.default_rng(3)
    errs = []
    for _ in range(8):
        a, b = rng.uniform(5, 10), rng.uniform(2.5, 4.5)
        r0, c0, ang = 30 + rng.random(), 30 + rng.random(), rng.uniform(0, np.pi)
        lab = np.zeros((60, 60))
        sl, m = _ellipse_mask(lab.shape, r0, c0, a, b, ang)
        lab[sl][m] = 1
        soft = ndi.gaussian_filter(lab, 0.8)  # the growth simulator's contrast and blur, no film texture
        img = rng.poisson(200 * (1 - 0.35 * soft)).astype(float)
        f = fit_ellipse(img, soft > 0.5, polarity=-1, fit_sigma=False, sigma0=0.75)
        errs.append((2 * f["a_px"] - 2 * a, 2 * f["b_px"] - 2 * b, abs(np.angle(np.exp(2j * (f["angle_rad"] - ang))))))
    e = np.array(errs)
    # shot noise at 200 counts/px and pixel sampling give ~0.2-0.3 px scatter of the full axes
    # (measured: bias < 0.1 px); the Feret diameters of half-maximum masks scatter by ~0.5 px
    assert np.all(np.abs(e[:, :2].mean(axis=0)) < 0.15)
    assert np.all(e[:, :2].std(axis=0) < 0.5)
    assert np.rad2deg(e[:, 2].max()) / 2 < 5.0  # orientation within 5 deg for b/a <= 0.9


def test_huber_rate_resists_a_merged_frame():
    from cryomat.tracking import fit_growth

    rng = np.random.default_rng(0)
    t = np.arange(12) * 10.0
    major = 5 + 0.12 * t + rng.normal(0, 0.1, t.size)
    minor = 3 + 0.05 * t + rng.normal(0, 0.1, t.size)
    minor[[4, 9]] += 1.5  # two frames where a neighbour touched the crystal
    sd = np.full(t.size, 0.1)
    huber = fit_growth(t, major, minor, major_sd_nm=sd, minor_sd_nm=sd)
    ols = fit_growth(t, major, minor, method="ols")
    e_h, e_o = abs(huber["minor_rate_nm_per_s"] / 0.05 - 1), abs(ols["minor_rate_nm_per_s"] / 0.05 - 1)
    # 0.1 nm noise on 12 frames: the slope's standard error is 1.7% of 0.05 nm/s; the two outliers
    # move the least-squares minor rate by 7.8%, the Huber one by 3.7% (seeds 0-5: 0-3.7% vs 3.3-7.8%)
    assert e_h < 0.05 and e_h < 0.6 * e_o
    assert abs(huber["major_rate_nm_per_s"] / 0.12 - 1) < 0.02  # clean axis: within ~1 standard error
    assert huber["n_downweighted"] >= 2


def test_two_crystals_seen_as_one_are_flagged_and_cut():
    from scipy import ndimage as ndi

    from cryomat.simulate.growth import _ellipse_mask
    from cryomat.tracking.axes import fit_ellipse

    rng = np.random.default_rng(5)
    chi = {False: [], True: []}
    for _ in range(5):
        for two in (False, True):
            lab = np.zeros((70, 70))
            sl, m = _ellipse_mask(lab.shape, 35.3, 34.6, 12, 5, 0.4)
            lab[sl][m] = 1
            if two:  # a small crystal nucleated on the flank of the first
                sl, m = _ellipse_mask(lab.shape, 29.8, 36.6, 4, 3, 1.5)
                lab[sl][m] = 1
            soft = ndi.gaussian_filter(lab, 0.8)
            img = rng.poisson(200 * (1 - 0.35 * soft)).astype(float)
            chi[two].append(fit_ellipse(img, soft > 0.5, polarity=-1, fit_sigma=False, sigma0=0.75)["chi2_near"])
    # measured: the pair leaves 1.4-2x the single crystal's misfit on and around the object
    assert np.median(chi[True]) > 1.4 * np.median(chi[False])

    # growth_table keeps only the frames before an object became such a pair
    t = np.arange(14) * 10.0
    n = t.size
    minor = 2.0 + 0.02 * t + np.where(np.arange(n) >= 9, 1.0, 0.0)  # the pair is 1 nm wider from frame 9
    tracks = pd.DataFrame({"track": 0, "frame": np.arange(n), "time_s": t, "area_nm2": 50.0, "solidity": 1.0,
                           "major_axis_nm": 5 + 0.05 * t, "minor_axis_nm": minor,
                           "major_axis_fit_nm": 5 + 0.05 * t, "minor_axis_fit_nm": minor,
                           "major_axis_sd_nm": 0.05, "minor_axis_sd_nm": 0.05,
                           "fit_chi2_near": np.where(np.arange(n) >= 9, 2.0, 1.0)})
    tracks.loc[10, "fit_chi2_near"] = 1.0  # one frame of the pair happens to fit well: still cut
    g = growth_table(tracks, min_frames=5)
    assert g["n_frames"].iloc[0] == 9 and g["minor_rate_nm_per_s"].iloc[0] == pytest.approx(0.02, rel=1e-6)
    assert growth_table(tracks, min_frames=10).empty  # too few single-crystal frames: no rate at all


def test_mask_tracking_hota(growth_run):
    from cryomat.tracking.metrics import mask_tracking_scores

    crystals, truth, tracks, ev, lab, true_labels = growth_run
    h = mask_tracking_scores(true_labels, lab, tracks)
    # measured HOTA 0.944 (DetA 0.941, AssA 0.947, LocA 0.943), 0 identity switches, 100% mostly tracked
    # on this series; 0.906-0.956 over seeds 0-19 (bench_track_hota: two-pass detection on flat-fielded
    # frames, masks interpolated across closed gaps; 0.834-0.900 before) (issue: HOTA >= 0.85, MT >= 90%).
    # DetA is bounded by the mask IoU (median ~0.95: edges of a blurred, noisy ellipse). One switch is
    # allowed: two crystals whose blurred masks touch a frame before they coalesce in the truth become one.
    # Since the simulator renders each crystal by its projected area (a pixel half covered is half as
    # dark; before: the pixel-centre mask, blurred), the detected masks no longer reproduce the truth's
    # pixel-centre digitisation exactly: edge pixels near half coverage flip with the noise. Measured on
    # this series HOTA 0.900 (DetA 0.898, AssA 0.902); 0.893-0.925 over seeds 0-19
    assert h["HOTA"] >= 0.88 and h["AssA"] >= 0.88 and h["DetA"] >= 0.88
    assert h["id_switches"] <= 1 and h["mostly_tracked"] >= 0.9


def test_cli_track_and_bad_input(tmp_path, capsys):
    from cryomat.simulate import simulate

    simulate("growth", tmp_path / "sim", seed=4, size=256, frames=12, n_crystals=6)
    rc = main(["--quiet", "track", str(tmp_path / "sim" / "series.mrcs"), "--out", str(tmp_path / "o"),
               "--frame-time", "10"])
    assert rc == 0
    for f in ("tracks.csv", "events.csv", "growth.csv", "overlay.gif", "report.html", "results.json"):
        assert (tmp_path / "o" / f).exists()
    t = pd.read_csv(tmp_path / "o" / "tracks.csv")
    assert {"track", "frame", "time_s", "row_px", "col_px", "area_nm2", "major_axis_nm", "minor_axis_nm",
            "orientation_deg"} <= set(t.columns)
    assert np.allclose(np.diff(np.sort(t["time_s"].unique())), 10.0)
    res = json.loads((tmp_path / "o" / "results.json").read_text())["results"]
    assert res["n_tracks"] >= 4
    # the simulator blurs with sigma 0.8 px after sampling the ellipse at pixel centres; the fit's model
    # adds the pixel's own width (variance 1/12 px^2), so it should find sqrt(0.64 - 0.083) = 0.75 px
    assert res["growth_axes"] == "fit" and 0.6 < res["psf_sigma_px"] < 0.9
    g = pd.read_csv(tmp_path / "o" / "growth.csv")
    assert len(g) and (g["axes"] == "fit").all()
    (tmp_path / "times.txt").write_text("0 1 2\n")
    rc = main(["track", str(tmp_path / "sim" / "series.mrcs"), "--out", str(tmp_path / "o2"), "--times",
               str(tmp_path / "times.txt")])
    err = capsys.readouterr().err
    assert rc == 2 and "3 times given for 12 frames" in err and "Traceback" not in err
    rc = main(["track", str(tmp_path / "sim" / "series.mrcs"), "--out", str(tmp_path / "o3"), "--min-track-frames", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and "--min-track-frames must be >= 3" in err and "Traceback" not in err


def test_real_stem_series_tracks(real, tmp_path):
    path = real("rosettasciio/03_Scanning_Preview.emi")
    rc = main(["--quiet", "track", str(path), "--out", str(tmp_path / "o"), "--polarity", "bright"])
    assert rc == 0
    t = pd.read_csv(tmp_path / "o" / "tracks.csv")
    # the 5 frames show the same nanoparticles: most tracks span several frames
    spans = t.groupby("track")["frame"].nunique()
    assert len(t) > 0 and (spans >= 3).sum() >= 0.5 * len(spans)


def test_specimen_background_recovers_static_texture():
    """The film texture moves with the specimen: measured where uncovered, in drift-corrected
    coordinates, it is recovered, and dividing it out flattens the film (tracking.flatfield)."""
    from scipy import ndimage as ndi

    from cryomat.tracking.flatfield import flat_field, specimen_background

    rng = np.random.default_rng(3)
    h = w = 96
    tex = ndi.gaussian_filter(rng.normal(size=(h + 20, w + 20)), 1.5)
    tex = 1 + 0.04 * tex / tex.std()
    yy, xx = np.mgrid[:h, :w]
    frames, labels, drift = [], [], []
    for f in range(8):
        d = (f, -f // 2)  # integer drift (px): the texture moves exactly with the specimen
        film = tex[10 - d[0]:10 - d[0] + h, 10 - d[1]:10 - d[1] + w]
        disc = (yy - 48 - d[0]) ** 2 + (xx - 40 - d[1]) ** 2 < (6 + 1.5 * f) ** 2  # a growing crystal
        frames.append(1000 * film * np.where(disc, 0.7, 1.0) + rng.normal(0, 3, (h, w)))  # 0.3% noise
        labels.append(disc.astype(np.int32))
        drift.append(d)
    frames, labels, drift = np.array(frames), np.array(labels), np.array(drift, float)
    b, n = specimen_background(frames, labels, drift)
    seen = n >= 3
    truth = tex[10:10 + h, 10:10 + w]
    truth = truth / np.median(truth[seen])
    # mean of >= 3 frames of 0.3% noise, vs 4% texture: recovered to well under 1% rms
    assert seen.mean() > 0.6
    assert np.sqrt(np.mean((b[seen] - truth[seen]) ** 2)) < 0.006
    flat = flat_field(frames, labels, drift)
    # last frame's film: seen in >= 3 frames (moved to this frame's drift), away from the crystal
    film = (ndi.shift(seen.astype(float), drift[-1], order=0) > 0.5) & ~ndi.binary_dilation(labels[-1] > 0,
                                                                                             iterations=3)
    # film texture (4% rms) divided out where it was seen: what is left is the noise (~0.3-0.5%)
    assert np.std(frames[-1][film] / np.median(frames[-1][film])) > 0.03
    assert np.std(flat[-1][film] / np.median(flat[-1][film])) < 0.01
