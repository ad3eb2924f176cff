"""Comparison-only peers (never runtime dependencies): Anscombe + BM3D.

BM3D's package is licensed for non-commercial use, so it is imported only here, on request, for
side-by-side comparisons (``--method bm3d-compare`` and the benchmarks).

References
----------
K. Dabov et al., "Image denoising by sparse 3-D transform-domain collaborative filtering",
IEEE TIP 16, 2080 (2007), doi:10.1109/TIP.2007.901238; Makitalo & Foi 2013, doi:10.1109/TIP.2012.2202675.
"""

from __future__ import annotations

import numpy as np

from cryomat.restoration.noise import NoiseModel, estimate_noise_model
from cryomat.restoration.vst import anscombe, inverse_anscombe


def anscombe_bm3d(image, *, noise_model: NoiseModel | None = None) -> np.ndarray:
    """Generalised Anscombe, BM3D with sigma 1, exact unbiased inverse. Needs the optional ``bm3d``.

    Raises
    ------
    ImportError with an actionable message when ``bm3d`` is not installed.
    """
    try:
        import bm3d
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the comparison needs the optional package bm3d (pip install bm3d); "
                          "it is non-commercial and never required by cryomat") from exc
    x = np.asarray(image, dtype=np.float64)
    if noise_model is None:
        noise_model, x = estimate_noise_model(x)
    z = anscombe(x, gain=noise_model.gain, intercept=noise_model.intercept)
    zd = bm3d.bm3d(z, sigma_psd=1.0)
    return inverse_anscombe(np.asarray(zd), gain=noise_model.gain, intercept=noise_model.intercept).astype(np.float32)
