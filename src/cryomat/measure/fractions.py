"""Class fractions per group with confidence intervals, and a test that groups differ.

- :func:`wilson_interval`, :func:`class_fractions`: fractions of hard class calls with Wilson
  score intervals;
- :func:`posterior_fractions`: fractions as sums of class probabilities (the expected fraction
  under the classifier's posterior, no thresholding loss for ambiguous particles) with intervals
  from the binomial-like variance of a sum of independent categorical draws;
- :func:`compare_groups`: chi-square test of independence of class and group.

References
----------
Wilson, JASA 22, 209 (1927), doi:10.1080/01621459.1927.10502953; Saerens, Latinne & Decaestecker,
Neural Comput. 14, 21 (2002), doi:10.1162/089976602753284446 (class priors from posteriors);
Pearson, Phil. Mag. 50, 157 (1900), doi:10.1080/14786440009463897 (chi-square test).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

def wilson_interval(k, n, *, z: float = 1.959964) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (default 95 %) of a binomial proportion k/n."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        den = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / den
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / den
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def class_fractions(groups, classes) -> pd.DataFrame:
    """Per group and class: ``count, n_group, fraction, fraction_low95, fraction_high95``."""
    df = pd.DataFrame({"group": np.asarray(groups).astype(str), "class": np.asarray(classes).astype(str)})
    ct = pd.crosstab(df["group"], df["class"])
    rows = []
    for g, row in ct.iterrows():
        n = int(row.sum())
        lo, hi = wilson_interval(row.to_numpy(), n)
        for (c, k), a, b in zip(row.items(), lo, hi):
            rows.append({"group": g, "class": c, "count": int(k), "n_group": n, "fraction": k / n if n else np.nan,
                         "fraction_low95": float(a), "fraction_high95": float(b)})
    return pd.DataFrame(rows, columns=["group", "class", "count", "n_group", "fraction", "fraction_low95",
                                       "fraction_high95"])


def compare_groups(groups, classes) -> dict:
    """Chi-square test of independence of class and group (do the conditions differ?).

    Returns ``chi2, dof, p_value, cramers_v, n_groups`` (p_value NaN with fewer than 2 groups
    or classes).
    """
    from scipy.stats import chi2_contingency

    ct = pd.crosstab(np.asarray(groups).astype(str), np.asarray(classes).astype(str))
    ct = ct.loc[ct.sum(1) > 0, ct.sum(0) > 0]
    if ct.shape[0] < 2 or ct.shape[1] < 2:
        return {"chi2": float("nan"), "dof": 0, "p_value": float("nan"), "cramers_v": float("nan"),
                "n_groups": int(ct.shape[0])}
    chi2, p, dof, _ = chi2_contingency(ct.to_numpy())
    n = ct.to_numpy().sum()
    v = float(np.sqrt(chi2 / (n * (min(ct.shape) - 1))))
    return {"chi2": float(chi2), "dof": int(dof), "p_value": float(p), "cramers_v": v, "n_groups": int(ct.shape[0])}


def posterior_fractions(groups, probabilities, classes, *, z: float = 1.959964) -> pd.DataFrame:
    """Per group and class the expected fraction under the classifier's posterior.

    ``fraction`` = mean over the group's particles of P(class | particle) (no thresholding: an
    ambiguous particle counts half to each of two classes instead of wholly to one; unbiased for
    calibrated posteriors, Saerens et al. 2002). Interval: fraction +/- z sqrt(f (1 - f) / n +
    sum p (1 - p) / n^2), the sampling variance of the group's population plus the variance of
    the class calls (a sum of independent categorical draws), clipped to [0, 1].

    Parameters
    ----------
    groups : (n,) group of each particle.
    probabilities : (n, K) class probabilities (rows sum to 1).
    classes : the K class names (columns of ``probabilities``).

    Returns
    -------
    DataFrame ``group, class, expected_count, n_group, fraction, fraction_low95, fraction_high95``.
    """
    g = np.asarray(groups).astype(str)
    p = np.asarray(probabilities, dtype=float)
    names = [str(c) for c in classes]
    if p.ndim != 2 or p.shape != (len(g), len(names)):
        raise ValueError(f"probabilities must be (n particles, n classes) = ({len(g)}, {len(names)}), got {p.shape}")
    rows = []
    for grp in sorted(set(g)):
        q = p[g == grp]
        n = len(q)
        f = q.mean(0)
        half = z * np.sqrt(f * (1 - f) / n + (q * (1 - q)).sum(0) / n**2)
        for c, fk, hk, ek in zip(names, f, half, q.sum(0)):
            rows.append({"group": grp, "class": c, "expected_count": float(ek), "n_group": n, "fraction": float(fk),
                         "fraction_low95": float(max(fk - hk, 0.0)), "fraction_high95": float(min(fk + hk, 1.0))})
    return pd.DataFrame(rows, columns=["group", "class", "expected_count", "n_group", "fraction", "fraction_low95",
                                       "fraction_high95"])
