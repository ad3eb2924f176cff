"""A job killed mid-run (power loss) never leaves a result that looks finished; --resume completes it.

Every file must end up done exactly once: no result lost or duplicated, checked in the catalogue.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pandas as pd

from cryomat.io import write_mrc


def test_kill_then_resume(tmp_path):
    rng = np.random.default_rng(1)
    data = tmp_path / "data"
    data.mkdir()
    n = 30
    for i in range(n):
        write_mrc(data / f"m{i:02d}.mrc", rng.poisson(1.0, (4, 384, 384)).astype(np.float32), pixel_size=1.0)
    pipe = tmp_path / "p.toml"
    pipe.write_text('[[inputs]]\nglob = "data/*.mrc"\n\n[[steps]]\ncommand = "qc"\n')
    job = tmp_path / "job"
    cmd = [sys.executable, "-m", "cryomat.cli.main", "--quiet", "run", str(pipe), "--out", str(job), "--workers", "2"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    killed = False
    while time.monotonic() - t0 < 120 and proc.poll() is None:
        done = list(job.glob("files/*/qc/DONE"))
        if len(done) >= 3:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole job: client, scheduler and workers
            killed = True
            break
        time.sleep(0.01)
    proc.wait(timeout=60)
    assert killed, "the job finished before it could be killed; make the work larger"
    # after the kill: every folder under its final name is complete (has DONE), nothing half-written
    finals = [p for p in job.glob("files/*/qc")]
    assert finals and all((p / "DONE").exists() and (p / "results.json").exists() for p in finals)
    assert not (job / "SUCCESS").exists()
    n_before = len(finals)
    assert n_before < n
    rc = subprocess.run(cmd + ["--resume"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300).returncode
    assert rc == 0
    assert (job / "SUCCESS").exists()
    con = sqlite3.connect(job / "catalogue.sqlite")
    statuses = dict(con.execute("select status, count(*) from tasks group by status").fetchall())
    # the files finished before the kill are skipped, all others done now: each exactly once
    assert statuses.get("skipped", 0) >= n_before and sum(statuses.values()) == n
    assert con.execute("select count(distinct path) from tasks").fetchone()[0] == n
    summ = pd.read_parquet(job / "catalogue" / "qc__summary.parquet")
    assert len(summ) == n and summ["input_path"].is_unique
    # leftovers of the killed tasks were cleaned up by --resume
    assert not list(job.glob("files/*/.qc.tmp-*"))
