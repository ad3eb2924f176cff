"""3D segmentation and morphology: phases, components, volume, surface area, sphericity, distances.

Segmentation: Otsu / multi-Otsu thresholds on a lightly smoothed volume (Otsu 1979,
doi:10.1109/TSMC.1979.4310076; Liao et al. 2001 for the multi-level form), moved to the midpoint
between each phase's level and its surroundings' (Ridler & Calvard 1978), touching particles split
by a watershed on the distance map (Beucher & Meyer 1993). Surface areas come from marching cubes
(Lorensen & Cline 1987, doi:10.1145/37402.37422; Lewiner et al. 2003) on each component;
sphericity is ``pi^(1/3) (6 V)^(2/3) / A`` (Wadell 1935, doi:10.1086/624298).
"""

from __future__ import annotations

import numpy as np


def segment_phases(volume, *, n_phases: int = 1, smooth_sigma: float = 0.5, method: str = "edge") -> np.ndarray:
    """Phase labels (uint8): 0 background, 1..n_phases in order of increasing intensity.

    Parameters
    ----------
    volume : (z, row, col) reconstruction (denser phases brighter).
    n_phases : number of phases besides the background (1: Otsu, more: multi-Otsu).
    smooth_sigma : Gaussian smoothing (voxels) before thresholding, against noise.
    method : how the object voxels are split into ``n_phases``: ``"otsu"`` - multi-Otsu among the
        voxels above the object threshold; ``"edge"`` (default) - multi-Otsu among all voxels above the
        background noise, each threshold then moved to the midpoint between its phase's level and that
        of the phase's surroundings (:func:`_edge_midpoint`). Next to a thin coating, or at the
        missing-wedge caps of a support, the surroundings are darker than the next phase's own level and
        Otsu's class split lands inside the phase (measured support Dice 0.78-0.81 -> 0.91-0.93 on the
        catalyst phantom from nonnegative SIRT at 50 counts/px).
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_multiotsu, threshold_otsu

    v = np.asarray(volume, np.float32)
    if v.ndim != 3:
        raise ValueError(f"volume must be 3D, got shape {v.shape}")
    if n_phases < 1:
        raise ValueError(f"n_phases must be >= 1, got {n_phases}")
    s = ndi.gaussian_filter(v, smooth_sigma) if smooth_sigma > 0 else v
    # tomograms of materials are mostly empty: Otsu on the whole histogram splits background noise.
    # The background level and noise come from the median and MAD; the object threshold is Otsu's
    # but never inside the background noise (median + 4 sigma); further phases are split by
    # multi-Otsu (see ``method``).
    sub = s[::2, ::2, ::2].ravel()
    med = float(np.median(sub))
    sig = 1.4826 * float(np.median(np.abs(sub - med)))
    t0 = max(float(threshold_otsu(sub)), med + 4.0 * sig)
    if method not in ("otsu", "edge"):
        raise ValueError(f"method must be 'otsu' or 'edge', got {method!r}")
    th = [t0]
    if n_phases > 1:
        # "edge": the classes are split among all voxels above the background noise, so that a thin,
        # faint layer (a coating partly below t0) still forms its own class
        obj = s[s > (med + 4.0 * sig if method == "edge" else t0)]
        if obj.size > 10 * n_phases:
            th += list(threshold_multiotsu(obj, classes=n_phases))
            if method == "edge":
                th = [t0] + sorted(max(_edge_midpoint(s, t), t0) for t in th[1:])
    return np.digitize(s, th).astype(np.uint8)


def _edge_midpoint(s, t, *, shell: int = 2, iterations: int = 6) -> float:
    """Threshold of a phase at the midpoint between its own level (median inside) and the mean level of
    the ``shell``-voxel layer around it, iterated (the iterative-selection idea of Ridler & Calvard 1978,
    doi:10.1109/TSMC.1978.4310039, with the spatial neighbours of the boundary as the lower class).
    Next to a thin coating or at a blurred missing-wedge cap the surroundings are darker than the
    neighbouring phase's own level, and the boundary of a blurred step lies half way up it."""
    from scipy import ndimage as ndi

    for _ in range(iterations):
        a = s > t
        if a.sum() < 8:
            break
        ring = ndi.binary_dilation(a, iterations=shell) & ~a
        if not ring.any():
            break
        t_new = 0.5 * (float(np.median(s[a])) + float(np.mean(s[ring])))
        if abs(t_new - t) < 1e-4 * max(abs(t), 1e-6):
            t = t_new
            break
        t = t_new
    return float(t)


