"""``cryomat demo``: simulate, analyse, report, for every capability.

Each capability adds a module here defining ``TITLE``, ``ORDER`` (sort key) and
``run(out: pathlib.Path, *, seed: int) -> dict`` returning ``{"summary": str,
"metrics": {...}, "report": "relative/path/report.html", "figure": "relative/path.png"}``
(report and figure optional). Modules are found automatically.
"""

from __future__ import annotations

import importlib
import pkgutil


def steps() -> list:
    import cryomat.demo as pkg

    mods = [importlib.import_module(f"cryomat.demo.{m.name}") for m in pkgutil.iter_modules(pkg.__path__)]
    mods = [m for m in mods if hasattr(m, "run") and hasattr(m, "TITLE")]
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))


def step_name(mod) -> str:
    return mod.__name__.rsplit(".", 1)[-1]
