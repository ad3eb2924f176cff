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



def refine_objects(lab: np.ndarray, img: np.ndarray, *, min_sigma: float = 6.0, polarity: str = "auto",
                   edge_fraction: float = 0.5, min_area_px: int = 4, split_depth: float = 0.2,
                   local_px: int = 10, plateau: bool = True, cut_sigma: float = 0.7,
                   rough: np.ndarray | None = None) -> np.ndarray:
    """Crystal masks from a segmentation whose objects may include blobs of film texture.

    The segmentation's hysteresis can join a crystal to neighbouring texture blobs (or return
    texture blobs alone); both would break tracks and bias sizes. Here the relative contrast
    ``y`` (positive on objects, :func:`cryomat.segmentation.classical.relative_contrast`) is
    smoothed by 1 px and compared with the film's own fluctuation ``s`` (noise plus texture:
    MAD of the smoothed contrast over the background). Inside each segmented object (grown by
    2 px), pixels above ``edge_fraction`` of the object's peak contrast form the crystal, then
    each resulting part is cut once more at ``edge_fraction`` of its own plateau (half maximum:
    the edge of a blurred step). With ``plateau`` the level is the median contrast of the part's
    interior (>= 2.5 px from its edge, when >= 5 px are), else its 95th percentile (the
    percentile of a noisy plateau is biased high and shrank the masks). The cut is made on the
    contrast smoothed by ``cut_sigma`` px only: the 1-px smoothing moves the half-maximum
    inwards on narrow crystals (a 6-px-wide ellipse lost 7% of its area), 0.7 px balanced that
    against noise on the growth simulator (median IoU of 30-60 px crystals 0.90 -> 0.92; 0.5 px
    was worse). Parts whose peak is below ``min_sigma * s`` (``s`` also measured within
    ``local_px`` around the part when that is larger: texture can remain where a flat field
    could not measure it; and against the film of ``rough``, the pixels a flat field left
    unmeasured, for parts that touch them) or smaller than ``min_area_px`` are dropped. A part whose contrast has
    two plateaus separated by a saddle deeper than ``split_depth`` of its peak (and 3 ``s``) is
    two crystals joined by their blurred edges only and is split there (watershed); 0 turns
    this off. On the ``growth`` simulator (seeds 0-14) this raised HOTA on seeds 2, 6 and 8
    (0.864 -> 0.876, 0.841 -> 0.850, 0.849 -> 0.861) and changed no other seed.

    Returns relabelled instances (int32, 1..N).
    """
    from scipy import ndimage as ndi

    from cryomat.segmentation.classical import relative_contrast

    fg = lab > 0
    out = np.zeros(lab.shape, np.int32)
    if not fg.any():
        return out
    y, _ = relative_contrast(img, polarity=polarity, mask=fg)
    ys = ndi.gaussian_filter(y.astype(np.float64), 1.0)
    yc = ndi.gaussian_filter(y.astype(np.float64), cut_sigma) if cut_sigma != 1.0 else ys
    bg = ~ndi.binary_dilation(fg, iterations=2)
    if bg.sum() < 100:
        bg = ~fg
    base = float(np.median(ys[bg])) if bg.any() else 0.0
    ys -= base
    if yc is not ys:
        yc -= base
    spread = 1.4826 * float(np.median(np.abs(ys[bg]))) + 1e-12 if bg.any() else 1e-12
    sig_rough = None
    if rough is not None and (bg & rough).sum() >= 100:
        near = ys[bg & rough]
        lb = float(np.median(near))
        sig_rough = lb + min_sigma * 1.4826 * float(np.median(np.abs(near - lb)))
    support = ndi.binary_dilation(fg, iterations=2)
    floor = 2.0 * spread
    comps, n = ndi.label(support & (ys >= floor))
    nxt = 1
    for k, sl in enumerate(ndi.find_objects(comps), start=1):
        if sl is None:
            continue
        sl = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in sl)
        m = comps[sl] == k
        v = ys[sl]
        peak = float(np.percentile(v[m], 95))
        # significance against the film around this object (the film's fluctuation can vary
        # over the field: e.g. texture left where a flat-field could not measure it)
        win = tuple(slice(max(0, s.start - local_px), s.stop + local_px) for s in sl)
        near = ys[win][bg[win]]
        sig = min_sigma * spread
        if local_px and near.size >= 100:
            lb = float(np.median(near))
            sig = max(sig, lb + min_sigma * 1.4826 * float(np.median(np.abs(near - lb))))
        if sig_rough is not None and rough[sl][m].any():
            sig = max(sig, sig_rough)
        if v[m].max() < sig:
            continue
        parts, npart = ndi.label(m & (v >= max(edge_fraction * peak, floor)))
        for j in range(1, npart + 1):
            pm = parts == j
            top = own = float(np.percentile(v[pm], 95)) if pm.sum() > 10 else float(v[pm].max())
            if plateau:
                inner = ndi.distance_transform_edt(pm) >= 2.5
                if inner.sum() >= 5:
                    own = float(np.median(v[inner]))
            if v[pm].max() < sig:
                continue
            cut = m & (yc[sl] >= max(edge_fraction * own, floor))
            sub, nsub = ndi.label(cut)
            # keep the piece(s) of this part's region: those overlapping it
            for q in np.unique(sub[pm & (sub > 0)]):
                qm = sub == q
                if qm.sum() < min_area_px or v[qm].max() < sig:
                    continue
                for piece in _split_at_saddles(v, qm, top, spread, split_depth, min_area_px):
                    tgt = out[sl]
                    free = piece & (tgt == 0)
                    if free.sum() >= min_area_px:
                        tgt[free] = nxt
                        nxt += 1
    return out


