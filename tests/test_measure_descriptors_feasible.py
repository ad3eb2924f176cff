"""Shape descriptors against what a binary mask can tell (the feasible sets of
:mod:`cryomat.measure.feasible`), the rectangle reading of straight-sided objects, and the
grey-level outline path (``particle_table(..., edges="image")``, ``cryomat segment --edges image``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryomat.measure import particle_table, shape_descriptors
from cryomat.measure.feasible import ellipse_ranges, rectangle_ranges, square_ranges
from cryomat.simulate.shapes import shape_coverage, shape_mask

_KIND = {"rect": "rectangle", "ellipse": "ellipse"}


def _raster(kind, a, b, theta, off, n=None):
    """Pixel-centre raster: ellipse semi-axes a, b or rectangle ("rect") sides a, b, rotated by theta."""
    return shape_mask(_KIND[kind], a, b, theta, off, n or int(2 * max(a, b) + 14))


def _coverage(kind, a, b, theta, off, n):
    """Area-coverage (anti-aliased) rendering of the same shapes, 16 x 16 supersampling."""
    return shape_coverage(_KIND[kind], a, b, theta, off, n)


def test_small_ellipse_aspect_inside_feasible_set_and_information_limit():
    # every ellipse consistent with the mask is a feasible point of a polytope of conics; our
    # reading must be one of them (aspect and Feret inside the feasible ranges), and at b ~ 5 px
    # the ranges themselves are wider than the 2 %: no estimator can promise 2 % there
    rng = np.random.default_rng(11)
    widest = 0.0
    for _ in range(4):
        b, q = rng.uniform(5, 6), rng.uniform(0.6, 0.9)
        m = _raster("ellipse", b / q, b, rng.uniform(0, np.pi), rng.uniform(-0.5, 0.5, 2))
        r = ellipse_ranges(m)
        d = shape_descriptors(m)
        lo, hi = r["aspect"]
        assert lo - 1e-3 <= d["aspect_ratio"] <= hi + 1e-3
        # the true ellipse is feasible: the ranges bracket it (SLSQP inner brackets: 0.02 px slack)
        assert lo - 1e-3 <= 1 / q <= hi + 1e-3
        assert r["fmax"][0] - 0.02 <= d["feret_max_px"] <= r["fmax"][1] + 0.02
        assert r["fmin"][0] - 0.02 <= d["feret_min_px"] <= r["fmin"][1] + 0.02
        widest = max(widest, (hi - lo) / (hi + lo))
    # measured 2.5-6.5 % half-widths at b 5-6 px (benchmarks: worst 6 %, median 4.5 %)
    assert widest > 0.02


def test_disc_circle_ranges_bracket_the_radius():
    # the circles consistent with a r = 5 integer-centre strict disc: radii (sqrt 20, 5) (the
    # 12 lattice points on the circle are outside): Feret range (8.94, 10), our 9.56 inside
    from skimage.draw import disk

    m = np.zeros((24, 24), bool)
    m[disk((12, 12), 5)] = True
    r = ellipse_ranges(m, circle=True)
    assert r["fmax"][0] == pytest.approx(2 * np.sqrt(20), abs=0.02)
    assert r["fmax"][1] == pytest.approx(10.0, abs=0.02)
    d = shape_descriptors(m)
    assert r["fmax"][0] <= d["feret_max_px"] <= r["fmax"][1]


def test_axis_aligned_square_is_known_to_one_pixel_only():
    # an n x n block of pixels is the raster of every axis-aligned square of side in (n - 1, n + 1):
    # the feasible half-width is 1 px (1.41 px for the max Feret) and our reading (n) its middle
    m = np.zeros((40, 40), bool)
    m[10:30, 10:30] = True
    r = square_ranges(m, 0.0)
    assert r["side"][0] == pytest.approx(19.0, abs=0.05) and r["side"][1] == pytest.approx(21.0, abs=0.05)
    d = shape_descriptors(m)
    assert d["feret_min_px"] == pytest.approx(20.0, abs=1e-6)
    assert d["feret_max_px"] == pytest.approx(20 * np.sqrt(2), abs=1e-6)


@pytest.mark.parametrize("seed", [1, 2])
def test_rotated_squares_read_inside_the_rectangles_the_mask_admits(seed):
    # the four sides share one orientation: placing each side on its own left opposite sides
    # ~1e-3 rad from parallel and read the min Feret up to +0.065 px, outside the feasible range
    # (half-width 0.01-0.04 px at 40-100 px); the joint orientation keeps it inside
    rng = np.random.default_rng(seed)
    for _ in range(4):
        s = rng.uniform(40, 100)
        th = np.deg2rad(rng.uniform(5, 85))
        m = _raster("rect", s, s, th, rng.uniform(-0.5, 0.5, 2), n=int(1.5 * s + 14))
        r = rectangle_ranges(m, th)
        d = shape_descriptors(m)
        # grid-scanned inner bracket: 0.01 px slack
        assert r["fmin"][0] - 0.01 <= d["feret_min_px"] <= r["fmin"][1] + 0.01
        assert r["fmax"][0] - 0.01 <= d["feret_max_px"] <= r["fmax"][1] + 0.01
        # both the truth and our reading lie in the range: the error is at most its width
        # (measured 0.01-0.25 px here) and within the 0.5 px
        assert abs(d["feret_min_px"] - s) <= r["fmin"][1] - r["fmin"][0] + 0.01 and abs(d["feret_min_px"] - s) < 0.5
        assert abs(d["feret_max_px"] - s * np.sqrt(2)) <= r["fmax"][1] - r["fmax"][0] + 0.01
        # the aspect ratio of the rectangle read (polygon moments): 1 within 0.5 %
        assert d["aspect_ratio"] == pytest.approx(1.0, abs=0.005)


@pytest.mark.parametrize("kind,a,b", [("ellipse", 9.3, 9.3), ("ellipse", 11.2, 6.4), ("rect", 30.5, 18.2),
                                      ("rect", 22.7, 22.7)])
def test_grey_level_edges_are_exact_on_area_coverage_images(kind, a, b):
    # an area-coverage image fixes the edge inside every partly covered pixel: the Feret
    # diameters and aspect ratio from the grey levels are exact to the rendering's 1/256 area
    # steps (measured <= 0.02 px; the mask alone: 0.05-0.4 px)
    rng = np.random.default_rng(int(10 * a))
    th, off = rng.uniform(0, np.pi), rng.uniform(-0.5, 0.5, 2)
    n = int(2 * max(a, b) + 24)
    cov = _coverage(kind, a, b, th, off, n)
    img = 200.0 - 100.0 * cov
    lab = (cov >= 0.5).astype(np.int32)
    t = particle_table(lab, img, pixel_size=10.0, edges="image").iloc[0]
    if kind == "rect":
        fmax, fmin, asp = np.hypot(a, b), min(a, b), max(a, b) / min(a, b)
        circ = np.pi * a * b / (a + b) ** 2
    else:
        fmax, fmin, asp = 2 * a, 2 * b, a / b
        h = ((a - b) / (a + b)) ** 2
        circ = 4 * np.pi**2 * a * b / (np.pi * (a + b) * (1 + 3 * h / (10 + np.sqrt(4 - 3 * h)))) ** 2
    assert t["feret_max_nm"] == pytest.approx(fmax, abs=0.03)
    assert t["feret_min_nm"] == pytest.approx(fmin, abs=0.03)
    assert t["aspect_ratio"] == pytest.approx(asp, rel=0.002)
    # circularity of the shape read (a sampled conic or the polygon): exact to 0.2 %
    assert t["circularity"] == pytest.approx(circ, rel=0.002)
    # area stays the pixel count
    assert t["area_px"] == lab.sum()


def test_grey_level_squares_at_high_dose_with_a_smooth_mask():
    # anti-aliased squares (side 20-35 px) at 2500 counts/px (100 e/A^2 at 5 A/px: contrast ~25
    # noise sigmas) with a mask thresholded from the smoothed image (round corners, as a
    # segmentation gives: max Feret short by up to 2.7 px from the mask): noise flips pixels of
    # the half-covered raster, so the sides come from the edge points' hull (_points_polygon);
    # measured worst 0.07 px (min Feret) and 0.15 px (max Feret) over seeds 0-5; 5 of 6 take the
    # grey path (seed 4 keeps the mask's outline, 0.04 px off there)
    from scipy import ndimage as ndi

    engaged = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        s, th = rng.uniform(20, 35), rng.uniform(0, np.pi / 2)
        cov = _coverage("rect", s, s, th, rng.uniform(-0.5, 0.5, 2), 64)
        img = rng.poisson(2500 * (1 - 0.5 * cov)).astype(np.float64)
        lab = (ndi.gaussian_filter(img, 1.5) < 2500 * 0.75).astype(np.int32)
        a = particle_table(lab, img, pixel_size=10.0, edges="image").iloc[0]
        b = particle_table(lab, img, pixel_size=10.0).iloc[0]
        if a["feret_max_nm"] != b["feret_max_nm"]:
            engaged += 1
            assert abs(a["feret_min_nm"] - s) < 0.15
            assert abs(a["feret_max_nm"] - s * np.sqrt(2)) < 0.25
    assert engaged >= 5


def test_grey_level_path_keeps_the_mask_where_the_image_is_too_noisy():
    # contrast below 8 noise sigmas: the grey levels do not fix the edges; the outline stays the
    # mask's, so every column equals the default path's
    rng = np.random.default_rng(5)
    cov = _coverage("ellipse", 9.0, 7.0, 0.4, (0.2, -0.3), 44)
    img = 100.0 - 20.0 * cov + rng.normal(0, 5.0, cov.shape)  # contrast 4 sigma
    lab = (cov >= 0.5).astype(np.int32)
    a = particle_table(lab, img, pixel_size=10.0, edges="image")
    b = particle_table(lab, img, pixel_size=10.0)
    assert a.equals(b)
    with pytest.raises(ValueError, match="edges"):
        particle_table(lab, img, pixel_size=10.0, edges="grey")


def test_grey_level_path_refuses_projected_thickness_contrast():
    # HAADF of a sphere records its projected thickness (a dome, sqrt(R^2 - r^2)), not the covered
    # area: the offsets read from its boundary pixels scatter off any circle by more than the
    # 0.1 px the grey path accepts (and its grey levels sum to 82 % of the disc's area, which the
    # area check would refuse), so the mask's outline is kept (real SiO2 and JEOL HAADF images:
    # 0 of 18 objects take the grey path)
    n, r0, ss = 48, 12.3, 8
    g = (np.arange(n * ss) + 0.5) / ss - 0.5
    rr, cc = np.meshgrid(g, g, indexing="ij")
    rad2 = (rr - 23.7) ** 2 + (cc - 24.2) ** 2
    thick = np.sqrt(np.clip(r0**2 - rad2, 0, None)).reshape(n, ss, n, ss).mean(axis=(1, 3))
    img = 10.0 + 50.0 * thick / thick.max()
    lab = (thick > 0.05 * thick.max()).astype(np.int32)
    a = particle_table(lab, img, pixel_size=10.0, edges="image")
    b = particle_table(lab, img, pixel_size=10.0)
    assert a.equals(b)


def test_cli_segment_edges_image(tmp_path, capsys):
    # end to end: an anti-aliased, noise-free image of four discs through ``cryomat segment
    # --edges image``: Feret diameters from the grey levels within 0.1 px (the segmentation
    # mask alone is off by up to ~1.7 px on such images)
    from cryomat.cli.main import main
    from cryomat.io.writers import write_mrc
    import pandas as pd

    n, radii = 128, (8.3, 12.6, 15.1, 10.4)
    cov = np.zeros((n, n))
    centres = [(32.3, 31.8), (32.6, 95.2), (96.1, 32.4), (95.7, 96.3)]
    for (r0, c0), r in zip(centres, radii):
        cov += _coverage("ellipse", r, r, 0.0, (r0 - n // 2, c0 - n // 2), n)
    img = (1000.0 * (1 - 0.5 * cov)).astype(np.float32)
    f = write_mrc(tmp_path / "discs.mrc", img, pixel_size=5.0)
    out = tmp_path / "out"
    assert main(["segment", str(f), "--out", str(out), "--edges", "image"]) == 0
    t = pd.read_csv(out / "particles.csv")
    assert len(t) == 4
    got = sorted(t["feret_max_nm"] / 0.5)  # 5 A/px = 0.5 nm/px: back to pixels
    assert np.allclose(got, sorted(2 * np.array(radii)), atol=0.1)
    res = json.loads((out / "results.json").read_text())
    assert res["parameters"]["edges"] == "image"
    # bad input: an unknown --edges value is a usage error (exit 2, one line, no traceback)
    capsys.readouterr()
    assert main(["segment", str(f), "--out", str(tmp_path / "o2"), "--edges", "grey"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--edges" in err
