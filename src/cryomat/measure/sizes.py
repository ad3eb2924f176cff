"""Size distributions: summaries and the lognormal fit of particle diameters."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LognormalFit:
    """Maximum-likelihood lognormal fit of sizes: ln d ~ N(mu, sigma^2).

    ``median`` = exp(mu) (same unit as the data), ``geometric_std`` = exp(sigma),
    ``mean`` = exp(mu + sigma^2/2); ``ks_pvalue`` of a Kolmogorov-Smirnov test of the fit
    (optimistic: parameters fitted on the same data); ``n`` the number of sizes.
    """

    mu: float
    sigma: float
    median: float
    geometric_std: float
    mean: float
    n: int
    ks_pvalue: float

    def pdf(self, d):
        d = np.asarray(d, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.exp(-0.5 * ((np.log(d) - self.mu) / self.sigma) ** 2) / (d * self.sigma * np.sqrt(2 * np.pi))
        return np.where(d > 0, out, 0.0)

    def to_dict(self) -> dict:
        return asdict(self)


def fit_lognormal(sizes) -> LognormalFit | None:
    """Fit a lognormal to positive sizes; None when fewer than 3 positive finite values.

    References
    ----------
    Granqvist & Buhrman, Ultrafine metal particles, J. Appl. Phys. 47, 2200 (1976),
    doi:10.1063/1.322870 (lognormal size distributions of nanoparticles).
    """
    from scipy import stats

    d = np.asarray(sizes, dtype=np.float64)
    d = d[np.isfinite(d) & (d > 0)]
    if d.size < 3:
        return None
    ln = np.log(d)
    mu, sigma = float(ln.mean()), float(ln.std())
    if sigma <= 0:
        p = float("nan")
    else:
        p = float(stats.kstest(ln, "norm", args=(mu, sigma)).pvalue)
    return LognormalFit(mu=mu, sigma=sigma, median=float(np.exp(mu)), geometric_std=float(np.exp(sigma)),
                        mean=float(np.exp(mu + sigma**2 / 2)), n=int(d.size), ks_pvalue=p)


def size_summary(sizes, *, unit: str = "nm") -> dict:
    """Count, median, interquartile range, mean and std of sizes (keys carry ``unit``)."""
    d = np.asarray(sizes, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {"count": 0, f"median_{unit}": None, f"iqr_{unit}": None, f"mean_{unit}": None, f"std_{unit}": None}
    q1, med, q3 = np.percentile(d, [25, 50, 75])
    return {"count": int(d.size), f"median_{unit}": float(med), f"iqr_{unit}": float(q3 - q1),
            f"mean_{unit}": float(d.mean()), f"std_{unit}": float(d.std(ddof=1)) if d.size > 1 else 0.0}
