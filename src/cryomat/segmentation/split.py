"""Splitting touching particles: contrast-dip and neck merging after an over-segmenting
watershed (per tile), and the monodisperse size prior for clusters of equal round particles.

References
----------
Beucher & Meyer, The morphological approach to segmentation: the watershed transformation (1993),
doi:10.1201/9781482277234-12; Vincent & Soille (1991), doi:10.1109/34.87344; Lloyd, Least squares
quantization in PCM, IEEE Trans. Inf. Theory 28, 129 (1982), doi:10.1109/TIT.1982.1056489.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

def _touching_pairs(lab: np.ndarray):
    """4-adjacent pixel pairs of two different regions of ``lab``, per direction (down, right):
    yields ``(a_slice, b_slice, sel, lower_label, higher_label)`` (``sel`` over the shifted views)."""
    for a_sl, b_sl in (((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
                       ((slice(None), slice(None, -1)), (slice(None), slice(1, None)))):
        a, b = lab[a_sl], lab[b_sl]
        sel = (a != b) & (a > 0) & (b > 0)
        yield a_sl, b_sl, sel, np.minimum(a[sel], b[sel]), np.maximum(a[sel], b[sel])


def _pair_saddles(lab: np.ndarray, *values: np.ndarray):
    """For every pair of 4-adjacent regions: the highest min(value) across their shared boundary
    for each of ``values``. Returns ``(i, j, saddle_1, saddle_2, ...)`` with i < j."""
    ii, jj, vv = [], [], [[] for _ in values]
    for a_sl, b_sl, sel, lo, hi in _touching_pairs(lab):
        ii.append(lo)
        jj.append(hi)
        for lst, v in zip(vv, values):
            lst.append(np.minimum(v[a_sl][sel], v[b_sl][sel]))
    i, j = np.concatenate(ii).astype(np.int64), np.concatenate(jj).astype(np.int64)
    if i.size == 0:
        return (np.zeros(0, np.int64), np.zeros(0, np.int64)) + tuple(np.zeros(0) for _ in values)
    key = i * (int(lab.max()) + 1) + j
    order = np.argsort(key, kind="stable")
    ks = key[order]
    first = np.r_[0, np.nonzero(np.diff(ks))[0] + 1]
    out = [i[order][first], j[order][first]]
    for lst in vv:
        out.append(np.maximum.reduceat(np.concatenate(lst)[order], first))
    return tuple(out)


def _label_max(values: np.ndarray, lab: np.ndarray, n: int) -> np.ndarray:
    """Maximum of ``values`` per label 0..n (no sorting)."""
    out = np.full(n + 1, -np.inf)
    m = lab > 0
    np.maximum.at(out, lab[m], values[m])
    return out


def _split_tile(sub: np.ndarray, comp: np.ndarray, c: np.ndarray, *, min_peak, neck_ratio, dip_ratio,
                dip_noise, multi_out: np.ndarray | None = None) -> np.ndarray:
    """Labels (positive, not consecutive) of the components marked in ``sub`` (a crop; ``comp``
    their component ids) from the smoothed contrast ``c``: components with one maximum above
    ``min_peak`` (or none) stay whole; the others get a watershed from their maxima, then merges
    (on their bounding box only)."""
    from skimage.segmentation import watershed

    cm = np.where(sub, c, -np.inf)
    peaks = (cm == ndi.maximum_filter(cm, size=5, mode="nearest")) & sub & (c > min_peak)
    pr, pc = np.nonzero(peaks)
    ids, counts = np.unique(comp[pr, pc], return_counts=True)
    multi_ids = ids[counts >= 2]
    lab = np.zeros(sub.shape, np.int32)
    is_multi = np.isin(comp, multi_ids) & sub if multi_ids.size else np.zeros(sub.shape, bool)
    if multi_out is not None:
        multi_out |= is_multi
    single = sub & ~is_multi
    uniq = np.unique(comp[single])
    lab[single] = np.searchsorted(uniq, comp[single]) + 1  # one label per whole component
    if not multi_ids.size:
        return lab
    rows, cols = np.nonzero(np.any(is_multi, axis=1))[0], np.nonzero(np.any(is_multi, axis=0))[0]
    r0, r1 = max(rows[0] - 1, 0), min(rows[-1] + 2, sub.shape[0])
    c0, c1 = max(cols[0] - 1, 0), min(cols[-1] + 2, sub.shape[1])
    sub2, c2 = is_multi[r0:r1, c0:c1], c[r0:r1, c0:c1]
    keep = is_multi[pr, pc]
    pr, pc = pr[keep] - r0, pc[keep] - c0
    n = pr.size
    markers = np.zeros(sub2.shape, np.int32)
    markers[pr, pc] = np.arange(1, n + 1)
    lab2 = watershed(-c2, markers, mask=sub2)
    # the distance map of each multi-maximum component on its own box (not the whole tile)
    dist = np.zeros(sub2.shape)
    local = np.where(sub2, np.searchsorted(multi_ids, comp[r0:r1, c0:c1]) + 1, 0)
    h2, w2 = sub2.shape
    for k, sl in enumerate(ndi.find_objects(local), start=1):
        if sl is None:
            continue
        rs = slice(max(sl[0].start - 1, 0), min(sl[0].stop + 1, h2))
        cs = slice(max(sl[1].start - 1, 0), min(sl[1].stop + 1, w2))
        m = local[rs, cs] == k
        dist[rs, cs][m] = ndi.distance_transform_edt(m)[m]
    peak_c = np.full(n + 1, -np.inf)
    peak_c[1:] = c2[pr, pc]  # a basin's highest contrast is its maximum
    peak_d = _label_max(dist, lab2, n)
    i, j, sc, sd = _pair_saddles(lab2, c2, dist)
    low = np.minimum(peak_c[i], peak_c[j])
    dip = (sc < dip_ratio * low) & (low - sc > dip_noise)
    merge = ~dip & (sd >= neck_ratio * np.minimum(peak_d[i], peak_d[j]))
    parent, find = _union_find(n)
    order = np.argsort(-sc)
    for a, b in zip(i[order][merge[order]].tolist(), j[order][merge[order]].tolist()):
        ri, rj = find(a), find(b)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    remap = np.array([find(k) for k in range(n + 1)], np.int32)
    view = lab[r0:r1, c0:c1]
    view[sub2] = remap[lab2[sub2]] + uniq.size
    return lab


def _split_components(mask: np.ndarray, crop, tile_px: int = 256, multi_out: np.ndarray | None = None,
                      **kw) -> np.ndarray:
    """:func:`split_touching_objects` on tiles of ``tile_px`` (each component belongs to the tile
    of its top-left corner; one watershed per tile); ``crop(rows, cols)`` returns the smoothed
    contrast on a crop. ``multi_out`` (bool, optional) is set on the components that had more
    than one contrast maximum."""
    comp, ncomp = ndi.label(mask)
    out = np.zeros(mask.shape, np.int32)
    if ncomp == 0:
        return out
    h, w = mask.shape
    sls = ndi.find_objects(comp)
    r0 = np.array([sl[0].start for sl in sls])
    c0 = np.array([sl[1].start for sl in sls])
    r1 = np.array([sl[0].stop for sl in sls])
    c1 = np.array([sl[1].stop for sl in sls])
    tile = (r0 // tile_px) * (-(-w // tile_px)) + c0 // tile_px
    owner = np.r_[-1, tile]  # tile of each component id (0: background)
    nxt = 0
    for t in np.unique(tile):
        sel = np.nonzero(tile == t)[0]
        rows = slice(max(int(r0[sel].min()) - 1, 0), min(int(r1[sel].max()) + 1, h))
        cols = slice(max(int(c0[sel].min()) - 1, 0), min(int(c1[sel].max()) + 1, w))
        cc = comp[rows, cols]
        sub = owner[cc] == t
        mt = None if multi_out is None else np.zeros(sub.shape, bool)
        lab = _split_tile(sub, cc, crop(rows, cols), multi_out=mt, **kw)
        if mt is not None:
            multi_out[rows, cols] |= mt
        # consecutive global labels in order of first appearance in the tile
        used = np.unique(lab[sub])
        lut = np.zeros(int(lab.max()) + 1, np.int32)
        lut[used] = np.arange(nxt + 1, nxt + 1 + used.size, dtype=np.int32)
        view = out[rows, cols]
        view[sub] = lut[lab[sub]]
        nxt += used.size
    return out


def split_touching_objects(mask: np.ndarray, contrast: np.ndarray, *, min_peak: float, neck_ratio: float = 0.55,
                           dip_ratio: float = 0.8, dip_noise: float = 0.0) -> np.ndarray:
    """Split a foreground mask into touching particles; keep fused aggregates whole.

    Over-segments each connected component with a watershed of the smoothed ``contrast`` from
    its local maxima above ``min_peak``, then merges two adjacent regions back unless the contact
    is a real gap: the contrast saddle between them is below ``dip_ratio`` x the lower of the
    two peaks (projected thickness drops between separate particles) and more than ``dip_noise``
    below it (so that noise maxima on a flat particle do not split it), or the distance-map
    saddle is below ``neck_ratio`` x the thinner region's inscribed radius (a narrow neck).
    Fused spheres (centre distance < ~1.4 radii) fail both tests and stay one object.
    """
    contrast = np.asarray(contrast)
    return _split_components(np.asarray(mask, bool), lambda r, c: contrast[r, c], min_peak=min_peak,
                             neck_ratio=neck_ratio, dip_ratio=dip_ratio, dip_noise=dip_noise)


def _union_find(n: int):
    parent = np.arange(n + 1)

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    return parent, find


def _contact_means(part: np.ndarray, c: np.ndarray):
    """For every pair of 4-adjacent regions of ``part``: (i, j, mean of ``c`` over the pixels on
    both sides of their shared boundary, number of those pixel pairs)."""
    ii, jj, vv = [], [], []
    for a_sl, b_sl, sel, lo, hi in _touching_pairs(part):
        ii.append(lo)
        jj.append(hi)
        vv.append(0.5 * (c[a_sl][sel] + c[b_sl][sel]))
    i, j, v = np.concatenate(ii), np.concatenate(jj), np.concatenate(vv)
    if i.size == 0:
        return i, j, v, i
    key = i.astype(np.int64) * (int(part.max()) + 1) + j
    u, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
    mean = np.bincount(inv, v) / cnt
    n1 = int(part.max()) + 1
    return u // n1, u % n1, mean, cnt


def split_contacts(labels: np.ndarray, crop, noise: float, *, dip_ratio: float = 0.75, k_noise: float = 4.0,
                   min_radius_px: float = 3.0, min_drop_px: float = 1.5,
                   candidates: np.ndarray | None = None) -> np.ndarray:
    """Split objects made of touching particles that a contrast maximum per particle missed.

    Candidate parts are the groups of a watershed of the object's distance map (merged in order
    of decreasing saddle, each group keeping its deepest point, until the saddle is within
    ``min_drop_px`` of the shallower group's depth: a convex outline is one group, two touching
    convex particles are two). The parts are then re-drawn with a watershed of the lightly
    smoothed contrast ``crop(rows, cols)`` from their cores (depth >= half the group's), so that
    the line between them follows the contrast valley, and kept apart when the mean contrast
    along that line is below ``dip_ratio`` x the lower of the two cores' median contrasts and
    ``k_noise`` standard errors below it (``noise``: per-pixel noise std of the contrast): the
    gap between touching particles, or the thin edges of two domes, along the whole contact.
    Fused aggregates (spheres overlapping by a radius) are thick at the junction and stay one
    object. ``candidates`` (bool mask, optional): only the objects on it are examined.
    """
    from skimage.segmentation import watershed

    out = labels.copy()
    nxt = int(labels.max()) + 1
    nlab = int(labels.max())
    # candidates: objects where the distance map (one transform of every second pixel of the
    # whole image, the objects' shared boundaries removed) has two maxima with a dip of more
    # than min_drop_px / 2 on the straight line between them (not along a rod's ridge)
    lab = labels[::2, ::2]
    inner = lab > 0
    for a_sl, b_sl in (((slice(1, None), slice(None)), (slice(None, -1), slice(None))),
                       ((slice(None), slice(1, None)), (slice(None), slice(None, -1)))):
        diff = lab[a_sl] != lab[b_sl]
        inner[a_sl] &= ~(diff & (lab[b_sl] > 0))
        inner[b_sl] &= ~(diff & (lab[a_sl] > 0))
    dall = ndi.distance_transform_edt(inner)
    pk = (dall == ndi.maximum_filter(dall, size=3)) & (dall >= 0.5 * min_radius_px)
    if candidates is not None:  # only the objects on the ``candidates`` mask
        pk &= candidates[::2, ::2]
    pl, npk = ndi.label(pk, np.ones((3, 3), bool))
    cand = np.zeros(nlab + 1, bool)
    if npk >= 2:
        owner = np.zeros(npk + 1, np.int64)
        owner[pl[pk]] = lab[pk]
        own = owner[1:]
        multi = np.bincount(own, minlength=nlab + 1) >= 2
        multi[0] = False
        sel = np.nonzero(multi[own])[0]
        if sel.size:
            rr, cc = np.nonzero(pk)
            first = np.zeros(npk + 1, np.int64)
            first[pl[rr, cc][::-1]] = np.arange(rr.size)[::-1]  # one pixel of each maximum
            pos = np.c_[rr[first[1:]], cc[first[1:]]].astype(float)
            depth = dall[rr[first[1:]], cc[first[1:]]]
            order = sel[np.argsort(own[sel], kind="stable")]
            bounds = np.r_[0, np.nonzero(np.diff(own[order]))[0] + 1, order.size]
            tt = np.linspace(0.0, 1.0, 9)[1:-1]
            for g0, g1 in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
                idx = order[g0:g1]
                a, b = np.triu_indices(idx.size, 1)
                pa, pb = pos[idx[a]], pos[idx[b]]
                pts = pa[:, None, :] + (pb - pa)[:, None, :] * tt[None, :, None]
                line = ndi.map_coordinates(dall, pts.reshape(-1, 2).T, order=1).reshape(pts.shape[:2]).min(axis=1)
                if np.any(np.minimum(depth[idx[a]], depth[idx[b]]) - line > 0.5 * min_drop_px):
                    cand[own[idx[0]]] = True
    objs = ndi.find_objects(labels)
    for lab_id in np.nonzero(cand)[0].tolist():
        sl = objs[lab_id - 1]
        if sl is None:
            continue
        rs = slice(max(sl[0].start - 1, 0), min(sl[0].stop + 1, labels.shape[0]))
        cs = slice(max(sl[1].start - 1, 0), min(sl[1].stop + 1, labels.shape[1]))
        m = labels[rs, cs] == lab_id
        dist = ndi.distance_transform_edt(m)
        peaks = (dist == ndi.maximum_filter(dist, size=3)) & (dist >= min_radius_px)
        markers, n = ndi.label(peaks, np.ones((3, 3), bool))
        if n < 2:
            continue
        lab2 = watershed(-dist, markers, mask=m)
        depth = _label_max(dist, lab2, n)
        i, j, sd = _pair_saddles(lab2, dist)
        parent, find = _union_find(n)
        for k in np.argsort(-sd, kind="stable"):
            ri, rj = find(int(i[k])), find(int(j[k]))
            if ri == rj or min(depth[ri], depth[rj]) - sd[k] > min_drop_px:
                continue
            parent[max(ri, rj)] = min(ri, rj)
            depth[min(ri, rj)] = max(depth[ri], depth[rj])
        roots = np.array([find(a) for a in range(n + 1)])
        ids = np.unique(roots[1:])
        if ids.size < 2:
            continue
        group = np.searchsorted(ids, roots[lab2]) + 1
        group[~m] = 0
        core = np.where(m & (dist >= 0.5 * depth[roots[lab2]]), group, 0)
        c = crop(rs, cs)
        part = watershed(-c, core, mask=m)
        ng = ids.size
        med = np.array([0.0] + [float(np.median(c[core == g])) for g in range(1, ng + 1)])
        pi, pj, line, cnt = _contact_means(part, c)
        parent, find = _union_find(ng)
        for a, b, v, nn in zip(pi.tolist(), pj.tolist(), line.tolist(), cnt.tolist()):
            low = min(med[a], med[b])
            if v < dip_ratio * low and low - v > k_noise * noise / np.sqrt(max(nn, 1)):
                continue  # a contrast valley along the whole contact: two particles
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        final = np.array([find(g) for g in range(ng + 1)])
        keep = np.unique(final[1:])
        if keep.size < 2:
            continue
        view = out[rs, cs]
        for q, root in enumerate(keep[1:]):
            view[m & (final[part] == root)] = nxt + q
        nxt += keep.size - 1
    return out


def _monodisperse_area(labels: np.ndarray, min_objects: int = 20):
    """Typical single-particle area (px) when the objects are a monodisperse population of round
    particles, else None (mixed shapes or sizes: no size prior applies).

    The single area is the median over round objects (bounding box filled > 60 %, box aspect
    < 1.35); the field counts as monodisperse when at least 55 % of all objects are round and
    within 35 % of it, with an equivalent-diameter spread below 10 %. (The 4-class simulated
    fields reach at most 43 %; monodisperse SiO2 spheres 63 %; clustered monodisperse spheres
    67-78 %.)
    """
    a = np.bincount(labels.ravel())[1:]
    objs = [o for o in ndi.find_objects(labels) if o is not None]
    a = a[a > 0]
    if a.size < min_objects:
        return None
    hh = np.array([o[0].stop - o[0].start for o in objs], float)
    ww = np.array([o[1].stop - o[1].start for o in objs], float)
    round_ = (a / (hh * ww) > 0.6) & (np.maximum(hh, ww) / np.minimum(hh, ww) < 1.35)
    if not round_.any():
        return None
    a1 = float(np.median(a[round_]))
    near = round_ & (np.abs(a / a1 - 1.0) < 0.35)
    d = np.sqrt(a[near])
    if near.mean() < 0.55 or d.std() > 0.10 * d.mean():
        return None
    return a1


def _split_by_size_prior(labels: np.ndarray, a1: float, min_ratio: float = 1.6) -> np.ndarray:
    """Split objects of at least ``min_ratio`` x the single-particle area ``a1`` into
    ``round(area / a1)`` parts: k-means of the pixel positions, seeded by farthest-point
    sampling among pixels deeper than half a particle radius (touching monodisperse spheres
    whose necks and contrast dips are lost in the blur, as in HAADF multilayer clusters)."""
    out = labels.copy()
    nxt = int(labels.max()) + 1
    r1 = np.sqrt(a1 / np.pi)
    areas = np.bincount(labels.ravel())
    for lab_id, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None or areas[lab_id] < min_ratio * a1:
            continue
        n = int(round(areas[lab_id] / a1))
        if n < 2:
            continue
        m = labels[sl] == lab_id
        rr, cc = np.nonzero(m)
        pts = np.c_[rr, cc].astype(float)
        depth = ndi.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1][rr, cc]
        cand = depth >= 0.5 * r1
        if cand.sum() < n:
            continue
        centres = [pts[np.argmax(depth)]]
        dmin = np.hypot(*(pts - centres[0]).T)
        for _ in range(n - 1):
            k = int(np.argmax(np.where(cand, dmin, -1.0)))
            centres.append(pts[k])
            dmin = np.minimum(dmin, np.hypot(*(pts - pts[k]).T))
        c = np.array(centres)
        for _ in range(10):  # Lloyd iterations
            assign = np.argmin(((pts[:, None, :] - c[None]) ** 2).sum(axis=2), axis=1)
            new = np.array([pts[assign == q].mean(axis=0) if np.any(assign == q) else c[q] for q in range(n)])
            if np.allclose(new, c):
                break
            c = new
        view = out[sl]
        ids = np.where(assign == 0, lab_id, nxt + assign - 1)
        view[rr, cc] = ids
        nxt += n - 1
    return _relabel(out)


def _relabel(lab: np.ndarray) -> np.ndarray:
    """Consecutive labels 1..N (0 stays background), in order of the old labels; O(pixels)."""
    lab = np.asarray(lab)
    present = np.bincount(lab.ravel()) > 0
    present[0] = False
    lut = np.zeros(present.size, np.int32)
    lut[present] = np.arange(1, int(present.sum()) + 1, dtype=np.int32)
    return lut[lab]
