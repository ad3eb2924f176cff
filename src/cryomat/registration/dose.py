"""Dose weighting of movie frames with the Grant & Grigorieff critical exposure.

The critical exposure (fluence at which the signal at spatial frequency ``k`` has dropped to
1/e of its amplitude ... strictly: to exp(-1/2) in amplitude, exp(-1) in power) was measured on
rotavirus VP6 at 300 kV:

    Ne(k) = a * k**b + c,  a = 0.245, b = -1.665, c = 2.81 e/A^2, k in 1/A.

Voltage scaling: radiation damage per incident electron scales with the inelastic cross section,
which goes as 1/(v/c)^2. We therefore scale Ne by beta(V)^2 / beta(300 kV)^2, which gives 0.80
at 200 kV (the factor used by Grant & Grigorieff and MotionCor2) and 0.57 at 120 kV.
"""

from __future__ import annotations

import numpy as np

_A, _B, _C = 0.245, -1.665, 2.81
_ME_KEV = 510.99895


def _beta2(voltage_kV: float) -> float:
    gamma = 1.0 + float(voltage_kV) / _ME_KEV
    return 1.0 - 1.0 / gamma**2


def voltage_scale(voltage_kV: float) -> float:
    """Factor on the 300 kV critical exposure at ``voltage_kV``: beta(V)^2 / beta(300)^2 (0.80 at 200 kV)."""
    v = float(voltage_kV)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"voltage_kV must be a positive number, got {voltage_kV!r}")
    return _beta2(v) / _beta2(300.0)


def critical_exposure(k_per_A, *, voltage_kV: float = 300.0) -> np.ndarray:
    """Critical exposure Ne(k) in e/A^2 at spatial frequency ``k_per_A`` (1/A).

    Parameters
    ----------
    k_per_A : array_like, spatial frequency magnitude in 1/A (k = 0 gives +inf).
    voltage_kV : float, acceleration voltage in kV (scaled as documented in the module).

    References
    ----------
    Grant & Grigorieff, eLife 4:e06980 (2015), doi:10.7554/eLife.06980.
    """
    k = np.asarray(k_per_A, dtype=np.float64)
    with np.errstate(divide="ignore"):
        ne = _A * np.power(np.where(k > 0, k, np.nan), _B) + _C
    ne = np.where(k > 0, ne, np.inf)
    return ne * voltage_scale(voltage_kV)


def dose_weights(n_frames: int, k_per_A, *, dose_per_frame: float, voltage_kV: float = 300.0,
                 pre_exposure: float = 0.0, normalize: bool = True) -> np.ndarray:
    """Per-frame, per-frequency weights (n_frames, *k.shape).

    Frame ``f`` has received ``pre_exposure + (f + 0.5) * dose_per_frame`` e/A^2 at its middle;
    its amplitude weight is q = exp(-N / (2 Ne(k))). With ``normalize`` the weights are scaled
    per spatial frequency so that sum_f w_f(k)^2 = n_frames: the noise power of the weighted sum
    equals that of the plain sum at every frequency, and at k -> 0 (q = 1) the weighted sum equals
    the plain sum.

    Parameters
    ----------
    n_frames : int
    k_per_A : array_like, spatial frequencies in 1/A.
    dose_per_frame : float, fluence per frame in e/A^2.
    voltage_kV : float, kV.
    pre_exposure : float, fluence received before the first frame, e/A^2.

    References
    ----------
    Grant & Grigorieff, eLife 4:e06980 (2015), doi:10.7554/eLife.06980.
    """
    if int(n_frames) < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames!r}")
    if not np.isfinite(dose_per_frame) or dose_per_frame <= 0:
        raise ValueError(f"dose_per_frame must be a positive fluence in e/A^2, got {dose_per_frame!r}")
    if not np.isfinite(pre_exposure) or pre_exposure < 0:
        raise ValueError(f"pre_exposure must be >= 0 e/A^2, got {pre_exposure!r}")
    ne = critical_exposure(k_per_A, voltage_kV=voltage_kV)
    n = pre_exposure + (np.arange(int(n_frames)) + 0.5) * dose_per_frame
    w = np.exp(-n.reshape((-1,) + (1,) * ne.ndim) / (2.0 * ne[None]))
    if normalize:
        w *= np.sqrt(int(n_frames) / np.maximum((w**2).sum(0), 1e-300))[None]
    return w


def frame_weight(frame_index: int, n_frames: int, ne, *, dose_per_frame: float, pre_exposure: float = 0.0,
                 norm=None) -> np.ndarray:
    """Weight of one frame on a precomputed critical-exposure grid ``ne`` (memory-light form).

    ``norm`` is ``sqrt(n_frames / sum_f q_f^2)`` from :func:`weight_norm`; ``None`` gives the raw q.
    """
    n = pre_exposure + (frame_index + 0.5) * dose_per_frame
    w = np.exp(-n / (2.0 * np.asarray(ne, dtype=np.float64)))
    if norm is not None:
        w = w * norm
    return w.astype(np.float32)


def weight_norm(n_frames: int, ne, *, dose_per_frame: float, pre_exposure: float = 0.0) -> np.ndarray:
    """sqrt(n_frames / sum_f q_f(k)^2) on the grid ``ne`` (closed form of the geometric series)."""
    # q_f^2 = exp(-(p + (f+1/2) d)/Ne) = exp(-(p + d/2)/Ne) * r^f with r = exp(-d/Ne)
    ne = np.asarray(ne, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        r = np.exp(-dose_per_frame / ne)
        q0 = np.exp(-(pre_exposure + 0.5 * dose_per_frame) / ne)
        s = np.where(r < 1.0 - 1e-12, q0 * (1.0 - r**n_frames) / np.where(r < 1, 1.0 - r, 1.0), q0 * n_frames)
        out = np.sqrt(n_frames / np.maximum(s, 1e-300))
    return out
