"""The output contract: atomic writes and the shape of results.json."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from cryomat import __version__, io
from cryomat.io.atomic import atomic_path
from cryomat.outputs import OutputDir, to_jsonable


class _Boom(RuntimeError):
    pass


class _HalfTable:
    """Looks like a DataFrame to OutputDir.write_csv; writes half a table, then fails."""

    def to_csv(self, path, index=False):
        with open(path, "w") as fh:
            fh.write("frame,shift_A\n0,0.1\n")
            fh.flush()
            raise _Boom("disk pulled out mid-write")


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_failed_write_leaves_no_file_under_the_final_name(tmp_path):
    od = OutputDir(tmp_path / "out", command="t")
    with pytest.raises(_Boom):
        od.write_csv("table.csv", _HalfTable())
    # neither the final name nor the temporary file is left behind
    assert _leftovers(od.path) == []


def test_failed_rewrite_keeps_the_previous_complete_file(tmp_path):
    target = tmp_path / "result.csv"
    target.write_text("complete,old\n")
    with pytest.raises(_Boom):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise _Boom()
    assert target.read_text() == "complete,old\n"
    assert _leftovers(tmp_path) == ["result.csv"]


def test_interrupt_mid_mrc_write_leaves_nothing(tmp_path, monkeypatch):
    import mrcfile

    real_new = mrcfile.new

    def new_then_interrupt(path, *a, **k):
        m = real_new(path, *a, **k)
        m.set_data(np.zeros((4, 4), np.float32))
        m.close()  # some bytes are on disk under the temporary name
        raise KeyboardInterrupt

    monkeypatch.setattr(mrcfile, "new", new_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        io.write_mrc(tmp_path / "map.mrc", np.ones((8, 8), np.float32), pixel_size=1.0)
    assert _leftovers(tmp_path) == []


def test_results_json_contract(tmp_path):
    inp = tmp_path / "in.mrc"
    io.write_mrc(inp, np.arange(16, dtype=np.float32).reshape(4, 4), pixel_size=2.0)
    od = OutputDir(tmp_path / "out", command="align", inputs=[inp], parameters={"max_shift_A": 30.0},
                   argv=["cryomat", "align", str(inp), "--out", str(tmp_path / "out")])
    od.write_csv("shifts.csv", pd.DataFrame({"frame": [0, 1], "shift_A": [0.0, 1.5]}))
    od.write_results({"total_drift_A": 1.5, "undefined_A": float("nan"), "per_frame_A": np.array([0.0, 1.5])})
    doc = json.loads((od.path / "results.json").read_text())
    for key in ("cryomat_version", "command", "inputs", "parameters", "results"):
        assert key in doc
    assert doc["cryomat_version"] == __version__
    assert doc["command"].startswith("cryomat align")
    assert doc["inputs"] == [{"path": str(inp), "sha256": hashlib.sha256(inp.read_bytes()).hexdigest()}]
    assert doc["parameters"] == {"max_shift_A": 30.0}
    # NaN becomes null (JSON has no NaN), arrays become lists
    assert doc["results"] == {"total_drift_A": 1.5, "undefined_A": None, "per_frame_A": [0.0, 1.5]}
    assert set(doc["files"]) == {"shifts.csv", "results.json"}


def test_results_json_from_a_command(tmp_path):
    from cryomat.cli.main import main

    assert main(["--quiet", "demo", "--out", str(tmp_path / "d"), "--only", "imaging"]) == 0
    doc = json.loads((tmp_path / "d" / "results.json").read_text())
    assert {"cryomat_version", "command", "inputs", "parameters", "results"} <= set(doc)
    assert doc["parameters"]["seed"] == 0
    step = doc["results"]["steps"]["imaging"]
    # every numeric result key carries its unit
    units = ("_A", "_per_A", "_e_per_A2", "_s", "_kV", "_deg", "_px", "_frac", "seconds")
    assert all(k.endswith(units) for k in step), step


def test_to_jsonable_dataclass_and_numpy():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class R:
        d_A: float

        def to_dict(self):
            return {"d_A": self.d_A}

    out = to_jsonable({"r": R(np.float32(2.5)), "n": np.int64(3), "ok": np.bool_(True), "inf": np.inf})
    assert out == {"r": {"d_A": 2.5}, "n": 3, "ok": True, "inf": None}
    json.dumps(out, allow_nan=False)
