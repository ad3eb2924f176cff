"""The registry of simulator kinds."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

KINDS: dict[str, "Kind"] = {}


@dataclass(frozen=True)
class Kind:
    """A simulator kind: ``write(out_dir, *, seed, **params) -> truth dict``."""

    name: str
    write: Callable
    help: str

    @property
    def parameters(self) -> dict:
        sig = inspect.signature(self.write)
        return {n: p.default for n, p in sig.parameters.items()
                if p.kind == p.KEYWORD_ONLY and n != "seed"}


def register(name: str, help: str = ""):
    """Decorator that registers ``write(out_dir: Path, *, seed: int, **params) -> dict``."""

    def deco(func):
        KINDS[name] = Kind(name=name, write=func, help=help or (func.__doc__ or "").strip().splitlines()[0])
        return func

    return deco


def _discover() -> None:
    import cryomat.simulate as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name not in {"registry", "physics"}:
            importlib.import_module(f"cryomat.simulate.{info.name}")


def get_kind(name: str) -> Kind:
    _discover()
    if name not in KINDS:
        raise ValueError(f"unknown simulator kind {name!r}; known kinds: {', '.join(sorted(KINDS))}")
    return KINDS[name]


def all_kinds() -> dict[str, Kind]:
    _discover()
    return dict(sorted(KINDS.items()))


def simulate(kind: str, out_dir: str | Path, *, seed: int = 0, **params) -> dict:
    """Run simulator ``kind`` into ``out_dir`` and return its truth (also written as ``truth.json``)."""
    from cryomat.outputs import write_json

    k = get_kind(kind)
    unknown = set(params) - set(k.parameters)
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)} for kind {kind!r}; "
                         f"known: {', '.join(sorted(k.parameters))}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth = k.write(out, seed=seed, **params)
    truth = {"kind": kind, "seed": seed, "parameters": {**k.parameters, **params}, **truth}
    write_json(out / "truth.json", truth)
    return truth
