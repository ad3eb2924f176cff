"""Session pipelines: validation, per-file isolation of failures, catalogue, resume."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from cryomat.batch import load_pipeline, run_pipeline
from cryomat.cli.main import main
from cryomat.errors import InputError
from cryomat.io import write_mrc


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                           memory_limit="2GiB")
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def _session(tmp_path, n=6, dose=2.0):
    rng = np.random.default_rng(0)
    for cond in ("cold", "warm"):
        d = tmp_path / "data" / cond
        d.mkdir(parents=True)
        for i in range(n // 2):
            # counted frames at a known dose: mean counts = dose * pixel_size^2
            write_mrc(d / f"img{i}.mrc", rng.poisson(dose * 1.5**2, (64, 64)).astype(np.float32), pixel_size=1.5)
    # bad files mixed in: truncated MRC, empty file, not EM at all
    bad = tmp_path / "data" / "warm"
    (bad / "truncated.mrc").write_bytes((tmp_path / "data" / "cold" / "img0.mrc").read_bytes()[:700])
    (bad / "empty.mrc").write_bytes(b"")
    (bad / "notes.mrc").write_text("not an image")
    pipe = tmp_path / "pipeline.toml"
    pipe.write_text(
        '[[inputs]]\nglob = "data/cold/*.mrc"\ncondition = "cold"\ntemperature_K = 93\n\n'
        '[[inputs]]\nglob = "data/warm/*.mrc"\ncondition = "warm"\ntemperature_K = 143\n\n'
        '[[steps]]\ncommand = "qc"\nparams = { pixel-size = 1.5 }\n'
    )
    return pipe


def test_pipeline_validation_names_the_line(tmp_path):
    (tmp_path / "a.mrc").write_bytes(b"x")
    p = tmp_path / "p.toml"
    p.write_text('[[inputs]]\nglob = "*.mrc"\n\n[[steps]]\ncommand = "qc"\nparams = { bogus = 1 }\n')
    with pytest.raises(InputError, match=r"line 6: .*unknown parameter 'bogus'"):
        load_pipeline(p)
    p.write_text('[[inputs]]\nglob = "*.mrc"\n\n[[steps]]\ncommand = "nosuchstep"\n')
    with pytest.raises(InputError, match=r"line 5: unknown step command"):
        load_pipeline(p)
    p.write_text('[[inputs]]\nglob = "*.tif"\n\n[[steps]]\ncommand = "qc"\n')
    with pytest.raises(InputError, match=r"line 2: no files match"):
        load_pipeline(p)
    p.write_text('[[inputs]]\nglob = "*.mrc"\n\n[[steps]]\ncommand = "qc"\nparams = { pixel-size = "big" }\n')
    with pytest.raises(InputError, match=r"line 6: .*pixel-size"):
        load_pipeline(p)


def test_run_isolates_failures_and_catalogues(tmp_path, client):
    pipe = _session(tmp_path)
    job = tmp_path / "job"
    res = run_pipeline(load_pipeline(pipe), job, client=client)
    # 6 good files done, the 3 broken ones failed, the batch went on
    assert res.counts["qc"] == {"done": 6, "skipped": 0, "failed": 3}
    fail = pd.read_csv(job / "failures.csv")
    assert sorted(fail["file"].str.rsplit("/", n=1).str[-1]) == ["empty.mrc", "notes.mrc", "truncated.mrc"]
    assert (job / "FAILURE").exists() and not (job / "SUCCESS").exists()
    summ = pd.read_parquet(job / "catalogue" / "qc__summary.parquet")
    # physics check: the counted dose recovered from each file equals the simulated 2 e/A^2 (Poisson
    # mean of 64^2 pixels at 4.5 counts: relative sd 0.7%, so 5% is a safe bound)
    assert np.allclose(summ["dose_e_per_A2_if_counting"], 2.0, rtol=0.05)
    assert set(summ["condition"]) == {"cold", "warm"} and set(summ["temperature_K"]) == {93, 143}
    con = sqlite3.connect(job / "catalogue.sqlite")
    rows = con.execute("select status, count(*) from tasks group by status order by status").fetchall()
    assert rows == [("done", 6), ("failed", 3)]
    assert (job / "report.html").exists() and (job / "params.toml").read_text() == pipe.read_text()


def test_resume_skips_finished_and_reruns_unfinished(tmp_path, client):
    pipe = _session(tmp_path)
    job = tmp_path / "job"
    run_pipeline(load_pipeline(pipe), job, client=client)
    # simulate a crash: one finished folder loses its DONE marker, one leaves a temporary folder
    dirs = sorted(p for p in (job / "files").glob("*/qc") if (p / "DONE").exists())
    (dirs[0] / "DONE").unlink()
    (dirs[1].parent / ".qc.tmp-deadbeef").mkdir()
    with pytest.raises(InputError, match="--resume"):
        run_pipeline(load_pipeline(pipe), job, client=client)
    res = run_pipeline(load_pipeline(pipe), job, client=client, resume=True)
    assert res.counts["qc"] == {"done": 1, "skipped": 5, "failed": 3}
    con = sqlite3.connect(job / "catalogue.sqlite")
    # every good file is recorded exactly once as finished
    n = con.execute("select count(*), count(distinct path) from tasks where status in ('done','skipped')").fetchone()
    assert n == (6, 6)
    summ = pd.read_parquet(job / "catalogue" / "qc__summary.parquet")
    assert len(summ) == 6 and summ["input_path"].is_unique


def test_cli_run_exit_codes(tmp_path):
    pipe = _session(tmp_path)
    rc = main(["--quiet", "run", str(pipe), "--out", str(tmp_path / "j"), "--workers", "1"])
    assert rc == 3  # some inputs failed -> 3, the rest completed
    bad = tmp_path / "bad.toml"
    bad.write_text("[[steps]]\ncommand = 'qc'\n")
    assert main(["--quiet", "run", str(bad), "--out", str(tmp_path / "k")]) == 2
