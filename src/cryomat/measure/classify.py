"""Morphology classification of particles from their shape descriptors.

- :func:`shape_features`: scale-free shape features (plus log size) from a particle table.
- :func:`cluster_shapes`: unsupervised Gaussian-mixture grouping, number of classes by BIC
  (``"auto"``), stability as the adjusted Rand index of bootstrap refits.
- :func:`train_classifier` / :func:`predict_classes`: supervised random forest from a few
  labelled objects, with cross-validated macro-F1.
- :func:`class_fractions`: per-group class fractions with Wilson score intervals;
  :func:`compare_groups`: chi-square test that two or more conditions differ.

References
----------
Yao et al., Nanoscale 14, 15357 (2022), doi:10.1039/D2NR03712B (shape groups of nanoparticles
without hand-picked descriptors); Schwarz, Ann. Stat. 6, 461 (1978), doi:10.1214/aos/1176344136 (BIC);
Hubert & Arabie, J. Classif. 2, 193 (1985), doi:10.1007/BF01908075 (adjusted Rand index);
Wilson, JASA 22, 209 (1927), doi:10.1080/01621459.1927.10502953; Breiman, Mach. Learn. 45, 5 (2001),
doi:10.1023/A:1010933404324.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

FEATURES = ("log_equivalent_diameter", "circularity", "log_aspect_ratio", "feret_ratio", "solidity", "convexity")
#: features the unsupervised grouping uses when present: the most discriminating and least noisy
#: at low dose (solidity, convexity and circularity mostly add boundary noise)
CLUSTER_FEATURES = ("log_equivalent_diameter", "log_aspect_ratio", "feret_ratio", "harmonic4", "harmonic6",
                    "rim_to_core_contrast")


def shape_features(table: pd.DataFrame, *, include_size: bool = True) -> pd.DataFrame:
    """Feature matrix (one row per particle) from :func:`cryomat.measure.particle_table` columns.

    ``feret_ratio`` = feret_min / feret_max (1 disc, 0.87 hexagon, 0.71 square, < 0.5 rods).
    """
    need = {"equivalent_diameter_nm", "circularity", "aspect_ratio", "feret_min_nm", "feret_max_nm", "solidity",
            "convexity"}
    missing = need - set(table.columns)
    if missing:
        raise ValueError(f"particle table lacks column(s) {sorted(missing)}")
    f = pd.DataFrame(index=table.index)
    f["log_equivalent_diameter"] = np.log(table["equivalent_diameter_nm"].astype(float).clip(lower=1e-6))
    f["circularity"] = table["circularity"].astype(float).clip(0, 1.2)
    f["log_aspect_ratio"] = np.log(table["aspect_ratio"].astype(float).clip(lower=1.0))
    f["feret_ratio"] = (table["feret_min_nm"] / table["feret_max_nm"].replace(0, np.nan)).astype(float)
    f["solidity"] = table["solidity"].astype(float).clip(0, 1.2)
    f["convexity"] = table["convexity"].astype(float).clip(0, 1.2)
    for col in ("harmonic4", "harmonic6"):
        if col in table.columns and table[col].notna().any():
            f[col] = np.sqrt(table[col].astype(float).clip(0, 1))
    if "rim_to_core_contrast" in table.columns and table["rim_to_core_contrast"].notna().any():
        f["rim_to_core_contrast"] = table["rim_to_core_contrast"].astype(float).clip(-1, 3)
    if not include_size:
        f = f.drop(columns=["log_equivalent_diameter"])
    return f


def _standardise(x: np.ndarray):
    mu = np.nanmean(x, axis=0)
    sd = np.nanstd(x, axis=0)
    sd[sd == 0] = 1.0
    z = (x - mu) / sd
    return np.nan_to_num(z), mu, sd


@dataclass(frozen=True)
class Clustering:
    """Unsupervised grouping: ``labels`` (0..K-1 per row), ``n_classes``, ``bic`` per tried K,
    ``stability_ari`` (bootstrap ARIs against the full-data grouping), ``embedding`` (n, 2) PCA."""

    labels: np.ndarray
    n_classes: int
    bic: dict
    stability_ari: np.ndarray
    embedding: np.ndarray = field(repr=False)
    explained_variance_ratio: np.ndarray = field(repr=False)

    @property
    def stability_mean(self) -> float:
        return float(np.mean(self.stability_ari)) if self.stability_ari.size else float("nan")

    @property
    def stability_std(self) -> float:
        return float(np.std(self.stability_ari)) if self.stability_ari.size else float("nan")


def cluster_shapes(features: pd.DataFrame, *, n_classes: int | str = "auto", k_range=(2, 7), seed: int = 0,
                   n_bootstrap: int = 20, columns=None) -> Clustering:
    """Group particles by shape with a Gaussian mixture on standardised features.

    Parameters
    ----------
    features : from :func:`shape_features` (rows with NaN are imputed to the column mean).
    n_classes : K, or ``"auto"`` (the K in ``k_range`` with the lowest BIC).
    seed : random seed (fits and bootstrap).
    n_bootstrap : bootstrap refits for the stability (ARI of each refit's labels on all rows).
    columns : feature columns to use; default those of :data:`CLUSTER_FEATURES` that are present
        (all columns if none is).
    """
    from threadpoolctl import threadpool_limits

    if columns is None:
        columns = [c for c in CLUSTER_FEATURES if c in features.columns] or list(features.columns)
    x = np.asarray(features[list(columns)], dtype=float)
    n = len(x)
    if n < 3:
        raise ValueError(f"need at least 3 particles to cluster, got {n}")
    # tiny matrices: BLAS threads only contend (20x slower on a busy machine)
    with threadpool_limits(1):
        return _cluster(x, n_classes, k_range, seed, n_bootstrap)


def _cluster(x, n_classes, k_range, seed, n_bootstrap) -> "Clustering":
    from sklearn.decomposition import PCA
    from sklearn.metrics import adjusted_rand_score
    from sklearn.mixture import GaussianMixture

    n = len(x)
    z, _, _ = _standardise(x)

    def fit(data, k, s, n_init=2):
        return GaussianMixture(k, covariance_type="full", n_init=n_init, random_state=s, reg_covar=1e-3).fit(data)

    n_init_ref = 4

    bic = {}
    if n_classes == "auto":
        lo, hi = k_range
        for k in range(lo, min(hi, n - 1) + 1):
            bic[k] = float(fit(z, k, seed, n_init_ref).bic(z))
        k = min(bic, key=bic.get)
    else:
        k = int(n_classes)
        if not 1 <= k < n:
            raise ValueError(f"n_classes must be between 1 and {n - 1}, got {n_classes!r}")
    ref = fit(z, k, seed, n_init_ref)
    labels = ref.predict(z)
    rng = np.random.default_rng(seed)
    aris = []
    for b in range(int(n_bootstrap)):
        idx = rng.integers(0, n, n)
        m = fit(z[idx], k, seed + 1 + b, n_init=1)
        aris.append(adjusted_rand_score(labels, m.predict(z)))
    pca = PCA(n_components=min(2, z.shape[1]), random_state=seed).fit(z)
    emb = pca.transform(z)
    # order classes by size (largest first) so labels are reproducible
    order = np.argsort(-np.bincount(labels, minlength=k), kind="stable")
    remap = np.empty(k, int)
    remap[order] = np.arange(k)
    return Clustering(labels=remap[labels], n_classes=int(k), bic=bic, stability_ari=np.asarray(aris),
                      embedding=emb, explained_variance_ratio=pca.explained_variance_ratio_)


@dataclass(frozen=True)
class Classifier:
    """A trained supervised shape classifier: ``model`` (scikit-learn), ``classes``,
    ``cv_macro_f1`` (cross-validated on the labelled rows, NaN if too few), ``feature_names``."""

    model: object = field(repr=False)
    classes: tuple
    cv_macro_f1: float
    feature_names: tuple


def train_classifier(features: pd.DataFrame, classes, *, seed: int = 0) -> Classifier:
    """Random forest on labelled particles (``classes``: one name per row of ``features``)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.metrics import f1_score

    x = np.nan_to_num(np.asarray(features, dtype=float))
    y = np.asarray(classes).astype(str)
    if len(y) != len(x):
        raise ValueError(f"{len(y)} class labels for {len(x)} feature rows")
    names, counts = np.unique(y, return_counts=True)
    if len(names) < 2:
        raise ValueError(f"need labelled examples of at least 2 classes, got {list(names)}")
    from threadpoolctl import threadpool_limits

    model = RandomForestClassifier(n_estimators=200, random_state=seed, class_weight="balanced", n_jobs=1)
    cv = float("nan")
    folds = int(min(5, counts.min()))
    with threadpool_limits(1):
        if folds >= 2:
            pred = cross_val_predict(model, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
            cv = float(f1_score(y, pred, average="macro"))
        model.fit(x, y)
    return Classifier(model=model, classes=tuple(names), cv_macro_f1=cv, feature_names=tuple(features.columns))


def predict_classes(clf: Classifier, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class names and their probabilities (max over classes) for each row."""
    x = np.nan_to_num(np.asarray(features[list(clf.feature_names)], dtype=float))
    p = clf.model.predict_proba(x)
    return np.asarray(clf.model.classes_)[p.argmax(1)], p.max(1)


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
