"""Track segmented objects (crystals, particles) through an image series.

Each frame is segmented with :func:`cryomat.segmentation.segment_particles` and measured with
:func:`cryomat.measure.particle_table` (exact Feret diameters: the major and minor axes of a
crystal); detections are linked with :func:`cryomat.tracking.linking.link` (drift removed,
size-aware costs, gap closing); merges and splits are found from mask overlaps between
drift-aligned consecutive frames.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryomat.progress import progress
from cryomat.tracking.linking import link


def _contrast_filter(lab: np.ndarray, img: np.ndarray, table: pd.DataFrame, min_sigma: float):
    """Drop objects whose mean intensity differs from the film by less than ``min_sigma`` times the
    film's own fluctuation (noise plus amorphous texture, MAD of the 1-px-smoothed background)."""
    from scipy import ndimage as ndi

    if table.empty or not min_sigma:
        return lab, table
    bg = lab == 0
    if bg.sum() < 100:
        return lab, table
    med = float(np.median(img[bg]))
    sm = ndi.gaussian_filter(img.astype(np.float64), 1.0)[bg]
    spread = 1.4826 * float(np.median(np.abs(sm - np.median(sm)))) + 1e-12
    contrast = np.abs(table["mean_intensity"].to_numpy() - med) / spread
    keep = contrast >= min_sigma
    if keep.all():
        return lab, table
    lut = np.zeros(int(lab.max()) + 1, np.int32)
    kept_labels = table["label"].to_numpy()[keep]
    lut[kept_labels] = np.arange(1, keep.sum() + 1)
    table = table[keep].copy()
    table["label"] = np.arange(1, keep.sum() + 1)
    return lut[lab], table.reset_index(drop=True)


def detect_series(frames, *, pixel_size: float, dose_e_per_A2: float | None = None, polarity: str = "auto",
                  min_size_nm: float | None = None, split_touching: bool = False, min_contrast_sigma: float = 4.0):
    """Segment and measure every frame. Returns (detections table, labels (T, H, W) int32).

    ``min_contrast_sigma``: objects must differ from the film by this many film fluctuations
    (removes blobs of amorphous texture that the segmentation rightly finds but that are not
    crystals); 0 keeps everything.
    """
    from cryomat.measure import particle_table
    from cryomat.segmentation import segment_particles

    labels = np.zeros(np.shape(frames), np.int32)
    tables = []
    for f in progress(range(len(frames)), total=len(frames), desc="segment"):
        img = np.asarray(frames[f], dtype=np.float32)
        lab = segment_particles(img, pixel_size=pixel_size, dose_e_per_A2=dose_e_per_A2, polarity=polarity,
                                min_size_nm=min_size_nm, split_touching=split_touching)
        t = particle_table(lab, img, pixel_size=pixel_size)
        lab, t = _contrast_filter(lab, img, t, min_contrast_sigma)
        labels[f] = lab
        t.insert(0, "frame", f)
        tables.append(t)
    det = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if det.empty:
        det = pd.DataFrame(columns=["frame", "label", "centroid_row_px", "centroid_col_px", "area_px", "area_nm2",
                                    "feret_max_nm", "feret_min_nm", "orientation_deg"])
    det = det.rename(columns={"centroid_row_px": "row_px", "centroid_col_px": "col_px",
                              "feret_max_nm": "major_axis_nm", "feret_min_nm": "minor_axis_nm"})
    return det, labels


def _shift_labels(lab: np.ndarray, shift_rc) -> np.ndarray:
    """Move a label image by an integer (row, col) shift, filling with 0."""
    dr, dc = (int(round(s)) for s in shift_rc)
    out = np.zeros_like(lab)
    h, w = lab.shape
    rs, rd = (slice(0, h - dr), slice(dr, h)) if dr >= 0 else (slice(-dr, h), slice(0, h + dr))
    cs, cd = (slice(0, w - dc), slice(dc, w)) if dc >= 0 else (slice(-dc, w), slice(0, w + dc))
    out[rd, cd] = lab[rs, cs]
    return out


