"""Ground-truth simulators. Each kind writes data plus ``truth.json`` into a folder.

Kinds register themselves with :func:`register` in their own module in this package and
are found automatically (``cryomat simulate --list``). Image formation is shared in
:mod:`cryomat.simulate.physics`: weak-phase objects, the CTF at a given voltage, defocus
and Cs, amorphous backgrounds, Poisson shot noise at a stated dose (e/A^2) and
counting/integrating detector models.
"""

from cryomat.simulate.registry import KINDS, Kind, get_kind, register, simulate

__all__ = ["KINDS", "Kind", "get_kind", "register", "simulate"]
