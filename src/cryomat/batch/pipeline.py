"""Pipeline files: parse and validate before any work starts.

Example ``pipeline.toml``::

    [[inputs]]
    glob = "session1/48h/*.mrc"        # relative to the pipeline file
    condition = "48h"                  # optional grouping label
    time_h = 48                        # optional extra metadata column(s)

    [[steps]]
    command = "segment"                # any per-file cryomat command
    params = { dose = 1.0, min-size = 3 }

    [[steps]]
    command = "classify"               # a job-level step: runs once
    scope = "job"
    table = "segment/particles.csv"    # on this table gathered over all files
    params = { n-classes = "auto" }
"""

from __future__ import annotations

import argparse
import glob as _glob
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cryomat.errors import InputError

_INPUT_KEYS = {"glob", "files", "condition"}
_STEP_KEYS = {"command", "name", "params", "scope", "table"}
_NOT_STEPS = {"run", "demo", "simulate", "info", "convert"}


@dataclass(frozen=True)
class InputSet:
    paths: tuple[Path, ...]
    condition: str | None
    metadata: dict


@dataclass(frozen=True)
class Step:
    """One step: a cryomat command with its options, per file or once per job."""

    name: str
    command: str
    params: dict
    scope: str = "file"
    table: str | None = None
    argv: tuple[str, ...] = ()

    @property
    def params_hash(self) -> str:
        text = json.dumps({"command": self.command, "params": self.params, "table": self.table}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Pipeline:
    source: Path
    text: str
    inputs: tuple[InputSet, ...]
    steps: tuple[Step, ...] = field(default_factory=tuple)

    @property
    def files(self) -> list[tuple[Path, str | None, dict]]:
        seen, out = set(), []
        for s in self.inputs:
            for p in s.paths:
                if p not in seen:
                    seen.add(p)
                    out.append((p, s.condition, s.metadata))
        return out


def _line_of(text: str, needle: str) -> int | None:
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    return None


def _err(src: Path, text: str, needle: str, msg: str) -> InputError:
    line = _line_of(text, needle)
    where = f"line {line}: " if line else ""
    return InputError(f"{where}{msg}", path=src)


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    from cryomat.cli.main import build_parser

    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def params_to_argv(parser: argparse.ArgumentParser, params: dict, *, src: Path, text: str,
                   command: str) -> list[str]:
    """Turn ``{option: value}`` into command-line words, checking names, types and choices."""
    options = {}
    for action in parser._actions:
        for opt in action.option_strings:
            if opt.startswith("--"):
                options[opt[2:]] = action
    argv: list[str] = []
    for key, value in params.items():
        name = str(key).replace("_", "-")
        if name in {"out", "help", "quiet", "debug"}:
            raise _err(src, text, str(key), f"step {command!r}: parameter {key!r} is set by the pipeline itself")
        action = options.get(name)
        if action is None:
            known = ", ".join(sorted(k for k in options if k not in {"out", "help", "quiet", "debug"}))
            raise _err(src, text, str(key), f"step {command!r}: unknown parameter {key!r}; known: {known}")
        flag = f"--{name}"
        if action.nargs == 0:  # store_true / store_false
            if not isinstance(value, bool):
                raise _err(src, text, str(key), f"step {command!r}: parameter {key!r} is a switch; give true or false")
            if value != action.default:
                argv.append(flag)
            continue
        values = value if isinstance(value, list) else [value]
        words = []
        for v in values:
            word = "true" if v is True else "false" if v is False else str(v)
            if action.type is not None:
                try:
                    action.type(word)
                except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
                    raise _err(src, text, str(key), f"step {command!r}: parameter {key!r}: {exc}") from None
            if action.choices is not None and word not in [str(c) for c in action.choices]:
                raise _err(src, text, str(key),
                           f"step {command!r}: parameter {key!r} must be one of {list(action.choices)}, got {v!r}")
            words.append(word)
        if action.nargs in (None, "?") and len(words) != 1:
            raise _err(src, text, str(key), f"step {command!r}: parameter {key!r} takes one value")
        if isinstance(action, argparse._AppendAction):
            for w in words:
                argv += [flag, w]
        else:
            argv += [flag, *words]
    return argv


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and validate a pipeline file; :class:`InputError` names the line of any problem."""
    src = Path(path)
    if not src.is_file():
        raise InputError("pipeline file not found", path=src)
    text = src.read_text(encoding="utf-8", errors="replace")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML ({exc})", path=src) from None
    unknown_top = set(doc) - {"inputs", "steps", "title"}
    if unknown_top:
        k = sorted(unknown_top)[0]
        raise _err(src, text, k, f"unknown section {k!r}; a pipeline has [[inputs]] and [[steps]]")
    raw_inputs = doc.get("inputs")
    if not raw_inputs or not isinstance(raw_inputs, list):
        raise InputError("no [[inputs]] section: say which files to process", path=src)
    base = src.parent
    inputs = []
    for entry in raw_inputs:
        patterns = entry.get("glob", entry.get("files"))
        if patterns is None:
            raise _err(src, text, "[[inputs]]", "an [[inputs]] entry needs glob = \"...\" or files = [...]")
        patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        paths = []
        for pat in patterns:
            full = pat if Path(pat).is_absolute() else str(base / pat)
            matched = sorted(Path(p) for p in _glob.glob(full, recursive=True) if Path(p).is_file())
            if not matched:
                raise _err(src, text, pat, f"no files match {pat!r}")
            paths += matched
        meta = {k: v for k, v in entry.items() if k not in _INPUT_KEYS}
        cond = entry.get("condition")
        inputs.append(InputSet(paths=tuple(paths), condition=None if cond is None else str(cond), metadata=meta))
    raw_steps = doc.get("steps")
    if not raw_steps or not isinstance(raw_steps, list):
        raise InputError("no [[steps]] section: say what to run", path=src)
    parsers = _subparsers()
    steps: list[Step] = []
    names = set()
    for entry in raw_steps:
        bad = set(entry) - _STEP_KEYS
        if bad:
            k = sorted(bad)[0]
            raise _err(src, text, k, f"unknown key {k!r} in [[steps]]; allowed: {', '.join(sorted(_STEP_KEYS))}")
        cmd = entry.get("command")
        if not cmd:
            raise _err(src, text, "[[steps]]", "a [[steps]] entry needs command = \"...\"")
        if cmd not in parsers or cmd in _NOT_STEPS:
            known = ", ".join(sorted(c for c in parsers if c not in _NOT_STEPS))
            raise _err(src, text, cmd, f"unknown step command {cmd!r}; known: {known}")
        name = str(entry.get("name", cmd))
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise _err(src, text, name, f"step name {name!r} may hold only letters, digits, . _ -")
        if name in names:
            raise _err(src, text, name, f"two steps are named {name!r}; give one a name = \"...\"")
        names.add(name)
        scope = entry.get("scope", "file")
        if scope not in ("file", "job"):
            raise _err(src, text, "scope", f"scope must be \"file\" or \"job\", got {scope!r}")
        params = entry.get("params", {})
        if not isinstance(params, dict):
            raise _err(src, text, "params", "params must be a table, e.g. params = { dose = 1.0 }")
        table = entry.get("table")
        if scope == "job":
            if not table or "/" not in str(table):
                raise _err(src, text, cmd, "a job-level step needs table = \"STEP/FILE.csv\" (the table it runs on)")
            if str(table).split("/", 1)[0] not in names - {name}:
                raise _err(src, text, str(table), f"table {table!r} does not come from an earlier step")
        argv = params_to_argv(parsers[cmd], params, src=src, text=text, command=cmd)
        steps.append(Step(name=name, command=cmd, params=params, scope=scope, table=table, argv=tuple(argv)))
    return Pipeline(source=src, text=text, inputs=tuple(inputs), steps=tuple(steps))
