"""Simulator kind ``spectrum_image``: a layered Li / SEI / electrolyte interface seen by EDS or EELS.

Four layers follow each other along the column axis (depth from the lithium surface): lithium
metal, an inorganic SEI (Li2O + LiF), an organic SEI (carbonates, alkoxides) and the frozen
electrolyte (LiPF6 in EC/DMC, hydrogen not counted). Interfaces are error-function steps of a stated
width. Every pixel's spectrum is drawn with Poisson noise from its known composition:

- **EDS**: Gaussian lines (FWHM from the Mn Ka resolution, Fiori & Newbury) with counts
  ``I_i = N w_i / k_i`` (``w_i`` the weight fraction, so that Cliff-Lorimer with the same k-factors is
  exact) on a Kramers continuum ``B (E0 - E) / E`` (no detector absorption). Li is invisible to EDS,
  so the EDS truth is the composition renormalised over C, O, F, P.
- **EELS**: a power-law background ``A E^-3`` plus, for each element, its atom fraction times the
  hydrogenic differential cross-section dsigma/dE (Li K, C K, O K, F K; exSpy's offline hydrogenic
  GOS) at the stated beam energy and collection angle. Phosphorus has no K edge in range and no
  hydrogenic L2,3 table, so the EELS truth is renormalised over Li, C, O, F.

Writes ``si.hspy`` (HyperSpy format, energy axis in eV, metadata for voltage, detector, elements),
``haadf.tif`` (Z-contrast image of the same area), ``surface_mask.tif`` (the lithium metal), and
``truth.json`` with the composition profile per column and the interface positions (px).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cryomat.simulate.registry import register

ELEMENTS = ("Li", "C", "O", "F", "P")
# at.% of Li, C, O, F, P per layer (hydrogen not counted)
LAYERS = {
    "li_metal": (100.0, 0.0, 0.0, 0.0, 0.0),
    "inorganic_sei": (55.0, 0.0, 25.0, 20.0, 0.0),
    "organic_sei": (15.0, 35.0, 45.0, 3.0, 2.0),
    "electrolyte": (2.0, 45.0, 40.0, 10.0, 3.0),
}
EDS_LINES = ("C_Ka", "O_Ka", "F_Ka", "P_Ka")
EELS_EDGES = ("Li_K", "C_K", "O_K", "F_K")


def layer_profile(n_cols: int, widths_px, interface_width_px: float):
    """Composition (at.%, shape (5, n_cols)) along the columns and the interface positions (px).

    Interface ``b`` sits between columns ``sum(widths[:b+1]) - 1`` and ``sum(widths[:b+1])``, i.e. at
    coordinate ``sum(widths[:b+1]) - 0.5``; the composition at a column centre x mixes the layers with
    erf steps of standard deviation ``interface_width_px``.
    """
    from scipy.special import erf

    comps = np.array(list(LAYERS.values()), float)  # (4, 5)
    bounds = np.cumsum(widths_px)[:-1] - 0.5
    x = np.arange(n_cols, dtype=float)
    if interface_width_px > 0:
        steps = [0.5 * (1 + erf((x - b) / (np.sqrt(2) * interface_width_px))) for b in bounds]
    else:
        steps = [(x > b).astype(float) for b in bounds]
    w = np.zeros((len(comps), n_cols))
    w[0] = 1 - steps[0]
    for i in range(1, len(comps) - 1):
        w[i] = steps[i - 1] - steps[i]
    w[-1] = steps[-1]
    return (w.T @ comps).T, [float(b) for b in bounds]


def eds_truth_visible(at_pct):
    """Renormalise at.% (5, ...) to the EDS-visible elements C, O, F, P (Li is not detected)."""
    vis = np.asarray(at_pct, float)[1:]
    tot = vis.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, 100 * vis / np.where(tot > 0, tot, 1), np.nan)


def simulate_spectrum_image(*, seed: int = 0, modality: str = "eds", shape=(32, 120), widths_px=(20, 25, 35, 40),
                            interface_width_px: float = 1.0, pixel_size_A: float = 10.0, counts_per_pixel: float = 2000.0,
                            background_per_pixel: float = 400.0, fwhm_mnka_eV: float = 130.0, voltage_kV: float = 200.0,
                            beta_mrad: float = 20.0, kfactors=None):
    """Draw the spectrum image; returns ``(data (row, col, energy), energy_eV, truth dict)``.

    Parameters
    ----------
    modality : ``"eds"`` or ``"eels"``.
    shape : (rows, cols) in pixels; ``sum(widths_px)`` must equal ``cols``.
    widths_px : widths of the four layers along the columns.
    counts_per_pixel : EDS: expected line counts per pixel in a layer with no lithium; EELS: expected
        edge counts scale (counts per barn-atom fraction unit, see code).
    background_per_pixel : EDS: continuum counts per pixel between 1 and 10 keV; EELS: background
        counts per pixel in the 50 eV above the C K edge.
    kfactors : EDS k-factors for C, O, F, P Ka (default: cryomat's shipped table at ``voltage_kV``).
    """
    rows, cols = int(shape[0]), int(shape[1])
    if sum(widths_px) != cols:
        raise ValueError(f"widths_px {tuple(widths_px)} must add up to the number of columns {cols}")
    if modality not in {"eds", "eels"}:
        raise ValueError(f"modality must be 'eds' or 'eels', got {modality!r}")
    rng = np.random.default_rng(seed)
    at, bounds = layer_profile(cols, widths_px, interface_width_px)
    truth = {"elements": list(ELEMENTS), "at_pct_by_column": at.tolist(), "interfaces_px": bounds,
             "layers": list(LAYERS), "layer_at_pct": {k: list(v) for k, v in LAYERS.items()},
             "pixel_size_A": pixel_size_A, "modality": modality}
    if modality == "eds":
        from cryomat.spectroscopy.eds import eds_fwhm_eV
        from cryomat.spectroscopy.tables import atomic_weights, line_energy_eV, shipped_kfactor

        e = np.arange(2048) * 10.0
        k = np.array(kfactors if kfactors is not None else [shipped_kfactor(x, voltage_kV=voltage_kV) for x in EDS_LINES])
        aw = np.array([atomic_weights()[x] for x in ELEMENTS])
        wt = at * aw[:, None]
        wt = wt / wt.sum(0)  # weight fractions including Li
        lines = np.zeros((len(EDS_LINES), e.size))
        for i, ln in enumerate(EDS_LINES):
            c = line_energy_eV(ln)
            sd = eds_fwhm_eV(c, fwhm_mnka_eV=fwhm_mnka_eV) / (2 * np.sqrt(2 * np.log(2)))
            g = np.exp(-0.5 * ((e - c) / sd) ** 2)
            lines[i] = g / g.sum()
        # line counts per column: N w_i / k_i, normalised so a Li-free layer has ~counts_per_pixel
        inten = wt[1:] / k[:, None]
        ref = (wt[1:, -1] / k).sum()
        inten = counts_per_pixel * inten / ref
        kram = np.where(e > 100.0, (1000.0 * voltage_kV - e) / np.maximum(e, 100.0), 0.0)
        band = (e >= 1000) & (e <= 10000)
        kram = background_per_pixel * kram / kram[band].sum()
        mean = inten.T @ lines + kram[None, :]  # (cols, energy)
        truth.update({"lines": list(EDS_LINES), "kfactors": {ln: float(v) for ln, v in zip(EDS_LINES, k)},
                      "eds_at_pct_by_column": eds_truth_visible(at).tolist(), "fwhm_mnka_eV": fwhm_mnka_eV})
    else:
        from cryomat.spectroscopy.eels import _edge_component
        from cryomat.spectroscopy.tables import edge_onset_eV

        e = 40.0 + 0.5 * np.arange(1400)
        xs = np.zeros((len(EELS_EDGES), e.size))
        for i, ed in enumerate(EELS_EDGES):
            comp = _edge_component(ed, float(voltage_kV), 0.0, float(beta_mrad), edge_onset_eV(ed))
            xs[i] = comp.function(e) * 0.5  # barn per channel
        bg = e**-3.0
        ck = (e >= 284) & (e < 334)
        bg = background_per_pixel * bg / bg[ck].sum()
        # edge counts: at.% / 100 x sigma (barn) scaled so the C K edge of the electrolyte has ~counts_per_pixel
        scale = counts_per_pixel / (0.45 * xs[1, ck].sum())
        at4 = at[:4] / at[:4].sum(0) * 100.0  # Li, C, O, F
        mean = (at4.T / 100.0) @ xs * scale + bg[None, :]
        truth.update({"edges": list(EELS_EDGES), "beta_mrad": beta_mrad, "eels_at_pct_by_column": at4.tolist()})
    mean = np.broadcast_to(mean[None], (rows, cols, e.size))
    data = rng.poisson(mean).astype(np.uint16 if mean.max() < 3e4 else np.uint32)
    truth.update({"energy_start_eV": float(e[0]), "energy_step_eV": float(e[1] - e[0]), "voltage_kV": voltage_kV})
    return data, e, truth


def _haadf(at, rows, rng):
    z = np.array([3, 6, 8, 9, 15], float)
    col = (np.asarray(at) / 100.0 * z[:, None] ** 1.7).sum(0)
    img = np.broadcast_to(col[None], (rows, col.size)).astype(float)
    return (img + rng.normal(0, 0.03 * img.max(), img.shape)).astype(np.float32)


def write_hspy_spectrum(path, data, energy_eV, *, pixel_size_A, kind: str, voltage_kV, elements=(),
                        fwhm_mnka_eV=None, beta_mrad=None, title="cryomat spectrum image"):
    """Write a spectrum image (row, col, energy) as a HyperSpy ``.hspy`` file (through HyperSpy)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import hyperspy.api as hs

        sig = hs.signals.Signal1D(np.asarray(data))
        nm = pixel_size_A / 10.0
        for ax, name in zip(sig.axes_manager.navigation_axes, ("x", "y")):
            ax.name, ax.scale, ax.units = name, nm, "nm"
        ea = sig.axes_manager.signal_axes[0]
        ea.name, ea.scale, ea.offset, ea.units = "Energy", float(energy_eV[1] - energy_eV[0]), float(energy_eV[0]), "eV"
        sig.metadata.General.title = title
        sig.metadata.set_item("Acquisition_instrument.TEM.beam_energy", float(voltage_kV))
        if kind == "EDS":
            sig.set_signal_type("EDS_TEM")
            sig.metadata.set_item("Acquisition_instrument.TEM.Detector.EDS.energy_resolution_MnKa",
                                  float(fwhm_mnka_eV or 130.0))
        else:
            sig.set_signal_type("EELS")
            sig.metadata.set_item("Acquisition_instrument.TEM.Detector.EELS.collection_angle", float(beta_mrad or 20.0))
            sig.metadata.set_item("Acquisition_instrument.TEM.convergence_angle", 0.0)
        sig.metadata.set_item("Sample.elements", list(elements))
        sig.save(str(path), overwrite=True)


@register("spectrum_image", help="layered Li / inorganic SEI / organic SEI / electrolyte spectrum image "
                                 "(EDS or EELS) with known composition profiles and Poisson counts")
def write(out: Path, *, seed: int = 0, modality: str = "eds", rows: int = 32, widths_px=(20, 25, 35, 40),
          interface_width_px: float = 1.0, pixel_size_A: float = 10.0, counts_per_pixel: float = 2000.0,
          background_per_pixel: float = 400.0, voltage_kV: float = 200.0) -> dict:
    """Layered SEI spectrum image (EDS or EELS) with truth.json; see the module docstring."""
    from cryomat.io import write_tiff

    cols = int(sum(widths_px))
    data, e, truth = simulate_spectrum_image(seed=seed, modality=modality, shape=(rows, cols), widths_px=widths_px,
                                             interface_width_px=interface_width_px, pixel_size_A=pixel_size_A,
                                             counts_per_pixel=counts_per_pixel,
                                             background_per_pixel=background_per_pixel, voltage_kV=voltage_kV)
    out = Path(out)
    kind = "EDS" if modality == "eds" else "EELS"
    els = ["C", "O", "F", "P"] if kind == "EDS" else list(ELEMENTS)
    write_hspy_spectrum(out / "si.hspy", data, e, pixel_size_A=pixel_size_A, kind=kind, voltage_kV=voltage_kV,
                        elements=els, fwhm_mnka_eV=truth.get("fwhm_mnka_eV"), beta_mrad=truth.get("beta_mrad"),
                        title=f"simulated SEI {kind}")
    rng = np.random.default_rng(seed + 1)
    write_tiff(out / "haadf.tif", _haadf(truth["at_pct_by_column"], rows, rng), pixel_size=pixel_size_A)
    mask = np.zeros((rows, cols), np.uint8)
    mask[:, : int(widths_px[0])] = 1
    write_tiff(out / "surface_mask.tif", mask, pixel_size=pixel_size_A)
    truth["files"] = {"spectrum_image": "si.hspy", "image": "haadf.tif", "surface_mask": "surface_mask.tif"}
    return truth
