"""Phase library, the ``lattice`` simulator and FFT spot finding against known crystallography."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryomat.lattice import find_fft_peaks, get_phase, list_phases
from cryomat.simulate import simulate
from cryomat.simulate.lattice import crystal_potential, lattice_image


def test_library_has_the_required_phases():
    need = {"Li", "Li2O", "LiF", "Li2CO3", "LiOH", "Li3N", "ice-Ih", "ice-Ic", "Cu", "Pt", "Au", "Si", "graphite",
            "SrTiO3"}
    assert need <= set(list_phases())


def test_spacings_and_extinctions_follow_the_structure():
    li = get_phase("Li")
    # bcc: (110) = a / sqrt 2 exactly; (100) is extinct (I-centring), so |F| is ~0 (float round-off)
    assert li.d_spacing([1, 1, 0]) == pytest.approx(3.5093 / np.sqrt(2), rel=1e-12)
    assert abs(li.structure_factor([[1, 0, 0]])[0]) < 1e-9
    # the near twin the indexer must not confuse: Li2CO3 (020) = b / 2, within 0.3 % of Li (110)
    assert get_phase("Li2CO3").d_spacing([0, 2, 0]) == pytest.approx(4.9767 / 2, rel=1e-9)
    # diamond glide: (200) extinct in Si and ice Ic, (111) strong
    for name in ("Si", "ice-Ic"):
        f = np.abs(get_phase(name).structure_factor([[2, 0, 0], [1, 1, 1]]))
        assert f[0] < 1e-9 < f[1]
    # 6_3 screw: ice Ih (001) extinct, (002) and the Ih-only (100), (101) present
    f = np.abs(get_phase("ice-Ih").structure_factor([[0, 0, 1], [0, 0, 2], [1, 0, 0], [1, 0, 1]]))
    assert f[0] < 1e-9 and np.all(f[1:] > 1.0)


def test_cryo_cell_contracts_li():
    # the library's bcc Li cell at 90 K is the cryogenic measurement (0.8 % smaller than at 295 K)
    assert get_phase("Li", temperature_K=90).cell[0] == pytest.approx(3.482, abs=1e-6)
    assert get_phase("Li", temperature_K=295).cell[0] == pytest.approx(3.5093, abs=1e-6)


def test_crystal_potential_mean_is_the_mean_inner_potential():
    # V0 = 47.878 F(0) / Omega; for Si the kinematic mean inner potential is ~ 11-13 V (Kirkland 2010)
    v = crystal_potential((64, 64), pixel_size=0.25, phase="Si", zone_axis=(1, 1, 0), thickness_A=100.0)
    assert 10.0 < v.mean() / 100.0 < 14.0


def test_simulated_lattice_peaks_sit_at_the_phase_spacings(tmp_path):
    truth = simulate("lattice", tmp_path, seed=4, phase="Li", zone_axis=(0, 0, 1), size=256, pixel_size=0.2,
                     dose_e_per_A2=200.0)
    assert json.loads((tmp_path / "truth.json").read_text())["phase"] == "Li"
    from cryomat import io

    img = io.read(tmp_path / "image.mrc")
    pk = find_fft_peaks(np.asarray(img.data), pixel_size=img.pixel_size)
    spots = truth["spots"]
    d_true = np.array([s["d_spacing_A"] for s in spots])
    ang_true = np.degrees(np.arctan2([s["ky_per_A"] for s in spots], [s["kx_per_A"] for s in spots]))
    strong = pk[pk.snr > 20]
    assert len(strong) >= 4  # {110} and {200}: 4 unique spots at this dose
    for r in strong.itertuples():
        i = np.argmin(np.abs(d_true - r.d_spacing_A))
        # per-spot scatter (amorphous background under the spot) is ~0.08 % 1-sigma at 100 e/A^2, so 0.3 %
        # (~3.5 sigma) and 0.3 deg; a whole-pixel error would be 4-5 % at 20-30 px from DC
        assert r.d_spacing_A == pytest.approx(d_true[i], rel=3e-3)
        dang = (np.degrees(np.arctan2(r.ky_per_A, r.kx_per_A)) - ang_true) % 180.0
        assert np.min(np.minimum(dang, 180 - dang)) < 0.3


def test_d_spacing_precision_li001_5nm_100e():
    """Issue target: bias <= 0.1 pm, sigma <= 0.2 pm for Li (110) in a 5 nm field at 100 e/A^2."""
    li = get_phase("Li")
    d110 = li.d_spacing([1, 1, 0])
    rng = np.random.default_rng(7)
    est = []
    for _ in range(10):
        img, _ = lattice_image((250, 250), pixel_size=0.2, phase=li, zone_axis=(0, 0, 1),
                               rotation_deg=rng.uniform(0, 90), dose_e_per_A2=100.0, rng=rng)
        pk = find_fft_peaks(img, pixel_size=0.2)
        a110 = pk.d_spacing_A[np.abs(pk.d_spacing_A - d110) < 0.03] * np.sqrt(2)
        a200 = pk.d_spacing_A[np.abs(pk.d_spacing_A - d110 / np.sqrt(2)) < 0.03] * 2
        est.append(np.mean(np.r_[a110, a200]) / np.sqrt(2))  # (110) spacing from the cubic cell fit
    err_pm = (np.array(est) - d110) * 100
    # 20 runs gave bias -0.02 pm, sigma 0.16 pm; with 10 runs the sample sigma scatters by ~25 %
    # and the mean by sigma/sqrt(10) = 0.05 pm, so 0.15 / 0.25 pm bound the target with that slack
    assert abs(err_pm.mean()) < 0.15
    assert err_pm.std() < 0.25


def test_edge_streaks_and_ice_ring_give_no_spots():
    # a pure amorphous film (ice ring at 3.7 A) with a strong intensity ramp (edge streaks without
    # the periodic-plus-smooth window): no lattice, so at most a stray spot may pass snr 12
    rng = np.random.default_rng(11)
    img, _ = lattice_image((256, 256), pixel_size=0.2, phase="Li", thickness_A=0.0, amorphous_thickness_A=150.0,
                           dose_e_per_A2=50.0, rng=rng)
    img = img * (1 + np.linspace(0, 1, 256)[None, :])
    pk = find_fft_peaks(img, pixel_size=0.2)
    assert len(pk) <= 1


_NACL_CIF = """data_NaCl
_cell_length_a 5.6402
_cell_length_b 5.6402
_cell_length_c 5.6402
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'F m -3 m'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
_atom_site_U_iso_or_equiv
Na1 Na 0 0 0 1 0.01
Cl1 Cl 0.5 0.5 0.5 1 0.01
"""


def test_phase_from_cif_and_cli(tmp_path):
    from cryomat.cli.main import main
    from cryomat.lattice import phase_from_cif

    cif = tmp_path / "NaCl.cif"
    cif.write_text(_NACL_CIF)
    p = phase_from_cif(cif)
    # rock salt: 8 sites per cell, (100) extinct (F-centring), (200) = a / 2
    assert len(p.cell_sites[0]) == 8
    assert abs(p.structure_factor([[1, 0, 0]])[0]) < 1e-9
    assert p.d_spacing([2, 0, 0]) == pytest.approx(2.8201, abs=1e-4)
    # a simulated NaCl [001] image is identified from the CIF phase alone
    img, _ = lattice_image((256, 256), pixel_size=0.2, phase=p, zone_axis=(0, 0, 1), rotation_deg=10.0,
                           dose_e_per_A2=200.0, rng=np.random.default_rng(2))
    from cryomat.io import write_mrc

    write_mrc(tmp_path / "nacl.mrc", img, pixel_size=0.2)
    assert main(["lattice", str(tmp_path / "nacl.mrc"), "--out", str(tmp_path / "o"), "--phases", "Li",
                 "--cif", str(cif)]) == 0
    res = json.loads((tmp_path / "o" / "results.json").read_text())["results"]
    assert res["phases"][0]["name"] == "NaCl"
    bad = tmp_path / "bad.cif"
    bad.write_text("data_x\n_cell_length_a 3\n")
    assert main(["lattice", str(tmp_path / "nacl.mrc"), "--out", str(tmp_path / "o2"), "--cif", str(bad)]) == 2
