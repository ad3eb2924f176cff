"""Run a pipeline over its inputs on a Dask client and fill the job folder.

Job folder layout (RELION-like)::

    JOB/params.toml          the pipeline as given
    JOB/run.log              what happened, with times
    JOB/files/<stem>-<sha8>/<step>/   per-file outputs of each step (DONE marks completion)
    JOB/job/<step>/          outputs of job-level steps
    JOB/catalogue.sqlite     inputs, hashes, task status (plain SQL)
    JOB/catalogue/<step>__<table>.parquet   tables gathered over all files
    JOB/failures.csv         file, step, error
    JOB/report.html          aggregate report
    JOB/SUCCESS or JOB/FAILURE   written last
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cryomat.batch.catalogue import Catalogue
from cryomat.batch.pipeline import Pipeline, Step
from cryomat.batch.tasks import run_task
from cryomat.errors import InputError
from cryomat.io.atomic import write_text


@dataclass(frozen=True)
class JobResult:
    job_dir: Path
    n_files: int
    counts: dict  # step -> {"done": n, "skipped": n, "failed": n}
    failures: pd.DataFrame

    @property
    def ok(self) -> bool:
        return self.failures.empty


class _Log:
    def __init__(self, path: Path, echo):
        self.path = path
        self.echo = echo

    def __call__(self, msg: str) -> None:
        line = f"{_dt.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}  {msg}"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        if self.echo:
            self.echo(msg)


def _file_key(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem)[:60]
    return f"{stem}-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]}"


def _prepare_job_dir(job_dir: Path, pipeline: Pipeline, resume: bool) -> None:
    if job_dir.exists() and not job_dir.is_dir():
        raise InputError("the job path exists and is a file, not a folder", path=job_dir)
    params = job_dir / "params.toml"
    if params.exists() and not resume:
        raise InputError("this job folder already holds a job; add --resume to continue it, or choose a new --out",
                         path=job_dir)
    if params.exists() and resume and params.read_text() != pipeline.text:
        # the pipeline changed: allowed (changed steps rerun because their parameter hash changed)
        pass
    job_dir.mkdir(parents=True, exist_ok=True)
    if resume:  # leftovers of tasks killed mid-write: never complete, safe to remove
        import shutil

        for tmp in list(job_dir.glob("files/*/.*.tmp-*")) + list(job_dir.glob("files/*/.*.old-*")):
            shutil.rmtree(tmp, ignore_errors=True)
    for marker in ("SUCCESS", "FAILURE"):
        (job_dir / marker).unlink(missing_ok=True)
    write_text(params, pipeline.text)


def run_pipeline(pipeline: Pipeline, job_dir: str | Path, *, client, resume: bool = False, echo=None,
                 progress: bool = False) -> JobResult:
    """Run ``pipeline`` into ``job_dir`` using the Dask ``client`` (local or remote cluster).

    Per-file steps are submitted for every input at once; each task reads its own file and
    returns small tables. Job-level steps run afterwards in this process. Failures are
    isolated per file and listed in ``failures.csv``; they never stop the batch.
    """
    from distributed import as_completed

    job = Path(job_dir)
    _prepare_job_dir(job, pipeline, resume)
    log = _Log(job / "run.log", echo)
    files = pipeline.files
    file_steps = [s for s in pipeline.steps if s.scope == "file"]
    job_steps = [s for s in pipeline.steps if s.scope == "job"]
    log(f"job {job} started: {len(files)} input files, steps: {', '.join(s.name for s in pipeline.steps)}"
        f"{' (resume)' if resume else ''}; scheduler {getattr(client, 'scheduler', None) and client.scheduler.address}")
    cat = Catalogue(job)
    meta_of = {}
    futures = {}
    for path, cond, meta in files:
        meta_of[path] = (cond, meta)
        for step in file_steps:
            out_dir = job / "files" / _file_key(path) / step.name
            fut = client.submit(run_task, str(path), step.name, step.command, list(step.argv), step.params_hash,
                                str(out_dir), key=f"{step.name}-{_file_key(path)}-{time.time_ns()}", pure=False)
            futures[fut] = (path, step, out_dir)
    counts: dict = defaultdict(lambda: {"done": 0, "skipped": 0, "failed": 0})
    tables: dict = defaultdict(list)
    failures = []
    bars = {}
    if progress:
        from tqdm.auto import tqdm

        for i, s in enumerate(file_steps):
            bars[s.name] = tqdm(total=len(files), desc=s.name, position=i, leave=True)
    n_total = len(futures)
    n_seen = 0
    last_log = time.monotonic()
    for fut in as_completed(list(futures)):
        path, step, out_dir = futures.pop(fut)
        try:
            res = fut.result()
        except Exception as exc:  # the worker died repeatedly or the task could not be run at all
            res = {"status": "failed", "sha256": None, "seconds": 0.0, "error": f"{type(exc).__name__}: {exc}",
                   "tables": {}}
        fut.release()
        n_seen += 1
        counts[step.name][res["status"]] += 1
        now = _dt.datetime.now().isoformat(timespec="seconds")
        cond, meta = meta_of[path]
        cat.record_input(path, res.get("sha256"), cond, meta)
        cat.record_task(path, step.name, res, step.params_hash, out_dir, now)
        if res["status"] == "failed":
            failures.append({"file": str(path), "step": step.name, "error": res["error"]})
            log(f"FAILED {step.name} {path}: {res['error']}")
        for name, frame in res["tables"].items():
            if frame is None:
                continue
            frame = frame.copy()
            frame.insert(0, "input_path", str(path))
            frame.insert(1, "input_sha256", res.get("sha256"))
            frame.insert(2, "condition", cond)
            for k, v in meta.items():
                if k not in frame.columns:
                    frame[k] = v
            frame["report"] = str((out_dir / "report.html").relative_to(job))
            tables[(step.name, name)].append(frame)
        if step.name in bars:
            bars[step.name].update(1)
        elif time.monotonic() - last_log > 10 or n_seen == n_total:
            last_log = time.monotonic()
            log("progress: " + "; ".join(
                f"{s.name} {sum(counts[s.name].values())}/{len(files)}"
                f" ({counts[s.name]['failed']} failed)" for s in file_steps))
    for b in bars.values():
        b.close()
    for s in file_steps:
        c = counts[s.name]
        log(f"step {s.name}: {c['done']} done, {c['skipped']} already done (skipped), {c['failed']} failed")
    gathered: dict[tuple[str, str], pd.DataFrame] = {}
    for (step_name, name), frames in tables.items():
        non_empty = [f for f in frames if not f.empty]
        frame = pd.concat(non_empty, ignore_index=True) if non_empty else pd.concat(frames, ignore_index=True)
        gathered[(step_name, name)] = frame
        cat.write_table(step_name, name, frame)
    for step in job_steps:
        _run_job_step(step, job, gathered, counts, failures, cat, log)
    fail_df = pd.DataFrame(failures, columns=["file", "step", "error"])
    from cryomat.io.atomic import atomic_path

    with atomic_path(job / "failures.csv") as tmp:
        fail_df.to_csv(tmp, index=False)
    from cryomat.batch.report import write_job_report

    try:
        write_job_report(job, pipeline, gathered, dict(counts), fail_df)
    except Exception as exc:  # the report must never cost the results
        log(f"report could not be written: {type(exc).__name__}: {exc}")
    cat.close()
    marker = "FAILURE" if failures else "SUCCESS"
    write_text(job / marker, f"{len(failures)} failed task(s) of {sum(sum(c.values()) for c in counts.values())}\n")
    log(f"job finished: {marker}")
    return JobResult(job_dir=job, n_files=len(files), counts={k: dict(v) for k, v in counts.items()},
                     failures=fail_df)


def _run_job_step(step: Step, job: Path, gathered, counts, failures, cat, log) -> None:
    src_step, table_name = step.table.split("/", 1)
    frame = gathered.get((src_step, table_name))
    out_dir = job / "job" / step.name
    if frame is None or frame.empty:
        msg = f"no rows in {step.table} to run {step.command} on"
        failures.append({"file": step.table, "step": step.name, "error": msg})
        counts[step.name]["failed"] += 1
        log(f"FAILED {step.name}: {msg}")
        return
    from cryomat.io.atomic import atomic_path

    inp = job / "job" / f"{step.name}_input.csv"
    inp.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(inp) as tmp:
        frame.to_csv(tmp, index=False)
    log(f"step {step.name}: {step.command} on {len(frame)} rows of {step.table}")
    res = run_task(str(inp), step.name, step.command, list(step.argv), step.params_hash, str(out_dir))
    counts[step.name][res["status"]] += 1
    now = _dt.datetime.now().isoformat(timespec="seconds")
    cat.record_task(inp, step.name, res, step.params_hash, out_dir, now)
    if res["status"] == "failed":
        failures.append({"file": str(inp), "step": step.name, "error": res["error"]})
        log(f"FAILED {step.name}: {res['error']}")
        return
    for name, t in res["tables"].items():
        gathered[(step.name, name)] = t
        cat.write_table(step.name, name, t)
    log(f"step {step.name}: {res['status']} in {res['seconds']:.1f} s")