def _split_at_saddles(v, qm, peak, spread, depth, min_area_px):
    """Pieces of one mask: two crystals joined only by their blurred edges leave a saddle of
    contrast between their plateaus; maxima that stand ``depth * peak`` (and 3 film
    fluctuations) above any saddle to a higher one are separate crystals, split by watershed
    (h-maxima: Soille, Morphological Image Analysis, 2003, doi:10.1007/978-3-662-05088-0).
    Overlapping (coalesced) crystals have no such saddle and stay one object."""
    if not depth or qm.sum() < 4 * min_area_px:
        return [qm]
    from scipy import ndimage as ndi
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    h = max(depth * peak, 3.0 * spread)
    vm = np.where(qm, v, v[qm].min())
    marks, n = ndi.label(h_maxima(vm, h) & qm)
    if n < 2:
        return [qm]
    ws = watershed(-vm, marks, mask=qm)
    pieces = [ws == k for k in range(1, n + 1)]
    return [pc for pc in pieces if pc.sum() >= min_area_px] or [qm]


def detect_series(frames, *, pixel_size: float, dose_e_per_A2: float | None = None, polarity: str = "auto",
                  min_size_nm: float | None = None, split_touching: bool = False, min_contrast_sigma: float = 6.0):
    """Segment and measure every frame. Returns (detections table, labels (T, H, W) int32).

    ``min_contrast_sigma``: masks are re-cut at half their own peak contrast and kept only where
    that peak exceeds this many film fluctuations (:func:`refine_objects`: removes blobs of
    amorphous texture, which the segmentation rightly finds but which are not crystals, and
    detaches crystals from texture they were joined to); 0 keeps the segmentation as it is.
    """
    from cryomat.measure import particle_table
    from cryomat.segmentation import segment_particles

    labels = np.zeros(np.shape(frames), np.int32)
    tables = []
    for f in progress(range(len(frames)), total=len(frames), desc="segment"):
        img = np.asarray(frames[f], dtype=np.float32)
        lab = segment_particles(img, pixel_size=pixel_size, dose_e_per_A2=dose_e_per_A2, polarity=polarity,
                                min_size_nm=min_size_nm, split_touching=split_touching)
        if min_contrast_sigma:
            # flat-fielded frames: where the background could not be measured the film keeps its
            # texture, and objects there are judged against that rougher film
            rough = ~frames[f].flattened() if hasattr(frames[f], "flattened") else None
            lab = refine_objects(lab, img, min_sigma=min_contrast_sigma, polarity=polarity, rough=rough)
        t = particle_table(lab, img, pixel_size=pixel_size)
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


