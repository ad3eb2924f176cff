"""Morphology classification of particles from their shape descriptors.

- :func:`shape_features`: scale-free shape features (plus log size) from a particle table,
  including the projected-thickness-to-width ratio from the object's contrast (cubes, plates
  and spheres of one outline differ in how thick they are, not only in their outline).
- :func:`cluster_shapes`: unsupervised Gaussian-mixture grouping on standardised features;
  the number of classes (``"auto"``) by the mean silhouette of the mixture's partition
  (default; BIC of a mixture over-splits non-Gaussian shape classes) or by BIC, never a K with
  a class of a handful of particles, and K = 1 when no K beats one Gaussian population; the
  partition at that K by a shared-covariance mixture refined with equal priors and class
  covariances shrunk toward the pooled one; stability as the adjusted Rand index of bootstrap
  refits.
- supervised classification from a few labelled objects (:func:`train_classifier`,
  :func:`predict_classes`) lives in :mod:`cryomat.measure.supervised`; per-group fractions with
  intervals and the test that conditions differ (:func:`class_fractions`,
  :func:`posterior_fractions`, :func:`compare_groups`) in :mod:`cryomat.measure.fractions`;
  both are re-exported here. Projection-model features from the image
  (:func:`cryomat.measure.projection.projection_features`) join the table's columns when present.

References
----------
Yao et al., Nanoscale 14, 15357 (2022), doi:10.1039/D2NR03712B (shape groups of nanoparticles
without hand-picked descriptors); Schwarz, Ann. Stat. 6, 461 (1978), doi:10.1214/aos/1176344136 (BIC);
Rousseeuw, J. Comput. Appl. Math. 20, 53 (1987), doi:10.1016/0377-0427(87)90125-7 (silhouettes);
Hubert & Arabie, J. Classif. 2, 193 (1985), doi:10.1007/BF01908075 (adjusted Rand index);
Reimer & Kohl (2008), doi:10.1007/978-0-387-40093-8 (mass-thickness
contrast -ln(I/I0) proportional to projected thickness).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cryomat.measure.gaussian import gaussian_posterior, shrunk_gaussians
from cryomat.measure.fractions import class_fractions, compare_groups, posterior_fractions, wilson_interval
from cryomat.measure.projection import PROJECTION_COLUMNS
from cryomat.measure.supervised import (MODELS, Classifier, SemiSupervisedGaussian, class_probabilities,
                                        predict_classes, train_classifier)

__all__ = ["FEATURES", "CLUSTER_FEATURES", "PARTITION_FEATURES", "Clustering", "cluster_shapes", "shape_features",
           "MODELS", "Classifier", "SemiSupervisedGaussian", "train_classifier", "predict_classes",
           "class_probabilities",
           "wilson_interval", "class_fractions", "posterior_fractions", "compare_groups"]

#: features read from the object's outline (NaN for objects under :data:`MIN_SHAPE_AREA_PX`)
OUTLINE_FEATURES = ("circularity", "log_aspect_ratio", "feret_ratio", "solidity", "convexity", "harmonic4",
                    "harmonic6")
#: objects with fewer pixels carry no outline shape: noise-free digitised discs of 19-50 px read
#: aspect ratios up to 1.15-1.22 and Feret ratios down to 0.71-0.78 from the pixel grid alone
#: (random sub-pixel centres), exactly 1 from 78 px on (Kiryati & Bruckstein 1991,
#: doi:10.1016/1049-9652(91)90017-D: what a binary digitisation keeps of a shape)
MIN_SHAPE_AREA_PX = 64
FEATURES = ("log_equivalent_diameter", "circularity", "log_aspect_ratio", "feret_ratio", "solidity", "convexity")
#: features the unsupervised grouping uses when present: the most discriminating and least noisy
#: at low dose (solidity, convexity and circularity mostly add boundary noise; adding circularity
#: made the silhouette prefer K = 2, rods vs the rest; dropping the rim/core contrast helped on
#: the tuning images but let K = 2 win on 2 of 12 other sets; only seed bases 19000 and 21000
#: are held out from every choice here, see ``benchmarks/bench_classify.py``)
CLUSTER_FEATURES = ("log_equivalent_diameter", "log_aspect_ratio", "feret_ratio", "harmonic4", "harmonic6",
                    "rim_to_core_contrast", "log_thickness_ratio")
#: features the final partition (at the chosen K) uses when present: those of
#: :data:`CLUSTER_FEATURES` without the rim/core contrast, whose spread within plates and cubes
#: (0.1-0.2) blurred the sphere/plate boundary (tuning seed bases 5000-11000, 24 sets at K = 4:
#: worst ARI 0.76 with it, 0.88 without; the K choice still needs it: without it the silhouette
#: preferred K = 2, rods vs the rest, on 8 of 24 sets), plus the flat-square and flat-disc vs
#: dome likelihood ratios of the projection fits (:mod:`cryomat.measure.projection`; in the K
#: choice too the first let K = 3 win on 3 of 18 sets, so they are used only here). The flat-disc
#: ratio keeps spheres (domed) from merging with plates (flat) while rods split in two: 37 sets
#: of bases 5000-17000, mean ARI 0.951 -> 0.966, one set 0.57 -> 0.93 (base 17000, replicate 5,
#: which prompted it), five sets 0.01-0.03 lower
PARTITION_FEATURES = ("log_equivalent_diameter", "log_aspect_ratio", "feret_ratio", "harmonic4", "harmonic6",
                      "log_thickness_ratio", "llr_ratio_square_dome", "llr_ratio_disc_dome")
#: shrinkage of each class's covariance toward the pooled one in the equal-prior refinement of
#: the partition (1: one shared covariance; regularised discriminant analysis, Friedman, JASA 84,
#: 165 (1989), doi:10.1080/01621459.1989.10478752): rods spread far more in the projection and
#: contrast features than spheres and cubes do, and one pooled covariance lets that spread drown
#: the sphere/cube difference (12 sets of bases 13000/15000, before the projection feature: worst
#: ARI 0.87 -> 0.90, mean 0.935 -> 0.953 against 1)
PARTITION_SHRINKAGE = 0.3
#: reference draws (one Gaussian population) for the "no class structure" test
REFERENCE_DRAWS = 3
#: the chosen K's silhouette must exceed the one-Gaussian reference by this (the reference's
#: spread over draws is 0.01-0.03; the 4-class simulated sets exceed it by ~0.3)
REFERENCE_MARGIN = 0.05
#: criteria for choosing the number of classes
K_CRITERIA = ("silhouette", "bic")
#: mixture starts per K with the silhouette criterion (the one with the best silhouette is kept)
SILHOUETTE_STARTS = 8
#: the silhouette criterion steps down from the best K to K - 1 while the silhouette of K - 1 is
#: within this of that of K. Splitting one non-Gaussian class in two (plates, whose thickness is
#: spread uniformly over 0.35-0.5 of their width) raised the silhouette by 0.002-0.026 on 24
#: tuning 6-image sets (seed bases 5000-11000), merging two real classes lowered it by
#: 0.065-0.11; 0.03 lies between (0.02, tuned on seeds 2000-3023, let K = 5 win on 3 of the 24).
#: Stepping one K at a time, not taking the smallest K within the tolerance of the best, because
#: K = 2 (rods vs the rest) can score near K = 4 while K = 3 lies far below both
SILHOUETTE_TOLERANCE = 0.03
#: a K whose partition has a class smaller than this fraction of the particles (or of 3
#: particles) is not eligible: a handful of merged pairs or debris is not a morphology class
MIN_CLASS_FRACTION = 0.05
#: with ``"auto"`` and the silhouette criterion, no K is taken when the best mean silhouette is
#: below this: "no substantial structure" (Kaufman & Rousseeuw 1990, doi:10.1002/9780470316801;
#: the real SiO2 HAADF spheres, one population: 0.13-0.21 for K = 2-7; the 4-class simulated
#: sets 0.48-0.57), and every particle is one class
NO_STRUCTURE_SILHOUETTE = 0.25


def shape_features(table: pd.DataFrame, *, include_size: bool = True) -> pd.DataFrame:
    """Feature matrix (one row per particle) from :func:`cryomat.measure.particle_table` columns.

    ``feret_ratio`` = feret_min / feret_max (1 disc, 0.87 hexagon, 0.71 square, < 0.5 rods).
    ``log_thickness_ratio`` (when the table has ``contrast``, the object's mean intensity
    relative to the support around it) = ln(|ln(1 + contrast)| / equivalent diameter in nm):
    |ln(I/I0)| is proportional to the mean projected thickness (mass-thickness contrast; to the
    contrast itself for a weak HAADF signal), so this is a thickness-to-width ratio, independent
    of the particle's size (at 1 e/A^2 in the ``particles`` simulator: cube 0.030, sphere 0.026,
    rod 0.016, plate 0.014 per nm, +/- 0.002-0.003). ``llr_ratio_square_dome`` and
    ``llr_ratio_disc_dome`` when the table has them (projection-model fits,
    :mod:`cryomat.measure.projection`). The outline features (:data:`OUTLINE_FEATURES`) of objects
    under :data:`MIN_SHAPE_AREA_PX` pixels (column ``area_px``) are NaN: the pixel grid, not the
    particle, sets them.
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
    for col in PROJECTION_COLUMNS:
        if col in table.columns and table[col].notna().any():
            f[col] = table[col].astype(float).clip(-1, 1)
    if "contrast" in table.columns and table["contrast"].notna().any():
        c = table["contrast"].astype(float).clip(lower=-0.999)
        mass = np.abs(np.log1p(c)).clip(lower=1e-4)
        f["log_thickness_ratio"] = np.log(mass) - np.log(table["equivalent_diameter_nm"].astype(float).clip(lower=1e-6))
    if "area_px" in table.columns:  # below the pixel grid's information limit: no outline shape
        small = table["area_px"].astype(float).to_numpy() < MIN_SHAPE_AREA_PX
        f.loc[small, [c for c in OUTLINE_FEATURES if c in f.columns]] = np.nan
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
    """Unsupervised grouping: ``labels`` (0..K-1 per row), ``n_classes``, ``bic`` and
    ``silhouette`` per tried K (empty for a fixed K), ``criterion`` that chose K,
    ``stability_ari`` (bootstrap ARIs against the full-data grouping), ``embedding`` (n, 2) PCA,
    ``columns`` (the features that chose K), ``partition_columns`` (those of the final
    partition), ``excluded_k`` (K values not eligible: a class below :data:`MIN_CLASS_FRACTION`),
    ``probabilities`` (n, K) the partition's class posteriors (for fractions as posterior sums),
    ``silhouette_reference`` (the mean silhouette at the chosen K of one Gaussian population with
    the data's covariance, :func:`_reference_silhouette`; NaN when not computed)."""

    labels: np.ndarray
    n_classes: int
    bic: dict
    stability_ari: np.ndarray
    embedding: np.ndarray = field(repr=False)
    explained_variance_ratio: np.ndarray = field(repr=False)
    silhouette: dict = field(default_factory=dict)
    criterion: str = "fixed"
    columns: tuple = ()
    partition_columns: tuple = ()
    excluded_k: tuple = ()
    probabilities: np.ndarray | None = field(default=None, repr=False)
    silhouette_reference: float = float("nan")

    @property
    def stability_mean(self) -> float:
        return float(np.mean(self.stability_ari)) if self.stability_ari.size else float("nan")

    @property
    def stability_std(self) -> float:
        return float(np.std(self.stability_ari)) if self.stability_ari.size else float("nan")


