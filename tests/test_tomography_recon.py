"""Reconstruction accuracy against known phantoms (FSC), and the projector pair's consistency."""

import numpy as np
import pytest

from cryomat.fourier import fourier_ring_correlation
from cryomat.simulate.tilt_series import simulate_tilt_series
from cryomat.tomography import forward_project, reconstruct, reconstruct_wbp
from cryomat.tomography.projector import backproject_chunk, project_chunk


def _fsc05_cycles(vol, truth):
    f = fourier_ring_correlation(vol, truth, pixel_size=1.0)
    return 1.0 / f.resolution(0.5)


@pytest.fixture(scope="module")
def sims():
    # one 128^3 phantom, 61 views +/-60 deg (the acceptance geometry); the noisy series are
    # Poisson counts of the same projections at 50 and 10 counts/px (as the simulator draws them),
    # scaled back to line-integral units
    s = simulate_tilt_series(phantom="particles", size=128, counts_per_px=None, rng=3)
    rng = np.random.default_rng(4)
    out = {None: (s["stack"], s)}
    for c in (50.0, 10.0):
        k = c / s["ideal"].mean()
        out[c] = (rng.poisson(np.clip(s["ideal"], 0, None) * k).astype(np.float32) / k, s)
    return out


def test_wbp_fsc_against_phantom_meets_targets(sims):
    # targets from the issue: FSC(0.5) >= 0.26 / 0.19 / 0.14 cycles/px (noise-free / 50 / 10 counts/px);
    # measured about 0.50 / 0.34 / 0.23, so the margins absorb phantom-to-phantom variation
    for c, target in ((None, 0.26), (50.0, 0.19), (10.0, 0.14)):
        st, s = sims[c]
        vol = reconstruct_wbp(st, s["angles_deg"])
        assert _fsc05_cycles(vol, s["volume"]) >= target, c


def test_sirt_and_sirt_like_filter_reach_the_same_targets(sims):
    st, s = sims[50.0]
    for m in ("sirt", "sirt-fbp"):
        vol = reconstruct(st, s["angles_deg"], method=m, iterations=15)
        # same 0.19 cycles/px target as WBP at 50 counts/px
        assert _fsc05_cycles(vol, s["volume"]) >= 0.19, m


def test_wbp_absolute_scale_and_chunking_invariance():
    # full 180-degree coverage of a uniform ball: WBP gives the density back (1.0) inside
    n = 48
    z, y, x = np.mgrid[:n, :n, :n] - (n - 1) / 2
    ball = ((x ** 2 + y ** 2 + z ** 2) < 15 ** 2).astype(np.float32)
    ang = np.linspace(-90, 90, 90, endpoint=False)
    p = forward_project(ball, ang)
    v1 = reconstruct_wbp(p, ang, chunk_rows=5)
    v2 = reconstruct_wbp(p, ang, chunk_rows=48)
    np.testing.assert_allclose(v1, v2, atol=1e-5)  # chunking only changes summation order
    inner = ((x ** 2 + y ** 2 + z ** 2) < 11 ** 2)
    # interior mean within 3 % of 1 (linear-interpolation projector smooths edges only)
    assert abs(v1[inner].mean() - 1.0) < 0.03


def test_projector_pair_is_adjoint():
    # <A x, y> == <x, A^T y> to float32 precision: SIRT needs an exact adjoint pair
    rng = np.random.default_rng(0)
    x = rng.random((20, 24, 5)).astype(np.float32)
    yv = rng.random((7, 24, 5)).astype(np.float32)
    ang = np.linspace(-60, 60, 7)
    ax = project_chunk(x, ang, n_t=24)
    aty = backproject_chunk(yv, ang, nz=20, nx=24)
    assert np.isclose(float((ax * yv).sum()), float((x * aty).sum()), rtol=1e-4)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="tilt angles"):
        reconstruct_wbp(np.zeros((3, 8, 8), np.float32), [0, 1])
    with pytest.raises(ValueError, match="method"):
        reconstruct(np.zeros((3, 8, 8), np.float32), [0, 1, 2], method="art")


def test_simulator_dose_shifts_and_files(tmp_path):
    from cryomat.io import read
    from cryomat.simulate import simulate

    truth = simulate("tilt_series", tmp_path, seed=1, size=32, n_tilts=21, counts_per_px=20.0, max_tilt_deg=50.0)
    img = read(tmp_path / "tilt_series.mrc")
    st = np.asarray(img.data)
    # Poisson counts whose series mean is the requested 20 counts/px (sampling error ~0.1 %)
    assert st.mean() == pytest.approx(20.0, rel=0.02) and np.all(st == np.round(st))
    # angles found beside the stack (.rawtlt), the missing wedge beyond +/-50 deg
    np.testing.assert_allclose(img.acquisition.tilt_angles_deg, np.linspace(-50, 50, 21))
    sh = np.asarray(truth["shifts_px"])
    assert np.allclose(sh[10], 0.0) and sh.std() > 0.5  # zero tilt is the reference, others moved
    assert img.pixel_size == pytest.approx(5.0)


def test_sirt_like_filter_mimics_sirt_iterations():
    # the SIRT-like filter is meant to give k SIRT iterations at back-projection cost: measured
    # correlation 0.97-0.98 and scale 1.05-1.07 for k = 10 and 30; bounds 0.95 and 15 %
    s = simulate_tilt_series(phantom="particles", size=64, counts_per_px=None, rng=3)
    for k in (10, 30):
        a = reconstruct(s["stack"], s["angles_deg"], method="sirt", iterations=k)
        b = reconstruct(s["stack"], s["angles_deg"], method="sirt-fbp", iterations=k)
        a0, b0 = a - a.mean(), b - b.mean()
        cc = float((a0 * b0).sum() / np.sqrt((a0 * a0).sum() * (b0 * b0).sum()))
        assert cc >= 0.95
        assert abs(float((a * b).sum() / (b * b).sum()) - 1.0) <= 0.15
