"""Pick imaging targets: the best scores, spread out so that beam footprints never overlap."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def select_targets(score, *, count: int, min_spacing_px: float, footprint_radius_px: float,
                   exclude=None) -> np.ndarray:
    """Greedy non-maximum suppression on a score map.

    A pixel is eligible when the whole footprint (a disc of ``footprint_radius_px``) lies inside
    the image and outside ``exclude``. Each pick forbids every pixel closer than
    ``min_spacing_px``, so no two targets are closer than that (use at least the beam
    diameter: no pre-exposure of one target by another).

    Returns
    -------
    (n, 3) array of row, col, score, best first; fewer than ``count`` when the map runs out.
    """
    s = np.asarray(score, dtype=np.float64).copy()
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if min_spacing_px <= 0:
        raise ValueError(f"min_spacing_px must be positive, got {min_spacing_px}")
    ok = np.ones(s.shape, bool) if exclude is None else ~np.asarray(exclude, bool)
    # distance from every pixel to the nearest excluded pixel or the image edge
    padded = np.pad(ok, 1, constant_values=False)
    dist = ndi.distance_transform_edt(padded)[1:-1, 1:-1]
    s[dist < footprint_radius_px] = -np.inf
    s[~np.isfinite(s)] = -np.inf
    rows, cols = np.indices(s.shape, sparse=True)
    picks = []
    for _ in range(count):
        k = int(np.argmax(s))
        r, c = divmod(k, s.shape[1])
        if not np.isfinite(s[r, c]):
            break
        picks.append((r, c, s[r, c]))
        rad = int(np.ceil(min_spacing_px))
        r1, r2 = max(0, r - rad), min(s.shape[0], r + rad + 1)
        c1, c2 = max(0, c - rad), min(s.shape[1], c + rad + 1)
        near = (rows[r1:r2] - r) ** 2 + (cols[:, c1:c2] - c) ** 2 < min_spacing_px**2
        sub = s[r1:r2, c1:c2]
        sub[near] = -np.inf
    return np.array(picks, dtype=float).reshape(-1, 3)
