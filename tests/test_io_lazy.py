"""Large files open memory-mapped or lazily, so a movie is not copied into memory on read."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from cryomat import io

# 40 frames of 512 x 512 float32 = 40 MiB: large enough that a copy would show, small for CI
SHAPE = (40, 512, 512)
NBYTES = int(np.prod(SHAPE)) * 4


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    d = tmp_path_factory.mktemp("lazy")
    a = np.zeros(SHAPE, np.float32)
    a[:, ::7, ::5] = np.arange(SHAPE[0], dtype=np.float32)[:, None, None] + 1  # frame-specific content
    io.write_mrc(d / "movie.mrcs", a, pixel_size=0.8)
    io.write_tiff(d / "movie.tif", a, pixel_size=0.8)
    return d, a


def _peak_alloc(fn):
    tracemalloc.start()
    try:
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, peak


@pytest.mark.parametrize("name", ["movie.mrcs", "movie.tif"])
def test_large_movie_is_memory_mapped_not_copied(movie, name):
    d, a = movie
    img, peak = _peak_alloc(lambda: io.read(d / name))
    assert isinstance(img.data, np.memmap), type(img.data)
    assert img.shape == SHAPE and img.axes == ("frame", "row", "col")
    # numpy reports its allocations to tracemalloc: a copy would need 40 MiB; headers and
    # metadata need well under 2 % of that
    assert peak < 0.02 * NBYTES, peak
    # it is the file's bytes: one frame read through the map equals what was written
    assert np.array_equal(img.data[17], a[17])


def test_eager_read_gives_an_array_in_memory(movie):
    d, a = movie
    img = io.read(d / "movie.mrcs", lazy=False)
    assert not isinstance(img.data, np.memmap) and np.array_equal(np.asarray(img.data), a)


@pytest.mark.realdata
def test_rsciio_formats_read_lazily_as_dask(real):
    img = io.read(real("particlespy/SiO2_EDS_Spectrum_Image.hspy"), signal="spectrum")
    # a dask array: nothing decoded until asked; the library itself never calls compute()
    assert hasattr(img.data, "dask") and img.shape == (128, 128, 2048)
    eager = io.read(real("particlespy/SiO2_EDS_Spectrum_Image.hspy"), lazy=False)
    assert isinstance(eager.data, np.ndarray)
    assert np.array_equal(np.asarray(img.data[5, 7]), eager.data[5, 7])


def test_require_finite_on_a_memmap_does_not_copy(movie):
    from cryomat.io import validate

    d, _ = movie
    img = io.read(d / "movie.mrcs")
    _, peak = _peak_alloc(lambda: validate.require_finite(img.data, chunk_bytes=4 << 20))
    # chunks of 4 MiB (plus the boolean masks, 1/4 of a float32 chunk): far less than the 40 MiB movie
    assert peak < 0.3 * NBYTES, peak
