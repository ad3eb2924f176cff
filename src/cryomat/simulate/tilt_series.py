"""Simulator kind ``tilt_series``: a tilt series of a 3D phantom with known misalignment and dose.

Phantoms (:mod:`cryomat.tomography.phantoms`): ``"particles"`` - spherical particles (Pt-like,
density 5) half sunk into a wavy support slab (carbon-like, density 1) under a thin coating
(ionomer-like, density 0.5); ``"network"`` - a crumple network of tubes with thicker junctions
and a known graph. Projections are line integrals of a phantom built on a 2x finer grid and
binned (so the reconstruction's projector is not the simulator's), over a limited tilt range
(missing wedge), then each image is rotated by the tilt-axis error and moved by a known shift
(geometry in :mod:`cryomat.tomography.transforms`). With ``counts_per_px`` set, images are
Poisson counts whose mean over the series is ``counts_per_px`` (a linear, HAADF-like signal).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryomat.simulate.registry import register


def simulate_tilt_series(*, phantom: str = "particles", size: int = 128, depth: int | None = None,
                         n_tilts: int = 61, max_tilt_deg: float = 60.0, shift_sigma_px: float = 0.0,
                         tilt_axis_error_deg: float = 0.0, counts_per_px: float | None = None,
                         oversample: int = 2, rng=None, **layout_kw) -> dict:
    """Arrays and truth of a simulated tilt series (see module docstring).

    Returns
    -------
    dict with ``stack`` (tilt, row, col) float32, ``ideal`` (noise- and shift-free aligned
    projections), ``angles_deg``, ``shifts_px`` (tilt, 2), ``tilt_axis_deg``, ``volume``
    (density at 1x, (z, row, col)), ``labels`` (uint8, or the network mask), ``layout``.
    """
    from cryomat.tomography import phantoms
    from cryomat.tomography.projector import forward_project
    from cryomat.tomography.transforms import misalign_image

    rng = np.random.default_rng(rng)
    if size < 16:
        raise ValueError(f"size must be >= 16 voxels, got {size}")
    if n_tilts < 2 or not 0 < max_tilt_deg <= 90:
        raise ValueError(f"need n_tilts >= 2 and 0 < max_tilt_deg <= 90, got {n_tilts}, {max_tilt_deg}")
    shape = (int(depth or size), int(size), int(size))
    s = int(oversample)
    if phantom == "particles":
        layout = phantoms.particles_layout(shape, rng=rng, **layout_kw)
        fine = phantoms.density_from_labels(phantoms.particles_labels(layout, scale=s))
        labels = phantoms.particles_labels(layout, scale=1)
    elif phantom == "network":
        layout = phantoms.network_layout(shape, rng=rng, **layout_kw)
        fine = phantoms.network_mask(layout, scale=s).astype(np.float32) * phantoms.DENSITY["network"]
        labels = phantoms.network_mask(layout, scale=1).astype(np.uint8)
    else:
        raise ValueError(f"phantom must be 'particles' or 'network', got {phantom!r}")
    volume = phantoms.block_mean(fine, s)
    angles = np.linspace(-max_tilt_deg, max_tilt_deg, int(n_tilts))
    pf = forward_project(fine, angles)  # line integrals in fine-voxel units
    n_a = angles.size
    ideal = pf.reshape(n_a, shape[1], s, shape[2], s).mean(axis=(2, 4)) / s
    shifts = rng.normal(0.0, shift_sigma_px, size=(n_a, 2)) if shift_sigma_px > 0 else np.zeros((n_a, 2))
    if shift_sigma_px > 0:
        shifts -= shifts[np.argmin(np.abs(angles))]  # the zero tilt is the reference
    stack = np.empty_like(ideal)
    for i in range(n_a):
        if shift_sigma_px > 0 or tilt_axis_error_deg != 0:
            stack[i] = misalign_image(ideal[i], shift=shifts[i], psi_deg=tilt_axis_error_deg)
        else:
            stack[i] = ideal[i]
    if counts_per_px is not None:
        if counts_per_px <= 0:
            raise ValueError(f"counts_per_px must be > 0, got {counts_per_px}")
        scale = counts_per_px / max(float(ideal.mean()), 1e-12)
        stack = rng.poisson(np.clip(stack, 0, None) * scale).astype(np.float32)
    return {"stack": stack.astype(np.float32), "ideal": ideal.astype(np.float32), "angles_deg": angles,
            "shifts_px": shifts, "tilt_axis_deg": float(tilt_axis_error_deg), "volume": volume,
            "labels": labels, "layout": layout}


@register("tilt_series")
def write(out: Path, *, seed: int, phantom: str = "particles", size: int = 128, depth: int | None = None,
          n_tilts: int = 61, max_tilt_deg: float = 60.0, shift_sigma_px: float = 2.0,
          tilt_axis_error_deg: float = 1.0, counts_per_px: float | None = 50.0, pixel_size_A: float = 5.0) -> dict:
    """Cryo-ET tilt series of a 3D phantom (particles on a coated support, or a crumple network)."""
    from cryomat.io import write_mrc, write_tlt

    sim = simulate_tilt_series(phantom=phantom, size=size, depth=depth, n_tilts=n_tilts, max_tilt_deg=max_tilt_deg,
                               shift_sigma_px=shift_sigma_px, tilt_axis_error_deg=tilt_axis_error_deg,
                               counts_per_px=counts_per_px, rng=seed)
    out = Path(out)
    write_mrc(out / "tilt_series.mrc", sim["stack"], pixel_size=pixel_size_A)
    write_tlt(out / "tilt_series.rawtlt", sim["angles_deg"])
    write_mrc(out / "phantom.mrc", sim["volume"], pixel_size=pixel_size_A, volume=True)
    write_mrc(out / "labels.mrc", sim["labels"].astype(np.int8), pixel_size=pixel_size_A, volume=True)
    return {"files": {"tilt_series": "tilt_series.mrc", "angles": "tilt_series.rawtlt", "phantom": "phantom.mrc",
                      "labels": "labels.mrc"},
            "pixel_size_A": pixel_size_A, "angles_deg": sim["angles_deg"].tolist(),
            "shifts_px": sim["shifts_px"].tolist(), "shift_convention": "content displacement (row, col) px",
            "tilt_axis_deg": sim["tilt_axis_deg"],
            "tilt_axis_convention": "axis direction in the raw images, deg from the row axis, counter-clockwise "
                                    "as displayed with row 0 at the top",
            "layout": sim["layout"]}
