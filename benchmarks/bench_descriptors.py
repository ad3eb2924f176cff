"""Benchmark of ``cryomat.measure.particle_table`` shape descriptors on analytic shapes, against
scikit-image's ``regionprops`` on the same masks.

Families (every mask is a binary raster: a pixel is in when its centre is in the shape):

- ``disc_skimage_int``: ``skimage.draw.disk((c, c), r)`` with integer centre (strict ``< r^2``),
  r = 5 ... 100 px; ``disc_skimage_frac``: the same at 3 random non-integer centres per radius;
  ``disc_le_int``: ``(x - c)^2 + (y - c)^2 <= r^2`` with integer centre; ``disc_random``: random
  radius 5-100 px at a random sub-pixel centre (``<=``).
- ``ellipse_skimage``: ``skimage.draw.ellipse`` (integer centre, semi-axes 6-80 px, 4 rotations);
  ``ellipse_random``: semi-axes a 10-80 px, b/a 0.25-0.9 (b >= 5 px), random rotation and centre;
  ``ellipse_small_round``: a 5-10 px (b >= 5), b/a 0.75-0.95 (the hardest: the mask barely fixes the
  eccentricity).
- ``square_slice``: ``m[k:k+s, k:k+s] = 1``, s = 5 ... 100; ``square_rotated``: side 10-100 px,
  2-88 deg from the axes, random centre; ``square_near_axis``: within 2 deg of the axes with a
  non-integer side (a binary mask cannot fix that side to better than ~1 px: reported, not a target).

Per family and size class: worst and median |error| of the max and min Feret diameter (px), the
relative error of the aspect ratio and of the circularity against the analytic shape (disc 1,
square pi/4, ellipse 4 pi A / P^2 with Ramanujan's perimeter). skimage: ``feret_diameter_max``,
``axis_major_length / axis_minor_length``, ``4 pi area / perimeter^2`` (it has no min Feret).
Timing: CPU and wall seconds of ``particle_table`` and of ``regionprops`` (those three properties
evaluated) on one 960 x 960 label image of 400 objects (discs, ellipses, squares, radius 4-20 px).
Size classes are by the shape's smaller width (``width_0_10px`` ... ``width_50_uppx``).
Writes ``benchmarks/results/descriptors.json``; ~20 s (``--quick``: ~5 s, writes
``descriptors_quick.json``). Usage::

    python benchmarks/bench_descriptors.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

from cryomat.measure import particle_table  # noqa: E402


def _frame(half: float) -> int:
    return int(2 * half + 14)


def _raster(kind: str, a: float, b: float, theta: float, off, strict: bool = False, n: int | None = None) -> np.ndarray:
    """Mask (n x n) of a disc/ellipse (semi-axes a, b) or a square/rectangle (sides a, b) rotated
    by theta (counter-clockwise as displayed) centred ``off`` from the frame centre."""
    n = n or _frame(max(a, b) * (0.75 if kind == "square" else 1.0))
    rr, cc = np.mgrid[:n, :n]
    y, x = rr - n // 2 - off[0], cc - n // 2 - off[1]
    u = x * np.cos(theta) - y * np.sin(theta)
    v = x * np.sin(theta) + y * np.cos(theta)
    if kind == "square":
        return (np.abs(u) <= a / 2) & (np.abs(v) <= b / 2)
    q = (u / a) ** 2 + (v / b) ** 2
    return q < 1 if strict else q <= 1


def _ellipse_perimeter(a: float, b: float) -> float:
    h = ((a - b) / (a + b)) ** 2
    return np.pi * (a + b) * (1 + 3 * h / (10 + np.sqrt(4 - 3 * h)))


def _cases(rng, quick: bool):
    from skimage.draw import disk, ellipse

    radii = [5, 6, 7, 8, 10, 12, 15, 20, 30, 50, 75, 100]
    if quick:
        radii = [5, 7, 10, 20, 50]
    for r in radii:
        n = _frame(r)
        m = np.zeros((n, n), bool)
        m[disk((n // 2, n // 2), r)] = True
        yield "disc_skimage_int", r, m, (2 * r, 2 * r, 1.0, 1.0)
        for _ in range(1 if quick else 3):
            m = np.zeros((n, n), bool)
            m[disk((n // 2 + rng.uniform(-0.5, 0.5), n // 2 + rng.uniform(-0.5, 0.5)), r)] = True
            yield "disc_skimage_frac", r, m, (2 * r, 2 * r, 1.0, 1.0)
        yield "disc_le_int", r, _raster("disc", r, r, 0.0, (0, 0)), (2 * r, 2 * r, 1.0, 1.0)
    for _ in range(20 if quick else 80):
        r = float(np.exp(rng.uniform(np.log(5), np.log(100))))
        yield "disc_random", r, _raster("disc", r, r, 0.0, rng.uniform(-0.5, 0.5, 2)), (2 * r, 2 * r, 1.0, 1.0)
    axes = [(6, 5), (10, 6), (12, 8), (20, 10), (30, 6), (40, 20), (80, 30)]
    for ra, rb in axes[:4] if quick else axes:
        for rot in (0.0, 0.3, np.pi / 4, np.pi / 2):
            n = _frame(ra)
            m = np.zeros((n, n), bool)
            rr, cc = ellipse(n // 2, n // 2, ra, rb, shape=m.shape, rotation=rot)
            m[rr, cc] = True
            circ = 4 * np.pi * np.pi * ra * rb / _ellipse_perimeter(ra, rb) ** 2
            yield "ellipse_skimage", rb, m, (2 * ra, 2 * rb, ra / rb, circ)
    for fam, lo, hi, qlo, qhi, count in (("ellipse_random", 10, 80, 0.25, 0.9, 80),
                                          ("ellipse_small_round", 5, 10, 0.75, 0.95, 40)):
        for _ in range(count // 4 if quick else count):
            q = rng.uniform(qlo, qhi)
            a = rng.uniform(max(lo, 5.0 / q), max(hi, 5.0 / q + 1.0))  # b >= 5 px
            m = _raster("ellipse", a, a * q, rng.uniform(0, np.pi), rng.uniform(-0.5, 0.5, 2))
            circ = 4 * np.pi * np.pi * a * a * q / _ellipse_perimeter(a, a * q) ** 2
            yield fam, a * q, m, (2 * a, 2 * a * q, 1 / q, circ)
    for s in ([5, 10, 20, 50] if quick else [5, 8, 10, 15, 20, 30, 50, 75, 100]):
        m = np.zeros((s + 20, s + 20), bool)
        m[10:10 + s, 10:10 + s] = True
        yield "square_slice", s / 2, m, (s * np.sqrt(2), s, 1.0, np.pi / 4)
    for fam, lo_deg, hi_deg, count in (("square_rotated", 2, 88, 60), ("square_near_axis", 0, 2, 30)):
        for _ in range(count // 4 if quick else count):
            s = rng.uniform(10, 100)
            th = np.deg2rad(rng.uniform(lo_deg, hi_deg)) * rng.choice([-1, 1])
            m = _raster("square", s, s, th, rng.uniform(-0.5, 0.5, 2))
            yield fam, s / 2, m, (s * np.sqrt(2), s, 1.0, np.pi / 4)


METRICS = ("feret_max_px", "feret_min_px", "aspect_rel", "circularity_rel")


def _size_class(half_width: float) -> str:
    for lo, hi in ((0, 10), (10, 20), (20, 50), (50, 1e9)):
        if lo <= 2 * half_width < hi:
            return f"width_{lo}_{hi if hi < 1e9 else 'up'}px"
    return "other"


def _skimage_row(m: np.ndarray) -> tuple:
    from skimage.measure import regionprops

    p = regionprops(m.astype(np.int32))[0]
    circ = 4 * np.pi * p.area / p.perimeter**2 if p.perimeter > 0 else np.nan
    asp = p.axis_major_length / p.axis_minor_length if p.axis_minor_length > 0 else np.nan
    return p.feret_diameter_max, np.nan, asp, circ


def _stats(v) -> dict:
    v = np.abs(np.asarray(v, dtype=np.float64))
    v = v[np.isfinite(v)]
    if not v.size:
        return {"worst": None, "median": None}
    return {"worst": round(float(v.max()), 4), "median": round(float(np.median(v)), 4)}


def _timing_image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cell, n = 48, 20  # objects up to 40 px wide in 48 px cells
    lab = np.zeros((cell * n, cell * n), np.int32)
    k = 0
    for i in range(n):
        for j in range(n):
            k += 1
            r, th, off = rng.uniform(4, 20), rng.uniform(0, np.pi), rng.uniform(-0.5, 0.5, 2)
            kind = ("disc", "ellipse", "square")[k % 3]
            ab = {"disc": (r, r), "ellipse": (r, 0.6 * r), "square": (1.6 * r, 1.6 * r)}[kind]
            m = _raster(kind, *ab, th, off, n=cell)
            lab[i * cell:(i + 1) * cell, j * cell:(j + 1) * cell][m] = k
    return lab


def _timing(repeat: int = 2) -> dict:
    from skimage.measure import regionprops

    lab = _timing_image()
    out = {"image": f"{lab.shape[0]}x{lab.shape[1]}", "objects": int(lab.max())}
    best = {}
    for name, fn in (("cryomat_particle_table", lambda: particle_table(lab, pixel_size=1.0)),
                     ("skimage_regionprops", lambda: [(p.feret_diameter_max, p.axis_major_length,
                                                       p.axis_minor_length, p.perimeter) for p in regionprops(lab)])):
        cpu = wall = np.inf
        for _ in range(repeat):
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            cpu, wall = min(cpu, time.process_time() - c0), min(wall, time.perf_counter() - w0)
        best[name] = {"cpu_s": round(cpu, 3), "wall_s": round(wall, 3)}
    out.update(best)
    ratio = best["cryomat_particle_table"]["cpu_s"] / best["skimage_regionprops"]["cpu_s"]
    out["cpu_ratio_ours_over_skimage"] = round(ratio, 2)
    out["load_average"] = os.getloadavg()[0]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer shapes per family")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    rows: dict = {}
    for fam, half, m, (fmax, fmin, asp, circ) in _cases(rng, args.quick):
        lab = m.astype(np.int32)
        t = particle_table(lab, pixel_size=10.0)  # 1 nm per pixel: lengths in nm = px
        ours = (t.loc[0, "feret_max_nm"], t.loc[0, "feret_min_nm"], t.loc[0, "aspect_ratio"], t.loc[0, "circularity"])
        sk = _skimage_row(m)
        for key in (fam, f"{fam}/{_size_class(half)}"):
            d = rows.setdefault(key, {"n": 0, **{who: {k: [] for k in METRICS} for who in ("ours", "skimage")}})
            d["n"] += 1
            for who, vals in (("ours", ours), ("skimage", sk)):
                d[who]["feret_max_px"].append(vals[0] - fmax)
                d[who]["feret_min_px"].append(vals[1] - fmin)
                d[who]["aspect_rel"].append(vals[2] / asp - 1)
                d[who]["circularity_rel"].append(vals[3] / circ - 1)
    families = {}
    for key, d in sorted(rows.items()):
        families[key] = {"n": d["n"], **{who: {k: _stats(v) for k, v in d[who].items()} for who in ("ours", "skimage")}}
        fam_ours = families[key]["ours"]
        print(f"{key:45s} n={d['n']:3d}  ours Feret max/min worst {fam_ours['feret_max_px']['worst']}/"
              f"{fam_ours['feret_min_px']['worst']} px, aspect {fam_ours['aspect_rel']['worst']}, "
              f"circ {fam_ours['circularity_rel']['worst']}", flush=True)
    timing = _timing(1 if args.quick else 2)
    print(timing)
    targets = "circularity of discs 1 +/- 0.03, Feret within 0.5 px, aspect ratio within 2 %"
    write_result("descriptors_quick" if args.quick else "descriptors",
                 {"targets": targets, "quick": args.quick, "seed": args.seed, "families": families, "timing": timing})
    return 0


if __name__ == "__main__":
    sys.exit(main())
