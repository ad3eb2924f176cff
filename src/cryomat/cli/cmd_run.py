"""``cryomat run PIPELINE.toml --out JOBDIR``: a whole session on a Dask cluster."""

from __future__ import annotations

import os

NAME = "run"
HELP = "run a pipeline (TOML) over many files on Dask: job folder, catalogue, failures, report"
DESCRIPTION = (
    "Run the steps of PIPELINE.toml on every input file, on a local Dask cluster (default) or an "
    "existing one (--scheduler tcp://HOST:8786 or DASK_SCHEDULER_ADDRESS). Exit code 0 when every "
    "task succeeded, 3 when some inputs failed (listed in JOBDIR/failures.csv), 2 for a bad pipeline."
)


def add_arguments(p):
    from cryomat.cli.common import positive_int

    p.add_argument("pipeline", help="pipeline file (TOML): [[inputs]] and [[steps]]")
    p.add_argument("--out", required=True, metavar="JOBDIR", help="job folder")
    p.add_argument("--scheduler", metavar="ADDRESS", help="address of an existing Dask scheduler "
                   "(default: $DASK_SCHEDULER_ADDRESS, else a local cluster)")
    p.add_argument("--workers", type=positive_int, help="local cluster: number of worker processes (default: cores)")
    p.add_argument("--memory-per-worker", default="4GiB", help="local cluster: memory limit per worker (default 4GiB)")
    p.add_argument("--resume", action="store_true", help="continue a job: skip inputs already finished "
                   "with the same content hash and parameters")


def run(args) -> int:
    from pathlib import Path

    from cryomat.batch import load_pipeline, run_pipeline
    from cryomat.progress import enabled, status

    pipeline = load_pipeline(args.pipeline)  # validated before any work starts
    address = args.scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    from distributed import Client, LocalCluster

    if address:
        status(f"run: connecting to Dask scheduler {address}")
        client = Client(address, timeout="30s")
        cluster = None
    else:
        n = args.workers or os.cpu_count() or 1
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               memory_limit=args.memory_per_worker, dashboard_address=":0")
        client = Client(cluster)
        status(f"run: local Dask cluster with {n} worker(s)")
    try:
        result = run_pipeline(pipeline, Path(args.out), client=client, resume=args.resume, echo=status,
                              progress=enabled())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    if not result.ok:
        status(f"run: {len(result.failures)} task(s) failed; see {Path(args.out) / 'failures.csv'}")
        return 3
    return 0
