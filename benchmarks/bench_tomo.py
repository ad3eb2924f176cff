"""Tomography benchmarks: WBP vs ASTRA's CPU FBP, local thickness vs localthickness, alignment, graphs.

Usage: ``python benchmarks/bench_tomo.py [wbp] [wbp1k] [thickness] [align] [graph] [segment] [graph_noisy]``
(default: all).
Sizes: ``CRYOMAT_BENCH_TOMO_N`` (WBP volume edge, default 512), ``CRYOMAT_BENCH_LT_N`` (default 256),
``CRYOMAT_BENCH_ALIGN_N`` (default 512), ``CRYOMAT_BENCH_GRAPH_N`` (default 256).
Each part writes ``benchmarks/results/tomo_<part>.json``. ASTRA is only a peer here, never a
runtime dependency; its 2D CPU parallel-beam FBP is run slice by slice (a 3D GPU call would crash
without a GPU).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402


def _balls_phantom(n, rng, n_balls=400):
    vol = np.zeros((n, n, n), np.float32)
    for _ in range(n_balls):
        r = rng.uniform(2, n / 16)
        c = rng.uniform(r + 1, n - r - 1, 3)
        c[0] = rng.uniform(n * 0.3, n * 0.7)
        lo = np.floor(c - r).astype(int)
        hi = np.ceil(c + r).astype(int) + 1
        zz, yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        ball = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r
        vol[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] += ball * rng.uniform(0.5, 2.0)
    return vol


_CHILD = r"""
import sys, time, numpy as np
from cryomat.tomography.reconstruct import reconstruct_wbp
p = np.load(sys.argv[1], mmap_mode="r"); ang = np.load(sys.argv[2])
reconstruct_wbp(np.asarray(p[:, :4]), ang)  # compile
t = time.perf_counter(); v = reconstruct_wbp(p, ang); dt = time.perf_counter() - t
np.save(sys.argv[3], v); print(dt)
"""


def bench_wbp():
    import astra

    from cryomat.tomography import forward_project

    n = int(os.environ.get("CRYOMAT_BENCH_TOMO_N", 512))
    rng = np.random.default_rng(0)
    ang = np.linspace(-60, 60, 61)
    vol = _balls_phantom(n, rng)
    t0 = time.perf_counter()
    proj = forward_project(vol, ang)
    t_fp = time.perf_counter() - t0
    del vol
    with tempfile.TemporaryDirectory() as td:
        pp, ap, vp = Path(td) / "p.npy", Path(td) / "a.npy", Path(td) / "v.npy"
        np.save(pp, proj)
        np.save(ap, ang)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        out = subprocess.run([sys.executable, "-c", _CHILD, str(pp), str(ap), str(vp)], capture_output=True, text=True,
                             check=True)
        t_ours = float(out.stdout.strip().splitlines()[-1])
        peak_gib = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 2 ** 20
        ours = np.load(vp, mmap_mode="r")
        # ASTRA: 2D parallel beam, CPU FBP (Ram-Lak), one slice per row; angles negated because ASTRA's
        # y axis points up (t = x cos - y sin in cryomat's row-down depth coordinate)
        vg = astra.create_vol_geom(n, n)
        pg = astra.create_proj_geom("parallel", 1.0, n, np.deg2rad(-ang))
        pid = astra.create_projector("linear", pg, vg)
        sid = astra.data2d.create("-sino", pg, 0)
        rid = astra.data2d.create("-vol", vg, 0)
        cfg = astra.astra_dict("FBP")
        cfg.update({"ProjectorId": pid, "ProjectionDataId": sid, "ReconstructionDataId": rid,
                    "option": {"FilterType": "Ram-Lak"}})
        alg = astra.algorithm.create(cfg)
        rows = range(n)
        nrmse = []
        t_astra = 0.0
        ref_rows = {}
        for y in rows:
            astra.data2d.store(sid, np.ascontiguousarray(proj[:, y, :]))
            t0 = time.perf_counter()
            astra.algorithm.run(alg)
            t_astra += time.perf_counter() - t0
            if y % 16 == 0:
                ref_rows[y] = astra.data2d.get(rid).copy()
        astra.algorithm.delete(alg)
        astra.projector.delete(pid)
        astra.data2d.delete([sid, rid])
        # ASTRA's FBP weights every view by pi / n_views (it assumes 180 deg of views); cryomat weights
        # by the actual angular spacing, so for the same filter the volumes differ by this known factor
        from cryomat.tomography.reconstruct import angular_weights

        k_astra = (np.pi / ang.size) / float(np.mean(angular_weights(ang)))
        for y, ref in ref_rows.items():
            mine = k_astra * np.asarray(ours[:, y, :])
            nrmse.append(float(np.sqrt(np.mean((mine - ref) ** 2)) / (ref.max() - ref.min() + 1e-12)))
    write_result("tomo_wbp", {
        "size": f"{n}^3 from 61 views of {n}^2, +/-60 deg", "forward_projection_s": t_fp,
        "cryomat_wbp_s": t_ours, "astra_cpu_fbp_s": t_astra, "speedup_vs_astra": t_astra / t_ours,
        "cryomat_peak_rss_gib": peak_gib, "nrmse_vs_astra_fbp": float(np.mean(nrmse)),
        "nrmse_vs_astra_fbp_max": float(np.max(nrmse)), "nrmse_definition": "RMS difference / ASTRA slice range, every 16th slice, cryomat scaled by ASTRA's "
                             "pi/n_views angular weight (a fixed factor, not fitted)", "astra_weight_factor": k_astra,
        "load": os.getloadavg()})


def bench_wbp1k():
    """1k^3 from 61 views of 1k^2 into a memory-mapped volume: the working memory stays small."""
    import threading

    from cryomat.tomography.reconstruct import reconstruct_wbp

    n = int(os.environ.get("CRYOMAT_BENCH_1K_N", 1024))
    rng = np.random.default_rng(0)
    proj = rng.random((61, n, n), dtype=np.float32)
    ang = np.linspace(-60, 60, 61)
    peak = [0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            for line in open("/proc/self/status"):
                if line.startswith("RssAnon:"):
                    peak[0] = max(peak[0], int(line.split()[1]))
            time.sleep(0.2)

    with tempfile.TemporaryDirectory() as td:
        out = np.lib.format.open_memmap(Path(td) / "vol.npy", mode="w+", dtype=np.float32, shape=(n, n, n))
        reconstruct_wbp(proj[:, :4], ang)
        th = threading.Thread(target=watch, daemon=True)
        th.start()
        t0, c0 = time.perf_counter(), time.process_time()
        reconstruct_wbp(proj, ang, out=out)
        dt, ct = time.perf_counter() - t0, time.process_time() - c0
        stop.set()
        th.join()
        del out
    write_result("tomo_wbp_1k", {"size": f"{n}^3 from 61 views of {n}^2 into a memory-mapped .npy",
                                 "wbp_s": dt, "wbp_cpu_s": ct,
                                 "peak_anonymous_memory_gib": peak[0] / 2 ** 20,
                                 "note": "anonymous memory = input stack + chunk buffers; the volume pages are file-backed",
                                 "load": os.getloadavg()})


def _thickness_phantoms(rng, n=64):
    """(name, kind, mask, evaluated voxels, true thickness in voxels): axis slabs 2-12 voxels; oblique
    slabs 2-12 voxels (random normals, evaluated away from the box edges); spherical shells; curved
    sheets (cylindrical shells about random axes, sinusoidal sheets with the thickness along the normal)."""
    from scipy.spatial import cKDTree

    out = []
    for T in range(2, 13):
        m = np.zeros((40, 32, 32), bool)
        m[8:8 + T] = True
        out.append((f"slab{T}", "slab", m, m, float(T)))
    z, y, x = np.mgrid[:n, :n, :n] - (n - 1) / 2
    core = (np.abs(x) < 16) & (np.abs(y) < 16) & (np.abs(z) < 16)
    for T in (2, 3, 4, 5, 6, 8, 10, 12):
        for k in range(2):
            nn = rng.normal(size=3)
            nn /= np.linalg.norm(nn)
            m = np.abs(z * nn[0] + y * nn[1] + x * nn[2] - rng.uniform()) <= T / 2
            out.append((f"oblique{T}_{k}", "oblique_slab", m, m & core, float(T)))
    for ri, T in ((14, 4), (10, 3), (20, 6), (8, 2), (18, 8), (12, 5)):
        c = rng.uniform(-0.5, 0.5, 3)
        rr = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
        m = (rr >= ri) & (rr < ri + T)
        out.append((f"shell{ri}_{T}", "shell", m, m, float(T)))
    P = np.stack([z, y, x], -1)
    for ri, T in ((12, 4), (16, 6), (8, 3), (20, 2)):
        a = rng.normal(size=3)
        a /= np.linalg.norm(a)
        along = P @ a
        rc = np.linalg.norm(P - along[..., None] * a, axis=-1)
        m = (rc >= ri) & (rc < ri + T) & (np.abs(along) < 24)
        out.append((f"cylinder{ri}_{T}", "curved_sheet", m, m & (np.abs(along) < 24 - T), float(T)))
    zz, xx = np.mgrid[:n, :n] - (n - 1) / 2
    for A, L, T in ((6, 48, 4), (5, 40, 3), (4, 56, 6)):
        xs = np.linspace(-40, 40, 8001)
        d, _ = cKDTree(np.stack([A * np.sin(2 * np.pi * xs / L), xs], -1)).query(np.stack([zz.ravel(), xx.ravel()], -1))
        m = np.broadcast_to((d.reshape(n, n) <= T / 2)[:, None, :], (n, n, n)).copy()
        out.append((f"sine{A}_{L}_{T}", "curved_sheet", m, m, float(T)))
    return out


def bench_thickness():
    import localthickness as LT
    from scipy import ndimage as ndi

    from cryomat.tomography.thickness import local_thickness

    # accuracy: per-voxel error of the diameter; localthickness returns radii of voxel-centre balls
    # (1, 2, 2, 3, 3, ... for 2, 3, 4, 5, 6 voxels), read as diameters 2 r
    errs = {"cryomat": {}, "localthickness_2r": {}}
    per = {}
    for name, kind, m, ev, T in _thickness_phantoms(np.random.default_rng(1)):
        e_ours = local_thickness(m)[ev] - T
        e_lt = 2 * LT.local_thickness(m)[ev] - T
        errs["cryomat"].setdefault(kind, []).append(e_ours)
        errs["localthickness_2r"].setdefault(kind, []).append(e_lt)
        per[name] = {"mae_vox": float(np.abs(e_ours).mean()), "bias_vox": float(e_ours.mean()),
                     "localthickness_2r_mae_vox": float(np.abs(e_lt).mean())}
    summary = {who: {kind: {"mae_vox": float(np.abs(np.concatenate(v)).mean()), "bias_vox": float(np.concatenate(v).mean()),
                            "n_phantoms": len(v)} for kind, v in d.items()} for who, d in errs.items()}
    n = int(os.environ.get("CRYOMAT_BENCH_LT_N", 256))
    rng = np.random.default_rng(0)
    m = ndi.gaussian_filter(rng.standard_normal((n, n, n)).astype(np.float32), 4) > 0.02
    local_thickness(m[:32, :32, :32])
    t0, c0 = time.perf_counter(), time.process_time()
    local_thickness(m)
    t_ours, c_ours = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    LT.local_thickness(m)
    t_lt, c_lt = time.perf_counter() - t0, time.process_time() - c0
    write_result("tomo_thickness", {
        "target": "MAE <= 0.25 voxel, |bias| <= 0.1 voxel on slabs 2-12 voxels, shells and curved sheets",
        "accuracy_by_type": summary, "accuracy_by_phantom": per,
        "speed_volume": f"{n}^3 smoothed-noise foam, solid fraction {m.mean():.2f}",
        "cryomat_s": t_ours, "cryomat_cpu_s": c_ours, "localthickness_s": t_lt, "localthickness_cpu_s": c_lt,
        "speedup_wall": t_lt / t_ours, "speedup_cpu": c_lt / c_ours, "load": os.getloadavg()})


def bench_align():
    from cryomat.simulate.tilt_series import simulate_tilt_series
    from cryomat.tomography.alignment import align_tilt_series, coarse_align, shift_error

    n = int(os.environ.get("CRYOMAT_BENCH_ALIGN_N", 512))
    out = {"size": f"61 x {n}^2, +/-60 deg, shifts sigma 3 px, tilt-axis error 1 deg"}
    sim0 = simulate_tilt_series(phantom="particles", size=n, depth=n // 2, counts_per_px=None, shift_sigma_px=3.0,
                                tilt_axis_error_deg=1.0, rng=7, oversample=1 if n > 256 else 2,
                                n_particles=24 * (n // 128) ** 2, n_support=7 * (n // 128) ** 2,
                                support_radius_frac=0.11 * 128 / n)  # the 128^3 phantom's feature sizes
    rng = np.random.default_rng(8)
    for c in (None, 50.0, 10.0):
        sim = dict(sim0)
        if c is not None:  # Poisson counts of the same misaligned series, as the simulator draws them
            k = c / float(sim0["ideal"].mean())
            sim["stack"] = rng.poisson(np.clip(sim0["stack"], 0, None) * k).astype(np.float32)
        ang = sim["angles_deg"]
        t0 = time.perf_counter()
        co = coarse_align(sim["stack"], ang)
        t_co = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        a = align_tilt_series(sim["stack"], ang, thickness=n // 2)
        t_al, c_al = time.perf_counter() - t0, time.process_time() - c0
        e = shift_error(a.shifts_px, sim["shifts_px"], ang)
        ec = shift_error(co, sim["shifts_px"], ang)
        key = "noise_free" if c is None else f"{c:g}_counts_per_px"
        out[key] = {"shift_rms_px": float(np.sqrt(np.mean(e ** 2))), "shift_mean_px": float(e.mean()),
                    "coarse_only_shift_rms_px": float(np.sqrt(np.mean(ec ** 2))),
                    "tilt_axis_error_deg": float(a.psi_deg - sim["tilt_axis_deg"]), "align_s": t_al,
                    "align_cpu_s": c_al,
                    "coarse_s": t_co}
    out["load"] = os.getloadavg()
    write_result("tomo_align", out)


def bench_graph():
    from cryomat.tomography import phantoms
    from cryomat.tomography.skeleton import skeleton_graph

    n = int(os.environ.get("CRYOMAT_BENCH_GRAPH_N", 256))
    lay = phantoms.network_layout((n, n, n), rng=np.random.default_rng(3), n_nodes=40, wall_vox=4.0)
    m = phantoms.network_mask(lay)
    t0, c0 = time.perf_counter(), time.process_time()
    s = skeleton_graph(m).summary("px")
    dt, ct = time.perf_counter() - t0, time.process_time() - c0
    write_result("tomo_graph", {"size": f"{n}^3", "graph_s": dt, "graph_cpu_s": ct, "truth": {k: lay[k] for k in (
        "n_nodes", "n_edges", "n_loops", "junction_ratio")}, "measured": {k: s[k] for k in (
            "n_nodes", "n_edges", "n_loops", "junction_to_wall_thickness_ratio")}, "load": os.getloadavg()})


def bench_segment():
    """Dice of the support and the particles of the catalyst phantom (128^3, 61 views +/-60 deg, 50 counts/px)
    segmented into coating/support/particles, from WBP and from nonnegative SIRT, edge vs Otsu thresholds."""
    from cryomat.simulate.tilt_series import simulate_tilt_series
    from cryomat.tomography import phantoms, reconstruct_wbp
    from cryomat.tomography.measure3d import dice, segment_phases
    from cryomat.tomography.reconstruct import reconstruct_sirt

    n = int(os.environ.get("CRYOMAT_BENCH_SEG_N", 128))
    L = phantoms.LABELS
    rows = []
    for seed in (3, 4, 6):
        sim = simulate_tilt_series(phantom="particles", size=n, counts_per_px=50, rng=seed)
        st = sim["stack"] / (50 / sim["ideal"].mean())
        lab = sim["labels"]
        t0, c0 = time.perf_counter(), time.process_time()
        vols = {"wbp": reconstruct_wbp(st, sim["angles_deg"])}
        t_wbp = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        vols["sirt_nonneg_60it_relax1.9"] = reconstruct_sirt(st, sim["angles_deg"], iterations=60, relaxation=1.9,
                                                             nonnegative=True)
        t_sirt, c_sirt = time.perf_counter() - t0, time.process_time() - c0
        for rec, vol in vols.items():
            for method in ("edge", "otsu"):
                ph = segment_phases(vol, n_phases=3, smooth_sigma=0.5, method=method)
                rows.append({"seed": seed, "reconstruction": rec, "thresholds": method,
                             "dice_support": dice(ph == 2, lab == L["support"]),
                             "dice_particles": dice(ph == 3, lab == L["particle"]),
                             "dice_coating": dice(ph == 1, lab == L["coating"]),
                             "dice_specimen_vs_background": dice(ph >= 1, lab > 0),
                             "reconstruction_s": t_wbp if rec == "wbp" else t_sirt,
                             "reconstruction_cpu_s": None if rec == "wbp" else c_sirt})
    summary = {}
    for r in rows:
        k = f"{r['reconstruction']}+{r['thresholds']}"
        summary.setdefault(k, {"dice_support": [], "dice_particles": []})
        summary[k]["dice_support"].append(r["dice_support"])
        summary[k]["dice_particles"].append(r["dice_particles"])
    summary = {k: {m: {"mean": float(np.mean(v)), "min": float(np.min(v))} for m, v in d.items()} for k, d in summary.items()}
    write_result("tomo_segment", {"size": f"{n}^3 catalyst phantom, 61 views +/-60 deg, 50 counts/px, seeds 3, 4, 6",
                                  "target": "Dice >= 0.90 support, >= 0.80 particles (2-3.5 voxel radius)",
                                  "summary": summary, "runs": rows, "load": os.getloadavg()})


def bench_graph_noisy():
    """Skeleton graph of the crumple-network phantom (128^3, wall 3 voxels, junctions 1.6x) reconstructed
    from noisy tilt series and segmented, as ``cryomat morph3d --segment --graph-phase 1`` does."""
    from scipy import ndimage as ndi

    from cryomat.simulate.tilt_series import simulate_tilt_series
    from cryomat.tomography import reconstruct_wbp
    from cryomat.tomography.measure3d import segment_phases
    from cryomat.tomography.reconstruct import reconstruct_sirt
    from cryomat.tomography.skeleton import skeleton_graph

    rows = []
    for seed in (1, 2, 3):
        for counts in (None, 50.0, 10.0):
            sim = simulate_tilt_series(phantom="network", size=128, counts_per_px=counts, rng=seed)
            lay = sim["layout"]
            st = sim["stack"] / (counts / sim["ideal"].mean()) if counts else sim["stack"]
            for rec in ("wbp", "sirt_nonneg"):
                vol = (reconstruct_wbp(st, sim["angles_deg"]) if rec == "wbp" else
                       reconstruct_sirt(st, sim["angles_deg"], iterations=60, relaxation=1.9, nonnegative=True))
                gm = segment_phases(vol, n_phases=1, smooth_sigma=0.5) == 1
                lab, nlab = ndi.label(gm)
                if nlab > 1:  # specks below 1 % of the largest piece dropped, holes filled (as morph3d)
                    sizes = np.bincount(lab.ravel())[1:]
                    gm = np.isin(lab, 1 + np.nonzero(sizes >= max(0.01 * sizes.max(), 4))[0])
                gm = ndi.binary_fill_holes(gm)
                s = skeleton_graph(gm, prune_ratio=2.0).summary("px")
                rows.append({"seed": seed, "counts_per_px": counts, "reconstruction": rec,
                             "true_nodes": lay["n_nodes"], "true_edges": lay["n_edges"],
                             "nodes": s["n_nodes"], "edges": s["n_edges"],
                             "junction_ratio_true": lay["junction_ratio"],
                             "junction_ratio": s["junction_to_wall_thickness_ratio"]})
    ok = [abs(r["nodes"] - r["true_nodes"]) <= 0.05 * r["true_nodes"] and abs(r["edges"] - r["true_edges"])
          <= 0.05 * r["true_edges"] for r in rows]
    write_result("tomo_graph_noisy", {"size": "128^3 network, 61 views +/-60 deg", "runs": rows,
                                      "fraction_within_5pct": float(np.mean(ok)), "load": os.getloadavg()})


PARTS = {"wbp": bench_wbp, "wbp1k": bench_wbp1k, "thickness": bench_thickness, "align": bench_align, "graph": bench_graph,
         "segment": bench_segment, "graph_noisy": bench_graph_noisy}

if __name__ == "__main__":
    names = [a for a in sys.argv[1:] if a in PARTS] or list(PARTS)
    for name in names:
        PARTS[name]()