def split_components(mask, *, min_distance: int = 2, watershed: bool = True) -> np.ndarray:
    """Label connected components (int32), splitting touching blobs by a distance-map watershed."""
    from scipy import ndimage as ndi

    m = np.asarray(mask, bool)
    if not watershed:
        return ndi.label(m)[0].astype(np.int32)
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed as ws

    d = ndi.distance_transform_edt(m)
    cc, _ = ndi.label(m)
    peaks = peak_local_max(d, min_distance=max(1, int(min_distance)), labels=cc, exclude_border=False)
    markers = np.zeros(m.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    # components without a peak keep their own label
    lab = ws(-d, markers, mask=m).astype(np.int32)
    missing = m & (lab == 0)
    if missing.any():
        extra, n = ndi.label(missing)
        lab[missing] = extra[missing] + lab.max()
    return lab


def surface_area(mask_crop, *, voxel_size: float = 1.0, smooth_sigma: float | None = None) -> float:
    """Surface area of a binary object by marching cubes at the 0.5 level (unit: voxel_size^2).

    ``smooth_sigma`` (voxels) defaults to 0.6 for objects of equivalent radius >= 4 voxels and 0.4
    below (digital balls: area within ~3 % for radii >= 4 voxels, ~10 % for radii 2-3).
    """
    from skimage.measure import marching_cubes, mesh_surface_area

    from scipy import ndimage as ndi

    p = np.pad(np.asarray(mask_crop, np.float32), 3)
    if p.max() <= 0:
        return 0.0
    if smooth_sigma is None:
        r_eq = (3 * p.sum() / (4 * np.pi)) ** (1 / 3)
        smooth_sigma = 0.6 if r_eq >= 4 else 0.4
    # a light Gaussian before the 0.5 iso-surface removes most of the staircase of a binary mask
    # (which alone over-estimates the area of a ball by ~10 %) while keeping the enclosed volume
    p = ndi.gaussian_filter(p, smooth_sigma) if smooth_sigma > 0 else p
    if p.max() <= 0.5:
        p = p / p.max() * 0.75  # objects thinner than the filter: keep a surface
    verts, faces, *_ = marching_cubes(p, 0.5, spacing=(voxel_size,) * 3)
    return float(mesh_surface_area(verts, faces))


def component_table(labels, *, voxel_size: float = 1.0, phase=None, unit: str = "nm"):
    """Per-component measures: volume, surface area, sphericity, equivalent diameter, centroid.

    Parameters
    ----------
    labels : int (z, row, col) component labels (0 background).
    voxel_size : length per voxel in ``unit``.
    phase : optional phase-label volume; the phase of each component is reported.
    """
    import pandas as pd
    from scipy import ndimage as ndi

    lab = np.asarray(labels)
    objs = ndi.find_objects(lab)
    rows = []
    for i, sl in enumerate(objs, start=1):
        if sl is None:
            continue
        m = lab[sl] == i
        nvox = int(m.sum())
        vol = nvox * voxel_size ** 3
        area = surface_area(m, voxel_size=voxel_size)
        sph = float(np.pi ** (1 / 3) * (6 * vol) ** (2 / 3) / area) if area > 0 else float("nan")
        c = np.array(ndi.center_of_mass(m)) + [s.start for s in sl]
        row = {"label": i, "voxels": nvox, f"volume_{unit}3": vol, f"surface_area_{unit}2": area, "sphericity": sph,
               f"equivalent_diameter_{unit}": (6 * vol / np.pi) ** (1 / 3), "z_px": c[0], "row_px": c[1],
               "col_px": c[2]}
        if phase is not None:
            vals = np.asarray(phase)[sl][m]
            row["phase"] = int(np.bincount(vals).argmax())
        rows.append(row)
    return pd.DataFrame(rows)


def phase_fractions(phase) -> dict:
    """Volume fraction of every phase label (including 0, the background)."""
    p = np.asarray(phase)
    counts = np.bincount(p.ravel())
    return {int(k): float(c / p.size) for k, c in enumerate(counts) if c}


def distance_to_phase(labels, target_mask, *, voxel_size: float = 1.0) -> np.ndarray:
    """Shortest distance (voxel_size units) from each component of ``labels`` to ``target_mask``
    (0 where they touch); index ``i - 1`` is component ``i``."""
    from scipy import ndimage as ndi

    t = np.asarray(target_mask, bool)
    if not t.any():
        return np.full(int(np.max(labels)), np.nan)
    d = ndi.distance_transform_edt(~t) * voxel_size
    lab = np.asarray(labels)
    n = int(lab.max())
    out = ndi.minimum(d, lab, index=np.arange(1, n + 1))
    # a component touching the target has a face neighbour at distance 1 voxel: surface gap 0
    return np.maximum(np.asarray(out, float) - voxel_size, 0.0)


def dice(a, b) -> float:
    """Dice overlap of two boolean volumes."""
    a = np.asarray(a, bool)
    b = np.asarray(b, bool)
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else 1.0
