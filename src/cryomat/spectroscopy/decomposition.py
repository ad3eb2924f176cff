"""Decomposition of low-dose spectrum images: Poisson-weighted PCA and NMF.

PCA on Poisson counts is dominated by the bright channels unless the data are weighted first:
``D / sqrt(outer(g, h) / mean(D))`` with ``g`` the mean image and ``h`` the mean spectrum (Keenan & Kotula,
*Surf. Interface Anal.* 36 (2004) 203, doi:10.1002/sia.1657), which makes the noise approximately
white with unit variance. The number of components is then chosen as the number of eigenvalues of
the weighted (uncentred) data above the largest eigenvalue expected from pure unit-variance noise
(Marchenko-Pastur edge, ``(sqrt(N) + sqrt(M))^2``, or, for very sparse counts, the second
eigenvalue of a Poisson surrogate with the same rank-1 mean, whichever is larger), with a 10 %
margin: a stated, parameter-free criterion. NMF (scikit-learn, channel-weighted) gives non-negative, interpretable factors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Decomposition:
    """Factors (spectra) and loadings (maps).

    Attributes
    ----------
    method : ``"pca"`` or ``"nmf"``.
    factors : (k, energy) component spectra (PCA: unweighted back, arbitrary sign/scale).
    loadings : (k, ...) maps.
    n_components : k.
    explained_variance : (r,) eigenvalues of the weighted data (PCA) for the scree plot.
    noise_edge : largest eigenvalue expected from noise alone (PCA).
    criterion : how k was chosen.
    """

    method: str
    factors: np.ndarray
    loadings: np.ndarray
    n_components: int
    explained_variance: np.ndarray | None
    noise_edge: float | None
    criterion: str


def _flat(data):
    d = np.asarray(data)
    d = d.astype(np.float32 if d.dtype in (np.float32, np.uint8, np.uint16, np.int8, np.int16) else np.float64,
                 copy=False)
    if d.ndim < 2:
        raise ValueError(f"decomposition needs a spectrum image (..., energy), got shape {d.shape}")
    return d.reshape(-1, d.shape[-1]), d.shape[:-1]


def poisson_pca(data, *, n_components: int | None = None, max_components: int = 20, margin: float = 1.1,
                channels=None) -> Decomposition:
    """Poisson-weighted PCA (Keenan & Kotula 2004) with the component number from the noise edge.

    Parameters
    ----------
    data : (..., energy) counts.
    n_components : fixed number; default chosen by the criterion in the module docstring.
    max_components : upper bound for the automatic choice.
    margin : an eigenvalue counts as signal when above ``margin`` x the noise edge.
    channels : optional boolean mask or slice of energy channels to use (e.g. drop empty ones).
    """
    x, nav = _flat(data)
    if channels is not None:
        x = x[:, channels]
    g = x.mean(1)
    h = x.mean(0)
    keep = h > 1e-3 * h.max()  # channels with signal; empty ones only cost time
    x = x[:, keep]
    h = h[keep]
    mu = max(float(x.mean()), 1e-12)
    # Poisson: E[x_ij] ~ g_i h_j / mu, so x / sqrt(g h / mu) has unit variance
    gs = np.sqrt(np.clip(g, 1e-12, None) / np.sqrt(mu))[:, None]
    hs = np.sqrt(h / np.sqrt(mu))[None, :]
    w = x / gs / hs
    n, m = w.shape
    from sklearn.utils.extmath import randomized_svd

    r = min(max_components + 5, min(n, m))
    u, s, vt = randomized_svd(w, n_components=r, n_iter=3, random_state=0)
    ev = s**2
    # pure unit-variance noise: largest eigenvalue of W^T W is (sqrt(N) + sqrt(M))^2 (Marchenko-Pastur).
    # Very sparse counts (< ~1 per element) are far from Gaussian and their noise eigenvalues exceed that
    # edge, so the edge is also measured on a Poisson surrogate of the same mean (rank-1 g h / mu: its
    # second eigenvalue is pure noise of the same sparsity); the larger of the two is used.
    edge = (np.sqrt(n) + np.sqrt(m)) ** 2
    rng = np.random.default_rng(0)
    sur = rng.poisson(np.outer(g, h) / mu).astype(np.float32) / gs / hs
    s_sur = randomized_svd(sur, n_components=2, n_iter=3, random_state=0)[1]
    edge = max(edge, float(s_sur[1] ** 2))
    auto = int(np.sum(ev > margin * edge))
    k = int(n_components) if n_components else max(1, min(auto, max_components))
    if k > len(s):
        raise ValueError(f"n_components={k} exceeds the {len(s)} components computed (max_components + 5)")
    fac = np.zeros((k, keep.size))
    fac[:, keep] = vt[:k] * hs  # back to count units
    load = (u[:, :k] * s[:k]) * gs
    crit = (f"{auto} eigenvalues of the Poisson-weighted data above {margin:g} x the noise edge {edge:.4g} "
            "(max of (sqrt(N)+sqrt(M))^2 and a Poisson surrogate's)" + ("" if not n_components else f"; {k} requested"))
    return Decomposition("pca", fac, load.T.reshape((k,) + nav), k, ev, float(edge), crit)


def reconstruct(dec: Decomposition) -> np.ndarray:
    """Denoised data (..., energy) from the first ``n_components`` of a decomposition (loadings x factors)."""
    load = dec.loadings.reshape(dec.n_components, -1)
    out = load.T @ dec.factors
    return out.reshape(dec.loadings.shape[1:] + (dec.factors.shape[-1],))


def pca_denoise(data, *, n_components: int | None = None) -> tuple[np.ndarray, Decomposition]:
    """Poisson-weighted PCA reconstruction keeping the components above the noise edge.

    Returns ``(denoised counts (..., energy), decomposition)``; negative values are kept (they are
    noise around zero), so sums over windows stay unbiased.
    """
    d = poisson_pca(data, n_components=n_components)
    return reconstruct(d), d


def nmf(data, *, n_components: int, max_iter: int = 400, seed: int = 0) -> Decomposition:
    """Non-negative matrix factorisation of Poisson counts (scikit-learn, coordinate descent).

    The channels are scaled by ``1 / sqrt(mean spectrum)`` first, so that the least-squares loss weighs
    each channel by its Poisson variance (non-negativity is kept); the factors are scaled back and
    normalised to unit sum, so the loadings are counts per pixel (Lee & Seung, *Nature* 401 (1999)
    788, doi:10.1038/44565; weighting as Keenan & Kotula 2004).
    """
    from sklearn.decomposition import NMF

    if n_components is None or n_components < 1:
        raise ValueError(f"n_components must be a positive whole number for NMF, got {n_components!r}")
    x, nav = _flat(data)
    h = x.mean(0)
    # channels holding signal: above 1e-3 of the brightest channel (empty channels only cost time)
    keep = h > max(0.0, 1e-3 * h.max())
    sh = np.sqrt(h[keep])
    model = NMF(n_components=int(n_components), init="nndsvda", beta_loss="frobenius", solver="cd",
                max_iter=max_iter, random_state=seed, tol=1e-4)
    w = model.fit_transform(np.clip(x[:, keep], 0, None) / sh)
    hmat = model.components_ * sh
    scale = hmat.sum(1, keepdims=True)
    scale[scale == 0] = 1
    fac = np.zeros((hmat.shape[0], keep.size))
    fac[:, keep] = hmat / scale
    load = w * scale.T
    return Decomposition("nmf", fac, load.T.reshape((hmat.shape[0],) + nav), int(n_components), None, None,
                         f"{n_components} components (channel-weighted least squares, non-negative)")


def match_factors(estimated, truth) -> np.ndarray:
    """Best absolute Pearson correlation of each true factor with any estimated one (greedy, unique)."""
    est = np.asarray(estimated, float)
    tru = np.asarray(truth, float)
    c = np.abs(np.corrcoef(np.vstack([tru, est]))[: len(tru), len(tru):])
    out = np.zeros(len(tru))
    used = set()
    for i in np.argsort(-c.max(1)):
        order = [j for j in np.argsort(-c[i]) if j not in used]
        if order:
            out[i] = c[i, order[0]]
            used.add(order[0])
    return out
