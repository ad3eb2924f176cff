"""Analytic shapes on the pixel grid: the ground truth of the shape-descriptor tests and benchmark.

Two renderings of one ellipse (semi-axes ``a``, ``b``) or rectangle (sides ``a``, ``b``), rotated
by ``theta`` (rad, counter-clockwise as displayed, rows down) and centred ``off`` (row, col) px
from pixel ``(n // 2, n // 2)`` of an ``n`` x ``n`` frame:

- :func:`shape_mask`: a pixel is in the shape when its centre is (a binary mask, as
  ``skimage.draw`` makes), the input whose information limit :mod:`cryomat.measure.feasible`
  computes;
- :func:`shape_coverage`: the fraction of each pixel the shape covers (an anti-aliased,
  projected-area image), by ``ss`` x ``ss`` sub-samples.
"""

from __future__ import annotations

import numpy as np

KINDS = ("ellipse", "rectangle")


def _inside(kind: str, y: np.ndarray, x: np.ndarray, a: float, b: float, theta: float,
            strict: bool = False) -> np.ndarray:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    u = x * np.cos(theta) - y * np.sin(theta)
    v = x * np.sin(theta) + y * np.cos(theta)
    if kind == "rectangle":
        return (np.abs(u) <= a / 2) & (np.abs(v) <= b / 2)
    q = (u / a) ** 2 + (v / b) ** 2
    return q < 1 if strict else q <= 1


def shape_mask(kind: str, a: float, b: float, theta: float, off, n: int, *, strict: bool = False) -> np.ndarray:
    """(n, n) bool: pixels whose centre lies in the shape (``strict``: ellipse interior only, the
    ``< 1`` test; default ``<= 1``, which keeps lattice points on the curve)."""
    rr, cc = np.mgrid[:n, :n]
    return _inside(kind, rr - n // 2 - off[0], cc - n // 2 - off[1], a, b, theta, strict)


def shape_coverage(kind: str, a: float, b: float, theta: float, off, n: int, *, ss: int = 16) -> np.ndarray:
    """(n, n) float in [0, 1]: the fraction of each pixel covered by the shape (``ss`` x ``ss``
    sub-sample centres per pixel)."""
    g = (np.arange(n * ss) + 0.5) / ss - 0.5
    rr, cc = np.meshgrid(g, g, indexing="ij")
    inside = _inside(kind, rr - n // 2 - off[0], cc - n // 2 - off[1], a, b, theta)
    return inside.reshape(n, ss, n, ss).mean(axis=(1, 3))
