"""Analyse a low-magnification atlas and rank imaging targets.

The atlas is flat-fielded through its thickness map (t/lambda = ln(I0/I) minus the smooth film
thickness), objects are segmented with :func:`cryomat.segmentation.segment_particles` and
described with :func:`cryomat.measure.particle_table`, and every pixel gets a score for the
wanted feature within one field of view. :func:`select_targets` then spreads the targets out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from cryomat.targeting import features as F
from cryomat.targeting.select import select_targets

WANTS = ("particles", "crystalline", "thin-ice", "edges")
# morphology classes from shape descriptors (aliases map the simulator's names)
CLASS_ALIASES = {"sphere": "round", "spheres": "round", "round": "round", "rod": "elongated", "rods": "elongated",
                 "elongated": "elongated", "fibre": "elongated", "fiber": "elongated", "irregular": "irregular"}


def classify_objects(table: pd.DataFrame, *, elongated_aspect: float = 2.0, irregular_solidity: float = 0.8) -> pd.Series:
    """Morphology class per object from descriptors: ``elongated`` (aspect ratio >= 2),
    ``irregular`` (solidity < 0.8, e.g. aggregates), else ``round``."""
    if table.empty:
        return pd.Series([], dtype=object)
    cls = np.where(table["aspect_ratio"] >= elongated_aspect, "elongated",
                   np.where(table["solidity"] < irregular_solidity, "irregular", "round"))
    return pd.Series(cls, index=table.index)


def _object_table(labels, image, *, pixel_size: float) -> pd.DataFrame:
    """Centroid, size and moment-based shape of each object. Atlas objects span a few pixels, where
    second-moment ellipses describe elongation as well as exact contours do (the exact descriptors of
    :func:`cryomat.measure.particle_table` cost ~10 ms per object, too slow for 10^4 objects)."""
    from skimage.measure import regionprops_table

    props = regionprops_table(labels, intensity_image=image, properties=(
        "label", "centroid", "area", "major_axis_length", "minor_axis_length", "solidity", "intensity_mean"))
    t = pd.DataFrame(props)
    px_nm = pixel_size / 10.0
    return pd.DataFrame({
        "label": t["label"].astype(int),
        "centroid_row_px": t["centroid-0"], "centroid_col_px": t["centroid-1"],
        "area_px": t["area"].astype(int), "area_nm2": t["area"] * px_nm**2,
        "equivalent_diameter_nm": np.sqrt(4 * t["area"] / np.pi) * px_nm,
        "major_axis_nm": t["major_axis_length"] * px_nm, "minor_axis_nm": t["minor_axis_length"] * px_nm,
        "aspect_ratio": t["major_axis_length"] / np.maximum(t["minor_axis_length"], 1e-6),
        "solidity": t["solidity"], "mean_intensity": t["intensity_mean"],
    })


@dataclass
class AtlasAnalysis:
    pixel_size_A: float
    reference_counts: float
    t_over_lambda: np.ndarray
    film_t_over_lambda: np.ndarray
    exclude: np.ndarray
    objects: pd.DataFrame
    crystallinity: np.ndarray | None = None


def analyse_atlas(image, *, pixel_size: float, reference_counts: float | None = None,
                  dose_e_per_A2: float | None = None, fov_px: float = 100.0, max_t_over_lambda: float = 2.0,
                  crystallinity: bool = False, segment_method: str = "classical",
                  min_size_nm: float | None = None) -> AtlasAnalysis:
    """Feature maps and the object table of an atlas (2D counts, pixel size in A).

    ``min_size_nm``: smallest equivalent diameter of an object (default 5 atlas pixels: smaller
    blobs at atlas magnification are noise, not particles one could select).
    """
    from cryomat.segmentation import segment_particles

    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"the atlas must be a 2D image, got shape {img.shape}")
    i0 = float(reference_counts) if reference_counts else F.estimate_reference(img)
    t = F.thickness_map(img, reference_counts=i0, smooth_px=0.7)
    exclude = F.exclusion_mask(t, max_t_over_lambda=max_t_over_lambda)
    film = F.background_thickness(t, exclude, scale_px=max(16.0, fov_px / 2))
    # flat-field that keeps the noise uniform: local z-score against the film's own Poisson level,
    # mapped back to counts at I0 (particle SNR is preserved, thick areas do not amplify noise)
    bg = i0 * np.exp(-film)
    flat = i0 + (img - bg) / np.sqrt(np.clip(bg, 1e-6, None)) * np.sqrt(i0)
    flat = np.where(exclude, i0, flat).astype(np.float32)
    if min_size_nm is None:
        min_size_nm = 5.0 * pixel_size / 10.0
    labels = segment_particles(flat, pixel_size=pixel_size, dose_e_per_A2=None, method=segment_method,
                               polarity="dark", min_size_nm=min_size_nm, split_touching=True)
    objects = _object_table(labels, flat, pixel_size=pixel_size)
    if not objects.empty:
        rr = np.clip(objects["centroid_row_px"].round().astype(int), 0, img.shape[0] - 1)
        cc = np.clip(objects["centroid_col_px"].round().astype(int), 0, img.shape[1] - 1)
        objects = objects[~exclude[rr, cc]].reset_index(drop=True)
        objects["morphology"] = classify_objects(objects).to_numpy()
    else:
        objects["morphology"] = pd.Series(dtype=object)
    cry = F.crystallinity_map(img) if crystallinity else None
    return AtlasAnalysis(pixel_size_A=float(pixel_size), reference_counts=i0, t_over_lambda=t,
                         film_t_over_lambda=film, exclude=exclude, objects=objects, crystallinity=cry)


def score_map(a: AtlasAnalysis, *, want: str, fov_px: float, thickness_range=(0.02, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """(score, wanted-object density per um^2) for ``want``: particles, crystalline, thin-ice,
    edges, or a morphology class (round, elongated, irregular; sphere/rod as aliases)."""
    shape = a.t_over_lambda.shape
    objs = a.objects
    if want in WANTS:
        sel = objs
    else:
        cls = CLASS_ALIASES.get(want.lower())
        if cls is None:
            raise ValueError(f"--want must be one of {', '.join(WANTS)} or a class "
                             f"({', '.join(sorted(CLASS_ALIASES))}), got {want!r}")
        sel = objs[objs["morphology"] == cls] if not objs.empty else objs
    pts = sel[["centroid_row_px", "centroid_col_px"]].to_numpy() if not sel.empty else np.zeros((0, 2))
    density = F.density_map(pts, shape, window_px=fov_px, pixel_size_A=a.pixel_size_A)
    film = a.film_t_over_lambda
    lo, hi = thickness_range
    # thickness acceptance: 1 inside the range, falling off smoothly outside
    over = np.clip(film - hi, 0, None) / 0.1
    under = np.clip(lo - film, 0, None) / 0.02
    accept = np.exp(-(over**2) - under**2)
    if want == "thin-ice":
        score = accept * (1.0 - np.clip(film / max(hi, 1e-6), 0, 1)) + 1e-3 * accept
    elif want == "crystalline":
        cry = a.crystallinity if a.crystallinity is not None else np.zeros(shape)
        score = ndi.uniform_filter(cry, int(fov_px)) * accept
    elif want == "edges":
        score = ndi.uniform_filter(F.edge_map(film), int(fov_px)) * accept
    else:
        score = density * accept
    return score, density


def rank_targets(a: AtlasAnalysis, *, want: str, fov_px: float, count: int, min_spacing_px: float,
                 min_objects: int = 0, thickness_range=(0.02, 1.0)) -> pd.DataFrame:
    """The top ``count`` targets as a table (pixel positions, score, objects in the field, reasons)."""
    score, density = score_map(a, want=want, fov_px=fov_px, thickness_range=thickness_range)
    area_um2 = (fov_px * a.pixel_size_A / 1e4) ** 2
    if min_objects and want not in ("thin-ice", "crystalline", "edges"):
        score = np.where(density * area_um2 >= min_objects - 0.5, score, -np.inf)
    radius = fov_px / np.sqrt(2.0)  # the beam must cover the square field: circle through its corners
    picks = select_targets(score, count=count, min_spacing_px=max(min_spacing_px, 2 * radius),
                           footprint_radius_px=radius, exclude=a.exclude)
    rows = []
    objs = a.objects
    half = fov_px / 2
    for k, (r, c, s) in enumerate(picks, 1):
        if objs.empty:
            inside = objs
        else:
            inside = objs[(np.abs(objs["centroid_row_px"] - r) <= half) & (np.abs(objs["centroid_col_px"] - c) <= half)]
        counts = inside["morphology"].value_counts().to_dict() if not inside.empty else {}
        t = float(a.film_t_over_lambda[int(r), int(c)])
        reason = [f"{len(inside)} objects in the field"]
        if counts:
            reason.append(", ".join(f"{n} {m}" for m, n in sorted(counts.items())))
        reason.append(f"film t/lambda {t:.2f}")
        rows.append({"target": k, "row_px": int(r), "col_px": int(c), "score": float(s), "n_objects": int(len(inside)),
                     "n_round": int(counts.get("round", 0)), "n_elongated": int(counts.get("elongated", 0)),
                     "n_irregular": int(counts.get("irregular", 0)), "film_t_over_lambda": t,
                     "reasons": "; ".join(reason)})
    return pd.DataFrame(rows, columns=["target", "row_px", "col_px", "score", "n_objects", "n_round", "n_elongated",
                                       "n_irregular", "film_t_over_lambda", "reasons"])
