"""Segmentation on real files: SiO2 HAADF spheres (particlespy) and a TIA STEM series (rosettasciio)."""

from __future__ import annotations

import numpy as np
import pytest

from cryomat import io
from cryomat.segmentation import segment_particles

pytestmark = pytest.mark.realdata


def test_sio2_haadf_count_and_scribbles(real):
    import imageio.v3 as iio

    img = io.read(real("particlespy/SiO2_HAADF_Image.hspy"), lazy=False)
    x = np.asarray(img.data, dtype=np.float64)
    labels = segment_particles(x, pixel_size=img.pixel_size, split_touching=True)
    n = int(labels.max())
    # a few hundred touching ~60 nm spheres (7 px); particlespy's clustering finds 268 (a peer
    # count, not truth). We find 229 (196 without the monodisperse size prior, which splits the
    # multilayer clusters); spheres hidden under others in the stacks are not counted: 210-330
    assert 210 <= n <= 330, n
    # hand-drawn scribbles (red: particles, green: support) must agree with our foreground
    m = iio.imread(real("particlespy/trainingmask.png"))[..., :3].astype(int)
    red = (m[..., 0] > 128) & (m[..., 1] < 80)
    green = (m[..., 1] > 128) & (m[..., 0] < 160)
    assert red.sum() > 100 and green.sum() > 1000
    assert (labels[red] > 0).mean() >= 0.95  # scribbled particles are segmented
    assert (labels[green] == 0).mean() >= 0.95  # scribbled support stays background
    # the low-dose outline fit (off here: this image is not low dose) forced on leaves these 7 px
    # spheres as they are (too small for a curve fit) rather than shrinking them off the scribbles
    forced = segment_particles(x, pixel_size=img.pixel_size, split_touching=True, outline_fit=True)
    assert (forced[red] > 0).mean() >= 0.95 and (forced[green] == 0).mean() >= 0.95
    # without splitting, touching spheres merge into far fewer objects (mode is explicit)
    assert segment_particles(x, pixel_size=img.pixel_size, split_touching=False).max() < n / 3


def test_tia_stem_series_frames_segment(real):
    img = io.read(real("rosettasciio/03_Scanning_Preview.emi"), lazy=False)
    data = np.asarray(img.data)
    assert data.shape == (5, 128, 128)
    counts = []
    for frame in data:
        lab = segment_particles(frame.astype(np.float64), pixel_size=img.pixel_size)
        assert lab.shape == frame.shape and lab.dtype == np.int32
        counts.append(int(lab.max()))
    # the same field in 5 consecutive frames: the particle count is stable to +/- 25 %
    assert min(counts) >= 1
    assert max(counts) <= 1.25 * min(counts) + 1, counts
