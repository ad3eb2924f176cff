"""The thin, calibrated container returned by :func:`cryomat.io.read`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Acquisition:
    """What is known about how the data were recorded. ``None`` means unknown.

    Attributes
    ----------
    voltage_kV : acceleration voltage (kV).
    dose_per_frame_e_per_A2 : fluence per frame (e/A^2).
    frame_time_s : exposure time per frame (s).
    tilt_angles_deg : one tilt angle per frame/tilt (deg).
    energy_axis_eV : energy of each channel (eV), for spectra.
    timestamp : acquisition time as ISO 8601 text.
    """

    voltage_kV: float | None = None
    dose_per_frame_e_per_A2: float | None = None
    frame_time_s: float | None = None
    tilt_angles_deg: tuple[float, ...] | None = None
    energy_axis_eV: np.ndarray | None = field(default=None, compare=False)
    timestamp: str | None = None

    def replace(self, **changes: Any) -> "Acquisition":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "energy_axis_eV" and v is not None:
                v = {"start_eV": float(v[0]), "step_eV": float(v[1] - v[0]) if len(v) > 1 else 0.0,
                     "channels": int(len(v))}
            elif isinstance(v, tuple):
                v = list(v)
            d[f.name] = v
        return d


@dataclass(frozen=True)
class EMImage:
    """An array plus its calibration.

    Attributes
    ----------
    data : numpy or dask array, numpy axis order (frame/tilt first, then row, col;
        spectrum images are (row, col, energy)).
    axes : names of the axes, e.g. ``("frame", "row", "col")``, ``("row", "col", "energy")``.
    pixel_size : pixel size in Angstrom, or ``None`` when the file does not say.
    acquisition : :class:`Acquisition`.
    source : path of the file it came from.
    original_metadata : the file's own metadata, untouched.
    """

    data: Any
    axes: tuple[str, ...]
    pixel_size: float | None = None
    acquisition: Acquisition = field(default_factory=Acquisition)
    source: str | None = None
    original_metadata: dict = field(default_factory=dict, compare=False, repr=False)
    signal: str = "image"

    def __post_init__(self):
        if len(self.axes) != np.ndim(self.data):
            raise ValueError(f"axes {self.axes} do not match data with {np.ndim(self.data)} dimensions")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def replace(self, **changes: Any) -> "EMImage":
        return dataclasses.replace(self, **changes)

    def require_pixel_size(self, override: float | None = None) -> float:
        """Pixel size in A: ``override`` if given, else the file's; a clear error if neither."""
        from cryomat.errors import InputError

        px = override if override is not None else self.pixel_size
        if px is None:
            raise InputError("the file gives no pixel size; pass --pixel-size in Angstrom", path=self.source)
        if not np.isfinite(px) or px <= 0:
            raise InputError(f"pixel size must be a positive number of Angstrom, got {px!r}", path=self.source)
        return float(px)

    def describe(self) -> dict:
        """A JSON-ready summary (what ``cryomat info`` prints)."""
        return {
            "source": self.source,
            "signal": self.signal,
            "shape": list(self.shape),
            "axes": list(self.axes),
            "dtype": str(self.data.dtype),
            "pixel_size_A": self.pixel_size,
            "acquisition": self.acquisition.to_dict(),
        }
