"""Tracking accuracy against ground truth: link precision/recall, identity switches,
mostly-tracked fraction and HOTA (Luiten et al., IJCV 129, 548, 2021, doi:10.1007/s11263-020-01375-2).

Predicted and true tables share the detections (same rows, aligned by index) or are matched
per frame by :func:`match_detections` (Hungarian on distance or mask IoU).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _links(frame, track) -> set[tuple[int, int]]:
    """Consecutive detections (row indices) of each track, including across gaps."""
    df = pd.DataFrame({"f": frame, "t": track, "i": np.arange(len(frame))}).sort_values(["t", "f"])
    t = df["t"].to_numpy()
    i = df["i"].to_numpy()
    same = t[1:] == t[:-1]
    return set(zip(i[:-1][same].tolist(), i[1:][same].tolist()))


def link_scores(frame, true_track, pred_track) -> dict:
    """Precision and recall of links between detections (same detections, two labelings)."""
    t = _links(np.asarray(frame), np.asarray(true_track))
    p = _links(np.asarray(frame), np.asarray(pred_track))
    tp = len(t & p)
    return {"link_precision": tp / max(len(p), 1), "link_recall": tp / max(len(t), 1),
            "true_links": len(t), "predicted_links": len(p)}


def identity_metrics(frame, true_track, pred_track) -> dict:
    """Identity switches (a true track's matched prediction changes) and mostly-tracked fraction
    (true tracks whose dominant predicted id covers >= 80% of their detections)."""
    df = pd.DataFrame({"f": np.asarray(frame), "t": np.asarray(true_track), "p": np.asarray(pred_track)})
    df = df.sort_values(["t", "f"])
    sw = 0
    mt = 0
    for _, g in df.groupby("t"):
        p = g["p"].to_numpy()
        sw += int((p[1:] != p[:-1]).sum())
        if len(p) and np.bincount(pd.factorize(p)[0]).max() >= 0.8 * len(p):
            mt += 1
    n = df["t"].nunique()
    return {"id_switches": sw, "id_switch_fraction_of_tracks": sw / max(n, 1), "mostly_tracked": mt / max(n, 1),
            "true_tracks": n}


def hota(gt_ids_per_frame, pr_ids_per_frame, sim_per_frame, *, alphas=np.arange(0.05, 0.96, 0.05)) -> dict:
    """HOTA from per-frame similarity matrices.

    Parameters
    ----------
    gt_ids_per_frame, pr_ids_per_frame : lists (one per frame) of id arrays.
    sim_per_frame : list of (n_gt, n_pred) similarity arrays in [0, 1] (mask IoU, or a
        distance-based localisation similarity).

    Returns
    -------
    ``{"HOTA", "DetA", "AssA", "LocA"}`` averaged over the localisation thresholds ``alphas``
    (LocA: mean similarity of the matched pairs, the localisation accuracy).
    """
    from scipy.optimize import linear_sum_assignment

    res = {"HOTA": [], "DetA": [], "AssA": [], "LocA": []}
    for a in alphas:
        tp_pairs = []
        tp_sim = []
        n_fn = n_fp = 0
        for g, p, s in zip(gt_ids_per_frame, pr_ids_per_frame, sim_per_frame):
            if len(g) == 0 or len(p) == 0:
                n_fn += len(g)
                n_fp += len(p)
                continue
            r, c = linear_sum_assignment(-s)
            ok = s[r, c] >= a
            tp_pairs += list(zip(np.asarray(g)[r[ok]], np.asarray(p)[c[ok]]))
            tp_sim += s[r[ok], c[ok]].tolist()
            n_fn += len(g) - ok.sum()
            n_fp += len(p) - ok.sum()
        ntp = len(tp_pairs)
        if ntp == 0:
            for k in res:
                res[k].append(0.0)
            continue
        pairs = pd.DataFrame(tp_pairs, columns=["g", "p"])
        tpa = pairs.groupby(["g", "p"]).size()
        # |TPA| / (|TPA| + |FNA| + |FPA|) per TP, using all detections of each id (matched or not)
        gt_count = pd.Series(np.concatenate([np.asarray(x) for x in gt_ids_per_frame])).value_counts()
        pr_count = pd.Series(np.concatenate([np.asarray(x) for x in pr_ids_per_frame])).value_counts()
        ass = []
        for (g, p), n in tpa.items():
            fna = gt_count[g] - n
            fpa = pr_count[p] - n
            ass.append(n * n / (n + fna + fpa))
        ass_a = float(np.sum(ass) / ntp)
        det_a = ntp / (ntp + n_fn + n_fp)
        res["DetA"].append(det_a)
        res["AssA"].append(ass_a)
        res["HOTA"].append(np.sqrt(det_a * ass_a))
        res["LocA"].append(float(np.mean(tp_sim)))
    return {k: float(np.mean(v)) for k, v in res.items()}


def _iou_matrix(g: np.ndarray, p: np.ndarray):
    """Ids of the true and predicted instances of one frame and their (n_g, n_p) mask IoU."""
    gi, ga = np.unique(g[g > 0], return_counts=True)
    pi, pa = np.unique(p[p > 0], return_counts=True)
    s = np.zeros((len(gi), len(pi)))
    both = (g > 0) & (p > 0)
    if both.any():
        pairs, cnt = np.unique(np.stack([g[both], p[both]]), axis=1, return_counts=True)
        i, j = np.searchsorted(gi, pairs[0]), np.searchsorted(pi, pairs[1])
        s[i, j] = cnt / (ga[i] + pa[j] - cnt)
    return gi, pi, s


def mask_tracking_scores(true_labels, pred_labels, tracks: pd.DataFrame, *, match_iou: float = 0.5) -> dict:
    """HOTA, identity switches and mostly-tracked fraction of a mask tracker against truth masks.

    ``true_labels``/``pred_labels``: (T, H, W) instance labels; ``tracks``: rows ``frame``,
    ``label`` (of ``pred_labels``), ``track``. HOTA uses mask IoU as similarity. Identity
    switches (CLEAR MOT, Bernardin & Stiefelhagen 2008, doi:10.1155/2008/246309): a true object's
    matched track (IoU >= ``match_iou``, Hungarian per frame) changes between matched frames.
    Mostly tracked: matched in >= 80% of the frames the true object exists.
    """
    from scipy.optimize import linear_sum_assignment

    key = {(int(f), int(lb)): int(t) for f, lb, t in zip(tracks["frame"], tracks["label"], tracks["track"])}
    gt_ids, pr_ids, sims, rows = [], [], [], []
    for f in range(len(true_labels)):
        g, p, s = _iou_matrix(np.asarray(true_labels[f]), np.asarray(pred_labels[f]))
        pid = np.array([key.get((f, int(x)), -1 - int(x)) for x in p], np.int64)
        gt_ids.append(g)
        pr_ids.append(pid)
        sims.append(s)
        if len(g) and len(p):
            r, c = linear_sum_assignment(-s)
            ok = s[r, c] >= match_iou
            rows += [(f, int(g[i]), int(pid[j])) for i, j in zip(r[ok], c[ok])]
    out = hota(gt_ids, pr_ids, sims)
    m = pd.DataFrame(rows, columns=["f", "g", "p"]).sort_values(["g", "f"])
    life = pd.Series(np.concatenate(gt_ids) if gt_ids else []).value_counts()
    sw = mt = 0
    for gid, n in life.items():
        p = m.loc[m["g"] == gid, "p"].to_numpy()
        sw += int((p[1:] != p[:-1]).sum())
        mt += int(len(p) >= 0.8 * n)
    n_true = int(len(life))
    out.update({"id_switches": sw, "id_switch_fraction_of_tracks": sw / max(n_true, 1),
                "mostly_tracked": mt / max(n_true, 1), "true_tracks": n_true})
    return out
