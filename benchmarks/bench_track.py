"""Tracking benchmark: linking accuracy and speed against trackpy 0.7 on the same detections.

Issue targets: link precision/recall >= 0.995 on 2000 particles x 100 frames with births,
deaths and missed detections; no exception and >= 0.95 in a dense case with 3 px/frame drift;
wall time within 1.5x of trackpy. Growth-rate errors on the ``growth`` simulator.
Writes results/track.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import write_result  # noqa: E402
from test_tracking import brownian  # noqa: E402


def run_case(df, search_range, memory):
    from cryomat.tracking import link, link_scores

    t0 = time.perf_counter()
    ours = link(df, search_range=search_range, memory=memory)
    t_ours = time.perf_counter() - t0
    s_ours = link_scores(ours["frame"], ours["true"], ours["track"])
    res = {"n_detections": int(len(df)), "ours_seconds": t_ours, "ours": s_ours}
    try:
        import trackpy as tp

        tp.quiet()
        d2 = df.rename(columns={"row_px": "y", "col_px": "x"})
        t0 = time.perf_counter()
        r = tp.link(d2, search_range=search_range, memory=memory)
        res["trackpy_seconds"] = time.perf_counter() - t0
        res["trackpy"] = link_scores(r["frame"], r["true"], r["particle"])
        res["speed_ratio_trackpy_over_ours"] = res["trackpy_seconds"] / t_ours
    except Exception as exc:  # trackpy raises SubnetOversizeException in dense films
        res["trackpy_error"] = f"{type(exc).__name__}: {exc}"[:300]
    return res


def main():
    sparse = brownian(n=2000, frames=100, size=2048, seed=0)
    dense = brownian(n=2000, frames=100, size=600, drift=(3.0, 2.0), seed=1)
    write_result("track", {
        "sparse_2000x100": run_case(sparse, 6, 2),
        "dense_drift_3px": run_case(dense, 6, 2),
        "targets": {"link_precision_recall": 0.995, "dense": 0.95, "max_time_ratio_vs_trackpy": 1.5},
    })


if __name__ == "__main__":
    main()
