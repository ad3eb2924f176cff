"""Learned 3D segmentation: a random-forest pixel classifier trained from sparse user labels.

The method microscopists know from ilastik (Berg et al. 2019, doi:10.1038/s41592-019-0582-9) and
Trainable Weka Segmentation (Arganda-Carreras et al. 2017, doi:10.1093/bioinformatics/btx180): the user
paints a few strokes ("scribbles") of each class, every voxel gets a stack of filter responses at several
scales (Gaussian intensity, gradient magnitude and Hessian eigenvalues:
``skimage.feature.multiscale_basic_features``), a random forest (Breiman 2001,
doi:10.1023/A:1010933404324) is trained on the labelled voxels only and then classifies every voxel.

Scribble convention (an integer volume of the tomogram's shape): ``0`` unlabelled, ``1`` background,
``2..N+1`` phases 1..N. Predictions use the phase labels of the rest of ``morph3d``: ``0`` background,
``1..N`` phases (scribble value minus one).

Volumes are processed in blocks (default 96^3 voxels; ``block``) with a halo of ``3 * sigma_max``
voxels on each side, so that the filters see the same neighbourhood as on the whole volume (no seams)
while the feature stack (``n_features x block``, ~20 features) stays a few hundred MB for any volume size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: at most this many labelled voxels train the forest (random subsample, every class kept)
MAX_TRAIN = 200_000


@dataclass
class FeatureParams:
    """Filter bank of :func:`voxel_features` (sigmas in voxels)."""

    sigma_min: float = 1.0
    sigma_max: float = 6.0
    num_sigma: int = 4
    intensity: bool = True
    edges: bool = True
    texture: bool = True

    @property
    def halo(self) -> int:
        """Block halo (voxels) so a Gaussian of ``sigma_max`` is complete at the block core."""
        return int(np.ceil(3.0 * self.sigma_max))


@dataclass
class PixelClassifier:
    """A trained forest, its feature parameters and the volume normalisation it expects.

    ``classes`` are scribble values (1 background, 2.. phases); ``oob_accuracy`` is the forest's
    out-of-bag accuracy on the (subsampled) labelled voxels; ``labelled_voxels`` counts per class.
    """

    model: object
    params: FeatureParams
    classes: np.ndarray
    oob_accuracy: float = float("nan")
    labelled_voxels: dict = field(default_factory=dict)

    @property
    def n_phases(self) -> int:
        """Number of phases besides the background (highest scribble class - 1)."""
        return int(self.classes.max()) - 1

    def save(self, path) -> None:
        """Write the classifier (joblib pickle) so later volumes of a session reuse it."""
        import joblib

        joblib.dump({"format": "cryomat.pixel_classifier/1", "classifier": self}, path)

    @staticmethod
    def load(path) -> "PixelClassifier":
        """Read a classifier written by :meth:`save` (trusted files only: it is a pickle)."""
        import joblib

        obj = joblib.load(path)
        if not isinstance(obj, dict) or obj.get("format") != "cryomat.pixel_classifier/1":
            raise ValueError(f"{path} is not a cryomat pixel classifier (written by --save-model)")
        return obj["classifier"]


def normalise(volume) -> np.ndarray:
    """Robust intensity normalisation (median 0, 1st-99.9th percentile span 1), so a model trained on
    one tomogram applies to another of different scale or offset."""
    v = np.asarray(volume, np.float32)
    sub = v[::2, ::2, ::2]
    lo, med, hi = np.percentile(sub, [1.0, 50.0, 99.9])
    return (v - np.float32(med)) / np.float32(max(hi - lo, 1e-12))


def _blocks(shape, core: int):
    import itertools

    starts = [range(0, n, core) for n in shape]
    for s in itertools.product(*starts):
        yield tuple(slice(a, min(n, a + core)) for a, n in zip(s, shape))


def voxel_features(volume, params: FeatureParams, *, block: int = 96, where=None):
    """Yield ``(core, features)`` over blocks: ``core`` a tuple of slices of ``volume``, ``features``
    the (z, row, col, n_features) float32 filter responses of those voxels.

    Parameters
    ----------
    volume : (z, row, col) normalised volume (:func:`normalise`).
    params : filter bank.
    block : edge of a block's core in voxels (each block is computed with a ``params.halo`` margin).
    where : optional bool volume: blocks without a True voxel are skipped.
    """
    from skimage.feature import multiscale_basic_features

    v = np.asarray(volume, np.float32)
    h = params.halo
    for core in _blocks(v.shape, int(block)):
        if where is not None and not where[core].any():
            continue
        pad = tuple(slice(max(0, c.start - h), min(n, c.stop + h)) for c, n in zip(core, v.shape))
        f = multiscale_basic_features(v[pad], intensity=params.intensity, edges=params.edges,
                                      texture=params.texture, sigma_min=params.sigma_min,
                                      sigma_max=params.sigma_max, num_sigma=params.num_sigma)
        inner = tuple(slice(c.start - p.start, c.stop - p.start) for c, p in zip(core, pad))
        yield core, np.asarray(f[inner], np.float32)


def check_scribbles(scribbles, shape) -> np.ndarray:
    """Validate a scribble volume; return it as int64. Raises ValueError naming what is wrong."""
    s = np.asarray(scribbles)
    if s.shape != tuple(shape):
        raise ValueError(f"scribbles shape {s.shape} differs from the volume's {tuple(shape)}")
    if not np.issubdtype(s.dtype, np.integer) and not np.all(s == np.round(s)):
        raise ValueError("scribbles must be integer labels (0 unlabelled, 1 background, 2.. phases)")
    s = s.astype(np.int64)
    if s.min() < 0:
        raise ValueError("scribbles must be >= 0 (0 unlabelled, 1 background, 2.. phases)")
    classes = np.unique(s[s > 0])
    if classes.size == 0:
        raise ValueError("scribbles contain no labelled voxel (all 0)")
    if classes.size < 2:
        raise ValueError(f"scribbles label only one class ({int(classes[0])}); label at least two "
                         "(1 background and 2.. phases)")
    return s


def train(volume, scribbles, *, params: FeatureParams | None = None, n_estimators: int = 50,
          max_depth: int = 12, class_weight: str | None = None, n_jobs: int = 2, max_train: int = MAX_TRAIN,
          block: int = 96, rng=0) -> PixelClassifier:
    """Train a random-forest voxel classifier on the labelled voxels of ``scribbles``.

    Parameters
    ----------
    volume : (z, row, col) tomogram (any intensity scale; normalised here).
    scribbles : int volume, same shape: 0 unlabelled, 1 background, 2..N+1 phases 1..N.
    params : filter bank (default :class:`FeatureParams`).
    n_estimators, max_depth : forest size.
    class_weight : ``None`` (default, as ilastik and Weka: the classes weigh as much as they were
        painted) or ``"balanced"`` (every class weighs the same, whatever its number of labelled voxels).
        With scribbles painted across the volume (~1 % of each class) ``None`` gave better Dice for every
        phase on the catalyst phantom (particles 0.88/0.88/0.92 vs 0.86/0.86/0.91, coating +0.04..0.10,
        seeds 3, 4, 6); ``"balanced"`` helps when a rare phase got many more strokes than its share.
    n_jobs : worker threads of the forest.
    max_train : labelled voxels used at most (a random subsample keeps every class).
    block : block edge of the feature computation (voxels).
    rng : seed.

    Returns
    -------
    PixelClassifier (with out-of-bag accuracy and labelled voxels per class).
    """
    from sklearn.ensemble import RandomForestClassifier

    params = params or FeatureParams()
    v = normalise(volume)
    s = check_scribbles(scribbles, v.shape)
    counts = {int(c): int(n) for c, n in zip(*np.unique(s[s > 0], return_counts=True))}
    gen = np.random.default_rng(rng)
    # keep each labelled voxel with probability max_train / total (per class at least 1000 voxels or all)
    n_tot = sum(counts.values())
    keep_p = np.zeros(max(counts) + 1)
    for c, n in counts.items():
        keep_p[c] = min(1.0, max(max_train / n_tot, 1000 / n))
    X, y = [], []
    for core, f in voxel_features(v, params, block=block, where=s > 0):
        ss = s[core]
        idx = np.nonzero(ss > 0)
        lab = ss[idx]
        sel = gen.random(lab.size) < keep_p[lab]
        X.append(f[tuple(i[sel] for i in idx)])
        y.append(lab[sel])
    X, y = np.concatenate(X), np.concatenate(y)
    clf = RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth, n_jobs=n_jobs,
                                 class_weight=class_weight, oob_score=True, random_state=int(gen.integers(2**31)))
    import warnings

    with warnings.catch_warnings():  # few labelled voxels: some are in every tree's bag (no OOB vote)
        warnings.filterwarnings("ignore", message="Some inputs do not have OOB scores")
        clf.fit(X, y)
    return PixelClassifier(model=clf, params=params, classes=np.asarray(clf.classes_),
                           oob_accuracy=float(clf.oob_score_), labelled_voxels=counts)


def predict(classifier: PixelClassifier, volume, *, block: int = 96) -> np.ndarray:
    """Phase labels (uint8: 0 background, 1..N phases = scribble class - 1) of every voxel."""
    v = normalise(volume)
    out = np.zeros(v.shape, np.uint8)
    lut = (classifier.classes - 1).astype(np.uint8)
    for core, f in voxel_features(v, classifier.params, block=block):
        proba = classifier.model.predict_proba(f.reshape(-1, f.shape[-1]))
        out[core] = lut[np.argmax(proba, axis=1)].reshape(f.shape[:-1])
    return out


def segment_learned(volume, scribbles, **kwargs) -> tuple[np.ndarray, PixelClassifier]:
    """Train on ``scribbles`` (see :func:`train`) and classify the whole volume: ``(phase, classifier)``."""
    clf = train(volume, scribbles, **kwargs)
    return predict(clf, volume, block=kwargs.get("block", 96)), clf
