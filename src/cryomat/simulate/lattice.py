"""Simulator kind ``lattice``: a crystalline domain of a library phase in an amorphous matrix.

The crystal's projected potential along a zone axis [uvw] is the Fourier sum over its
zero-order Laue zone,

    V_p(r) = t sum_g V_g exp(2 pi i g . r),   V_g = (h^2 / 2 pi m0 e) F_e(g) / Omega = 47.878 F_e(g) / Omega  [V],

with the kinematic electron structure factors F_e (A) of :mod:`cryomat.lattice.phases` and the
thickness t (A); the image is a weak-phase image under the CTF of :mod:`cryomat.simulate.physics`,
with an amorphous overlayer and Poisson noise at the stated dose.

References
----------
Kirkland, Advanced Computing in Electron Microscopy, 2nd ed. (2010), ch. 5, doi:10.1007/978-1-4419-6533-2.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cryomat.simulate import physics
from cryomat.simulate.registry import register

from cryomat.lattice.phases import VG_CONSTANT_V_A2, Phase, get_phase


def _spots(phase: Phase, zone_axis, *, pixel_size: float, rotation_deg: float, d_min: float | None):
    nyq = 0.5 / pixel_size
    dmin = max(d_min or 0.0, 1.0 / (0.95 * nyq), 0.3)
    pat = phase.zone_pattern(zone_axis, d_min=dmin, rotation_deg=rotation_deg)
    # image frame: kx along columns, ky along rows; keep spots inside the Nyquist square
    ok = (np.abs(pat.gx_per_A) < 0.95 * nyq) & (np.abs(pat.gy_per_A) < 0.95 * nyq)
    return pat[ok].reset_index(drop=True)


def crystal_potential(shape: tuple[int, int], *, pixel_size: float, phase: str | Phase, zone_axis=(0, 0, 1),
                      rotation_deg: float = 0.0, thickness_A: float = 50.0, origin_A: tuple[float, float] = (0.0, 0.0),
                      temperature_K: float | None = None, d_min: float | None = None,
                      strain: np.ndarray | None = None) -> np.ndarray:
    """Projected potential (V A) of a crystal seen down ``zone_axis``, filling a ``shape`` image.

    Parameters
    ----------
    shape : (rows, cols).
    pixel_size : A per pixel.
    phase : library name (see :func:`cryomat.lattice.list_phases`) or a :class:`~cryomat.lattice.Phase`.
    zone_axis : direct-lattice direction [uvw] along the beam.
    rotation_deg : in-plane rotation (counter-clockwise in (kx=col, ky=row) coordinates) of the
        pattern from the phase's reference frame (x along its longest-d strong spot).
    thickness_A : crystal thickness along the beam (A).
    origin_A : (row, col) position in A of the unit-cell origin.
    temperature_K : cell at this temperature (cryo cells from the library).
    d_min : smallest spacing (A) included; spots beyond 0.95 x Nyquist are always dropped so
        nothing aliases.
    strain : optional 2x2 matrix E; the lattice is deformed by (1 + E) in (kx, ky) = (col, row) order.

    Returns
    -------
    (rows, cols) float64 array in V A, mean = mean inner potential x thickness.
    """
    if len(shape) != 2 or min(shape) < 2:
        raise ValueError(f"shape must be (rows, cols), got {shape!r}")
    if not pixel_size or pixel_size <= 0:
        raise ValueError(f"pixel_size must be positive, got {pixel_size!r}")
    ph = get_phase(phase, temperature_K=temperature_K)
    pat = _spots(ph, zone_axis, pixel_size=pixel_size, rotation_deg=rotation_deg, d_min=d_min)
    hkl = pat[["h", "k", "l"]].to_numpy()
    f = ph.structure_factor(hkl) if len(hkl) else np.zeros(0, complex)
    f0 = ph.structure_factor([[0, 0, 0]])[0].real
    vg = VG_CONSTANT_V_A2 / ph.volume_A3 * thickness_A
    g = np.stack([pat.gx_per_A.to_numpy(), pat.gy_per_A.to_numpy()], axis=1)
    if strain is not None:
        # real-space deformation x' = (1+E) x maps reciprocal vectors g' = (1+E)^-T g
        g = g @ np.linalg.inv(np.eye(2) + np.asarray(strain, dtype=np.float64))
    cols = (np.arange(shape[1]) * pixel_size - origin_A[1])
    rows = (np.arange(shape[0]) * pixel_size - origin_A[0])
    e_col = np.exp(2j * np.pi * np.outer(g[:, 0], cols))  # (ng, ncol)
    e_row = np.exp(2j * np.pi * np.outer(g[:, 1], rows))  # (ng, nrow)
    # V_g is proportional to F(-g) = conj F(g) (atoms at +x_j): V(r) = sum_g conj(F_g) exp(2 pi i g.r)
    v = (e_row.T * (vg * np.conj(f))) @ e_col if len(f) else np.zeros(shape, complex)
    return np.real(v) + vg * f0


def lattice_image(shape: tuple[int, int], *, pixel_size: float, phase: str | Phase = "Li", zone_axis=(0, 0, 1),
                  rotation_deg: float = 0.0, thickness_A: float = 50.0, domain_radius_A: float | None = None,
                  domain_center_A: tuple[float, float] | None = None, amorphous_thickness_A: float = 100.0,
                  amorphous_ring_A: float = 3.7, voltage_kV: float = 300.0, defocus_A: float = 80.0,
                  cs_mm: float = 0.01, b_factor_A2: float = 10.0, dose_e_per_A2: float | None = 100.0,
                  temperature_K: float | None = None, rng: np.random.Generator | None = None,
                  domains: list[dict] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A weak-phase HRTEM image of a crystal domain in an amorphous matrix plus overlayer.

    ``domains`` (optional) replaces the single crystal by several: a list of dicts with ``phase``,
    ``zone_axis``, ``rotation_deg``, ``radius_A`` (None: the whole field) and ``center_A`` (row, col).

    Returns
    -------
    image : (rows, cols) float32; counts per pixel when ``dose_e_per_A2`` is given, else the
        noiseless relative intensity (mean about 1).
    mask : (rows, cols) float64 in [0, 1], the crystal's soft-edged footprint.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    # simulate on a padded field and crop, so the CTF's delocalisation does not wrap around
    # (a real crystal continues past the field of view; a periodic FFT field would not)
    kmax = min(0.5 / pixel_size, 1.0)
    lam = physics.electron_wavelength(voltage_kV)
    deloc_A = lam * abs(defocus_A) * kmax + cs_mm * 1e7 * lam**3 * kmax**3
    pad = int(min(max(16, np.ceil(deloc_A / pixel_size)), 256))
    big = (shape[0] + 2 * pad, shape[1] + 2 * pad)
    rr, ccol = np.mgrid[0:big[0], 0:big[1]] * pixel_size
    if domains is None:
        domains = [{"phase": phase, "zone_axis": zone_axis, "rotation_deg": rotation_deg, "radius_A": domain_radius_A,
                    "center_A": domain_center_A}]
    vp = np.zeros(big)
    mask = np.zeros(big)
    for dom in domains:
        vc = crystal_potential(big, pixel_size=pixel_size, phase=dom["phase"], zone_axis=dom.get("zone_axis", (0, 0, 1)),
                               rotation_deg=dom.get("rotation_deg", 0.0), thickness_A=thickness_A,
                               temperature_K=temperature_K, origin_A=tuple(rng.uniform(0, 5.0, 2)))
        if dom.get("radius_A") is None:
            m = np.ones(big)
        else:
            cr, cc = dom.get("center_A") or (shape[0] * pixel_size / 2, shape[1] * pixel_size / 2)
            dist = np.hypot(rr - cr - pad * pixel_size, ccol - cc - pad * pixel_size)
            m = 0.5 * (1 - np.tanh((dist - dom["radius_A"]) / 3.0))
        m = np.minimum(m, 1.0 - mask)  # domains do not overlap
        vp += m * vc
        mask += m
    # the matrix: amorphous material of the crystal's thickness around the domains
    va_matrix = _amorphous(big, pixel_size, rng, amorphous_ring_A, thickness_A)
    vp = vp + (1 - mask) * va_matrix
    if amorphous_thickness_A > 0:
        vp = vp + _amorphous(big, pixel_size, rng, amorphous_ring_A, amorphous_thickness_A)
    img = physics.weak_phase_image(vp, pixel_size=pixel_size, voltage_kV=voltage_kV, defocus_A=defocus_A,
                                   cs_mm=cs_mm, b_factor_A2=b_factor_A2)
    crop = (slice(pad, pad + shape[0]), slice(pad, pad + shape[1]))
    img, mask = img[crop], mask[crop]
    if dose_e_per_A2 is None:
        return img.astype(np.float32), mask
    return physics.shot_noise(img, dose_e_per_A2=dose_e_per_A2, pixel_size=pixel_size, rng=rng), mask


def _amorphous(shape, pixel_size, rng, ring_A, thickness_A):
    """Amorphous film potential whose fluctuation is counted on the molecular scale.

    :func:`physics.amorphous_potential` counts molecules per *pixel*, so its rms grows as
    1 / pixel_size although its power sits in the diffuse ring; at sub-A pixels that gives
    phase swings of ~1 rad. Here the rms is that of columns one half ring period wide
    (max(pixel_size, ring_A / 2)), which keeps the weak-phase approximation valid.
    """
    v = physics.amorphous_potential(shape, pixel_size=pixel_size, rng=rng, ring_A=ring_A, thickness_A=thickness_A)
    m = float(v.mean())
    return m + (v - m) * (pixel_size / max(pixel_size, ring_A / 2.0))


def random_zone_axis(phase: str | Phase, rng: np.random.Generator, *, d_min: float = 1.0) -> tuple[int, int, int]:
    """A random low-index zone axis of ``phase`` with at least four ZOLZ spots of d >= ``d_min``."""
    axes = get_phase(phase).zone_axes(max_index=2, d_min=d_min)
    return tuple(int(x) for x in axes[int(rng.integers(len(axes)))])


@register("lattice", help="crystal domain of a library phase at a known zone axis in an amorphous matrix (HRTEM)")
def write(out: Path, *, seed: int, phase: str = "Li", zone_axis: str | tuple = (0, 0, 1), rotation_deg: float | None = None,
          size: int = 256, pixel_size: float = 0.2, thickness_A: float = 50.0, domain_radius_A: float | None = None,
          amorphous_thickness_A: float = 100.0, dose_e_per_A2: float = 100.0, voltage_kV: float = 300.0,
          defocus_A: float = 80.0, cs_mm: float = 0.01, temperature_K: float | None = None) -> dict:
    """Write ``image.mrc`` (counts) and the truth: phase, zone axis, rotation and every ZOLZ spot."""
    from cryomat.io import write_mrc

    rng = np.random.default_rng(seed)
    ph = get_phase(phase, temperature_K=temperature_K)
    if isinstance(zone_axis, str):
        zone_axis = random_zone_axis(ph, rng, d_min=2.5 * pixel_size) if zone_axis == "random" else \
            tuple(int(x) for x in zone_axis.replace(",", " ").split())
    zone_axis = tuple(int(x) for x in zone_axis)
    rot = float(rng.uniform(0, 360)) if rotation_deg is None else float(rotation_deg)
    img, mask = lattice_image((size, size), pixel_size=pixel_size, phase=ph, zone_axis=zone_axis, rotation_deg=rot,
                              thickness_A=thickness_A, domain_radius_A=domain_radius_A,
                              amorphous_thickness_A=amorphous_thickness_A, dose_e_per_A2=dose_e_per_A2,
                              voltage_kV=voltage_kV, defocus_A=defocus_A, cs_mm=cs_mm, rng=rng)
    write_mrc(out / "image.mrc", img, pixel_size=pixel_size)
    pat = _spots(ph, zone_axis, pixel_size=pixel_size, rotation_deg=rot, d_min=None)
    spots = [{"hkl": [int(r.h), int(r.k), int(r.l)], "d_spacing_A": float(r.d_A), "kx_per_A": float(r.gx_per_A),
              "ky_per_A": float(r.gy_per_A), "F_abs_A": float(r.F_abs_A)} for r in pat.itertuples()]
    return {"image": "image.mrc", "phase": ph.name, "zone_axis": list(zone_axis), "rotation_deg": rot,
            "pixel_size_A": pixel_size, "cell_A_deg": list(ph.cell), "crystal_area_nm2": float(mask.sum()) * pixel_size**2 / 100,
            "axes_convention": "kx along image columns, ky along image rows, angle_deg = atan2(ky, kx)",
            "spots": spots}
