"""I/O benchmark: open a 40-frame 4k x 4k movie (int8 counts, 671 MB) and sum it, memory-mapped
(cryomat.io.read) versus an eager read (mrcfile.open, and rosettasciio's MRC reader, the
HyperSpy stack's path). Reports open time, time to the frame sum and the peak Python heap
(tracemalloc, which numpy reports to) of each.

Usage: ``python benchmarks/bench_io.py [--frames 40] [--size 4096]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402


def _measure(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, dt, peak


def _frame_sum(data):
    acc = np.zeros(data.shape[1:], np.int32)
    for i in range(data.shape[0]):
        acc += np.asarray(data[i], dtype=np.int32)
    return acc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args(argv)
    import mrcfile

    from cryomat import io

    shape = (args.frames, args.size, args.size)
    with tempfile.TemporaryDirectory(prefix="cryomat-bench-io-") as tmp:
        path = Path(tmp) / "movie.mrcs"
        rng = np.random.default_rng(0)
        with mrcfile.new_mmap(path, shape=shape, mrc_mode=0, overwrite=True) as m:  # int8 counts
            for i in range(shape[0]):
                m.data[i] = rng.poisson(0.8, shape[1:]).astype(np.int8)
            m.voxel_size = 0.8
        nbytes = path.stat().st_size
        rows = {}

        img, t_open, peak_open = _measure(lambda: io.read(path))
        total, t_sum, peak_sum = _measure(lambda: _frame_sum(img.data))
        rows["cryomat_mmap"] = {"open_s": t_open, "sum_s": t_sum, "peak_open_MB": peak_open / 1e6,
                                "peak_sum_MB": peak_sum / 1e6}
        ref = total

        def eager():
            with mrcfile.open(path, mode="r") as m:
                return np.array(m.data)

        data, t_open, peak_open = _measure(eager)
        total, t_sum, peak_sum = _measure(lambda: _frame_sum(data))
        assert np.array_equal(total, ref)
        rows["mrcfile_open_eager"] = {"open_s": t_open, "sum_s": t_sum, "peak_open_MB": peak_open / 1e6,
                                      "peak_sum_MB": peak_sum / 1e6}
        del data
        try:
            import rsciio.mrc as rmrc

            ds, t_open, peak_open = _measure(lambda: rmrc.file_reader(str(path), lazy=False))
            total, t_sum, peak_sum = _measure(lambda: _frame_sum(ds[0]["data"]))
            rows["rosettasciio_mrc_eager"] = {"open_s": t_open, "sum_s": t_sum, "peak_open_MB": peak_open / 1e6,
                                              "peak_sum_MB": peak_sum / 1e6}
            del ds
        except Exception as exc:  # a peer failing is reported, not fatal
            rows["rosettasciio_mrc_eager"] = {"error": f"{type(exc).__name__}: {exc}"}
    write_result("io", {"movie_shape": list(shape), "dtype": "int8", "file_MB": nbytes / 1e6, "results": rows,
                        "note": "peak = Python-heap peak seen by tracemalloc during the step; the memory map's "
                                "pages live in the OS page cache, not the heap"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
