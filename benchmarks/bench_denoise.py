"""Denoising benchmark: fast tier, learned tier, Anscombe+BM3D and oracle Gaussian on simulated
crystalline nanoparticles on amorphous support (fixed seeds), plus throughput and the unsupervised
MSE estimate. Writes ``benchmarks/results/denoise.json``.

    python benchmarks/bench_denoise.py [--big 4096]          # fast tier table, throughput, MSE estimate
    python benchmarks/bench_denoise.py --peers [--peer-size 256]   # + Anscombe+BM3D, N2V, N2N columns
    python benchmarks/bench_denoise.py --throughput               # 4k fast tier + learned inference speed
    python benchmarks/bench_denoise.py --learned [--seeds 0 1] [--halves] [--n2v]  # learned vs BM3D, 512^2
    python benchmarks/bench_denoise.py --gain        # estimated vs true detector gain (denoise_gain.json)
    python benchmarks/bench_denoise.py --big2048     # fast tier vs oracle Gaussian at 2048^2 (denoise_2048.json)

careamics is listed as a peer; the installed ``careamics`` 0.0.1 is an empty placeholder package
(no N2V), so its column is reported as unavailable rather than approximated.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import timed, write_result  # noqa: E402


def _scene(contrast, size, seed):
    from cryomat.simulate.nanoparticles import nanoparticle_scene

    return nanoparticle_scene((size, size), pixel_size=0.5, rng=np.random.default_rng(seed), contrast=contrast)[0]


def _row(name, clean, est, t):
    from cryomat.restoration import psnr, ssim

    return {"method": name, "psnr_dB": psnr(clean, est), "ssim": ssim(clean, est), "time_s": t}


def quality(args) -> list[dict]:
    from cryomat.restoration import best_gaussian, denoise_fast
    from cryomat.restoration import learned as L
    from cryomat.simulate.nanoparticles import record

    rows = []
    cases = [("counting", {}), ("integrating_rowcol", dict(detector="integrating", gain=8.0, offset=100.0,
                                                           read_noise=5.0, row_noise=6.0, col_noise=6.0)),
             ("counting_mtf", dict(mtf_a=0.7))]
    doses = (2, 8, 32, 128)
    for contrast in ("haadf", "phase"):
        inten = _scene(contrast, args.size, 100 if contrast == "haadf" else 101)
        for det, kw in cases:
            for dose in doses:
                if det != "counting" and dose not in (32, 128):
                    continue
                rng = np.random.default_rng(int(dose) * 7 + len(det))
                noisy, clean, frames = record(inten, dose_e_per_px=dose, rng=rng, n_frames=2, **kw)
                case = {"contrast": contrast, "detector": det, "dose_e_per_px": dose, "size_px": args.size}
                res = [_row("flat_mean", clean, np.full_like(clean, noisy.mean()), 0.0)]
                (g, s, gi), tg = timed(best_gaussian, noisy, clean)
                res.append({**_row("gaussian_best_oracle", clean, gi, tg), "sigma_px": s})
                r, t = timed(denoise_fast, noisy)
                res.append({**_row("fast", clean, r.denoised, t), "filter": r.choice.family, "local": r.local_pass})
                r2, t = timed(denoise_fast, noisy, domain="vst")
                res.append(_row("fast_vst", clean, r2.denoised, t))
                if det == "counting" and dose in (8, 32) and args.peers and args.size <= args.peer_size:
                    if not args.no_bm3d:
                        try:
                            from cryomat.restoration.peers import anscombe_bm3d

                            b, t = timed(anscombe_bm3d, noisy)
                            res.append(_row("anscombe_bm3d", clean, b, t))
                        except ImportError as exc:
                            res.append({"method": "anscombe_bm3d", "unavailable": str(exc)})
                    m, t = timed(L.train_n2v, noisy, epochs=args.epochs)
                    d, ti = timed(L.predict, m, noisy)
                    res.append({**_row("n2v", clean, d, t + ti), "train_s": t, "inference_s": ti})
                    m, t = timed(L.train_n2n, frames[0], frames[1], epochs=args.epochs)
                    d, ti = timed(L.predict, m, frames[0], odd=frames[1])
                    res.append({**_row("n2n_even_odd", clean, d, t + ti), "train_s": t, "inference_s": ti})
                    res.append({"method": "careamics_n2v", "unavailable": "careamics 0.0.1 installed is an empty "
                                                                           "placeholder (no N2V)"})
                base = {x["method"]: x.get("psnr_dB") for x in res}
                case["fast_minus_gaussian_dB"] = base["fast"] - base["gaussian_best_oracle"]
                case["fast_minus_flat_dB"] = base["fast"] - base["flat_mean"]
                if "anscombe_bm3d" in base and base["anscombe_bm3d"] is not None:
                    for k in ("n2v", "n2n_even_odd", "fast"):
                        if base.get(k) is not None:
                            case[f"{k}_minus_bm3d_dB"] = base[k] - base["anscombe_bm3d"]
                case["methods"] = res
                rows.append(case)
                print(f"{contrast} {det} {dose:>4} e/px: " + ", ".join(
                    f"{x['method']} {x['psnr_dB']:.2f}" for x in res if x.get("psnr_dB") is not None), flush=True)
    return rows


def gain_accuracy(args) -> list[dict]:
    """Noise-model gain against the simulator's truth: integrating (gain 8, offset 100, read noise 5)
    and counting detectors, HAADF and phase, with and without MTF (mtf_a 0.7), 8/32/128 e/px."""
    from cryomat.restoration import estimate_noise_model
    from cryomat.simulate.nanoparticles import record

    rows = []
    for size in (512, 1024):
        for contrast in ("haadf", "phase"):
            inten = _scene(contrast, size, 100 if contrast == "haadf" else 101)
            for det in ("integrating", "counting"):
                for mtf in (0.0, 0.7):
                    for dose in (8, 32, 128):
                        kw = dict(gain=8.0, offset=100.0, read_noise=5.0) if det == "integrating" else {}
                        noisy, _, _ = record(inten, dose_e_per_px=dose, rng=np.random.default_rng(dose),
                                             detector=det, mtf_a=mtf, **kw)
                        m, _ = estimate_noise_model(noisy)
                        true = 8.0 if det == "integrating" else 1.0
                        rows.append({"size_px": size, "contrast": contrast, "detector": det, "mtf_a": mtf,
                                     "dose_e_per_px": dose, "true_gain_units_per_e": true,
                                     "est_kind": m.kind, "est_conversion_gain_units_per_e": m.conversion_gain,
                                     "est_pixel_gain_units_per_e": m.gain,
                                     "gain_rel_uncertainty": m.gain_rel_uncertainty,
                                     "rel_error": m.conversion_gain / true - 1})
                        print(f"{size} {contrast} {det} mtf {mtf} {dose} e/px: kind {m.kind} conversion gain "
                              f"{m.conversion_gain:.2f} (true {true}), rel unc {m.gain_rel_uncertainty:.2f}",
                              flush=True)
    return rows


def big2048(args) -> list[dict]:
    """Fast tier against the oracle-tuned Gaussian on 2048^2 HAADF scenes (counting, one seed), 32/128 e/px."""
    from cryomat.restoration import best_gaussian, denoise_fast
    from cryomat.simulate.nanoparticles import record

    rows = []
    inten = _scene("haadf", 2048, 100)
    for dose in (32, 128):
        noisy, clean, _ = record(inten, dose_e_per_px=dose, rng=np.random.default_rng(int(dose) * 7 + 8))
        c0 = time.process_time()
        r, t = timed(denoise_fast, noisy)
        cpu = time.process_time() - c0
        # the default sigma grid starts at 0.5 px, where the 2048^2 HAADF optimum sits: extend it downwards
        (g, s, gi), tg = timed(best_gaussian, noisy, clean, sigmas=(0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7,
                                                                    1.0, 1.3, 1.6, 2.0, 3.0))
        res = [_row("flat_mean", clean, np.full_like(clean, noisy.mean()), 0.0),
               {**_row("gaussian_best_oracle", clean, gi, tg), "sigma_px": s},
               {**_row("fast", clean, r.denoised, t), "cpu_s": cpu, "filter": r.choice.family}]
        base = {x["method"]: x["psnr_dB"] for x in res}
        rows.append({"contrast": "haadf", "detector": "counting", "dose_e_per_px": dose, "size_px": 2048,
                     "seed": 100, "fast_minus_gaussian_dB": base["fast"] - base["gaussian_best_oracle"],
                     "methods": res})
        print(f"2048 haadf counting {dose} e/px: " + ", ".join(f"{x['method']} {x['psnr_dB']:.2f}" for x in res),
              flush=True)
    return rows


def learned_vs_bm3d(args) -> list[dict]:
    """Learned tier (Noise2Noise fusion on binomially thinned counts of the single image; optionally on
    even/odd halves and the N2V blind spot) against generalised Anscombe + BM3D (sigma 1 after the
    transform, exact unbiased inverse) and the fast tier, counted data at 512^2, PSNR/SSIM/time."""
    from cryomat.restoration import denoise_fast
    from cryomat.restoration import learned as L
    from cryomat.restoration.peers import anscombe_bm3d
    from cryomat.simulate.nanoparticles import record

    rows = []
    for seed in args.seeds:
        for contrast in ("haadf", "phase"):
            inten = _scene(contrast, args.size, (100 if contrast == "haadf" else 101) + 10 * seed)
            for dose in args.doses:
                rng = np.random.default_rng(int(dose) * 7 + 8 + 1000 * seed)
                noisy, clean, frames = record(inten, dose_e_per_px=dose, rng=rng, n_frames=2)
                res = []
                r, t = timed(denoise_fast, noisy)
                res.append(_row("fast", clean, r.denoised, t))
                c0 = time.process_time()
                b, t = timed(anscombe_bm3d, noisy)
                res.append({**_row("anscombe_bm3d", clean, b, t), "cpu_s": time.process_time() - c0})
                c0 = time.process_time()
                m, t = timed(L.train_n2n, noisy, seed=seed, epochs=args.epochs)
                ct = time.process_time() - c0
                d, ti = timed(L.predict, m, noisy)
                res.append({**_row("n2n_thinning", clean, d, t + ti), "train_s": t, "train_cpu_s": ct,
                            "inference_s": ti, "residual_scale": m.config["residual_scale"]})
                if args.halves:
                    m, t = timed(L.train_n2n, frames[0], frames[1], seed=seed, epochs=args.epochs, pairs="halves")
                    d, ti = timed(L.predict, m, frames[0], odd=frames[1])
                    res.append({**_row("n2n_even_odd", clean, d, t + ti), "train_s": t, "inference_s": ti,
                                "residual_scale": m.config["residual_scale"]})
                if args.n2v:
                    m, t = timed(L.train_n2v, noisy, epochs=5)
                    d, ti = timed(L.predict, m, noisy)
                    res.append({**_row("n2v_blind_spot", clean, d, t + ti), "train_s": t, "inference_s": ti})
                res.append({"method": "careamics_n2v", "unavailable": "careamics 0.0.1 installed is an empty "
                                                                       "placeholder (no N2V)"})
                base = {x["method"]: x.get("psnr_dB") for x in res}
                case = {"contrast": contrast, "dose_e_per_px": dose, "seed": seed, "size_px": args.size,
                        "detector": "counting", "methods": res}
                for k in ("n2n_thinning", "n2n_even_odd", "n2v_blind_spot", "fast"):
                    if base.get(k) is not None:
                        case[f"{k}_minus_bm3d_dB"] = base[k] - base["anscombe_bm3d"]
                rows.append(case)
                print(f"seed {seed} {contrast} {dose:>3} e/px: " + ", ".join(
                    f"{x['method']} {x['psnr_dB']:.2f}/{x['ssim']:.3f}/{x['time_s']:.0f}s" for x in res
                    if x.get("psnr_dB") is not None), flush=True)
    return rows


def unsupervised_mse(args) -> dict:
    from scipy import ndimage

    from cryomat.restoration import binomial_split, denoise_fast, estimate_noise_model, thinning_mse
    from cryomat.simulate.nanoparticles import record

    inten = _scene("haadf", args.size, 102)
    rng = np.random.default_rng(5)
    noisy, clean, _ = record(inten, dose_e_per_px=32, rng=rng)
    nm, _ = estimate_noise_model(noisy)
    a, b = binomial_split(noisy, rng=rng)
    methods = {"raw": lambda x: x, "median3": lambda x: ndimage.median_filter(x, 3),
               "gauss1": lambda x: ndimage.gaussian_filter(x, 1.0), "gauss2": lambda x: ndimage.gaussian_filter(x, 2.0),
               "gauss4": lambda x: ndimage.gaussian_filter(x, 4.0), "fast": lambda x: denoise_fast(x).denoised,
               "fast_vst": lambda x: denoise_fast(x, domain="vst").denoised}
    out = {}
    for k, f in methods.items():
        e = thinning_mse(noisy, f, rng=rng, noise_model=nm, halves=(a, b))["mse_half_dose_est"]
        t = float(np.mean((np.asarray(f(a), float) - clean / 2) ** 2))
        out[k] = {"mse_est": e, "mse_true": t, "rel_error": e / t - 1}
    order_est = sorted(out, key=lambda k: out[k]["mse_est"])
    order_true = sorted(out, key=lambda k: out[k]["mse_true"])
    return {"dose_e_per_px": 32, "size_px": args.size, "methods": out, "ranking_correct": order_est == order_true,
            "max_abs_rel_error": max(abs(v["rel_error"]) for v in out.values())}


def throughput(args) -> dict:
    from cryomat.restoration import denoise_fast
    from cryomat.restoration import learned as L

    n = args.big
    rng = np.random.default_rng(0)
    img = rng.poisson(20.0, (n, n)).astype(np.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    c0 = time.process_time()
    _, t_glob = timed(denoise_fast, img, local=False)
    c_glob = time.process_time() - c0
    c0 = time.process_time()
    _, t_full = timed(denoise_fast, img, local=True)
    c_full = time.process_time() - c0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    small = img[:512, :512]
    model = L.train_n2n(small, epochs=1, steps_per_epoch=2)  # speed only: weights do not change the cost
    L.predict(model, small)
    c0 = time.process_time()
    _, t_l = timed(L.predict, model, small)
    c_l = time.process_time() - c0
    _, t_lt = timed(L.predict, model, small, tile=256)
    n2v = L.shipped_model("n2v") or L.new_model("n2v")
    _, t_v = timed(L.predict, n2v, small)
    return {"size_px": n, "fast_global_cpu_s": c_glob, "fast_with_local_cpu_s": c_full,
            "fast_global_Mpx_per_cpu_s": n * n / 1e6 / c_glob, "fast_global_s": t_glob, "fast_global_Mpx_per_s": n * n / 1e6 / t_glob,
            "fast_with_local_check_s": t_full, "fast_with_local_Mpx_per_s": n * n / 1e6 / t_full,
            "peak_rss_GB": peak_gb, "rss_before_GB": before / 1e6,
            "learned_n2n_inference_512_s": t_l, "learned_n2n_inference_512_cpu_s": c_l,
            "learned_Mpx_per_s": 512 * 512 / 1e6 / t_l, "learned_Mpx_per_cpu_s": 512 * 512 / 1e6 / c_l,
            "learned_tiled256_Mpx_per_s": 512 * 512 / 1e6 / t_lt, "n2v_Mpx_per_s": 512 * 512 / 1e6 / t_v}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip the throughput and MSE parts")
    ap.add_argument("--peers", action="store_true", help="add BM3D and learned columns (at --peer-size)")
    ap.add_argument("--peer-size", type=int, default=256)
    ap.add_argument("--no-bm3d", action="store_true")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--big", type=int, default=4096)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--learned", action="store_true", help="only the learned tier vs Anscombe+BM3D table "
                    "(512^2, HAADF and phase, --doses, --seeds); writes denoise_learned[_TAG].json")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--doses", type=float, nargs="+", default=[8, 16, 32])
    ap.add_argument("--halves", action="store_true", help="also N2N on even/odd halves (learned table)")
    ap.add_argument("--n2v", action="store_true", help="also the N2V blind spot (learned table)")
    ap.add_argument("--throughput", action="store_true", help="only the throughput part (4k fast tier, "
                    "learned inference at 512^2); writes denoise_throughput.json")
    ap.add_argument("--gain", action="store_true", help="only the noise-model gain accuracy table; writes "
                    "denoise_gain.json")
    ap.add_argument("--big2048", action="store_true", help="only the 2048^2 fast vs oracle Gaussian rows "
                    "(HAADF, counting, 32/128 e/px, one seed); writes denoise_2048.json")
    ap.add_argument("--tag", default="", help="suffix of the result file (to run seeds in parallel)")
    args = ap.parse_args()
    import os

    load = os.getloadavg()[0]
    t0 = time.time()
    payload = {"load_average_1min_at_start": load, "note": "2-core machine shared with other jobs; times are "
               "wall-clock under that load"}
    name = "denoise"
    if args.throughput:
        payload["throughput"] = throughput(args)
        payload["wall_s"] = time.time() - t0
        write_result("denoise_throughput", payload)
        return
    if args.gain:
        payload["gain_accuracy"] = gain_accuracy(args)
        payload["wall_s"] = time.time() - t0
        write_result("denoise_gain", payload)
        return
    if args.big2048:
        payload["quality_2048"] = big2048(args)
        payload["wall_s"] = time.time() - t0
        payload["peak_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        write_result("denoise_2048", payload)
        return
    if args.learned:
        payload["learned_vs_bm3d"] = learned_vs_bm3d(args)
        payload["wall_s"] = time.time() - t0
        write_result("denoise_learned" + (f"_{args.tag}" if args.tag else ""), payload)
        return
    if args.peers:
        args.size = args.peer_size
        name = "denoise_peers"
    if not args.quick and not args.peers:
        payload["throughput"] = throughput(args)
        print(payload["throughput"], flush=True)
        payload["unsupervised_mse"] = unsupervised_mse(args)
        print(payload["unsupervised_mse"], flush=True)
    payload["quality"] = quality(args)
    payload["wall_s"] = time.time() - t0
    write_result(name, payload)


if __name__ == "__main__":
    main()
