"""Lattice benchmarks: d-spacing precision, phase-ID accuracy, atomic columns vs atomap, superlattice, map speed.

Run: ``python benchmarks/bench_lattice.py [dspacing] [phaseid] [columns] [superlattice] [map]``
(no argument: all). Writes ``benchmarks/results/lattice_<part>.json``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import write_result  # noqa: E402

PHASES = ["Li", "Li2O", "LiF", "Li2CO3", "ice-Ih", "ice-Ic"]


def bench_dspacing(n_runs: int = 30) -> dict:
    """Li [001], 5 nm field (250 px at 0.2 A), 100 e/A^2: bias and sigma of d(110) in pm."""
    from cryomat.lattice import find_fft_peaks, get_phase
    from cryomat.simulate.lattice import lattice_image

    li = get_phase("Li")
    d110 = li.d_spacing([1, 1, 0])
    rng = np.random.default_rng(2024)
    per_spot, fit = [], []
    for _ in range(n_runs):
        img, _ = lattice_image((250, 250), pixel_size=0.2, phase=li, zone_axis=(0, 0, 1),
                               rotation_deg=rng.uniform(0, 90), dose_e_per_A2=100.0, rng=rng)
        pk = find_fft_peaks(img, pixel_size=0.2)
        a = pk.d_spacing_A[np.abs(pk.d_spacing_A - d110) < 0.03]
        b = pk.d_spacing_A[np.abs(pk.d_spacing_A - d110 / np.sqrt(2)) < 0.03]
        per_spot.extend(list(a - d110))
        fit.append(np.mean(np.r_[a * np.sqrt(2), b * 2]) / np.sqrt(2) - d110)
    per_spot, fit = np.array(per_spot) * 100, np.array(fit) * 100
    out = {"case": "Li [001], 250 x 250 px at 0.2 A (5 nm), 50 A crystal + 100 A amorphous overlayer, 100 e/A^2",
           "runs": n_runs, "target_bias_pm": 0.1, "target_sigma_pm": 0.2,
           "cell_fit_d110_bias_pm": float(fit.mean()), "cell_fit_d110_sigma_pm": float(fit.std(ddof=1)),
           "single_spot_d110_bias_pm": float(per_spot.mean()), "single_spot_d110_sigma_pm": float(per_spot.std(ddof=1))}
    return out


def _zone_sets(d_min: float = 1.3, max_per_phase: int = 6):
    """Per phase: its lowest-index zone axes whose noise-free pattern (geometry only, very high SNR)
    identifies uniquely, and those that are geometric twins of another phase's zone."""
    import pandas as pd

    from cryomat.lattice import get_phase
    from cryomat.lattice.indexing import identify_phases

    ok, twins = {}, {}
    for name in PHASES:
        ph = get_phase(name)
        ok[name], twins[name] = [], []
        for za in ph.zone_axes(max_index=2, d_min=d_min, min_spots=4)[:max_per_phase]:
            pat = ph.zone_pattern(za, d_min=d_min)
            pat = pat[(pat.gy_per_A > 1e-9) | ((np.abs(pat.gy_per_A) <= 1e-9) & (pat.gx_per_A > 0))]
            pk = pd.DataFrame({"kx_per_A": pat.gx_per_A, "ky_per_A": pat.gy_per_A, "snr": 1000.0})
            got = identify_phases(pk).phases[0]
            (ok if got["name"] == name else twins)[name].append(tuple(za))
    return ok, twins


