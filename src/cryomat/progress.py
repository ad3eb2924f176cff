"""Progress bars for long work: shown on a terminal, silent in pipes, CI and with ``--quiet``."""

from __future__ import annotations

import os
import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

_QUIET = False


def set_quiet(quiet: bool) -> None:
    """Called once by the CLI for ``--quiet``; library code never calls it."""
    global _QUIET
    _QUIET = bool(quiet)


def is_quiet() -> bool:
    """Whether ``--quiet`` is in force."""
    return _QUIET


def enabled() -> bool:
    return not _QUIET and sys.stderr.isatty() and not os.environ.get("CI")


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr when a person is watching a terminal."""
    if not enabled():
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, total=total, desc=desc, leave=False, file=sys.stderr)


def status(message: str) -> None:
    """One line of progress text on stderr (silent with ``--quiet``)."""
    if not _QUIET:
        print(message, file=sys.stderr, flush=True)
