"""Detector corrections applied to every frame before alignment: dark, gain, defects, hot pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def orient_gain(gain, *, rotate: int = 0, flip: str | None = None, invert: bool = False) -> np.ndarray:
    """Bring a gain reference into the frames' orientation.

    Parameters
    ----------
    gain : (row, col) array, multiplicative gain (corrected = (raw - dark) * gain).
    rotate : int, number of 90-degree counter-clockwise rotations (``np.rot90``) applied first.
    flip : None, ``"updown"`` (flip rows) or ``"leftright"`` (flip columns), applied after the rotation.
    invert : bool, use 1/gain (for references stored as a sensitivity map); zeros stay zero.
    """
    g = np.asarray(gain, dtype=np.float32)
    if g.ndim != 2:
        raise ValueError(f"gain reference must be a 2D image, got shape {g.shape}")
    if int(rotate) % 4:
        g = np.rot90(g, int(rotate) % 4)
    if flip in ("updown", "ud", "y"):
        g = g[::-1]
    elif flip in ("leftright", "lr", "x"):
        g = g[:, ::-1]
    elif flip not in (None, "", "none"):
        raise ValueError(f"flip must be None, 'updown' or 'leftright', got {flip!r}")
    if invert:
        with np.errstate(divide="ignore"):
            g = np.where(g != 0, 1.0 / g, 0.0).astype(np.float32)
    return np.ascontiguousarray(g)


def defect_mask_from_boxes(shape: tuple[int, int], boxes) -> np.ndarray:
    """Boolean defect map from boxes ``(row0, col0, n_rows, n_cols)`` in pixels (IMOD/SerialEM style)."""
    m = np.zeros(shape, dtype=bool)
    for b in boxes:
        if len(b) != 4:
            raise ValueError(f"a defect box needs 4 numbers (row0, col0, n_rows, n_cols), got {b!r}")
        r0, c0, nr, nc = (int(round(float(v))) for v in b)
        m[max(r0, 0):max(r0 + nr, 0), max(c0, 0):max(c0 + nc, 0)] = True
    return m


def detect_hot_pixels(frame_sum, *, n_sigma: float = 8.0, size: int = 5) -> np.ndarray:
    """Pixels of a frame sum far above their neighbourhood: hot pixels (boolean map).

    A pixel is hot when its summed value exceeds the mean of its neighbours (``size`` x ``size``
    without itself) by more than ``n_sigma`` Poisson standard deviations (sqrt of that mean, at
    least 1) and by more than 5x that mean. Dead pixels (zero where the neighbourhood has > 25
    counts) are flagged too. A box mean is used rather than a median: 4k x 4k in ~0.2 s.
    """
    from scipy.ndimage import uniform_filter

    s = np.asarray(frame_sum, dtype=np.float32)
    box = uniform_filter(s, size=size, mode="reflect") * float(size * size)
    med = (box - s) / float(size * size - 1)
    sig = np.sqrt(np.maximum(np.abs(med), 1.0))
    hot = (s - med > n_sigma * sig) & (s > 5.0 * np.abs(med) + n_sigma)
    dead = (s == 0) & (med > 25)
    return hot | dead


@dataclass
class Corrector:
    """Per-frame detector correction: ``(raw - dark) * gain``, defects replaced by the frame mean.

    Attributes
    ----------
    gain : (row, col) float32 or None, multiplicative gain reference (already oriented).
    dark : (row, col) float32 or None, dark/offset reference subtracted before the gain.
    defects : (row, col) bool or None, pixels to replace (defect map, hot and dead pixels).

    Replacing defects with the frame's mean makes them carry no signal and no fixed pattern
    after the mean is removed, so they cannot pull the alignment to zero shift.
    """

    gain: np.ndarray | None = None
    dark: np.ndarray | None = None
    defects: np.ndarray | None = None

    def check(self, shape: tuple[int, int]) -> None:
        for name in ("gain", "dark", "defects"):
            a = getattr(self, name)
            if a is not None and tuple(a.shape) != tuple(shape):
                raise ValueError(f"{name} reference has shape {tuple(a.shape)} but the frames are {tuple(shape)}")
        if self.defects is not None and self.defects.all():
            raise ValueError("the defect map marks every pixel as defective")

    def __call__(self, frame) -> np.ndarray:
        a = np.array(frame, dtype=np.float32, copy=True)
        if self.dark is not None:
            a -= self.dark
        if self.gain is not None:
            a *= self.gain
        if self.defects is not None and self.defects.any():
            good = ~self.defects
            a[self.defects] = a[good].mean() if good.any() else 0.0
        return a

    @property
    def is_identity(self) -> bool:
        return self.gain is None and self.dark is None and (self.defects is None or not self.defects.any())


def build_corrector(frames, *, gain=None, dark=None, defects=None, hot_pixels: bool = True,
                    n_sigma: float = 8.0) -> Corrector:
    """A :class:`Corrector` for ``frames`` (n, row, col), with hot pixels found on the corrected sum.

    The sum is accumulated one frame at a time, so memory-mapped movies are never copied whole.
    The same pass checks the frames: NaN/infinite values or an all-zero frame raise ValueError.
    """
    shape = tuple(frames.shape[-2:])
    corr = Corrector(gain=None if gain is None else np.asarray(gain, np.float32),
                     dark=None if dark is None else np.asarray(dark, np.float32),
                     defects=None if defects is None else np.asarray(defects).astype(bool))
    corr.check(shape)
    total = np.zeros(shape, np.float64)
    for i in range(frames.shape[0]):
        raw = np.asarray(frames[i], dtype=np.float32)
        if not np.all(np.isfinite(raw)):
            raise ValueError(f"frame {i} contains NaN or infinite values")
        if not np.any(raw):
            raise ValueError(f"frame {i} is all zero (empty frame)")
        if hot_pixels:
            total += corr(raw)
    if hot_pixels:
        hot = detect_hot_pixels(total, n_sigma=n_sigma)
        if hot.any():
            corr.defects = hot if corr.defects is None else (corr.defects | hot)
    return corr