def bench_phase_id(size: int = 384, doses=(100.0, 20.0), errors=(0.0, 0.015, 0.03)) -> dict:
    from cryomat.lattice import find_fft_peaks
    from cryomat.lattice.indexing import identify_phases
    from cryomat.simulate.lattice import lattice_image

    ok, twins = _zone_sets()
    rng = np.random.default_rng(7)
    px = 0.2
    rows = []
    t0 = time.perf_counter()
    for dose in doses:
        for err in errors:
            for name in PHASES:
                for za in ok[name]:
                    sign = 1 if rng.random() < 0.5 else -1
                    e = sign * err
                    img, _ = lattice_image((size, size), pixel_size=px, phase=name, zone_axis=za,
                                           rotation_deg=rng.uniform(0, 360), dose_e_per_A2=dose, rng=rng)
                    pk = find_fft_peaks(img, pixel_size=px * (1 + e))
                    r = identify_phases(pk, k_tol_per_A=1 / (size * px * (1 + e))).phases[0]
                    rows.append({"dose": dose, "error": err, "phase": name, "zone": za, "got": r["name"],
                                 "n_peaks": len(pk)})
    elapsed = time.perf_counter() - t0
    summary = {}
    for dose in doses:
        for err in errors:
            sel = [r for r in rows if r["dose"] == dose and r["error"] == err]
            n = len(sel)
            correct = sum(r["got"] == r["phase"] for r in sel)
            named_wrong = sum(r["got"] not in (r["phase"], "ambiguous", "unknown") for r in sel)
            undecided = sum(r["got"] in ("ambiguous", "unknown") for r in sel)
            ice = [r for r in sel if r["phase"] in ("ice-Ih", "ice-Ic")]
            ice_ok = sum(r["got"] == r["phase"] for r in ice)
            ice_swapped = sum(r["got"] in ("ice-Ih", "ice-Ic") and r["got"] != r["phase"] for r in ice)
            summary[f"dose{dose:g}_err{err * 100:g}pct"] = {
                "n": n, "top1_accuracy": correct / n, "wrong_label_rate": named_wrong / n,
                "undecided_rate": undecided / n, "ice_ic_vs_ih_accuracy": ice_ok / max(len(ice), 1),
                "ice_ic_ih_swapped": ice_swapped, "n_ice": len(ice)}
    failures = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()} for r in rows
                if r["got"] != r["phase"]]
    return {"case": f"{size} x {size} px at {px} A ({size * px / 10:g} nm field), 50 A crystal + 100 A amorphous "
                    f"overlayer, Cs-corrected 300 kV, 80 A underfocus; random in-plane rotation; pixel-size error of "
                    f"random sign",
            "zone_axes_tested": {k: [list(z) for z in v] for k, v in ok.items()},
            "zone_axes_excluded_as_geometric_twins": {k: [list(z) for z in v] for k, v in twins.items()},
            "targets": {"top1_exact": 0.95, "top1_1.5pct": 0.90, "top1_3pct": 0.85, "wrong_label_20e": 0.05,
                        "ice_ic_vs_ih_20e": 0.95},
            "summary": summary, "failures": failures, "elapsed_s": elapsed}


def bench_columns(size: int = 256, counts=(10, 50, 500), seeds=(0, 1, 2)) -> dict:
    """Column refinement precision (per-axis RMS, pm) and speed, cryomat vs atomap, same start positions."""
    from cryomat.lattice.columns import refine_columns
    from cryomat.simulate.stem_columns import stem_column_image

    px = 0.15
    out = {"case": f"stem_columns: {size} x {size} px at {px} A, SrTiO3-like [001] (a = 3.905 A), column sigma 0.45 A, "
                   f"6 pm PLD, background 2 counts/px; A columns (peak counts as listed) and B columns (half); start "
                   f"= truth + 1 px Gaussian noise for both tools",
           "targets_rms_pm": {"10": 2.6, "50": 1.2, "500": 0.4}, "target_ms_per_column": 5.0, "rows": []}
    try:
        import atomap.api as am
    except ImportError:  # pragma: no cover - peer optional
        am = None
    for c in counts:
        errs = {"cryomat": [], "atomap": []}
        times = {"cryomat": 0.0, "atomap": 0.0}
        ncol = 0
        for seed in seeds:
            rng = np.random.default_rng(seed)
            img, t = stem_column_image((size, size), pixel_size=px, peak_counts=c, pld_amplitude_pm=6.0, rng=rng)
            p = t["positions_px"]
            m = (p[:, 0] > 10) & (p[:, 0] < size - 10) & (p[:, 1] > 10) & (p[:, 1] < size - 10) & (t["sublattice"] == 0)
            start = p[m] + rng.normal(0, 1.0, (m.sum(), 2))
            ncol += int(m.sum())
            t0 = time.perf_counter()
            r = refine_columns(img, start, radius_px=9.0)
            times["cryomat"] += time.perf_counter() - t0
            errs["cryomat"].append((r[["row_px", "col_px"]].to_numpy() - p[m]) * px * 100)
            if am is not None:
                t0 = time.perf_counter()
                sl = am.Sublattice(start[:, ::-1].copy(), image=img.astype(np.float64))
                sl.find_nearest_neighbors()
                sl.refine_atom_positions_using_2d_gaussian(show_progressbar=False)
                times["atomap"] += time.perf_counter() - t0
                got = np.stack([sl.y_position, sl.x_position], axis=1)
                errs["atomap"].append((got - p[m]) * px * 100)
        row = {"peak_counts": c, "n_columns": ncol}
        for k in ("cryomat", "atomap"):
            if errs[k]:
                e = np.concatenate(errs[k])
                row[f"{k}_rms_per_axis_pm"] = float(np.sqrt(np.mean(e**2)))
                row[f"{k}_ms_per_column"] = 1000 * times[k] / ncol
        if errs["atomap"]:
            row["speedup_vs_atomap"] = row["atomap_ms_per_column"] / row["cryomat_ms_per_column"]
        out["rows"].append(row)
        print(row, flush=True)
    return out


