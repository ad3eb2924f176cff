"""Helpers for benchmarks: timing and writing ``benchmarks/results/<name>.json``."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def timed(func, *args, repeat: int = 1, **kwargs):
    """Run ``func`` ``repeat`` times; return (last result, best wall time in s)."""
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = func(*args, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return out, best


def write_result(name: str, payload: dict) -> Path:
    """Write a benchmark record with machine facts, atomically."""
    from cryomat.outputs import write_json

    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": name, "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                           "platform": platform.platform()},
           "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **payload}
    path = RESULTS / f"{name}.json"
    write_json(path, doc)
    print(json.dumps(doc, indent=2)[:4000])
    return path
