"""The results catalogue of a job: an SQLite index plus one Parquet table per step and table.

``catalogue.sqlite`` holds ``inputs`` (path, sha256, size, condition, metadata) and ``tasks``
(path, step, sha256, params_hash, status, seconds, error, out_dir). Query it with plain SQL::

    sqlite3 JOB/catalogue.sqlite "select step, status, count(*) from tasks group by 1, 2"
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pandas as pd

from cryomat.io.atomic import atomic_path

_SCHEMA = """
create table if not exists inputs(
  path text primary key, sha256 text, size_bytes integer, condition text, metadata text);
create table if not exists tasks(
  path text, step text, sha256 text, params_hash text, status text, seconds real, error text,
  out_dir text, finished_at text, primary key (path, step));
"""


class Catalogue:
    def __init__(self, job_dir: Path):
        self.job_dir = Path(job_dir)
        self.db_path = self.job_dir / "catalogue.sqlite"
        self.parquet_dir = self.job_dir / "catalogue"
        self.parquet_dir.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(self.db_path)
        self.con.executescript(_SCHEMA)

    def close(self) -> None:
        self.con.commit()
        self.con.close()

    def record_input(self, path: Path, sha256: str | None, condition: str | None, metadata: dict) -> None:
        size = path.stat().st_size if path.exists() else None
        self.con.execute("insert or replace into inputs values (?,?,?,?,?)",
                         (str(path), sha256, size, condition, json.dumps(metadata, default=str)))

    def record_task(self, path: Path, step: str, result: dict, params_hash: str, out_dir: Path,
                    finished_at: str) -> None:
        self.con.execute(
            "insert or replace into tasks values (?,?,?,?,?,?,?,?,?)",
            (str(path), step, result.get("sha256"), params_hash, result["status"], float(result.get("seconds") or 0),
             result.get("error"), str(out_dir), finished_at))
        self.con.commit()

    def status_counts(self) -> pd.DataFrame:
        return pd.read_sql_query("select step, status, count(*) as n from tasks group by step, status", self.con)

    def write_table(self, step: str, table_name: str, frame: pd.DataFrame) -> Path:
        stem = "summary" if table_name == "__summary__" else re.sub(r"[^A-Za-z0-9_.-]+", "_", table_name.removesuffix(".csv"))
        path = self.parquet_dir / f"{step}__{stem}.parquet"
        with atomic_path(path) as tmp:
            frame.to_parquet(tmp, index=False)
        return path
