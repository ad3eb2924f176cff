"""In-plane transforms of tilt images: shifts and tilt-axis rotation, applied and undone.

Model of a raw image ``J`` of tilt ``i`` (``(row, col)`` coordinates, centre ``c = (n - 1) / 2``):
the ideal projection ``P`` (tilt axis along ``row``) rotated counter-clockwise as displayed (row 0
at the top) by the tilt-axis angle ``psi`` about the centre, then moved by ``s_i = (drow, dcol)``::

    J(r) = P(R(-psi) (r - c - s_i) + c),   R(a) = [[cos a, -sin a], [sin a, cos a]]

``psi`` is therefore the direction of the tilt axis in the raw image, measured from the row axis,
counter-clockwise as displayed; ``s_i`` is where the content went. :func:`align_stack` undoes it.
"""

from __future__ import annotations

import numpy as np


def rotation(psi_deg: float) -> np.ndarray:
    """2x2 rotation acting on (row, col) vectors, counter-clockwise as displayed (row 0 at top)."""
    a = np.deg2rad(psi_deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def _centre(shape):
    return (np.asarray(shape[-2:], float) - 1.0) / 2.0


def misalign_image(image, *, shift=(0.0, 0.0), psi_deg: float = 0.0, order: int = 3, mode: str = "nearest"):
    """Apply the model: rotate the content by ``psi_deg`` about the centre, then move it by ``shift``."""
    from scipy import ndimage as ndi

    c = _centre(np.shape(image))
    m = rotation(-psi_deg)
    offset = c - m @ (c + np.asarray(shift, float))
    return ndi.affine_transform(np.asarray(image, np.float32), m, offset=offset, order=order, mode=mode)


def align_image(image, *, shift=(0.0, 0.0), psi_deg: float = 0.0, order: int = 3, mode: str = "nearest",
                stretch: float = 1.0):
    """Undo the model: ``P(r) = J(R(psi) (r - c) + c + s)``; ``stretch`` scales ``col`` about the centre.

    ``stretch`` != 1 multiplies column distances from the centre of the output by ``stretch`` before
    sampling (used for cosine stretching in the coarse alignment).
    """
    from scipy import ndimage as ndi

    c = _centre(np.shape(image))
    m = rotation(psi_deg) @ np.diag([1.0, float(stretch)])
    offset = c + np.asarray(shift, float) - m @ c
    return ndi.affine_transform(np.asarray(image, np.float32), m, offset=offset, order=order, mode=mode)


def align_stack(stack, *, shifts, psi_deg: float = 0.0, order: int = 3, mode: str = "nearest", progress_desc=None):
    """Aligned copy (float32) of a tilt series: every image through :func:`align_image`.

    Parameters
    ----------
    stack : (tilt, row, col).
    shifts : (tilt, 2) content displacement (drow, dcol) in pixels per tilt.
    psi_deg : tilt-axis direction in the raw images (deg from the row axis, counter-clockwise).
    """
    from cryomat.progress import progress

    shifts = np.asarray(shifts, float).reshape(-1, 2)
    if shifts.shape[0] != np.shape(stack)[0]:
        raise ValueError(f"{shifts.shape[0]} shifts for {np.shape(stack)[0]} tilts")
    out = np.empty(np.shape(stack), np.float32)
    it = range(out.shape[0])
    if progress_desc:
        it = progress(it, total=out.shape[0], desc=progress_desc)
    for i in it:
        out[i] = align_image(stack[i], shift=shifts[i], psi_deg=psi_deg, order=order, mode=mode)
    return out
