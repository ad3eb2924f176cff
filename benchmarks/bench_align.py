"""Benchmark ``cryomat align`` (issue 3): accuracy vs simulated truth, peers, and the 4k x 4k x 40 timing.

Usage::

    python benchmarks/bench_align.py            # accuracy + peers (512^2 x 20, 10 seeds)
    python benchmarks/bench_align.py --quick    # 2 seeds of everything (about 1-2 min on a quiet machine)
    python benchmarks/bench_align.py --big      # only the 4096^2 x 40 float32 timing (needs ~3 GB RAM + 2.7 GB disk)

Writes ``benchmarks/results/align.json`` (``align_quick.json``, ``align_big.json``).

What is timed (speed vs peers): every method gets the same in-memory float32 stack of 20 raw
frames of 512^2 px and returns one shift per frame. Ours is the whole of ``estimate_drift`` (frame
spectra, lattice check, B-factor choice, leave-one-out passes, trajectory smoothing); the
scikit-image peer is a loop of ``phase_cross_correlation(frame 0, frame i, upsample_factor=20)``;
HyperSpy is ``Signal2D.estimate_shift2D(reference="current", sub_pixel_factor=20)``. Every method
is warmed up once on another movie (imports, thread pools), then each call is repeated
``--repeats`` times on the same data and the best wall time (and the CPU time of that call, all
threads) is kept, the same for all methods. Ratios are medians over seeds. The scikit-image loop
is also timed with BLAS on one thread (``skimage_1blas_*``): on a loaded machine its OpenBLAS
threads spin and inflate its CPU time several-fold, so ``cpu_speedup_vs_skimage_1blas`` is the
fair CPU ratio there; on a quiet machine compare the wall times.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import timed, write_result  # noqa: E402


def _err(est, truth):
    e = np.asarray(est, float) - np.asarray(truth, float)
    e -= e.mean(0)
    d = np.hypot(e[:, 0], e[:, 1])
    return float(np.sqrt(np.mean(d**2))), float(d.max())


def _best_sign(est, truth):
    """Peers' sign conventions differ: score each with the sign that fits the truth better."""
    a, b = _err(est, truth), _err(-np.asarray(est), truth)
    return a if a[0] <= b[0] else b


REPEATS = 3


def cpu_timed(func, *args, **kwargs):
    """(result, wall s, CPU s of this process, all threads) of the fastest of ``REPEATS`` calls: on a
    shared, loaded machine the CPU time is the fairer speed measure (the wall time depends on what
    the other processes do)."""
    best = (None, np.inf, np.inf)
    for _ in range(max(1, REPEATS)):
        c0, t0 = time.process_time(), time.perf_counter()
        out = func(*args, **kwargs)
        t, c = time.perf_counter() - t0, time.process_time() - c0
        if t < best[1]:
            best = (out, t, c)
    return best


def warm_up(peers: bool) -> None:
    """One call of every method on a small movie: imports and thread pools are not timed."""
    from cryomat import registration as reg
    from cryomat.simulate.movie import render_movie

    frames = render_movie(n_frames=6, shape=(128, 128), dose_per_frame=1.0, seed=1)[0]
    reg.estimate_drift(frames)
    if peers:
        skimage_loop(frames)
        try:
            hyperspy_shift2d(frames)
        except Exception:  # noqa: BLE001 - recorded where it matters (the timed calls)
            pass


def skimage_loop(frames):
    from skimage.registration import phase_cross_correlation

    ref = np.asarray(frames[0], np.float64)
    out = np.zeros((len(frames), 2))
    for i in range(1, len(frames)):
        sh, _, _ = phase_cross_correlation(ref, np.asarray(frames[i], np.float64), upsample_factor=20)
        out[i] = sh
    return out


def hyperspy_shift2d(frames):
    import hyperspy.api as hs

    s = hs.signals.Signal2D(np.asarray(frames, np.float32))
    return np.asarray(s.estimate_shift2D(reference="current", sub_pixel_factor=20, show_progressbar=False))


