"""Shared fixtures: the real third-party data folder and seeded random generators."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

_REPO = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path:
    env = os.environ.get("CRYOMAT_REAL_DATA")
    return Path(env) if env else (_REPO.parent / "shared" / "data" / "real")


def real_file(relpath: str) -> Path:
    """Path of a real file; skip (or fail in CI, CRYOMAT_REQUIRE_REAL_DATA=1) when absent."""
    p = real_data_dir() / relpath
    if not p.exists():
        msg = f"real data file {p} not found (set CRYOMAT_REAL_DATA to the shared/data/real folder)"
        if os.environ.get("CRYOMAT_REQUIRE_REAL_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return p


@pytest.fixture
def real():
    """``real("atomap/test_ADF_cropped.hdf5")`` -> Path, skipping/failing as documented."""
    return real_file


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def pytest_report_header(config):
    d = real_data_dir()
    state = "found" if d.is_dir() else "MISSING"
    req = " (required: CRYOMAT_REQUIRE_REAL_DATA=1)" if os.environ.get("CRYOMAT_REQUIRE_REAL_DATA") == "1" else ""
    return f"cryomat real data: {d} [{state}]{req}"