def cluster_shapes(features: pd.DataFrame, *, n_classes: int | str = "auto", k_range=(2, 7), seed: int = 0,
                   n_bootstrap: int = 20, columns=None, criterion: str = "silhouette") -> Clustering:
    """Group particles by shape with Gaussian mixtures on standardised features.

    Two steps: the number of classes K (``"auto"``) from full-covariance mixtures on the
    :data:`CLUSTER_FEATURES` present, then the partition at that K by a mixture with one
    covariance matrix shared by all classes (``tied``: shape classes differ in where they lie more
    than in how they spread, and a shared covariance has 4x fewer parameters to estimate from a
    few hundred particles) on the :data:`PARTITION_FEATURES` present; of
    :data:`SILHOUETTE_STARTS` starts the one whose partition has the highest silhouette is kept
    (the likelihood's best start was sometimes a poor partition: worst ARI 0.59 vs 0.88), then
    refined with equal class priors and class covariances shrunk toward the pooled one
    (:func:`_equal_prior_em`, :data:`PARTITION_SHRINKAGE`), the start whose refined partition
    has the best silhouette kept (:func:`_partition`). End to end through
    ``cryomat segment`` on 6-image sets of the 4-class ``particles`` simulator at 1 e/A^2: seed
    bases 5000-11000 (24 sets, which informed these choices) K = 4 every time, ARI 0.88-0.97
    (before: full-covariance partition on all features, 0.81-0.98, K = 5 on 3 sets); bases
    13000/15000 (12 sets, unseen then, but later used to choose :data:`PARTITION_SHRINKAGE`, so
    tuning sets too: only bases 19000 and 21000 are held out) K = 4 every time, ARI 0.87-0.97
    (before 0.72-0.97). With the projection-fit feature in the partition and class covariances
    shrunk toward the pooled one (:data:`PARTITION_SHRINKAGE`), bases 5000-15000 (36 sets,
    segmentation of 2026-11-25 18:12): K = 4 every time, ARI 0.903-1.000, per base mean
    0.945-0.966, standard deviation over the 6 sets 0.015-0.026 and range 0.044-0.082; over
    classify seeds on one set the range is 0.

    Parameters
    ----------
    features : from :func:`shape_features` (rows with NaN are imputed to the column mean).
    n_classes : K, or ``"auto"`` (the K in ``k_range`` chosen by ``criterion``).
    k_range : (lowest, highest) K tried with ``"auto"``.
    seed : random seed (fits and bootstrap).
    n_bootstrap : bootstrap refits for the stability (ARI of each refit's labels on all rows).
    columns : feature columns to use for both steps; default as above (all columns if none of
        :data:`CLUSTER_FEATURES` is present).
    criterion : ``"silhouette"`` (default: the K whose mixture partition has the highest mean
        silhouette in the standardised feature space, Rousseeuw 1987, then K - 1 while its
        silhouette is within :data:`SILHOUETTE_TOLERANCE` of that of K; for each K the best of
        :data:`SILHOUETTE_STARTS` mixture starts by silhouette; robust to shape classes that are
        not Gaussian; K = 1, criterion ``"silhouette: no class structure"``, when even the best
        silhouette is below :data:`NO_STRUCTURE_SILHOUETTE`) or ``"bic"`` (lowest BIC; keeps adding components to describe
        non-Gaussian classes as the number of particles grows: on 4-class simulated particles it
        chose K = 5-7 for 170-680 particles, where the silhouette chose 4). With either, a K
        whose partition has a class of fewer than :data:`MIN_CLASS_FRACTION` of the particles is
        not eligible (unless no K is).
    """
    from threadpoolctl import threadpool_limits

    if criterion not in K_CRITERIA:
        raise ValueError(f"criterion must be one of {K_CRITERIA}, got {criterion!r}")
    if columns is None:
        # a feature missing for most particles (outline shape of objects too small to have one)
        # would make the imputed rows a class of their own
        usable = [c for c in features.columns if features[c].notna().mean() >= 0.5] or list(features.columns)
        columns = [c for c in CLUSTER_FEATURES if c in usable] or usable
        pcols = [c for c in PARTITION_FEATURES if c in usable] or list(columns)
    else:
        pcols = columns = list(columns)
    x = np.asarray(features[list(columns)], dtype=float)
    xp = np.asarray(features[list(pcols)], dtype=float)
    n = len(x)
    if n < 3:
        raise ValueError(f"need at least 3 particles to cluster, got {n}")
    # tiny matrices: BLAS threads only contend (20x slower on a busy machine)
    with threadpool_limits(1):
        out = _cluster(x, xp, n_classes, k_range, seed, n_bootstrap, criterion)
    return Clustering(**{**out, "columns": tuple(columns), "partition_columns": tuple(pcols)})


