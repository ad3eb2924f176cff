"""Instance-segmentation scores against ground truth: matching at an IoU threshold, F1, IoU, size error."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class InstanceScore:
    """Instance matching result. ``matches`` has one row per matched pair: ``true_label,
    pred_label, iou``; counts tp/fp/fn; ``f1 = 2 tp / (2 tp + fp + fn)``."""

    tp: int
    fp: int
    fn: int
    iou_threshold: float
    matches: pd.DataFrame = field(repr=False)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else 1.0

    @property
    def mean_iou(self) -> float:
        return float(self.matches["iou"].mean()) if len(self.matches) else float("nan")

    def to_dict(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision,
                "recall": self.recall, "f1": self.f1, "mean_iou": self.mean_iou,
                "iou_threshold": self.iou_threshold}


def iou_table(true_labels, pred_labels) -> pd.DataFrame:
    """IoU of every overlapping (true, pred) label pair: columns ``true_label, pred_label, iou``."""
    t = np.asarray(true_labels).ravel().astype(np.int64)
    p = np.asarray(pred_labels).ravel().astype(np.int64)
    if t.shape != p.shape:
        raise ValueError(f"label images differ in size: {np.shape(true_labels)} vs {np.shape(pred_labels)}")
    nt, npd = int(t.max(initial=0)) + 1, int(p.max(initial=0)) + 1
    at = np.bincount(t, minlength=nt)
    ap = np.bincount(p, minlength=npd)
    both = (t > 0) & (p > 0)
    key = t[both] * npd + p[both]
    u, cnt = np.unique(key, return_counts=True)
    tl, pl = u // npd, u % npd
    iou = cnt / (at[tl] + ap[pl] - cnt)
    return pd.DataFrame({"true_label": tl, "pred_label": pl, "iou": iou})


def match_instances(true_labels, pred_labels, *, iou_threshold: float = 0.5) -> InstanceScore:
    """Match predicted to true instances one-to-one at IoU > ``iou_threshold`` (>= 0.5 makes the
    match unique; below it the highest-IoU pairs are taken greedily).

    References
    ----------
    Caicedo et al., Evaluation of deep learning strategies for nucleus segmentation in
    fluorescence images, Cytometry A 95, 952 (2019), doi:10.1002/cyto.a.23863.
    """
    if not 0 < iou_threshold < 1:
        raise ValueError(f"iou_threshold must be in (0, 1), got {iou_threshold!r}")
    tab = iou_table(true_labels, pred_labels)
    tab = tab[tab["iou"] > iou_threshold].sort_values("iou", ascending=False)
    used_t, used_p, keep = set(), set(), []
    for row in tab.itertuples(index=False):
        if row.true_label in used_t or row.pred_label in used_p:
            continue
        used_t.add(row.true_label)
        used_p.add(row.pred_label)
        keep.append(row)
    matches = pd.DataFrame(keep, columns=["true_label", "pred_label", "iou"])
    n_true = len(np.setdiff1d(np.unique(true_labels), [0]))
    n_pred = len(np.setdiff1d(np.unique(pred_labels), [0]))
    tp = len(matches)
    return InstanceScore(tp=tp, fp=n_pred - tp, fn=n_true - tp, iou_threshold=float(iou_threshold), matches=matches)
