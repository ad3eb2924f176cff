"""The pyramid and crop-wise filters behind the fast classical segmentation, against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from cryomat.segmentation.pyramid import _Smoother, _block_mean, _fill_holes, _gauss, _open_cross, _upsample


def test_block_mean_and_upsample_match_scipy(rng):
    a = rng.normal(size=(37, 53)).astype(np.float32)
    for k in (2, 4, 8, 16):  # edge-padded block means, float32 rounding only
        p = np.pad(a, ((0, (-37) % k), (0, (-53) % k)), mode="edge")
        want = p.reshape(p.shape[0] // k, k, p.shape[1] // k, k).mean(axis=(1, 3))
        assert np.allclose(_block_mean(a, k), want, atol=1e-6)
    small = rng.normal(size=(5, 7))
    want = ndi.zoom(small, 8, order=1, grid_mode=True, mode="nearest")[:37, :53]
    assert np.allclose(_upsample(small, 8, (37, 53)), want, atol=1e-5)
    # a crop of the upsampled grid is the same crop of the whole
    crop = _upsample(small, 8, (37, 53), rows=slice(5, 20), cols=slice(30, 53))
    assert np.allclose(crop, want[5:20, 30:53], atol=1e-5)


def test_crop_gaussians_match_the_full_image(rng):
    y = ndi.gaussian_filter(rng.normal(size=(200, 240)), 1.0).astype(np.float32)
    sm = _Smoother(y)
    rows, cols = slice(0, 60), slice(100, 180)  # touches the image border: reflect mode as scipy
    for sigma in (1.0, 1.5, 3.0):  # narrow: exact weights on the crop plus a 4 sigma margin
        want = ndi.gaussian_filter(y, sigma)[rows, cols]
        assert np.allclose(sm.crop(sigma, rows, cols), want, atol=1e-6)
    assert np.allclose(_gauss(y, 1.5), ndi.gaussian_filter(y, 1.5), atol=1e-6)
    for sigma in (4.0, 6.0, 8.0):  # wide: 2x2 pyramid level, interpolated; away from the border
        # the band-limited result is within 1 % of the field's range (measured 0.2-0.4 %: the
        # truncation at 3 sigma and the linear interpolation of a field smooth on that grid)
        want = ndi.gaussian_filter(y.astype(np.float64), sigma)[60:140, 60:180]
        got = sm.crop(sigma, slice(60, 140), slice(60, 180))
        assert np.max(np.abs(got - want)) <= 0.01 * np.ptp(want), sigma


def test_binary_helpers_match_scipy(rng):
    m = rng.random((64, 80)) > 0.45
    assert np.array_equal(_open_cross(m), ndi.binary_opening(m))
    assert np.array_equal(_fill_holes(m), ndi.binary_fill_holes(m))


@pytest.mark.parametrize("shape", [(8, 8), (37, 53), (129, 64)])
def test_odd_and_tiny_images_segment(shape, rng):
    from cryomat.segmentation import segment_particles

    x = rng.poisson(25.0, shape).astype(np.float32)
    x[shape[0] // 4: shape[0] // 2, shape[1] // 4: shape[1] // 2] *= 0.4  # one dark particle
    lab = segment_particles(x, pixel_size=5.0, dose_e_per_A2=1.0, split_touching=True)
    assert lab.shape == shape and lab.dtype == np.int32
    if min(shape) >= 32:  # a 60 % contrast block of >= 8 x 13 px at 25 counts is one object
        assert lab.max() == 1
