"""Gaussian classes with covariances shrunk toward the pooled one, shared by the equal-prior
refinement of the unsupervised partition (:func:`cryomat.measure.classify._equal_prior_em`) and
the semi-supervised classifier (:class:`cryomat.measure.supervised.SemiSupervisedGaussian`).

Regularised discriminant analysis: Friedman, JASA 84, 165 (1989), doi:10.1080/01621459.1989.10478752.
"""

from __future__ import annotations

import numpy as np


def shrunk_gaussians(z: np.ndarray, resp: np.ndarray, shrinkage: float, reg: float,
                     total: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted class means, precisions and log-determinants of the class covariances.

    Parameters
    ----------
    z : (n, d) standardised features.
    resp : (n, k) class responsibilities (weights) of each row.
    shrinkage : each class's covariance is ``(1 - shrinkage) * own + shrinkage * pooled``
        (1: one shared covariance, a linear discriminant; 0: one per class, quadratic).
    reg : added to the diagonal of every covariance (standardised units^2).
    total : the pooled scatter is divided by this (the number of rows, or the responsibilities'
        sum).

    Returns
    -------
    means (k, d), precisions (k, d, d), log-determinants (k,) of the covariances.
    """
    w = resp.sum(0)
    means = (resp.T @ z) / np.maximum(w, 1e-12)[:, None]
    scat = [(resp[:, j, None] * (z - means[j])).T @ (z - means[j]) for j in range(len(w))]
    pooled = sum(scat) / total
    eye = reg * np.eye(z.shape[1])
    covs = [(1 - shrinkage) * sj / max(wj, 1e-12) + shrinkage * pooled + eye for sj, wj in zip(scat, w)]
    precision = np.stack([np.linalg.inv(c) for c in covs])
    logdet = np.array([np.linalg.slogdet(c)[1] for c in covs])
    return means, precision, logdet


def gaussian_posterior(z: np.ndarray, means: np.ndarray, precision: np.ndarray,
                       logdet: np.ndarray) -> tuple[np.ndarray, float]:
    """Class posteriors of the rows of ``z`` under equal priors, and the log-likelihood of the
    equal-weight mixture up to a constant."""
    d = z[:, None, :] - means[None]
    q = -0.5 * (np.einsum("nki,kij,nkj->nk", d, precision, d) + logdet[None])
    top = q.max(1, keepdims=True)
    q = np.exp(q - top)
    total = q.sum(1)
    return q / total[:, None], float(np.sum(np.log(total) + top[:, 0]))