def find_events(tracks: pd.DataFrame, labels: np.ndarray, *, min_overlap_px: int = 3) -> pd.DataFrame:
    """Appear / disappear / merge / split events from tracks and drift-aligned mask overlaps."""
    ev = []
    first_frame, last_frame = int(tracks["frame"].min()), int(tracks["frame"].max())
    key = {(int(f), int(lb)): int(t) for f, lb, t in zip(tracks["frame"], tracks["label"], tracks["track"])}
    drift = tracks.groupby("frame")[["drift_row_px", "drift_col_px"]].first()
    spans = tracks.groupby("track")["frame"].agg(["min", "max"])
    frames = sorted(tracks["frame"].unique())
    for f_prev, f in zip(frames[:-1], frames[1:]):
        shift = drift.loc[f].to_numpy() - drift.loc[f_prev].to_numpy()
        prev = _shift_labels(labels[f_prev], shift)
        cur = labels[f]
        both = (prev > 0) & (cur > 0)
        if not both.any():
            continue
        pairs, counts = np.unique(np.stack([prev[both], cur[both]]), axis=1, return_counts=True)
        pairs = pairs[:, counts >= min_overlap_px]
        # merges: one current object overlapping several previous tracks
        for lc in np.unique(pairs[1]):
            olds = [key.get((f_prev, int(lp))) for lp in pairs[0][pairs[1] == lc]]
            olds = sorted({o for o in olds if o is not None})
            if len(olds) > 1:
                into = key.get((f, int(lc)))
                ev.append({"event": "merge", "frame": int(f), "tracks": " ".join(map(str, olds)), "into_track": into})
        for lp in np.unique(pairs[0]):
            news = sorted({key.get((f, int(lc))) for lc in pairs[1][pairs[0] == lp]} - {None})
            if len(news) > 1:
                ev.append({"event": "split", "frame": int(f), "tracks": " ".join(map(str, news)),
                           "into_track": key.get((f_prev, int(lp)))})
    for t, (a, b) in spans.iterrows():
        if a > first_frame:
            ev.append({"event": "appear", "frame": int(a), "tracks": str(t), "into_track": None})
        if b < last_frame:
            ev.append({"event": "disappear", "frame": int(b), "tracks": str(t), "into_track": None})
    out = pd.DataFrame(ev, columns=["event", "frame", "tracks", "into_track"])
    return out.sort_values(["frame", "event"], kind="stable").reset_index(drop=True)


def track_series(frames, *, pixel_size: float, times_s=None, search_range_nm: float | None = None, memory: int = 2,
                 dose_e_per_A2: float | None = None, polarity: str = "auto", min_size_nm: float | None = None):
    """Segment, link and find events. Returns (tracks table, events table, labels)."""
    det, labels = detect_series(frames, pixel_size=pixel_size, dose_e_per_A2=dose_e_per_A2, polarity=polarity,
                                min_size_nm=min_size_nm)
    n = len(frames)
    times = np.arange(n, dtype=float) if times_s is None else np.asarray(times_s, float)
    if len(times) != n:
        raise ValueError(f"{len(times)} frame times given for {n} frames")
    if det.empty:
        cols = ["track", "frame", "time_s", "row_px", "col_px", "area_nm2", "major_axis_nm", "minor_axis_nm",
                "orientation_deg", "label", "drift_row_px", "drift_col_px"]
        return pd.DataFrame(columns=cols), pd.DataFrame(columns=["event", "frame", "tracks", "into_track"]), labels
    if search_range_nm is None:
        # default: half the median object size plus the allowance for drift residuals
        search_px = max(5.0, 0.5 * float(np.median(det["major_axis_nm"])) * 10 / pixel_size)
    else:
        search_px = search_range_nm * 10.0 / pixel_size
    tracks = link(det, search_range=search_px, memory=memory, size_weight=0.5)
    tracks["time_s"] = times[tracks["frame"].to_numpy()]
    events = find_events(tracks, labels)
    cols = ["track", "frame", "time_s", "row_px", "col_px", "area_nm2", "major_axis_nm", "minor_axis_nm",
            "orientation_deg", "label", "drift_row_px", "drift_col_px"]
    return tracks[cols].sort_values(["track", "frame"]).reset_index(drop=True), events, labels
