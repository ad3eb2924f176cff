"""Run every benchmark script ``benchmarks/bench_*.py``; each writes ``benchmarks/results/<name>.json``.

Usage: ``python benchmarks/run_all.py [NAME ...]`` (default: all).
"""

from __future__ import annotations

import runpy
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(a in s.stem for a in argv)]
    failed = []
    for s in scripts:
        t0 = time.perf_counter()
        print(f"== {s.stem}", flush=True)
        try:
            runpy.run_path(str(s), run_name="__main__")
        except SystemExit as exc:
            if exc.code:
                failed.append(s.stem)
        except Exception:
            traceback.print_exc()
            failed.append(s.stem)
        print(f"== {s.stem}: {time.perf_counter() - t0:.1f} s", flush=True)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