def _silhouette(z, labels, seed) -> float:
    from sklearn.metrics import silhouette_score

    if len(np.unique(labels)) < 2:
        return -1.0
    # O(n^2) distances: a random subsample of 2000 rows estimates the mean silhouette to ~0.01
    return float(silhouette_score(z, labels, sample_size=min(len(z), 2000), random_state=seed))


def _fit(data, k, s, n_init=1, cov="full"):
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(k, covariance_type=cov, n_init=n_init, random_state=s, reg_covar=1e-3).fit(data)


def _best_start(z, k, seed, cov):
    """Of :data:`SILHOUETTE_STARTS` single-start mixtures, the one whose partition has the highest
    silhouette (the likelihood's best of a few starts can be a poor partition: one component on
    a few outliers, two classes merged). Returns (model, labels, silhouette)."""
    best = None
    for s in range(SILHOUETTE_STARTS):
        m = _fit(z, k, seed * 1000 + s, cov=cov)
        lab = m.predict(z)
        v = _silhouette(z, lab, seed)
        if best is None or v > best[2]:
            best = (m, lab, v)
    return best


def _equal_prior_em(z, resp, n_iter: int = 30, reg: float = 1e-3, shrinkage: float | None = None):
    """Refine a shared-covariance mixture with equal class priors (EM from responsibilities
    ``resp``): a large class's prior no longer pulls the ambiguous particles of a small one
    (class-balanced, like the supervised models; 36 simulated 6-image sets: ARI unchanged on 29,
    +0.013 to +0.043 on 6, -0.023 on 1). Each class's covariance is shrunk toward the pooled one
    by ``shrinkage`` (default :data:`PARTITION_SHRINKAGE`). Returns (labels, responsibilities,
    log-likelihood up to a constant; -inf when a class emptied and the start is returned)."""
    shrinkage = PARTITION_SHRINKAGE if shrinkage is None else float(shrinkage)
    start = (resp.argmax(1), resp, -np.inf)
    loglik = -np.inf
    for _ in range(int(n_iter)):
        w = resp.sum(0)
        if np.any(w < 1e-9):  # an emptied class: keep the mixture's partition
            return start
        resp, loglik = gaussian_posterior(z, *shrunk_gaussians(z, resp, shrinkage, reg, len(z)))
    return resp.argmax(1), resp, loglik


