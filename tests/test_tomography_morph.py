"""Local thickness, skeleton graphs, segmentation and ``cryomat morph3d`` against known truth."""

import json

import numpy as np
import pytest

from cryomat.cli.main import main
from cryomat.tomography import phantoms
from cryomat.tomography.measure3d import component_table, dice, distance_to_phase, segment_phases
from cryomat.tomography.skeleton import skeleton_graph
from cryomat.tomography.thickness import local_thickness


def test_local_thickness_axis_slabs_subvoxel():
    # slabs of 2..12 voxels: the issue asks MAE <= 0.25 voxel and |bias| <= 0.1; the sub-voxel ridge
    # model is exact for axis-aligned slabs (3- and 4-voxel slabs differ, unlike voxel-centre methods)
    errs = []
    for T in range(2, 13):
        m = np.zeros((30, 24, 24), bool)
        m[8:8 + T] = True
        lt = local_thickness(m, voxel_size=1.0)
        errs.append(lt[m] - T)
    e = np.concatenate(errs)
    assert np.abs(e).mean() <= 0.25 and abs(e.mean()) <= 0.1
    m3 = np.zeros((20, 8, 8), bool)
    m3[5:8] = True
    m4 = np.zeros((20, 8, 8), bool)
    m4[5:9] = True
    assert local_thickness(m4)[m4].mean() - local_thickness(m3)[m3].mean() == pytest.approx(1.0, abs=0.05)


def test_local_thickness_oblique_slabs_shells_and_curved_sheets():
    # the targets per voxel: mean |error| <= 0.25 voxel and |bias| <= 0.1 voxel on slabs, shells
    # and curved sheets. Oblique slabs (3-8 voxels, random normals), a spherical and a cylindrical shell
    # and a sinusoidal sheet; the sub-voxel estimate measured MAE ~0.06-0.12 and bias ~+-0.06 on such sets
    # (benchmarks/bench_tomo.py thickness), so the targets themselves are asserted. 2 nm voxels: output in nm.
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:48, :48, :48] - 23.5
    core = (np.abs(x) < 12) & (np.abs(y) < 12) & (np.abs(z) < 12)
    errs = {"oblique": [], "shell": [], "curved": []}
    for T in (3, 5, 8):
        n = rng.normal(size=3)
        n /= np.linalg.norm(n)
        m = np.abs(z * n[0] + y * n[1] + x * n[2] - rng.uniform()) <= T / 2
        errs["oblique"].append(local_thickness(m, voxel_size=2.0)[m & core] / 2.0 - T)
    r = np.sqrt((z - 0.3) ** 2 + (y + 0.2) ** 2 + x ** 2)
    shell = (r >= 14) & (r < 18)
    errs["shell"].append(local_thickness(shell)[shell] - 4)
    rc = np.sqrt(z ** 2 + (y - 0.4 * x) ** 2 / 1.16)  # cylinder along the (0, 0.4, 1) direction
    cyl = (rc >= 10) & (rc < 13)
    errs["curved"].append(local_thickness(cyl)[cyl & (np.abs(x) < 16)] - 3)
    zz, xx = z[:, 0, :], x[:, 0, :]
    xs = np.linspace(-40, 40, 4001)
    dist = np.min(np.hypot(zz[..., None] - 4 * np.sin(2 * np.pi * xs / 40), xx[..., None] - xs), axis=-1)
    sheet = np.broadcast_to((dist <= 2)[:, None, :], z.shape)  # 4-voxel sheet along z = 4 sin(2 pi x / 40)
    errs["curved"].append(local_thickness(sheet)[sheet] - 4)
    for kind, e in errs.items():
        e = np.concatenate(e)
        assert np.abs(e).mean() <= 0.25, kind
        assert abs(e.mean()) <= 0.1, kind


@pytest.fixture(scope="module")
def network():
    lay = phantoms.network_layout((80, 80, 80), rng=np.random.default_rng(2), n_nodes=12)
    return lay, phantoms.network_mask(lay)


def test_skeleton_graph_recovers_known_network(network):
    lay, m = network
    s = skeleton_graph(m, voxel_size=1.0).summary("px")
    # targets from the issue: node and edge counts within 5 %, junction/wall thickness ratio within 10 %
    assert abs(s["n_nodes"] - lay["n_nodes"]) <= max(1, 0.05 * lay["n_nodes"])
    assert abs(s["n_edges"] - lay["n_edges"]) <= max(1, 0.05 * lay["n_edges"])
    assert abs(s["junction_to_wall_thickness_ratio"] / lay["junction_ratio"] - 1) <= 0.10
    assert s["n_loops"] == s["n_edges"] - s["n_nodes"] + s["n_components"]
    assert 0 < s["global_efficiency"] <= 1


