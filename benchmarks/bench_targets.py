"""Targeting benchmark: accuracy of the top-k fields on simulated atlases, and 8k x 8k scoring time.

Issue targets: >= 90% of the top-k targets hold >= m objects of the wanted class; spacing >= one
field of view; an 8k x 8k atlas scored in <= 30 s on 2 cores. Pixel->stage agreement with
pyserialem is exact to floating point (tests/test_targeting.py). Writes results/targets.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402


def accuracy(seeds=range(6), k=10, m=3):
    from cryomat.simulate.atlas import make_atlas
    from cryomat.targeting import analyse_atlas, rank_targets

    rows = []
    for seed in seeds:
        img, truth, _ = make_atlas(rng=np.random.default_rng(seed), size=1024)
        a = analyse_atlas(img, pixel_size=100.0, fov_px=100)
        tp = np.array([[p["row_px"], p["col_px"]] for p in truth["particles"]])
        cls = np.array([p["class"] for p in truth["particles"]])
        for want, true_cls in (("particles", None), ("rod", "rod"), ("sphere", "sphere")):
            tab = rank_targets(a, want=want, fov_px=100, count=k, min_spacing_px=100, min_objects=m)
            for _, r in tab.iterrows():
                inside = (np.abs(tp[:, 0] - r.row_px) <= 50) & (np.abs(tp[:, 1] - r.col_px) <= 50)
                if true_cls:
                    inside &= cls == true_cls
                rows.append({"seed": seed, "want": want, "ok": bool(inside.sum() >= m)})
    import pandas as pd

    df = pd.DataFrame(rows)
    return df.groupby("want")["ok"].mean().to_dict(), int(len(df))


def timing(size=8192):
    from cryomat.simulate.atlas import make_atlas
    from cryomat.targeting import analyse_atlas, rank_targets

    img, _, _ = make_atlas(rng=np.random.default_rng(0), size=size, n_regions=40, n_contamination=30)
    t0 = time.perf_counter()
    a = analyse_atlas(img, pixel_size=100.0, fov_px=100)
    rank_targets(a, want="particles", fov_px=100, count=50, min_spacing_px=100, min_objects=3)
    return time.perf_counter() - t0, int(len(a.objects))


def main():
    frac, n = accuracy()
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 8192
    secs, nobj = timing(size)
    write_result("targets", {"fraction_top10_with_3_wanted": frac, "n_targets_checked": n,
                             "target_fraction": 0.9, "atlas_size_px": size, "score_seconds": secs,
                             "objects_found": nobj, "target_seconds_8k": 30.0})


if __name__ == "__main__":
    main()
