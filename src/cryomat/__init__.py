"""cryomat: quantitative cryo-EM and cryo-STEM analysis of materials.

Functional core (plain functions on numpy arrays with explicit physical
parameters) behind a thin shell (:mod:`cryomat.io`, :mod:`cryomat.cli`,
:mod:`cryomat.report`, :mod:`cryomat.batch`). Lengths are in Angstrom,
fluence in e/A^2, voltages in kV, energies in eV.
"""

__version__ = "0.1.0"

from cryomat.errors import CryomatError, InputError  # noqa: E402

__all__ = ["__version__", "CryomatError", "InputError"]
