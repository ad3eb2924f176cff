"""Length-unit conversion to Angstrom, the internal unit of cryomat."""

from __future__ import annotations

_TO_ANGSTROM = {
    "a": 1.0, "å": 1.0, "angstrom": 1.0, "angstroms": 1.0, "ang": 1.0, "\u212b": 1.0,
    "nm": 10.0, "n_m": 10.0, "nanometer": 10.0, "nanometers": 10.0, "nanometre": 10.0,
    "um": 1e4, "µm": 1e4, "μm": 1e4, "u_m": 1e4, "micron": 1e4, "microns": 1e4, "micrometer": 1e4,
    "mm": 1e7, "m": 1e10, "pm": 0.01,
}


def length_unit_factor(unit: str | None) -> float | None:
    """Factor that converts a length in ``unit`` to Angstrom; ``None`` if the unit is unknown."""
    if unit is None:
        return None
    key = str(unit).strip().lower().replace(" ", "")
    return _TO_ANGSTROM.get(key)


def to_angstrom(value: float, unit: str | None) -> float | None:
    """``value`` in ``unit`` converted to Angstrom, or ``None`` when the unit is unknown."""
    f = length_unit_factor(unit)
    return None if f is None else float(value) * f
