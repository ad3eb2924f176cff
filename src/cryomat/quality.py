"""Quick quality control of one file: counts, dose, non-finite pixels, per-frame statistics.

Used by ``cryomat qc`` and as the cheapest per-file step of session pipelines
(which files of a session are usable at all).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def frame_statistics(data) -> pd.DataFrame:
    """Per-frame mean, std, min, max and non-finite fraction of a 2D image or (frame, row, col) stack."""
    arr = data if np.ndim(data) == 3 else np.asarray(data)[None]
    rows = []
    for i in range(arr.shape[0]):
        f = np.asarray(arr[i], dtype=np.float64)
        finite = np.isfinite(f)
        vals = f[finite]
        rows.append({
            "frame": i,
            "mean_counts": float(vals.mean()) if vals.size else np.nan,
            "std_counts": float(vals.std()) if vals.size else np.nan,
            "min_counts": float(vals.min()) if vals.size else np.nan,
            "max_counts": float(vals.max()) if vals.size else np.nan,
            "nonfinite_fraction": float(1 - finite.mean()),
        })
    return pd.DataFrame(rows)


def summarize(data, *, pixel_size: float | None = None) -> dict:
    """Whole-file summary. ``dose_e_per_A2_if_counting`` assumes one count per electron."""
    table = frame_statistics(data)
    mean = float(table["mean_counts"].mean())
    out = {
        "n_frames": int(len(table)),
        "mean_counts_per_px": mean,
        "std_counts_per_px": float(table["std_counts"].mean()),
        "nonfinite_fraction": float(table["nonfinite_fraction"].mean()),
        "pixel_size_A": pixel_size,
    }
    if pixel_size:
        out["dose_e_per_A2_if_counting"] = mean * len(table) / pixel_size**2
        # Poisson check: counted data have variance ~ mean
        out["variance_to_mean"] = float((table["std_counts"] ** 2).mean() / mean) if mean > 0 else None
    return out
