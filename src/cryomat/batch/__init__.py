"""Whole sessions at scale: declarative pipelines over many files on Dask.

A pipeline (TOML) names inputs, per-file steps (any ``cryomat`` analysis command, run per
file on a Dask worker) and job-level steps (run once on a table gathered from a per-file
step, e.g. ``classify`` on all particles). A job folder holds per-file outputs, a results
catalogue (Parquet per step + an SQLite index of inputs, hashes and status), failures,
a run log and an aggregate report. Re-running with ``--resume`` skips finished work.
"""

from cryomat.batch.pipeline import Pipeline, Step, load_pipeline
from cryomat.batch.runner import run_pipeline

__all__ = ["Pipeline", "Step", "load_pipeline", "run_pipeline"]