def _reference_silhouette(z, k, seed) -> float:
    """Mean over :data:`REFERENCE_DRAWS` draws of the best-start silhouette at K of as many
    points from one Gaussian with the covariance of ``z``: what splitting a single population
    scores in this many dimensions (the reference-distribution idea of the gap statistic,
    Tibshirani, Walther & Hastie, JRSS B 63, 411 (2001), doi:10.1111/1467-9868.00293). A split
    Gaussian scores 0.35-0.46 in 2 dimensions but 0.12-0.19 in 6, so no one silhouette threshold
    fits every feature set."""
    rng = np.random.default_rng(10_000 + seed)
    cov = np.cov(z, rowvar=False) + 1e-9 * np.eye(z.shape[1])
    vals = [_best_start(rng.multivariate_normal(np.zeros(z.shape[1]), cov, size=len(z)), k, seed + d, "full")[2]
            for d in range(REFERENCE_DRAWS)]
    return float(np.mean(vals))


def _partition(z, k, seed):
    """Partition at K: :data:`SILHOUETTE_STARTS` shared-covariance mixture starts, each refined by
    :func:`_equal_prior_em`; of those without a class smaller than :data:`MIN_CLASS_FRACTION`
    (equal priors let a few outliers hold a class), the one whose labels have the highest mean
    silhouette is kept (choosing by the refined mixture's likelihood gave the same partitions on
    18 simulated sets).
    Returns (labels, probabilities)."""
    best = None
    min_size = max(3, int(np.ceil(MIN_CLASS_FRACTION * len(z))))
    for s in range(SILHOUETTE_STARTS):
        m = _fit(z, k, seed * 1000 + s, cov="tied")
        lab, prob, _ = _equal_prior_em(z, m.predict_proba(z))
        # a partition with a class of a handful of outliers ranks below every one without
        score = (bool(np.bincount(lab, minlength=k).min() >= min_size), _silhouette(z, lab, seed))
        if best is None or score > best[0]:
            best = (score, lab, prob)
    return best[1], best[2]