def bench_superlattice(n_each: int = 20, size: int = 512) -> dict:
    """Image-level detection of a 2 pm PLD (q = 1/3) vs no PLD: recall and false-positive rate."""
    from cryomat.lattice.superlattice import find_superlattice
    from cryomat.simulate.stem_columns import stem_column_image

    det = {2.0: [], 0.0: []}
    qerr = []
    t0 = time.perf_counter()
    for amp in (2.0, 0.0):
        for seed in range(n_each):
            rng = np.random.default_rng(1000 + seed)
            img, _ = stem_column_image((size, size), pixel_size=0.15, peak_counts=50, pld_amplitude_pm=amp,
                                       pld_q=(1 / 3, 0), rotation_deg=rng.uniform(0, 90), rng=rng)
            r = find_superlattice(img, pixel_size=0.15)
            det[amp].append(bool(r["detected"]))
            if amp and r["detected"]:
                qerr.append(abs(np.sort(np.abs(r["q_rlu"]))[1] - 1 / 3))
    return {"case": f"stem_columns {size} x {size} px at 0.15 A, 50 peak counts, transverse PLD q = 1/3 r.l.u., "
                    f"random in-plane rotation; {n_each} images with 2 pm and {n_each} without",
            "target": {"recall": 0.95, "false_positive_rate": 0.01},
            "recall_2pm": float(np.mean(det[2.0])), "false_positive_rate": float(np.mean(det[0.0])),
            "q_abs_error_rlu_median": float(np.median(qerr)) if qerr else None,
            "elapsed_s": time.perf_counter() - t0}


def bench_map(size: int = 4096) -> dict:
    """Sliding-window phase map of a 4k x 4k image (64 px windows, step 16) on this machine."""
    from cryomat.lattice.phasemap import label_image, phase_map
    from cryomat.simulate.lattice import lattice_image

    px = 0.2
    doms = [{"phase": "LiF", "zone_axis": (1, 0, 0), "rotation_deg": 20, "radius_A": 150, "center_A": (250, 250)},
            {"phase": "Li2CO3", "zone_axis": (0, 1, 0), "rotation_deg": 70, "radius_A": 150, "center_A": (550, 550)}]
    img, _ = lattice_image((size, size), pixel_size=px, domains=doms, dose_e_per_A2=50, rng=np.random.default_rng(0))
    t0 = time.perf_counter()
    pm = phase_map(img, pixel_size=px, phases=PHASES, window_px=64, step_px=16)
    elapsed = time.perf_counter() - t0
    lab = label_image(pm, img.shape)[::8, ::8]
    rr, cc = np.mgrid[0:size:8, 0:size:8] * px
    acc = {}
    for k, d in enumerate(doms, start=1):
        inside = np.hypot(rr - d["center_A"][0], cc - d["center_A"][1]) < d["radius_A"]
        want = [c["label"] for c in pm.classes if c["name"] == d["phase"]]
        acc[d["phase"]] = float((lab[inside] == want[0]).mean()) if want else 0.0
    out_mask = np.ones(lab.shape, bool)
    for d in doms:
        out_mask &= np.hypot(rr - d["center_A"][0], cc - d["center_A"][1]) > d["radius_A"]
    return {"case": f"{size} x {size} px at {px} A, LiF [100] and Li2CO3 [010] discs (r = 15 nm) in amorphous "
                    f"matrix, 50 e/A^2; windows 64 px, step 16 px",
            "target_s": 60.0, "elapsed_s": elapsed, "windows": int(pm.labels.size),
            "fraction_of_domain_labelled_correctly": acc,
            "fraction_of_matrix_labelled_amorphous": float((lab[out_mask] == 0).mean()),
            "classes": pm.classes}


def main(argv):
    parts = argv or ["dspacing", "phaseid", "columns", "superlattice", "map"]
    if "dspacing" in parts:
        write_result("lattice_dspacing", bench_dspacing())
    if "phaseid" in parts:
        write_result("lattice_phaseid", bench_phase_id())
    if "columns" in parts:
        write_result("lattice_columns", bench_columns())
    if "superlattice" in parts:
        write_result("lattice_superlattice", bench_superlattice())
    if "map" in parts:
        write_result("lattice_map", bench_map())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
