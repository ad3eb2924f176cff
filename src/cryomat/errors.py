"""Exceptions that the command line turns into one-line messages (exit code 2)."""

from __future__ import annotations


class CryomatError(Exception):
    """Base class of cryomat's own errors."""


class InputError(CryomatError, ValueError):
    """Bad user input: a file that cannot be read, a wrong option, missing calibration.

    The message names the file or argument and what is wrong with it; the CLI
    prints it on one line and exits with status 2.
    """

    def __init__(self, message: str, *, path: str | None = None):
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)