def accuracy(seeds: int, peers: bool) -> dict:
    from cryomat import registration as reg
    from cryomat.simulate.movie import render_movie

    out = {}
    warm_up(peers)
    for dose in (0.5, 0.1):
        rows = []
        load0 = os.getloadavg()[0]
        for seed in range(seeds):
            frames, truth, _, _ = render_movie(n_frames=20, shape=(512, 512), dose_per_frame=dose, seed=100 + seed)
            res, t, c = cpu_timed(reg.estimate_drift, frames)
            rms, mx = _err(res.shifts_px, truth["drift_px"])
            row = {"seed": 100 + seed, "rms_px": rms, "max_px": mx, "time_s": t, "cpu_s": c}
            if peers and seed < 3:
                sk, tsk, csk = cpu_timed(skimage_loop, frames)
                row["skimage_rms_px"], row["skimage_max_px"] = _best_sign(sk, truth["drift_px"])
                row["skimage_time_s"], row["skimage_cpu_s"] = tsk, csk
                # the same loop with BLAS on one thread: on a loaded machine OpenBLAS threads spin and
                # inflate its CPU time; this is its CPU work without that
                from threadpoolctl import threadpool_limits

                with threadpool_limits(1, user_api="blas"):
                    _, row["skimage_1blas_time_s"], row["skimage_1blas_cpu_s"] = cpu_timed(skimage_loop, frames)
                try:
                    hs_s, ths, chs = cpu_timed(hyperspy_shift2d, frames)
                    row["hyperspy_rms_px"], row["hyperspy_max_px"] = _best_sign(hs_s, truth["drift_px"])
                    row["hyperspy_time_s"], row["hyperspy_cpu_s"] = ths, chs
                except Exception as exc:  # record, never hide
                    row["hyperspy_error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
            print(dose, row, flush=True)
        rms = np.array([r["rms_px"] for r in rows])
        summ = {"counts_per_px_per_frame": dose, "n_seeds": seeds, "load_avg_1min": [load0, os.getloadavg()[0]],
                "rms_px_mean": float(rms.mean()),
                "rms_px_worst": float(rms.max()), "max_frame_error_px": float(max(r["max_px"] for r in rows)),
                "frames_off_by_more_than_2px": int(sum(r["max_px"] > 2 for r in rows)),
                "time_s_median": float(np.median([r["time_s"] for r in rows])),
                "cpu_s_median": float(np.median([r["cpu_s"] for r in rows])), "runs": rows}
        pr = [r for r in rows if "skimage_rms_px" in r]
        if pr:
            summ["skimage_rms_px_mean"] = float(np.mean([r["skimage_rms_px"] for r in pr]))
            summ["skimage_max_px_worst"] = float(max(r["skimage_max_px"] for r in pr))
            summ["skimage_time_s_median"] = float(np.median([r["skimage_time_s"] for r in pr]))
            summ["skimage_cpu_s_median"] = float(np.median([r["skimage_cpu_s"] for r in pr]))
            summ["speedup_vs_skimage"] = summ["skimage_time_s_median"] / float(np.median([r["time_s"] for r in pr]))
            summ["cpu_speedup_vs_skimage"] = float(np.median([r["skimage_cpu_s"] for r in pr])) / float(
                np.median([r["cpu_s"] for r in pr]))
            summ["skimage_1blas_cpu_s_median"] = float(np.median([r["skimage_1blas_cpu_s"] for r in pr]))
            summ["cpu_speedup_vs_skimage_1blas"] = summ["skimage_1blas_cpu_s_median"] / float(
                np.median([r["cpu_s"] for r in pr]))
            ph = [r for r in pr if "hyperspy_rms_px" in r]
            if ph:
                summ["hyperspy_rms_px_mean"] = float(np.mean([r["hyperspy_rms_px"] for r in ph]))
                summ["hyperspy_max_px_worst"] = float(max(r["hyperspy_max_px"] for r in ph))
                summ["hyperspy_time_s_median"] = float(np.median([r["hyperspy_time_s"] for r in ph]))
                summ["hyperspy_cpu_s_median"] = float(np.median([r["hyperspy_cpu_s"] for r in ph]))
                summ["speedup_vs_hyperspy"] = summ["hyperspy_time_s_median"] / float(
                    np.median([r["time_s"] for r in ph]))
                summ["cpu_speedup_vs_hyperspy"] = float(np.median([r["hyperspy_cpu_s"] for r in ph])) / float(
                    np.median([r["cpu_s"] for r in ph]))
        out[f"film_crystal_{dose:g}"] = summ
    return out


def lattice_jumps(seeds: int) -> dict:
    from cryomat import registration as reg
    from cryomat.simulate.movie import render_movie

    jumps, rmss = 0, []
    for seed in range(seeds):
        frames, truth, _, _ = render_movie(n_frames=20, shape=(512, 512), specimen="crystal", dose_per_frame=0.1,
                                           seed=200 + seed)
        res = reg.estimate_drift(frames)
        e = res.shifts_px - truth["drift_px"]
        e -= np.median(e, 0)
        jumps += int(np.sum(np.hypot(*e.T) > 0.5 * 6.0))  # half the 6 px lattice period
        rmss.append(_err(res.shifts_px, truth["drift_px"])[0])
        print("lattice", seed, rmss[-1], jumps, flush=True)
    return {"counts_per_px_per_frame": 0.1, "n_seeds": seeds, "frames_with_lattice_jump": jumps,
            "rms_px_mean": float(np.mean(rmss)), "rms_px_worst": float(np.max(rmss))}


def subpixel_bias(seeds: int) -> dict:
    from cryomat import registration as reg
    from cryomat.simulate.movie import render_movie

    errs = []
    for seed in range(seeds):
        frames, truth, _, _ = render_movie(n_frames=20, shape=(512, 512), dose_per_frame=20.0, seed=300 + seed)
        res = reg.estimate_drift(frames, smoothing=0)
        e = res.raw_shifts_px - truth["drift_px"]
        errs.append(e - e.mean(0))
    e = np.concatenate(errs)
    # bias as a function of the fractional shift: mean signed error in 4 bins of the true fraction
    tr = np.concatenate([render_movie(n_frames=20, shape=(16, 16), seed=300 + s)[1]["drift_px"] for s in range(seeds)])
    frac = tr - np.floor(tr)
    bins = np.minimum((frac * 4).astype(int), 3)
    bias = max(abs(float(e[bins[:, k] == b, k].mean())) for k in range(2) for b in range(4) if np.any(bins[:, k] == b))
    return {"counts_per_px_per_frame": 20.0, "n_seeds": seeds, "max_binned_bias_px": bias,
            "rms_px": float(np.sqrt(np.mean(np.sum(e**2, 1))))}


def patches(seeds: int) -> dict:
    from cryomat import registration as reg
    from cryomat.registration.local import estimate_local_motion
    from cryomat.simulate.movie import local_displacement, render_movie

    rows = []
    n, size = 20, 512
    for seed in range(seeds):
        frames, truth, _, _ = render_movie(n_frames=n, shape=(size, size), dose_per_frame=0.5, local_motion_px=3.0,
                                           seed=400 + seed)
        g = reg.estimate_drift(frames)
        loc, t = timed(estimate_local_motion, frames, g, grid=(5, 5))
        lm = truth["local_motion"]
        rr, cc = np.mgrid[16:size - 16:8, 16:size - 16:8]
        pts = np.stack([rr, cc], -1).astype(float)
        eg, el = [], []
        for f in range(n):
            tru = truth["drift_px"][f] + local_displacement(pts, f, n_frames=n, center_rc=lm["center_rc_px"],
                                                            width_px=lm["width_px"], amplitude_px=3.0,
                                                            tau_frames=lm["tau_frames"])
            eg.append(g.shifts_px[f] - tru)
            el.append(g.shifts_px[f] + loc.displacement(pts, f) - tru)
        eg, el = np.array(eg).reshape(-1, 2), np.array(el).reshape(-1, 2)
        rows.append({"seed": 400 + seed, "global_only_rms_px": float(np.sqrt(np.mean(np.sum((eg - eg.mean(0))**2, 1)))),
                     "patch_rms_px": float(np.sqrt(np.mean(np.sum((el - el.mean(0))**2, 1)))), "time_s": t})
        print("patches", rows[-1], flush=True)
    return {"doming_peak_to_peak_px": 3.0, "grid": [5, 5], "runs": rows,
            "patch_rms_px_mean": float(np.mean([r["patch_rms_px"] for r in rows])),
            "global_only_rms_px_mean": float(np.mean([r["global_only_rms_px"] for r in rows]))}


def big() -> dict:
    """4096^2 x 40 float32 movie on disk (memory-mapped MRC), aligned and summed once."""
    import mrcfile
    import scipy.fft as sfft

    from cryomat import io, registration as reg
    from cryomat.simulate import physics
    from cryomat.simulate.movie import drift_trajectory

    n, size, dose = 40, 4096, 0.5
    rng = np.random.default_rng(7)
    tmp = Path(tempfile.mkdtemp(prefix="cryomat_big_"))
    path = tmp / "movie4k.mrcs"
    drift = drift_trajectory(n, total_px=15.0, rng=rng)
    t0 = time.perf_counter()
    vp = physics.amorphous_potential((size, size), pixel_size=1.0, rng=rng, thickness_A=300.0)
    ideal = physics.weak_phase_image(vp, pixel_size=1.0, defocus_A=15000.0).astype(np.float32)
    del vp
    spec0 = sfft.rfft2(ideal, workers=2)
    del ideal
    kr = np.fft.fftfreq(size).astype(np.float32)[:, None]
    kc = np.fft.rfftfreq(size).astype(np.float32)[None, :]
    mrc = mrcfile.new_mmap(path, shape=(n, size, size), mrc_mode=2, overwrite=True)
    for f in range(n):  # periodic Fourier shift (float32): exact truth for the frames' content
        ph = np.exp(-2j * np.pi * kr * np.float32(drift[f, 0])) * np.exp(-2j * np.pi * kc * np.float32(drift[f, 1]))
        img = sfft.irfft2(spec0 * ph.astype(np.complex64), s=(size, size), workers=2)
        mrc.data[f] = rng.poisson(np.clip(img, 0, None) * dose).astype(np.float32)
    mrc.voxel_size = 1.0
    mrc.close()
    del spec0, img, ph
    t_sim = time.perf_counter() - t0
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    movie = io.read(path, lazy=True)  # memory map: nothing is loaded yet
    c0, t0 = time.process_time(), time.perf_counter()
    res = reg.estimate_drift(movie.data, pixel_size=1.0)
    t_align, c_align = time.perf_counter() - t0, time.process_time() - c0
    c0, t0 = time.process_time(), time.perf_counter()
    sums = reg.aligned_sums(movie.data, res.shifts_px, pixel_size=1.0, dose_per_frame=dose)
    t_sum, c_sum = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    rms, mx = _err(res.shifts_px, drift)
    os.remove(path)
    movie_gb = n * size * size * 4 / 1024**3
    del sums
    return {"shape": [n, size, size], "dtype": "float32", "movie_GB": movie_gb, "simulate_s": t_sim,
            "align_s": t_align, "sums_s": t_sum, "total_s": t_align + t_sum,
            "align_cpu_s": c_align, "sums_cpu_s": c_sum, "total_cpu_s": c_align + c_sum,
            "ccf_size": res.extra.get("ccf_size"), "iterations": res.iterations,
            "peak_rss_GB_after_simulation": rss0, "peak_rss_GB": rss,
            "peak_rss_over_movie": rss / movie_gb, "rms_px": rms, "max_px": mx,
            "note": "movie read from a memory-mapped MRC, one frame at a time, in 2 passes (spectra, sums); "
                    "peak RSS counts the touched memory-mapped pages. On a loaded machine compare cpu_s: "
                    "on 2 idle cores the wall time is between cpu_s / 2 and cpu_s."}


def main():
    global REPEATS
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="2 seeds of everything, written to align_quick.json")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per method and movie (the best is kept)")
    ap.add_argument("--big", action="store_true")
    ap.add_argument("--no-peers", action="store_true")
    a = ap.parse_args()
    REPEATS = a.repeats
    if a.quick:
        a.seeds = 2
    load = os.getloadavg()[0]
    if a.big:
        write_result("align_big", {"load_avg_1min": load, "big": big()})
        return
    payload = {"load_avg_1min_at_start": load, "repeats": REPEATS,
               "timing": "each method on the same in-memory float32 frames, warmed up once; best wall time "
                         "of --repeats calls and the CPU time (all threads) of that call; ratios: medians over seeds"}
    payload["accuracy_512x20"] = accuracy(a.seeds, not a.no_peers)
    payload["lattice_only_0.1"] = lattice_jumps(a.seeds)
    payload["subpixel_bias_high_dose"] = subpixel_bias(max(2, a.seeds // 3))
    payload["patches_doming"] = patches(max(2, a.seeds // 3))
    payload["load_avg_1min_at_end"] = os.getloadavg()[0]
    write_result("align_quick" if a.quick else "align", payload)


if __name__ == "__main__":
    main()
