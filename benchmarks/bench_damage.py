"""Benchmark of ``cryomat.damage``: critical-dose recovery and interval coverage; speed on large series.

Accuracy: simulated dose series (``cryomat.simulate.dose_series``) with one known critical dose Dc from
5 to 500 e/A^2 (total fluence 3 Dc over 40 frames), several seeds each: relative error of the fitted Dc,
fraction of seeds within 5 %, coverage of the bootstrap 95 % interval; per-d-spacing ordering with
Dc(d) ~ d. Speed: 40 frames streamed from an MRC file (default 2048^2; ``--size 4096`` for the full
size, or ``--series`` an existing stack), analysed as ``cryomat damage`` does, with and without
alignment. Usage:

    python benchmarks/bench_damage.py [--seeds 8] [--size 2048] [--series STACK.mrcs] [--skip-speed] [--skip-accuracy]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

from cryomat.damage import analyse_dose_series  # noqa: E402
from cryomat.simulate.dose_series import dose_series_frames, simulate_dose_series  # noqa: E402

DCS = [5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]


def _params(dc, seed, size=256, dc_exponent=0.0):
    dpf = 3.0 * dc / 40.0
    px = float(max(1.0, np.sqrt(2.0 / dpf)))          # at least ~2 electrons per pixel per frame
    return dict(seed=seed, shape=(size, size), n_frames=40, pixel_size=px, dose_per_frame=dpf, critical_dose=dc,
                dc_exponent=dc_exponent, a_A=4.0 * px + 3.0, b_A=5.0 * px + 3.0, contrast=0.3,
                amorphous_contrast=0.15, drift_px_per_frame=0.5)


def accuracy(seeds: int) -> dict:
    rows = []
    for dc in DCS:
        for s in range(seeds):
            p = _params(dc, 100 + s)
            frames, _ = simulate_dose_series(**p)
            r = analyse_dose_series(frames, pixel_size=p["pixel_size"], dose_per_frame=p["dose_per_frame"],
                                    n_boot=400, seed=s, progress=False).summary
            est = r["critical_dose_e_per_A2"]
            lo, hi = r["critical_dose_ci95_e_per_A2"]
            rows.append({"dc_true": dc, "seed": s, "dc_fit": est, "err_rel": est / dc - 1, "covered": lo <= dc <= hi,
                         "n_reflections": r["n_reflections"]})
            print(f"Dc {dc:6.1f} seed {s}: fit {est:8.3f} [{lo:.3f}, {hi:.3f}] n_refl {r['n_reflections']}",
                  flush=True)
    err = np.array([r["err_rel"] for r in rows])
    cov = np.array([r["covered"] for r in rows])
    per_dc = {}
    for dc in DCS:
        e = np.array([r["err_rel"] for r in rows if r["dc_true"] == dc])
        c = np.array([r["covered"] for r in rows if r["dc_true"] == dc])
        per_dc[f"{dc:g}"] = {"median_abs_err_rel": float(np.median(np.abs(e))), "bias_rel": float(np.mean(e)),
                             "within_5pct": float(np.mean(np.abs(e) <= 0.05)), "coverage": float(np.mean(c))}
    # resolution dependence: Dc(d) = 40 (d / d_max), check the fitted order
    order_ok = 0
    from scipy.stats import spearmanr

    for s in range(seeds):
        p = _params(40.0, 500 + s, size=384, dc_exponent=1.0)
        frames, _ = simulate_dose_series(**p)
        res = analyse_dose_series(frames, pixel_size=p["pixel_size"], dose_per_frame=p["dose_per_frame"],
                                  n_boot=200, progress=False)
        sh = res.shells[res.shells["reliable"]]
        order_ok += bool(len(sh) >= 3 and spearmanr(sh["d_spacing_A"], sh["critical_dose_e_per_A2"]).statistic >= 0.8)
    return {"series": "256x256 px, 40 frames, total 3 Dc, >= 2 e/px/frame, single Dc, drift 0.5 px/frame",
            "seeds_per_dc": seeds, "median_abs_err_rel": float(np.median(np.abs(err))),
            "within_5pct_fraction": float(np.mean(np.abs(err) <= 0.05)), "coverage_95": float(np.mean(cov)),
            "per_dc": per_dc, "per_d_order_correct_fraction": order_ok / seeds, "runs": rows}


def _time_analysis(path: Path, size: int) -> dict:
    import os

    import mrcfile

    out = {}
    for align in (False, True):
        with mrcfile.mmap(path, mode="r") as mrc:
            t0, c0 = time.perf_counter(), time.process_time()
            res = analyse_dose_series(mrc.data, pixel_size=1.0, dose_per_frame=1.5, align=align, progress=False)
            out[f"wall_seconds_align_{align}"] = time.perf_counter() - t0
            out[f"cpu_seconds_align_{align}"] = time.process_time() - c0
            out[f"align_method_{align}"] = res.summary.get("align_method")
    out.update({"size_px": size, "frames": 40, "load_average_1min": os.getloadavg()[0], "cpus": os.cpu_count(),
                "critical_dose_e_per_A2": res.summary["critical_dose_e_per_A2"],
                "n_reflections": res.summary["n_reflections"],
                "note": "cpu = process CPU time (all threads); on a busy shared machine wall >> cpu"})
    if size < 4096:
        scale = (4096 / size) ** 2 * 1.1     # N^2 log N of the FFTs; everything else is linear in pixels
        out["extrapolated_4k_cpu_seconds_align_True"] = out["cpu_seconds_align_True"] * scale
    return out


def speed(size: int, series: str | None = None) -> dict:
    import mrcfile

    if series:
        with mrcfile.mmap(series, mode="r") as mrc:
            size = int(mrc.data.shape[-1])
        return _time_analysis(Path(series), size)
    p = _params(20.0, 7, size=size, dc_exponent=1.0)
    p["pixel_size"] = 1.0
    p["dose_per_frame"] = 1.5
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
        path = Path(tmp) / "series.mrcs"
        gen = dose_series_frames(**p)
        next(gen)
        t0 = time.perf_counter()
        with mrcfile.new_mmap(path, shape=(40, size, size), mrc_mode=2, overwrite=True) as mrc:
            for i, fr in enumerate(gen):
                mrc.data[i] = fr
            mrc.voxel_size = 1.0
        t_sim = time.perf_counter() - t0
        out = _time_analysis(path, size)
        out["simulation_seconds"] = t_sim
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--series", help="time an existing 40-frame MRC stack (1 A px, 1.5 e/A^2/frame) instead")
    a = ap.parse_args(argv)
    payload = {}
    if not a.skip_accuracy:
        payload["accuracy"] = accuracy(a.seeds)
    if not a.skip_speed:
        payload["speed"] = speed(a.size, a.series)
    prev = Path(__file__).resolve().parent / "results" / "damage.json"
    if prev.exists():        # keep the section that was skipped this time
        import json

        old = json.loads(prev.read_text())
        for key in ("accuracy", "speed"):
            if key not in payload and key in old:
                payload[key] = old[key]
    write_result("damage", payload)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
