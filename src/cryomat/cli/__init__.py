"""The ``cryomat`` command. Each command lives in its own module ``cmd_<name>.py`` and is
found automatically: a module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``.
"""
