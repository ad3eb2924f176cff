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


_BROKEN: dict[str, str] = {}


def _discover() -> None:
    """Import every module of the package once; a module that fails to import is recorded in
    ``_BROKEN`` (shown by ``cryomat simulate --list``) instead of breaking every other kind."""
    import cryomat.simulate as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name in {"registry", "physics"} or info.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"cryomat.simulate.{info.name}")
        except Exception as exc:  # a half-written kind must not break the others
            _BROKEN[info.name] = f"{type(exc).__name__}: {exc}"


def broken_modules() -> dict[str, str]:
    """Simulator modules that could not be imported, with the reason."""
    _discover()
    return dict(_BROKEN)


def get_kind(name: str) -> Kind:
    _discover()
    if name not in KINDS:
        raise ValueError(f"unknown simulator kind {name!r}; known kinds: {', '.join(sorted(KINDS))}")
    return KINDS[name]


def all_kinds() -> dict[str, Kind]:
    _discover()
    return dict(sorted(KINDS.items()))


def _coerce(kind: str, name: str, value, default):
    """Convert a parameter to the type of its default, with an error naming the parameter."""
    if default is None or value is None:
        return value
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("true", "yes", "1", "on"):
                    return True
                if low in ("false", "no", "0", "off"):
                    return False
                raise ValueError
            return bool(value)
        if isinstance(default, int) and not isinstance(value, bool):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(default, float) and not isinstance(value, bool):
            return float(value)
        if isinstance(default, (tuple, list)) and isinstance(value, (tuple, list)):
            return type(default)(value)
    except (TypeError, ValueError):
        raise ValueError(f"parameter {name!r} of simulator kind {kind!r} expects a value like "
                         f"{default!r}, got {value!r}") from None
    return value


def simulate(kind: str, out_dir: str | Path, *, seed: int = 0, **params) -> dict:
    """Run simulator ``kind`` into ``out_dir`` and return its truth (also written as ``truth.json``).

    Raises
    ------
    ValueError for an unknown kind or parameter, or a parameter of the wrong type;
    :class:`cryomat.errors.InputError` when ``out_dir`` is a file or cannot be written.
    """
    from cryomat.outputs import OutputDir, write_json

    k = get_kind(kind)
    unknown = set(params) - set(k.parameters)
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)} for kind {kind!r}; "
                         f"known: {', '.join(sorted(k.parameters))}")
    params = {n: _coerce(kind, n, v, k.parameters[n]) for n, v in params.items()}
    out = OutputDir(out_dir, command=f"simulate {kind}", parameters=params).path
    truth = k.write(out, seed=seed, **params)
    truth = {"kind": kind, "seed": seed, "parameters": {**k.parameters, **params}, **truth}
    write_json(out / "truth.json", truth)
    return truth
