"""The command/output contract: an output folder, ``results.json``, tables, arrays, figures.

Every analysis command writes into one folder through :class:`OutputDir`, so that all
files are written atomically, inputs are never overwritten, and ``results.json`` has the
same shape everywhere::

    {"cryomat_version", "command", "inputs": [{"path", "sha256"}], "parameters", "results"}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from cryomat import __version__
from cryomat.errors import InputError
from cryomat.io.atomic import atomic_path, write_text


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, dataclasses, paths and non-finite floats to JSON-ready values.

    NaN and infinities become ``None`` (JSON has no NaN).
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if hasattr(obj, "to_dict"):
            return to_jsonable(obj.to_dict())
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return write_text(path, json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")


class OutputDir:
    """An analysis command's output folder.

    Parameters
    ----------
    path : the folder; created if missing. An existing file there, an unwritable folder,
        or a folder that contains one of ``inputs`` is refused with :class:`InputError`.
    command : command name, e.g. ``"align"``.
    inputs : input files (hashed into ``results.json``; never written to).
    parameters : the parameters the command ran with.
    """

    def __init__(self, path: str | os.PathLike, *, command: str, inputs: Iterable[str | os.PathLike] = (),
                 parameters: dict | None = None, argv: list[str] | None = None):
        self.path = Path(path)
        self.command = command
        self.inputs = [Path(p) for p in inputs]
        self.parameters = dict(parameters or {})
        self.argv = list(argv) if argv is not None else list(sys.argv)
        self.files: list[str] = []
        self._prepare()

    def _prepare(self) -> None:
        p = self.path
        if p.exists() and not p.is_dir():
            raise InputError("the output path exists and is a file, not a folder", path=p)
        for inp in self.inputs:
            try:
                if inp.resolve() == p.resolve():
                    raise InputError("the output folder would overwrite an input", path=p)
            except OSError:
                pass
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the output folder ({exc.strerror})", path=p) from exc
        if not os.access(p, os.W_OK):
            raise InputError("the output folder is not writable", path=p)
        try:  # a real probe: os.access says yes to root even on a read-only file system
            import tempfile

            fd, probe = tempfile.mkstemp(prefix=".cryomat-probe-", dir=p)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise InputError(f"the output folder is not writable ({exc.strerror})", path=p) from exc

    def file(self, name: str) -> Path:
        """Path of ``name`` inside the folder, refused if it is one of the inputs."""
        target = self.path / name
        for inp in self.inputs:
            try:
                if inp.resolve() == target.resolve():
                    raise InputError(f"writing {name} would overwrite the input file", path=inp)
            except OSError:
                pass
        target.parent.mkdir(parents=True, exist_ok=True)
        rel = str(target.relative_to(self.path))
        if rel not in self.files:
            self.files.append(rel)
        return target

    # --- writers -----------------------------------------------------------------
    def write_csv(self, name: str, table) -> Path:
        """Write a pandas DataFrame as CSV (atomically)."""
        target = self.file(name)
        with atomic_path(target) as tmp:
            table.to_csv(tmp, index=False)
        return target

    def write_parquet(self, name: str, table) -> Path:
        target = self.file(name)
        with atomic_path(target) as tmp:
            table.to_parquet(tmp, index=False)
        return target

    def write_mrc(self, name: str, data, *, pixel_size: float | None = None, volume: bool = False) -> Path:
        from cryomat.io.writers import write_mrc

        return write_mrc(self.file(name), data, pixel_size=pixel_size, volume=volume)

    def write_tiff(self, name: str, data, *, pixel_size: float | None = None) -> Path:
        from cryomat.io.writers import write_tiff

        return write_tiff(self.file(name), data, pixel_size=pixel_size)

    def write_png(self, name: str, image) -> Path:
        from cryomat.io.writers import write_png

        return write_png(self.file(name), image)

    def write_json(self, name: str, obj: Any) -> Path:
        return write_json(self.file(name), obj)

    def write_text(self, name: str, text: str) -> Path:
        return write_text(self.file(name), text)

    def save_figure(self, name: str, fig, *, dpi: int = 110) -> Path:
        """Save a matplotlib figure as PNG atomically and close it."""
        import matplotlib.pyplot as plt

        target = self.file(name)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        plt.close(fig)
        return target

    def write_results(self, results: dict, *, extra: dict | None = None) -> Path:
        """Write ``results.json`` following the command contract. Call it last."""
        doc = {
            "cryomat_version": __version__,
            "command": " ".join([Path(self.argv[0]).name if self.argv else "cryomat", *self.argv[1:]]),
            "subcommand": self.command,
            "inputs": [{"path": str(p), "sha256": sha256_file(p)} for p in self.inputs if p.is_file()],
            "parameters": self.parameters,
            "results": results,
            "files": sorted(set(self.files) | {"results.json"}),
        }
        if extra:
            doc.update(extra)
        return write_json(self.file("results.json"), doc)
