"""Analyse a low-magnification atlas and rank imaging targets.

The atlas is flat-fielded through its thickness map (t/lambda = ln(I0/I) minus the smooth film
thickness), objects are segmented with :func:`cryomat.segmentation.segment_particles` and
described with :func:`cryomat.measure.particle_table`, and every pixel gets a score for the
wanted feature within one field of view. :func:`select_targets` then spreads the targets out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    """Feature maps on the analysis grid (the atlas binned by ``bin``; ``bin`` = 1 for atlases up to
    ``full_px`` on a side) and the objects of the segmented areas. Large atlases are segmented
    lazily, area by area (``segment_areas``), in the order of ``area_order`` (most object mass
    first), so only the areas that can hold targets cost full-resolution segmentation."""
    pixel_size_A: float
    reference_counts: float
    t_over_lambda: np.ndarray
    film_t_over_lambda: np.ndarray
    exclude: np.ndarray
    crystallinity: np.ndarray | None = None
    bin: int = 1
    shape: tuple = ()
    tile_px: int = 0
    margin_px: int = 0
    threads: int = 2
    area_order: list = field(default_factory=list)
    area_promise: dict = field(default_factory=dict)
    segmented: list = field(default_factory=list)
    _image: np.ndarray | None = field(default=None, repr=False)
    _seg_kw: dict = field(default_factory=dict, repr=False)
    _tables: list = field(default_factory=list, repr=False)
    _objects: pd.DataFrame | None = field(default=None, repr=False)

    def core_box(self, tile) -> tuple[int, int, int, int]:
        """Full-resolution (r0, r1, c0, c1) of a tile (row, col)."""
        i, j = tile
        t = self.tile_px
        return i * t, min(self.shape[0], (i + 1) * t), j * t, min(self.shape[1], (j + 1) * t)

    @property
    def pending(self) -> list:
        done = set(self.segmented)
        return [t for t in self.area_order if t not in done]

    @property
    def segmented_fraction(self) -> float:
        n = sum((b[1] - b[0]) * (b[3] - b[2]) for b in map(self.core_box, self.segmented))
        return n / float(self.shape[0] * self.shape[1])

    def analysed_mask(self) -> np.ndarray:
        """Analysis-grid mask of the segmented tiles (targets may be centred there)."""
        m = np.zeros(self.exclude.shape, bool)
        for t in self.segmented:
            r0, r1, c0, c1 = self.core_box(t)
            b = self.bin
            m[r0 // b:-(-r1 // b), c0 // b:-(-c1 // b)] = True
        return m

    def segment_areas(self, tiles) -> None:
        """Segment these tiles (horizontal runs of adjacent tiles are segmented as one area)."""
        todo = sorted(set(tiles) - set(self.segmented))
        runs = []
        for t in todo:
            if runs and runs[-1][-1] == (t[0], t[1] - 1):
                runs[-1].append(t)
            else:
                runs.append([t])
        boxes = [self.core_box(run[0])[:3] + (self.core_box(run[-1])[3],) for run in runs]
        if len(boxes) > 1 and self.threads > 1:  # scipy/skimage release the GIL for most of the work
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(self.threads, len(boxes))) as ex:
                tables = list(ex.map(lambda bx: self._segment_box(*bx), boxes))
        else:
            tables = [self._segment_box(*bx) for bx in boxes]
        for run, bx, t in zip(runs, boxes, tables):
            self._tables.append((bx, t))
            self.segmented.extend(run)
        self._objects = None

    def _segment_box(self, r0, r1, c0, c1) -> pd.DataFrame:
        from cryomat.segmentation import segment_particles

        m, b = self.margin_px, self.bin
        R0, R1 = max(0, r0 - m), min(self.shape[0], r1 + m)
        C0, C1 = max(0, c0 - m), min(self.shape[1], c1 + m)
        img = np.asarray(self._image[R0:R1, C0:C1], np.float32)
        rr = np.arange(R0, R1)
        cc = np.arange(C0, C1)
        if b > 1:  # film and exclusion of the analysis grid, interpolated to the atlas pixels
            gr, gc = np.meshgrid((rr - (b - 1) / 2) / b, (cc - (b - 1) / 2) / b, indexing="ij")
            film = ndi.map_coordinates(self.film_t_over_lambda, [gr, gc], order=1, mode="nearest")
            excl = self.exclude[np.ix_(rr // b, cc // b)]
        else:
            film = self.film_t_over_lambda[R0:R1, C0:C1]
            excl = self.exclude[R0:R1, C0:C1]
        i0 = self.reference_counts
        # flat-field that keeps the noise uniform: local z-score against the film's own Poisson level,
        # mapped back to counts at I0 (particle SNR is preserved, thick areas do not amplify noise)
        bg = i0 * np.exp(-film)
        flat = i0 + (img - bg) / np.sqrt(np.clip(bg, 1e-6, None)) * np.sqrt(i0)
        # excluded areas get the film's noise (not a constant: the segmentation estimates its noise
        # level from the image, and a tile half covered by a bar would otherwise look noise-free)
        fill = i0 + np.sqrt(i0) * np.random.default_rng(R0 * 100003 + C0).standard_normal(flat.shape)
        flat = np.where(excl, fill, flat).astype(np.float32)
        labels = segment_particles(flat, **self._seg_kw)
        t = _object_table(labels, flat, pixel_size=self.pixel_size_A)
        if t.empty:
            return t
        t["centroid_row_px"] += R0
        t["centroid_col_px"] += C0
        rows = np.clip(t["centroid_row_px"].round().astype(int), 0, self.shape[0] - 1) // b
        cols = np.clip(t["centroid_col_px"].round().astype(int), 0, self.shape[1] - 1) // b
        return t[~self.exclude[rows, cols]].reset_index(drop=True)

    @property
    def objects(self) -> pd.DataFrame:
        """Objects of the segmented areas; an object seen by two areas belongs to the nearer core."""
        if self._objects is not None:
            return self._objects
        cols = ["label", "centroid_row_px", "centroid_col_px", "area_px", "area_nm2", "equivalent_diameter_nm",
                "major_axis_nm", "minor_axis_nm", "aspect_ratio", "solidity", "mean_intensity"]
        parts = [t for _, t in self._tables if not t.empty]
        if not parts:
            obj = pd.DataFrame(columns=cols)
            obj["morphology"] = pd.Series(dtype=object)
            self._objects = obj
            return obj
        boxes = np.array([b for b, t in self._tables if not t.empty], float)
        own = np.concatenate([np.full(len(t), k) for k, t in enumerate(parts)])
        obj = pd.concat(parts, ignore_index=True)
        if len(parts) > 1:
            r = obj["centroid_row_px"].to_numpy()[:, None]
            c = obj["centroid_col_px"].to_numpy()[:, None]
            dr = np.maximum(np.maximum(boxes[None, :, 0] - r, r - (boxes[None, :, 1] - 1)), 0)
            dc = np.maximum(np.maximum(boxes[None, :, 2] - c, c - (boxes[None, :, 3] - 1)), 0)
            obj = obj[np.argmin(np.maximum(dr, dc), axis=1) == own].reset_index(drop=True)
        obj["label"] = np.arange(1, len(obj) + 1)
        obj["morphology"] = classify_objects(obj).to_numpy()
        self._objects = obj
        return obj


def analyse_atlas(image, *, pixel_size: float, reference_counts: float | None = None,
                  dose_e_per_A2: float | None = None, fov_px: float = 100.0, max_t_over_lambda: float = 2.0,
                  crystallinity: bool = False, segment_method: str = "classical",
                  min_size_nm: float | None = None, full_px: int = 2048, bin: int | None = None,
                  tile_px: int | None = None, threads: int = 2) -> AtlasAnalysis:
    """Feature maps of an atlas (2D counts, pixel size in A); objects segmented now (atlases up
    to ``full_px`` on a side) or later, area by area, as :func:`rank_targets` needs them.

    Large atlases (coarse to fine): thickness, exclusion and film maps and a cheap object-mass map
    are computed on the atlas binned by ``bin`` (default: to <= ``full_px`` pixels, and >= 8
    binned pixels per field of view); tiles of ``tile_px`` (default 4 fields of view) are ranked
    by the best field-of-view object mass they hold.
    ``threads``: tiles segmented at once (the issue's budget is 2 cores).
    ``min_size_nm``: smallest equivalent diameter of an object (default 5 atlas pixels: smaller
    blobs at atlas magnification are noise, not particles one could select).
    """
    img = image if isinstance(image, np.ndarray) and image.dtype == np.float32 else np.asarray(image, np.float32)
    if img.ndim != 2:
        raise ValueError(f"the atlas must be a 2D image, got shape {img.shape}")
    large = max(img.shape) > full_px
    if bin is None:
        bin = max(1, min(int(np.ceil(max(img.shape) / full_px)), int(fov_px // 8))) if large else 1
    b = int(bin)
    small = F.block_mean(img, b)
    i0 = float(reference_counts) if reference_counts else F.estimate_reference(small)
    t = F.thickness_map(small, reference_counts=i0, smooth_px=0.7 if b == 1 else 0.0)
    exclude = F.exclusion_mask(t, max_t_over_lambda=max_t_over_lambda, grow_px=int(np.ceil(2 / b)),
                               min_area_px=30 / b**2)
    film = F.background_thickness(t, exclude, scale_px=max(16.0, fov_px / 2) / b)
    if min_size_nm is None:
        min_size_nm = 5.0 * pixel_size / 10.0
    cry = F.crystallinity_map(img, out_shape=t.shape) if crystallinity else None
    a = AtlasAnalysis(pixel_size_A=float(pixel_size), reference_counts=i0, t_over_lambda=t,
                      film_t_over_lambda=film, exclude=exclude, crystallinity=cry, bin=b, shape=img.shape, threads=threads,
                      _image=img, _seg_kw=dict(pixel_size=pixel_size, dose_e_per_A2=None, method=segment_method,
                                               polarity="dark", min_size_nm=min_size_nm, split_touching=True))
    if not large and tile_px is None:
        a.tile_px, a.margin_px = max(img.shape), 0
        a.area_order = [(0, 0)]
        a.segment_areas([(0, 0)])
        return a
    a.tile_px = int(tile_px or max(256, 4 * fov_px))
    a.margin_px = int(np.ceil(fov_px / 2)) + 32  # every field centred in a tile sees whole objects
    # promise of a tile: its best field-of-view mean object mass on acceptable film
    mass = F.excess_mass(t, film, exclude)
    w = max(1, int(round(fov_px / b)))
    promise = ndi.uniform_filter(mass, w) * _accept(film, (0.02, 1.0))
    nt = (-(-img.shape[0] // a.tile_px), -(-img.shape[1] // a.tile_px))
    for i in range(nt[0]):
        for j in range(nt[1]):
            r0, r1, c0, c1 = a.core_box((i, j))
            blk = promise[r0 // b:-(-r1 // b), c0 // b:-(-c1 // b)]
            a.area_promise[(i, j)] = float(blk.max()) if blk.size else 0.0
    a.area_order = sorted(a.area_promise, key=lambda k: -a.area_promise[k])
    return a


def _accept(film, thickness_range):
    """Thickness acceptance: 1 inside the range, falling off smoothly outside."""
    lo, hi = thickness_range
    over = np.clip(film - hi, 0, None) / 0.1
    under = np.clip(lo - film, 0, None) / 0.02
    return np.exp(-(over**2) - under**2)


def _wanted(objs: pd.DataFrame, want: str) -> pd.DataFrame:
    if want in WANTS:
        return objs
    cls = CLASS_ALIASES.get(want.lower())
    if cls is None:
        raise ValueError(f"--want must be one of {', '.join(WANTS)} or a class "
                         f"({', '.join(sorted(CLASS_ALIASES))}), got {want!r}")
    return objs[objs["morphology"] == cls] if not objs.empty else objs


def score_map(a: AtlasAnalysis, *, want: str, fov_px: float, thickness_range=(0.02, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """(score, wanted-object density per um^2) on the analysis grid for ``want``: particles,
    crystalline, thin-ice, edges, or a morphology class (round, elongated, irregular; sphere/rod
    as aliases). ``fov_px`` in atlas pixels."""
    b = a.bin
    shape = a.t_over_lambda.shape
    sel = _wanted(a.objects, want)
    pts = sel[["centroid_row_px", "centroid_col_px"]].to_numpy(float) / b if not sel.empty else np.zeros((0, 2))
    density = F.density_map(pts - (b - 1) / (2 * b), shape, window_px=fov_px / b, pixel_size_A=a.pixel_size_A * b)
    film = a.film_t_over_lambda
    accept = _accept(film, thickness_range)
    w = max(1, int(round(fov_px / b)))
    if want == "thin-ice":
        score = accept * (1.0 - np.clip(film / max(thickness_range[1], 1e-6), 0, 1)) + 1e-3 * accept
    elif want == "crystalline":
        cry = a.crystallinity if a.crystallinity is not None else np.zeros(shape)
        score = ndi.uniform_filter(cry, w) * accept
    elif want == "edges":
        score = ndi.uniform_filter(F.edge_map(film, sigma_px=3.0 / b), w) * accept
    else:
        score = density * accept
    return score, density


def _select(a: AtlasAnalysis, want, fov_px, count, min_spacing_px, min_objects, thickness_range):
    """Picks (row, col, score) on the analysis grid, within the segmented tiles for object wants."""
    b = a.bin
    score, density = score_map(a, want=want, fov_px=fov_px, thickness_range=thickness_range)
    area_um2 = (fov_px * a.pixel_size_A / 1e4) ** 2
    if min_objects and want not in OBJECT_FREE:
        score = np.where(density * area_um2 >= min_objects - 0.5, score, -np.inf)
    if want not in OBJECT_FREE and len(a.area_order) > 1:
        score = np.where(a.analysed_mask(), score, -np.inf)
    radius = fov_px / np.sqrt(2.0)  # the beam must cover the square field: circle through its corners
    # spacing scales exactly with the grid (targets sit at block centres); the footprint test gets
    # one analysis pixel of slack for the block size
    return select_targets(score, count=count, min_spacing_px=max(min_spacing_px, 2 * radius) / b,
                          footprint_radius_px=radius / b + (1 if b > 1 else 0), exclude=a.exclude)


OBJECT_FREE = ("thin-ice", "crystalline", "edges")


def rank_targets(a: AtlasAnalysis, *, want: str, fov_px: float, count: int, min_spacing_px: float,
                 min_objects: int = 0, thickness_range=(0.02, 1.0), max_segment_fraction: float = 0.15,
                 batch: int | None = None, bound_tolerance: float = 0.8) -> pd.DataFrame:
    """The top ``count`` targets as a table (pixel positions, score, objects in the field, reasons).

    On a lazily segmented atlas, tiles are segmented in order of promise until ``count`` targets
    are found whose score beats the object density expected in the best tile left (estimated from
    its object mass with the objects-per-mass ratio of the tiles done; within ``bound_tolerance``,
    about the uncertainty of that estimate), or until
    ``max_segment_fraction`` of the atlas has been segmented.
    """
    _wanted(a.objects.iloc[:0], want)  # validate the name before any work
    b = a.bin
    if want not in OBJECT_FREE:
        step = batch or max(2, int(np.ceil(2 * count * (max(min_spacing_px, 1.42 * fov_px) / a.tile_px) ** 2)))
        while True:
            left = a.pending
            if left and a.segmented_fraction < max_segment_fraction:
                a.segment_areas(left[:step])
                left = a.pending
            picks = _select(a, want, fov_px, count, min_spacing_px, min_objects, thickness_range)
            if not left or a.segmented_fraction >= max_segment_fraction:
                break
            # objects per um^2 per unit of promise, from the tiles done (their best field each)
            _, dens = score_map(a, want="particles", fov_px=fov_px, thickness_range=thickness_range)
            ratios = []
            for t in a.segmented:
                if a.area_promise[t] > 0:
                    r0, r1, c0, c1 = a.core_box(t)
                    ratios.append(dens[r0 // b:-(-r1 // b), c0 // b:-(-c1 // b)].max() / a.area_promise[t])
            best_left = a.area_promise[left[0]] * (np.median(ratios) if ratios else np.inf)
            if len(picks) >= count and picks[:, 2].min() >= bound_tolerance * best_left:
                break
    else:
        picks = _select(a, want, fov_px, count, min_spacing_px, min_objects, thickness_range)
        if len(a.area_order) > 1:  # objects only for the reasons: the tiles under the targets
            a.segment_areas({(int(r * b) // a.tile_px, int(c * b) // a.tile_px) for r, c, _ in picks})
    rows = []
    objs = a.objects
    half = fov_px / 2
    for k, (rb, cb, s) in enumerate(picks, 1):
        r, c = int(rb) * b + b // 2, int(cb) * b + b // 2
        if objs.empty:
            inside = objs
        else:
            inside = objs[(np.abs(objs["centroid_row_px"] - r) <= half) & (np.abs(objs["centroid_col_px"] - c) <= half)]
        counts = inside["morphology"].value_counts().to_dict() if not inside.empty else {}
        t = float(a.film_t_over_lambda[int(rb), int(cb)])
        reason = [f"{len(inside)} objects in the field"]
        if counts:
            reason.append(", ".join(f"{n} {m}" for m, n in sorted(counts.items())))
        reason.append(f"film t/lambda {t:.2f}")
        rows.append({"target": k, "row_px": r, "col_px": c, "score": float(s), "n_objects": int(len(inside)),
                     "n_round": int(counts.get("round", 0)), "n_elongated": int(counts.get("elongated", 0)),
                     "n_irregular": int(counts.get("irregular", 0)), "film_t_over_lambda": t,
                     "reasons": "; ".join(reason)})
    return pd.DataFrame(rows, columns=["target", "row_px", "col_px", "score", "n_objects", "n_round", "n_elongated",
                                       "n_irregular", "film_t_over_lambda", "reasons"])
