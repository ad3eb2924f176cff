"""The ``cryomat tomo`` workflow as one function on arrays: align, reconstruct, half-set FSC."""

from __future__ import annotations

import time

import numpy as np


def even_odd_fsc(stack, angles_deg, *, pixel_size: float, method: str = "wbp", iterations: int = 20,
                 thickness: int | None = None, max_size: int = 256, **recon_kw):
    """FSC of reconstructions from the even- and odd-numbered tilts (a half-set resolution estimate),
    over the central ``max_size``^3 voxels at most.

    Returns
    -------
    FRCResult (``freq_per_A`` in 1/A).
    """
    from cryomat.fourier import fourier_ring_correlation
    from cryomat.tomography.reconstruct import reconstruct

    # at most max_size^3 from the centre, so the check stays cheap for 1k^3 volumes
    n, ny, nx = stack.shape
    r0 = max(0, (ny - max_size) // 2)
    sub = stack[:, r0:r0 + min(ny, max_size)]
    ev = reconstruct(sub[0::2], angles_deg[0::2], method=method, iterations=iterations, thickness=thickness, **recon_kw)
    od = reconstruct(sub[1::2], angles_deg[1::2], method=method, iterations=iterations, thickness=thickness, **recon_kw)
    z0 = max(0, (ev.shape[0] - max_size) // 2)
    c0 = max(0, (nx - max_size) // 2)
    crop = (slice(z0, z0 + max_size), slice(None), slice(c0, c0 + max_size))
    ev, od = ev[crop], od[crop]
    # a soft-edged box so the volume edges do not dominate the high-frequency shells
    from cryomat.tomography.alignment import _taper

    nz, ny, nx = ev.shape
    w = _taper((nz, ny), 0.1)[:, :, None] * _taper((1, nx), 0.1)[0][None, None, :]
    return fourier_ring_correlation(ev * w, od * w, pixel_size=pixel_size)


def run_tomo(stack, angles_deg, *, pixel_size: float, psi_deg: float = 0.0, align: bool = True,
             refine_axis: bool = True, method: str = "wbp", iterations: int = 20, thickness: int | None = None,
             shifts_px=None, fsc: bool = True, search_axis: bool = False, nonnegative: bool = False) -> dict:
    """Align (optional) and reconstruct a tilt series; everything a report needs.

    Parameters
    ----------
    stack : (tilt, row, col) float32 raw tilt images (already binned).
    angles_deg : (tilt,) deg.
    pixel_size : A per pixel of ``stack``.
    psi_deg : starting tilt-axis direction (cryomat convention, deg).
    align, refine_axis : run the fiducial-less alignment / search the axis direction.
    method, iterations : ``"wbp"``, ``"sirt"`` or ``"sirt-fbp"``.
    thickness : volume depth in voxels (default: the width).
    shifts_px : known shifts (tilt, 2) to use instead of aligning.
    search_axis : the axis direction is unknown: search all directions first (5 deg steps).
    nonnegative : SIRT only: clip negative densities after each iteration (positive-contrast data,
        e.g. HAADF or mass-normalised counts; it suppresses missing-wedge streaks and elongation).

    Returns
    -------
    dict with ``volume``, ``aligned``, ``alignment`` (Alignment or None), ``shifts_px``, ``psi_deg``,
    ``fsc`` (FRCResult or None), ``timings_s``.
    """
    from cryomat.progress import status
    from cryomat.tomography.alignment import Alignment, align_tilt_series, find_axis_orientation
    from cryomat.tomography.reconstruct import reconstruct
    from cryomat.tomography.transforms import align_stack

    t = {}
    n, ny, nx = stack.shape
    T = int(thickness or nx)
    ali = None
    t0 = time.perf_counter()
    if shifts_px is not None:
        shifts = np.asarray(shifts_px, float)
        psi = float(psi_deg)
    elif align:
        rng_deg = 2.0
        if search_axis:
            status("tomo: searching the tilt-axis direction (no --tilt-axis and none in the metadata)")
            psi_deg, rng_deg = find_axis_orientation(stack, angles_deg), 5.0
        status(f"tomo: aligning {n} tilts of {ny} x {nx} px (cross-correlation, then projection matching)")
        ali = align_tilt_series(stack, angles_deg, psi_deg=psi_deg, refine_psi=refine_axis, psi_range_deg=rng_deg,
                                thickness=min(T, nx))
        shifts, psi = ali.shifts_px, ali.psi_deg
    else:
        shifts, psi = np.zeros((n, 2)), float(psi_deg)
    if ali is None:
        ali = Alignment(angles_deg=np.asarray(angles_deg, float), shifts_px=shifts, psi_deg=psi,
                        coarse_shifts_px=shifts, residual_px=np.full(n, np.nan), score=np.full(n, np.nan))
    t["alignment_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    aligned = align_stack(stack, shifts=shifts, psi_deg=psi)
    status(f"tomo: reconstructing {T} x {ny} x {nx} voxels by {method}")
    kw = {"nonnegative": True} if nonnegative and method == "sirt" else {}
    vol = reconstruct(aligned, angles_deg, method=method, iterations=iterations, thickness=T, **kw)
    t["reconstruction_s"] = time.perf_counter() - t0
    f = None
    if fsc and n >= 6:
        t0 = time.perf_counter()
        f = even_odd_fsc(aligned, np.asarray(angles_deg, float), pixel_size=pixel_size, method=method,
                         iterations=iterations, thickness=T, **kw)
        t["fsc_s"] = time.perf_counter() - t0
    return {"volume": vol, "aligned": aligned, "alignment": ali, "shifts_px": shifts, "psi_deg": psi, "fsc": f,
            "timings_s": t}


def orthoslices_figure(volume, *, pixel_size: float, title: str = ""):
    """Three central orthogonal slices (plan view z, and the two side views) as a matplotlib figure."""
    from cryomat.report.figures import new_figure, show_image

    nz, ny, nx = volume.shape
    fig, ax = new_figure(3, 1, size=3.6)
    show_image(ax[0, 0], volume[nz // 2], pixel_size=pixel_size, title=f"plan view (z = {nz // 2})")
    show_image(ax[0, 1], volume[:, ny // 2, :], pixel_size=pixel_size, title=f"side view across the axis (row {ny // 2})")
    show_image(ax[0, 2], volume[:, :, nx // 2], pixel_size=pixel_size, title=f"side view along the axis (col {nx // 2})")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
