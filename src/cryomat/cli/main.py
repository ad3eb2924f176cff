"""Entry point of the ``cryomat`` command.

Exit codes: 0 success, 2 bad input or usage (one line on stderr, no traceback),
1 internal failure (one line; ``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from cryomat import __version__


def _command_modules():
    import cryomat.cli as pkg

    mods = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            mods.append(importlib.import_module(f"cryomat.cli.{info.name}"))
    return mods


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryomat",
        description="Quantitative cryo-EM / cryo-STEM analysis of materials. "
                    "Lengths in Angstrom, fluence in e/A^2, voltage in kV.",
    )
    parser.add_argument("--version", action="version", version=f"cryomat {__version__}")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress output")
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        mod.add_arguments(p)
        p.set_defaults(func=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MPLBACKEND", "Agg")
    from cryomat.errors import CryomatError
    from cryomat.progress import is_quiet, set_quiet

    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    debug = getattr(args, "debug", False)
    outer_quiet = is_quiet()  # a command run from inside another (demo steps) must not change its caller's
    set_quiet(outer_quiet or getattr(args, "quiet", False))
    try:
        rc = args.func(args)
        return int(rc or 0)
    except (CryomatError, ValueError, TypeError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
            FileExistsError, PermissionError) as exc:
        if debug:
            raise
        msg = str(exc) or type(exc).__name__
        if isinstance(exc, OSError) and getattr(exc, "filename", None):
            msg = f"{exc.filename}: {exc.strerror}"
        msg = " ".join(msg.split())  # one line, whatever the library wrote
        print(f"cryomat {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cryomat {args.command}: interrupted; finished outputs are complete, nothing half-written was kept",
              file=sys.stderr)
        return 130
    except MemoryError:
        print(f"cryomat {args.command}: error: out of memory; try --bin or a smaller --tile", file=sys.stderr)
        return 1
    except Exception as exc:  # an internal failure: one line, traceback only with --debug
        if debug:
            raise
        print(f"cryomat {args.command}: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1
    finally:
        set_quiet(outer_quiet)


if __name__ == "__main__":
    sys.exit(main())