def continue_through_merges(tracks: pd.DataFrame, labels: np.ndarray, *, min_overlap_px: int = 3) -> pd.DataFrame:
    """Coalescence keeps an identity: when an object that starts a new track overlaps (after
    drift alignment) several tracks that end in the frame before (or pause for as long as the new
    track lasts), the new track is joined to
    the one it overlaps most (the larger crystal absorbs the smaller; the others end there and
    :func:`find_events` reports the merge ``into`` the continued track)."""
    tr = tracks.copy()
    frames = sorted(tr["frame"].unique())
    drift = tr.groupby("frame")[["drift_row_px", "drift_col_px"]].first()
    for f_prev, f in zip(frames[:-1], frames[1:]):
        span = tr.groupby("track")["frame"].agg(["min", "max"])
        key = {(int(fr), int(lb)): int(t) for fr, lb, t in
               zip(tr["frame"], tr["label"], tr["track"]) if fr in (f_prev, f)}
        prev = _shift_labels(labels[f_prev], drift.loc[f].to_numpy() - drift.loc[f_prev].to_numpy())
        cur = labels[f]
        both = (prev > 0) & (cur > 0)
        if not both.any():
            continue
        pairs, counts = np.unique(np.stack([prev[both], cur[both]]), axis=1, return_counts=True)
        ok = counts >= min_overlap_px
        pairs, counts = pairs[:, ok], counts[ok]
        for lc in np.unique(pairs[1]):
            t_new = key.get((f, int(lc)))
            if t_new is None or span.loc[t_new, "min"] != f:
                continue
            sel = pairs[1] == lc
            olds = [(c, key.get((f_prev, int(lp)))) for lp, c in zip(pairs[0][sel], counts[sel])]
            # tracks that end in the frame before, or pause there (gap-closed past the merged
            # frames, e.g. two crystals seen as one blob for a frame before they are resolved again)
            fr_new = set(tr.loc[tr["track"] == t_new, "frame"].tolist())
            olds = [(c, t) for c, t in olds if t is not None and (span.loc[t, "max"] == f_prev or not
                    fr_new & set(tr.loc[tr["track"] == t, "frame"].tolist()))]
            if len({t for _, t in olds}) < 2:
                continue
            into = max(olds)[1]
            tr.loc[tr["track"] == t_new, "track"] = into
    return tr


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


def merge_events(events: pd.DataFrame | None) -> list[tuple[int, list[int], int | None]]:
    """The merges of an events table (:func:`find_events`), in table order: ``(frame, tracks
    that merged, track they merged into)``, the last None where unknown; empty for None or an
    empty table."""
    if events is None or not len(events):
        return []
    out = []
    for e in events[events["event"] == "merge"].itertuples():
        into = None if e.into_track is None or pd.isna(e.into_track) else int(e.into_track)
        out.append((int(e.frame), [int(x) for x in str(e.tracks).split()], into))
    return out


def _mask_in(lab: np.ndarray, lb: int, shift, box) -> np.ndarray:
    """Object ``lb`` of ``lab`` moved by the integer ``shift`` (row, col), inside ``box`` (two slices)."""
    out = np.zeros((box[0].stop - box[0].start, box[1].stop - box[1].start), bool)
    h, w = lab.shape
    r0, c0 = box[0].start - shift[0], box[1].start - shift[1]
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + out.shape[0], h), min(c0 + out.shape[1], w)
    if re > rs and ce > cs:
        out[rs - r0:re - r0, cs - c0:ce - c0] = lab[rs:re, cs:ce] == lb
    return out