def test_component_measures_of_a_ball():
    # a digital ball of radius 8: volume within 2 %, marching-cubes area within 5 % of 4 pi r^2
    # (the mesh cuts voxel corners), sphericity close to 1
    z, y, x = np.mgrid[:32, :32, :32] - 15.5
    ball = (z ** 2 + y ** 2 + x ** 2) <= 64
    lab = ball.astype(np.int32)
    t = component_table(lab, voxel_size=0.5)
    r_nm = 4.0
    assert t["volume_nm3"][0] == pytest.approx(4 / 3 * np.pi * r_nm ** 3, rel=0.02)
    assert t["surface_area_nm2"][0] == pytest.approx(4 * np.pi * r_nm ** 2, rel=0.05)
    assert t["sphericity"][0] > 0.93
    # distance to a plane 5 voxels (2.5 nm) beyond the ball's surface
    plane = np.zeros_like(ball)
    plane[:, :, 29:] = True  # ball spans col 7.5..23.5; gap from col 24 to 28 = 5 voxels
    d = distance_to_phase(lab, plane, voxel_size=0.5)
    assert d[0] == pytest.approx(2.5, abs=0.5)


def test_segmentation_of_noisy_reconstruction():
    from cryomat.simulate.tilt_series import simulate_tilt_series
    from cryomat.tomography import reconstruct_wbp
    from cryomat.tomography.reconstruct import reconstruct_sirt

    sim = simulate_tilt_series(phantom="particles", size=96, counts_per_px=50, rng=3)
    st = sim["stack"] / (50 / sim["ideal"].mean())
    lab = sim["labels"]
    sup, part = lab == phantoms.LABELS["support"], lab == phantoms.LABELS["particle"]
    # nonnegative SIRT (missing-wedge streaks suppressed) + edge-midpoint thresholds: measured on the
    # issue's 128^3 phantom at 50 counts/px support Dice 0.91-0.93 and particles 0.87-0.88 (targets
    # 0.90 / 0.80, seeds 3, 4, 6); on this smaller 96^3 phantom (support radius 10.6 voxels, so its
    # blurred edge weighs more) support 0.86-0.89, particles 0.88-0.89: bounds leave ~0.03 for seeds
    vol = reconstruct_sirt(st, sim["angles_deg"], iterations=60, relaxation=1.9, nonnegative=True)
    ph = segment_phases(vol, n_phases=3, smooth_sigma=0.5)
    assert dice(ph == 2, sup) >= 0.85
    assert dice(ph == 3, part) >= 0.80
    # plain multi-Otsu puts the support threshold inside the support (the coating is too thin to form
    # its own class): the edge-midpoint thresholds must do clearly better on the same volume
    ph_otsu = segment_phases(vol, n_phases=3, smooth_sigma=0.5, method="otsu")
    assert dice(ph == 2, sup) >= dice(ph_otsu == 2, sup) + 0.03
    # weighted back-projection: streaks and elongation; the whole specimen vs background still ~0.79
    # (0.84-0.86 at 128^3) and particles ~0.84
    ph = segment_phases(reconstruct_wbp(st, sim["angles_deg"]), n_phases=3, smooth_sigma=0.5)
    assert dice(ph >= 1, lab > 0) >= 0.74
    assert dice(ph == 3, part) >= 0.75


def test_morph3d_cli_end_to_end_and_bad_input(tmp_path, network, capsys):
    from cryomat.io import write_mrc

    lay, m = network
    write_mrc(tmp_path / "vol.mrc", m.astype(np.float32), pixel_size=10.0)
    write_mrc(tmp_path / "lab.mrc", m.astype(np.int8), pixel_size=10.0)
    out = tmp_path / "out"
    rc = main(["--quiet", "morph3d", str(tmp_path / "vol.mrc"), "--labels", str(tmp_path / "lab.mrc"),
               "--graph-phase", "1", "--out", str(out)])
    assert rc == 0
    for name in ("components.csv", "thickness.csv", "thickness.mrc", "graph.graphml", "report.html", "results.json"):
        assert (out / name).is_file(), name
    res = json.loads((out / "results.json").read_text())["results"]
    # 1 nm voxels: the tube walls are lay["wall_vox"] = 3 voxels = 3 nm; within half a voxel
    assert abs(res["graph"]["wall_thickness_nm"] - lay["wall_vox"]) <= 0.5
    assert res["graph"]["n_nodes"] == pytest.approx(lay["n_nodes"], abs=1)
    rc = main(["morph3d", str(tmp_path / "vol.mrc"), "--labels", str(tmp_path / "lab.mrc"), "--graph-phase", "4",
               "--out", str(tmp_path / "o2")])
    err = capsys.readouterr().err
    assert rc == 2 and "graph-phase" in err and "Traceback" not in err