def _cluster(x, xp, n_classes, k_range, seed, n_bootstrap, criterion) -> dict:
    from sklearn.decomposition import PCA
    from sklearn.metrics import adjusted_rand_score

    n = len(x)
    z, _, _ = _standardise(x)
    zp, _, _ = _standardise(xp)
    bic, sil, small = {}, {}, []
    reference = float("nan")
    if n_classes == "auto":
        lo, hi = k_range
        # K from the particles with every feature measured: rows imputed to the mean all sit at
        # one point and would pass for a tight class (unless too few rows are complete)
        whole = np.isfinite(x).all(axis=1)
        if whole.sum() >= max(3 * int(hi), n // 2):
            z = z[whole]
        min_size = max(3, int(np.ceil(MIN_CLASS_FRACTION * len(z))))
        for k in range(max(2, int(lo)), min(int(hi), len(z) - 1) + 1):
            if criterion == "bic":
                m = _fit(z, k, seed, n_init=4)
                lab = m.predict(z)
                sil[k] = _silhouette(z, lab, seed)
            else:
                m, lab, sil[k] = _best_start(z, k, seed, "full")
            bic[k] = float(m.bic(z))
            if np.bincount(lab, minlength=k).min() < min_size:
                small.append(k)
        if not sil:
            raise ValueError(f"too few particles ({n}) for k_range {tuple(k_range)}")
        ok = [k for k in sil if k not in small] or list(sil)
        if criterion == "bic":
            k = min(ok, key=bic.get)
        else:  # parsimony: from the best K step down while the next smaller K is nearly as good
            k = max(ok, key=sil.get)
            if sil[k] < NO_STRUCTURE_SILHOUETTE:
                k, criterion = 1, "silhouette: no class structure"
            while k - 1 in ok and sil[k - 1] >= sil[k] - SILHOUETTE_TOLERANCE:
                k -= 1
            if k > 1:  # does the partition beat that of one Gaussian population of the same shape?
                reference = _reference_silhouette(z, k, seed)
                if sil[k] < reference + REFERENCE_MARGIN:
                    k, criterion = 1, "silhouette: no class structure (not above a one-Gaussian reference)"
    else:
        k = int(n_classes)
        if not 1 <= k < n:
            raise ValueError(f"n_classes must be between 1 and {n - 1}, got {n_classes!r}")
        criterion = "fixed"
    if k == 1:
        labels, prob = np.zeros(n, int), np.ones((n, 1))
    else:
        labels, prob = _partition(zp, k, seed)
    rng = np.random.default_rng(seed)
    aris = []
    for b in range(int(n_bootstrap)):
        idx = rng.integers(0, n, n)
        m = _fit(zp[idx], k, seed + 1 + b, cov="tied")
        aris.append(adjusted_rand_score(labels, m.predict(zp)))
    pca = PCA(n_components=min(2, zp.shape[1]), random_state=seed).fit(zp)
    emb = pca.transform(zp)
    # order classes by size (largest first) so labels are reproducible
    order = np.argsort(-np.bincount(labels, minlength=k), kind="stable")
    remap = np.empty(k, int)
    remap[order] = np.arange(k)
    return dict(labels=remap[labels], probabilities=prob[:, order], n_classes=int(k), bic=bic,
                stability_ari=np.asarray(aris), embedding=emb,
                explained_variance_ratio=pca.explained_variance_ratio_, silhouette=sil, criterion=criterion,
                excluded_k=tuple(small), silhouette_reference=reference)