def fill_gaps(tracks: pd.DataFrame, labels: np.ndarray, *, min_area_px: int = 4):
    """Masks for the frames a track skips (closed gaps: the crystal was there but not detected,
    e.g. out of its Bragg condition for a frame). For each missing frame the masks before and
    after the gap are moved by the drift and their signed distances interpolated linearly in
    time (shape-based interpolation: Raya & Udupa, IEEE TMI 9, 32, 1990, doi:10.1109/42.52980);
    pixels of other objects are left to them. Returns (tracks with the new rows, labels, changed
    in place); new rows have ``interpolated`` True, the centroid of their mask, and NaN for
    every measured column (nothing was seen)."""
    from scipy import ndimage as ndi

    tr = tracks.copy()
    tr["interpolated"] = False
    n = len(labels)
    drift = tr.groupby("frame")[["drift_row_px", "drift_col_px"]].first().reindex(range(n))
    drift = drift.interpolate(limit_direction="both").fillna(0.0).to_numpy()
    boxes: dict[int, list] = {}
    new = []
    for tid, g in tr.sort_values("frame").groupby("track"):
        fr, lb = g["frame"].to_numpy(int), g["label"].to_numpy(int)
        for k in np.flatnonzero(np.diff(fr) > 1):
            ends = []
            for f0, l0 in ((fr[k], lb[k]), (fr[k + 1], lb[k + 1])):
                if f0 not in boxes:
                    boxes[f0] = ndi.find_objects(labels[f0])
                b = boxes[f0][l0 - 1] if 0 < l0 <= len(boxes[f0]) else None
                if b is not None:
                    ends.append((f0, l0, b))
            if len(ends) < 2:
                continue
            for f in range(fr[k] + 1, fr[k + 1]):
                shifts = [np.round(drift[f] - drift[f0]).astype(int) for f0, _, _ in ends]
                lo = np.min([[b[0].start + d[0], b[1].start + d[1]] for (_, _, b), d in zip(ends, shifts)], 0) - 3
                hi = np.max([[b[0].stop + d[0], b[1].stop + d[1]] for (_, _, b), d in zip(ends, shifts)], 0) + 3
                lo, hi = np.maximum(lo, 0), np.minimum(hi, labels[f].shape)
                if np.any(hi <= lo):
                    continue
                box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]))
                a = (f - fr[k]) / (fr[k + 1] - fr[k])
                sd = 0.0
                masks = [_mask_in(labels[f0], l0, d, box) for (f0, l0, _), d in zip(ends, shifts)]
                if not all(m.any() for m in masks):  # an end moved out of the field: nothing to interpolate
                    continue
                for wgt, m in zip((1 - a, a), masks):
                    sd = sd + wgt * (ndi.distance_transform_edt(m) - ndi.distance_transform_edt(~m))
                sub = labels[f][box]
                m = (sd > 0) & (sub == 0)
                if m.sum() < min_area_px:
                    continue
                nl = int(labels[f].max()) + 1
                sub[m] = nl
                boxes.pop(f, None)
                rr, cc = np.nonzero(m)
                new.append({"track": tid, "frame": f, "label": nl, "row_px": rr.mean() + lo[0],
                            "col_px": cc.mean() + lo[1], "drift_row_px": drift[f][0], "drift_col_px": drift[f][1],
                            "interpolated": True})
    if new:
        tr = pd.concat([tr, pd.DataFrame(new)], ignore_index=True)
    return tr, labels


