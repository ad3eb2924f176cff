"""One unit of work: one step on one file, run on a Dask worker.

The task reads its own file (nothing but the path travels from the client), runs the
cryomat command in-process with BLAS threads pinned to 1, writes into a temporary folder,
marks it done last (``DONE`` holds the input hash and parameter hash) and renames the
folder into place, so a killed worker never leaves a result that looks finished. It
returns small tables: one summary row from ``results.json`` and every CSV the step wrote.
"""

from __future__ import annotations

import contextlib
import io as _io
import json
import os
import shutil
import time
import traceback
import uuid
from pathlib import Path

import pandas as pd

DONE = "DONE"


def file_sha256(path: str | Path) -> str:
    from cryomat.outputs import sha256_file

    return sha256_file(path)


def _flatten(prefix: str, obj, out: dict) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}{k}.", v, out)
    elif isinstance(obj, (int, float, str, bool)) or obj is None:
        out[prefix.rstrip(".")] = obj


def summary_row(results: dict) -> dict:
    """Scalar entries of a results.json ``results`` block, nested keys joined with dots."""
    row: dict = {}
    _flatten("", results, row)
    return row


def collect_tables(out_dir: Path) -> dict[str, pd.DataFrame]:
    """Every CSV a step wrote (relative name -> table) plus ``__summary__`` from results.json."""
    tables: dict[str, pd.DataFrame] = {}
    res = out_dir / "results.json"
    if res.exists():
        doc = json.loads(res.read_text())
        tables["__summary__"] = pd.DataFrame([summary_row(doc.get("results", {}))])
    for csv in sorted(out_dir.rglob("*.csv")):
        try:
            tables[str(csv.relative_to(out_dir))] = pd.read_csv(csv)
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            tables[str(csv.relative_to(out_dir))] = pd.DataFrame()
    return tables


def _pin_threads():
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = "1"
    stack = contextlib.ExitStack()
    try:
        from threadpoolctl import threadpool_limits

        stack.enter_context(threadpool_limits(1))
    except Exception:  # threadpoolctl missing or no pools loaded
        pass
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:
        pass
    return stack


def done_marker(out_dir: Path) -> dict | None:
    """The DONE record of a finished task folder, or ``None``."""
    f = out_dir / DONE
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def run_task(input_path: str, step_name: str, command: str, argv: list[str], params_hash: str,
             out_dir: str, input_sha256: str | None = None) -> dict:
    """Run ``cryomat COMMAND INPUT --out TMP ARGV`` and move TMP to ``out_dir`` when it succeeded.

    Returns ``{"status": "done"|"skipped"|"failed", "sha256", "seconds", "error", "tables"}``.
    Never raises for a bad input: the error is returned and recorded by the runner.
    """
    from cryomat.cli.main import main

    t0 = time.perf_counter()
    final = Path(out_dir)
    try:
        sha = input_sha256 or file_sha256(input_path)
    except OSError as exc:
        return {"status": "failed", "sha256": None, "seconds": 0.0, "error": f"cannot read input: {exc}", "tables": {}}
    mark = done_marker(final)
    if mark and mark.get("sha256") == sha and mark.get("params_hash") == params_hash:
        return {"status": "skipped", "sha256": sha, "seconds": 0.0, "error": None, "tables": collect_tables(final)}
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    err = _io.StringIO()
    try:
        with _pin_threads(), contextlib.redirect_stderr(err), contextlib.redirect_stdout(_io.StringIO()):
            rc = main(["--quiet", command, str(input_path), "--out", str(tmp), *argv])
    except BaseException as exc:  # noqa: BLE001 - isolate every failure to this file
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, KeyboardInterrupt):
            raise
        return {"status": "failed", "sha256": sha, "seconds": time.perf_counter() - t0,
                "error": f"{type(exc).__name__}: {exc} | {traceback.format_exc(limit=2)[-300:]}", "tables": {}}
    if rc != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        msg = err.getvalue().strip().splitlines()
        return {"status": "failed", "sha256": sha, "seconds": time.perf_counter() - t0,
                "error": (msg[-1] if msg else f"exit code {rc}"), "tables": {}}
    seconds = time.perf_counter() - t0
    (tmp / DONE).write_text(json.dumps({"input": str(input_path), "sha256": sha, "step": step_name,
                                        "params_hash": params_hash, "seconds": seconds,
                                        "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}))
    if final.exists():  # a stale folder (other parameters, or unfinished): replace it
        trash = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(final, trash)
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(tmp, final)
    return {"status": "done", "sha256": sha, "seconds": seconds, "error": None, "tables": collect_tables(final)}
