"""Patch-based local (beam-induced, doming) motion with a smooth polynomial model in space and time.

The frame is cut into an N x M grid of overlapping patches; in each, the leave-one-out alignment
is run again starting from the global trajectory, which gives the residual local shift of every
patch in every frame. Patches whose correlation is too weak are left out (they fall back to the
global motion). The residuals are fitted by a polynomial that is cubic in the patch position and
cubic in time (MotionCor2's model is quadratic x cubic; cubic in space follows a doming bulge
better), zero at frame 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from cryomat.registration.ccf import Spectra, bfactor_filter, blas_single, choose_bfactor, crop_size, taper, with_bfactor
from cryomat.registration.drift import _loo_pass


def _spatial_basis(rc, shape) -> np.ndarray:
    """Cubic 2D polynomial terms (..., 10) of positions normalised to [-1, 1]."""
    y = 2 * np.asarray(rc[..., 0], float) / max(shape[0] - 1, 1) - 1
    x = 2 * np.asarray(rc[..., 1], float) / max(shape[1] - 1, 1) - 1
    return np.stack([np.ones_like(y), y, x, y * y, x * y, x * x, y**3, y * y * x, y * x * x, x**3], -1)


def _time_basis(t, n) -> np.ndarray:
    """t, t^2, t^3 with t = frame / (n - 1): zero at frame 0."""
    tt = np.asarray(t, float) / max(n - 1, 1)
    return np.stack([tt, tt**2, tt**3], -1)


@dataclass
class LocalMotion:
    """Local motion on top of a global trajectory.

    Attributes
    ----------
    centers_px : (P, 2) patch centres (row, col) px.
    patch_shifts_px : (n, P, 2) measured residual shifts of each patch relative to the global trajectory.
    used : (P,) bool, patches with enough signal (the others fall back to global motion).
    coef : (10, 3, 2) polynomial coefficients (space x time x component).
    shape : frame shape; n_frames : int.
    """

    centers_px: np.ndarray
    patch_shifts_px: np.ndarray
    used: np.ndarray
    coef: np.ndarray
    shape: tuple[int, int]
    n_frames: int
    patch_peak: np.ndarray

    def displacement(self, coords_rc, frame) -> np.ndarray:
        """Model residual displacement (..., 2) px at positions ``coords_rc`` (..., 2) in frame ``frame``."""
        sb = _spatial_basis(np.asarray(coords_rc, float), self.shape)
        tb = _time_basis(np.asarray(frame, float), self.n_frames)
        return np.einsum("...a,b,abk->...k", sb, tb, self.coef)

    def model_at_patches(self) -> np.ndarray:
        return np.stack([self.displacement(self.centers_px, f) for f in range(self.n_frames)])

    @property
    def residual_rms_px(self) -> float:
        """RMS of measured patch shifts about the model (used patches, frames after the first)."""
        if not self.used.any():
            return 0.0
        d = (self.patch_shifts_px - self.model_at_patches())[:, self.used]
        d = d - d[:1]
        return float(np.sqrt(np.mean(np.sum(d**2, -1))))

    def table(self):
        import pandas as pd

        model = self.model_at_patches()
        n, p = self.patch_shifts_px.shape[:2]
        f, k = np.meshgrid(np.arange(n), np.arange(p), indexing="ij")
        return pd.DataFrame({
            "frame": f.ravel(), "patch": k.ravel(),
            "center_row_px": self.centers_px[k.ravel(), 0], "center_col_px": self.centers_px[k.ravel(), 1],
            "local_shift_row_px": self.patch_shifts_px[..., 0].ravel(),
            "local_shift_col_px": self.patch_shifts_px[..., 1].ravel(),
            "model_row_px": model[..., 0].ravel(), "model_col_px": model[..., 1].ravel(),
            "used": self.used[k.ravel()],
        })

    def to_dict(self) -> dict:
        model = self.model_at_patches()
        return {"n_patches": int(len(self.used)), "n_patches_used": int(self.used.sum()),
                "local_model_rms_px": self.residual_rms_px,
                "local_max_displacement_px": float(np.abs(model).max()) if model.size else 0.0}


def estimate_local_motion(frames, drift, *, grid=(5, 5), overlap: float = 0.5, corrector=None, min_peak_ratio=0.5,
                          max_size: int = 256, search_px: float = 3.0, max_iterations: int = 6) -> LocalMotion:
    """Local motion of an N x M patch grid relative to the global ``drift`` (a DriftResult).

    Parameters
    ----------
    frames : (n, row, col) array; read once (all patches of a frame are transformed together).
    drift : DriftResult from :func:`cryomat.registration.estimate_drift`.
    grid : (N, M) patches along (row, col).
    overlap : fraction by which patches are larger than the grid spacing (0.5 = 1.5x the spacing).
    min_peak_ratio : patches whose mean normalised CCF peak is below this fraction of the median
        patch are not used (too little signal: global motion only there).

    References
    ----------
    Zheng et al., MotionCor2, Nat. Methods 14, 331 (2017), doi:10.1038/nmeth.4193.
    """
    n, h, w = (int(v) for v in frames.shape)
    gn, gm = (int(v) for v in grid)
    if gn < 1 or gm < 1:
        raise ValueError(f"grid must be two positive integers, got {grid!r}")
    ph = min(h, int(round(h / gn * (1 + overlap))))
    pw = min(w, int(round(w / gm * (1 + overlap))))
    ph -= ph % 2
    pw -= pw % 2
    if min(ph, pw) < 32:
        raise ValueError(f"patches of {ph}x{pw} px are too small; use fewer patches (grid {grid})")
    r0s = np.linspace(0, h - ph, gn).round().astype(int)
    c0s = np.linspace(0, w - pw, gm).round().astype(int)
    boxes = [(r, c) for r in r0s for c in c0s]
    centers = np.array([(r + (ph - 1) / 2, c + (pw - 1) / 2) for r, c in boxes])
    mr = crop_size(ph, 0.5, max_size)
    mc = crop_size(pw, 0.5, max_size)
    rows = np.r_[0:mr // 2, ph - mr // 2:ph] if mr < ph else np.arange(ph)
    ncols = mc // 2 + 1
    kr = np.fft.fftfreq(ph)[rows]
    kc = np.fft.rfftfreq(pw)[:ncols]
    win = taper((ph, pw), 0.1)
    data = np.empty((len(boxes), n, len(kr), ncols), np.complex64)
    for f in range(n):
        a = corrector(frames[f]) if corrector is not None else np.asarray(frames[f], dtype=np.float32)
        for p, (r, c) in enumerate(boxes):
            sub = np.array(a[r:r + ph, c:c + pw], dtype=np.float32)
            sub -= sub.mean()
            sub *= win
            data[p, f] = sfft.rfft2(sub, workers=1)[rows, :ncols]
            data[p, f, 0, 0] = 0
    herm = np.full(ncols, 2.0, np.float32)
    herm[0] = 1.0
    herm[-1] = 1.0
    glob = np.asarray(drift.shifts_px, float)
    shifts = np.zeros((n, len(boxes), 2))
    peaks = np.zeros(len(boxes))
    with blas_single():
        for p in range(len(boxes)):
            spec = Spectra(data[p], kr, kc, (ph, pw), bfactor_filter(kr, kc, 10.0), herm)
            spec = with_bfactor(spec, choose_bfactor(spec))
            s = glob.copy()
            pk = np.zeros(n)
            for _ in range(max_iterations):
                delta, pk = _loo_pass(spec, s, group=1, radius=search_px)
                delta -= delta.mean(0)
                s += delta
                if np.max(np.abs(delta)) < 0.01:
                    break
            res = s - glob
            shifts[:, p] = res - res[0]
            peaks[p] = float(np.mean(pk))
    med = np.median(peaks)
    used = peaks >= min_peak_ratio * med if med > 0 else np.zeros(len(boxes), bool)
    coef = _fit(centers, shifts, used, (h, w), n)
    return LocalMotion(centers, shifts, used, coef, (h, w), n, peaks)


def _fit(centers, shifts, used, shape, n) -> np.ndarray:
    """Least-squares polynomial (cubic space x cubic time) fit of the used patches' residual shifts."""
    coef = np.zeros((10, 3, 2))
    if used.sum() < 1 or n < 2:
        return coef
    sb = _spatial_basis(centers[used], shape)            # (P, 10)
    nterm = sb.shape[1] if used.sum() >= 10 else (6 if used.sum() >= 6 else (3 if used.sum() >= 3 else 1))
    sb = sb[:, :nterm]
    tb = _time_basis(np.arange(n), n)                     # (n, 3)
    design = np.einsum("pa,fb->fpab", sb, tb).reshape(n * used.sum(), nterm * 3)
    y = shifts[:, used].reshape(n * used.sum(), 2)
    sol, *_ = np.linalg.lstsq(design, y, rcond=None)
    coef[:nterm] = sol.reshape(nterm, 3, 2)
    return coef