def track_series(frames, *, pixel_size: float, times_s=None, search_range_nm: float | None = None, memory: int = 2,
                 dose_e_per_A2: float | None = None, polarity: str = "auto", min_size_nm: float | None = None,
                 fit_axes: bool = True, min_fit_frames: int = 5, flat_field: bool = True,
                 interpolate_gaps: bool = True):
    """Segment, link and find events. Returns (tracks table, events table, labels).

    ``fit_axes``: for tracks of at least ``min_fit_frames`` detections, also measure each
    detection's axes by fitting a blurred elliptical disc to the image
    (:func:`cryomat.tracking.axes.measure_axes`: columns ``major_axis_fit_nm``,
    ``minor_axis_fit_nm`` with standard errors ``*_sd_nm``), which growth rates then use.
    ``flat_field``: two passes. The raw frames are segmented once, the static specimen
    background (film texture, measured where no object covers it, in the film's own
    drift-corrected coordinates: :class:`cryomat.tracking.flatfield.FlatField`) is divided out,
    lazily frame by frame, and the flat-fielded frames are segmented again; linking, events and
    the axis fits use the second pass. False: one pass on the raw frames.
    ``interpolate_gaps``: frames a track skips (gaps closed by linking, up to ``memory``) get a
    mask interpolated from the frames around them (:func:`fill_gaps`; rows with ``interpolated``
    True and NaN measurements, which growth fits leave out).
    """
    kw = dict(pixel_size=pixel_size, dose_e_per_A2=dose_e_per_A2, polarity=polarity, min_size_nm=min_size_nm)
    det, labels = detect_series(frames, **kw)
    n = len(frames)
    work = frames
    if flat_field and n >= 3 and not det.empty:
        from cryomat.tracking.axes import series_polarity
        from cryomat.tracking.flatfield import FlatField, register_series

        if polarity == "auto":  # one polarity for the series (a frame with few objects can vote wrong alone)
            kw["polarity"] = polarity = "dark" if series_polarity(frames, labels) < 0 else "bright"
        work = FlatField(frames, labels, register_series(frames))
        det, labels = detect_series(work, **kw)
    times = np.arange(n, dtype=float) if times_s is None else np.asarray(times_s, float)
    if len(times) != n:
        raise ValueError(f"{len(times)} frame times given for {n} frames")
    if det.empty:
        cols = ["track", "frame", "time_s", "row_px", "col_px", "area_nm2", "major_axis_nm", "minor_axis_nm",
                "orientation_deg", "solidity", "label", "drift_row_px", "drift_col_px"]
        if fit_axes:
            from cryomat.tracking.axes import FIT_COLUMNS

            cols += FIT_COLUMNS
        cols += ["interpolated"] if interpolate_gaps else []
        return pd.DataFrame(columns=cols), pd.DataFrame(columns=["event", "frame", "tracks", "into_track"]), labels
    if search_range_nm is None:
        # default: half the median object size plus the allowance for drift residuals
        search_px = max(5.0, 0.5 * float(np.median(det["major_axis_nm"])) * 10 / pixel_size)
    else:
        search_px = search_range_nm * 10.0 / pixel_size
    tracks = link(det, search_range=search_px, memory=memory, size_weight=0.5)
    tracks["time_s"] = times[tracks["frame"].to_numpy()]
    tracks = continue_through_merges(tracks, labels)
    events = find_events(tracks, labels)
    cols = ["track", "frame", "time_s", "row_px", "col_px", "area_nm2", "major_axis_nm", "minor_axis_nm",
            "orientation_deg", "solidity", "label", "drift_row_px", "drift_col_px"]
    if fit_axes:
        from cryomat.tracking.axes import FIT_COLUMNS, measure_axes

        pol = {"dark": -1, "bright": 1}.get(polarity)
        tracks = measure_axes(tracks, work, labels, pixel_size=pixel_size, min_frames=min_fit_frames, polarity=pol,
                              events=events)
        cols += FIT_COLUMNS
    if interpolate_gaps:
        tracks, labels = fill_gaps(tracks, labels)
        tracks["time_s"] = times[tracks["frame"].to_numpy(int)]
        cols.append("interpolated")
    return tracks[cols].sort_values(["track", "frame"]).reset_index(drop=True), events, labels
