"""Detector corrections: gain orientation, defect boxes, hot-pixel detection against simulated truth."""

from __future__ import annotations

import numpy as np
import pytest

from cryomat import registration as reg
from cryomat.simulate.movie import render_movie


def test_hot_pixels_found_and_gain_applied():
    frames, truth, gain, defects = render_movie(n_frames=8, shape=(128, 128), dose_per_frame=0.5, n_hot_pixels=15,
                                                gain_variation=0.1, seed=0)
    corr = reg.build_corrector(frames, gain=gain)
    hot_true = defects
    # every simulated hot pixel (+20 counts/frame on ~0.5) is found; at 8 sigma on Poisson sums the
    # chance of a false positive among 16k pixels is ~1e-11, so none are expected
    assert np.array_equal(corr.defects, hot_true)
    a = corr(frames[0])
    # gain-corrected counts have mean 0.5 (the dose per pixel); replaced hot pixels carry the frame mean
    assert a[~hot_true].mean() == pytest.approx(0.5, rel=0.05)
    assert np.allclose(a[hot_true], a[~hot_true].mean())


def test_orient_gain_and_boxes():
    g = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    assert np.array_equal(reg.orient_gain(g, rotate=1), np.rot90(g))
    assert np.array_equal(reg.orient_gain(g, flip="updown"), g[::-1])
    np.testing.assert_allclose(reg.orient_gain(g, invert=True), 1 / g)
    m = reg.defect_mask_from_boxes((10, 10), [(2, 3, 2, 4)])
    assert m.sum() == 8 and m[2:4, 3:7].all()
    with pytest.raises(ValueError, match="shape"):
        reg.build_corrector(np.ones((2, 8, 8), np.float32), gain=np.ones((4, 4)))
