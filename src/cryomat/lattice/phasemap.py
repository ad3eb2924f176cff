"""Sliding-window phase/orientation maps from the spots of the whole-image FFT.

The phases (with zone axis and in-plane rotation) are identified once on the whole image
(:func:`cryomat.lattice.indexing.identify_phases`), which fixes the spots each domain produces.
Every window (Hann-tapered, ``window_px`` wide, every ``step_px``) is then Fourier transformed
in batches; each domain's evidence in the window is the summed significance of its spots there
(the Hann-windowed DTFT power at the spot's exact frequency over that at control frequencies of
the same |k|, computed separably for all windows at once). A window is assigned to the domain with the most evidence
if that exceeds ``snr_min``; otherwise it is amorphous (label 0). Connected regions of one
label give the domain table (area in nm^2).

References
----------
Li et al., Science 358, 506 (2017), doi:10.1126/science.aam6014 (FFT-based SEI phase maps);
Galindo et al., Ultramicroscopy 107, 1186 (2007), doi:10.1016/j.ultramic.2007.01.019 (local FFT mapping).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from cryomat.lattice.indexing import identify_phases
from cryomat.lattice.peaks import find_fft_peaks


@dataclass
class PhaseMap:
    """Sliding-window labels. ``labels[i, j]`` is the domain class of the window at (i*step, j*step);
    ``classes`` lists {label, name, zone_axis, rotation_deg}; ``evidence`` is (n_classes+1, ni, nj)."""

    labels: np.ndarray
    evidence: np.ndarray
    classes: list[dict]
    window_px: int
    step_px: int
    pixel_size: float
    domains: pd.DataFrame
    global_phases: list[dict]


def _window_dtft_power(image, window_px, step_px, k_rc_per_px, *, freq_chunk: int = 16,
                       row_chunk: int = 512) -> np.ndarray:
    """|Hann-windowed DTFT|^2 of every window at each spatial frequency (cycles/px, (row, col)).

    Separable: a windowed DFT along columns at every step, then along rows. When the window is a
    multiple of the step, the image is viewed (without copying) as blocks of ``step_px`` pixels,
    so the first pass is one matrix product per block offset: ~ rows x cols x n_freq x 2 flops.
    """
    img = np.asarray(image, dtype=np.float32)
    img = img - img.mean()
    w, st = window_px, step_px
    h = np.hanning(w)
    t = np.arange(w)
    k = np.asarray(k_rc_per_px, dtype=np.float64).reshape(-1, 2)
    nr, nc = img.shape
    ni, nj = (nr - w) // st + 1, (nc - w) // st + 1
    out = np.empty((len(k), ni, nj), np.float32)
    if w % st:
        from numpy.lib.stride_tricks import sliding_window_view

        vc = sliding_window_view(img, w, axis=1)[:, ::st, :]
        for f, (kr, kc) in enumerate(k):
            s1 = vc @ (h * np.exp(-2j * np.pi * kc * t)).astype(np.complex64)
            vr = sliding_window_view(s1, w, axis=0)[::st]
            out[f] = np.abs(vr @ (h * np.exp(-2j * np.pi * kr * t)).astype(np.complex64)) ** 2
        return out
    q = w // st
    ncb = nc // st
    blocks = img[:, :ncb * st].reshape(nr, ncb, st)  # view, no copy
    for f0 in range(0, len(k), freq_chunk):
        kk = k[f0:f0 + freq_chunk]
        nf = len(kk)
        kc_ker = h[None, :] * np.exp(-2j * np.pi * kk[:, 1:2] * t[None, :])  # (nf, w)
        kr_ker = h[None, :] * np.exp(-2j * np.pi * kk[:, 0:1] * t[None, :])
        # real matrix (st, q * nf * 2): block offset, frequency, re/im
        K = kc_ker.reshape(nf, q, st).transpose(2, 1, 0)  # (st, q, nf)
        Kr = np.concatenate([K.real, K.imag], axis=2).reshape(st, -1).astype(np.float32)
        s1 = np.zeros((nr, nj, nf), np.complex64)
        for r0 in range(0, nr, row_chunk):
            C = (blocks[r0:r0 + row_chunk] @ Kr).reshape(-1, ncb, q, 2 * nf)  # (rows, ncb, q, 2nf)
            acc = np.zeros((C.shape[0], nj, 2 * nf), np.float32)
            for qq in range(q):
                acc += C[:, qq:qq + nj, qq, :]
            s1[r0:r0 + row_chunk] = acc[..., :nf] + 1j * acc[..., nf:]
        nrb = nr // st
        sb = s1[:nrb * st].reshape(nrb, st, nj, nf)
        Kq = kr_ker.reshape(nf, q, st)  # (nf, q, st)
        res = np.zeros((ni, nj, nf), np.complex64)
        for qq in range(q):
            res += np.einsum("byjf,fy->bjf", sb[qq:qq + ni], Kq[:, qq, :].astype(np.complex64))
        out[f0:f0 + nf] = np.moveaxis(np.abs(res) ** 2, 2, 0)
    return out


def _control_angles(spot_k, window_px, pixel_size, n=2):
    """Rotations (deg) that move every spot at least 2 window Fourier pixels from any spot."""
    grid = spot_k * window_px * pixel_size
    chosen = []
    for a in (23, 37, 53, 67, 97, 113, 127, 143, 157, 31, 79, 101):
        t = np.radians(a)
        rot = grid @ np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
        d = np.min(np.minimum(np.linalg.norm(rot[:, None] - grid[None], axis=2),
                              np.linalg.norm(rot[:, None] + grid[None], axis=2)), axis=1)
        if np.all(d >= 2.0):
            chosen.append(a)
        if len(chosen) == n:
            break
    return chosen or [23, 67]


def phase_map(image, *, pixel_size: float, phases, window_px: int = 64, step_px: int = 16, snr_min: float = 12.0,
              window_snr: float = 5.0, pixel_size_error: float = 0.03, max_index: int = 2,
              global_id=None) -> PhaseMap:
    """Sliding-window phase/orientation map (see the module docstring).

    Parameters
    ----------
    image : (rows, cols).
    pixel_size : A per pixel.
    phases : candidate phases (names or :class:`Phase`), as for :func:`identify_phases`.
    window_px, step_px : window size and step (px).
    snr_min : spot threshold of the whole-image identification.
    window_snr : a window belongs to a domain when that domain's evidence (mean spot power over
        the power at control positions: the same spots rotated onto empty places) exceeds the
        median + ``window_snr`` robust sigma (in log) of the same ratio between two control sets,
        i.e. a per-class false-alarm control.
    global_id : a :class:`PhaseID` already computed on the whole image (else computed here).
    """
    img = np.asarray(image, dtype=np.float64)
    if window_px < 16 or window_px > min(img.shape):
        raise ValueError(f"window_px must be between 16 and the image size, got {window_px}")
    if step_px < 1:
        raise ValueError(f"step_px must be >= 1, got {step_px}")
    if global_id is None:
        # very large images: Welch-averaged spectrum of 1024 px tiles for the whole-image spots
        tile = 1024 if max(img.shape) > 2048 else None
        peaks = find_fft_peaks(img, pixel_size=pixel_size, snr_min=snr_min, tile_px=tile)
        global_id = identify_phases(peaks, phases=phases, k_tol_per_A=1.0 / (min(tile or min(img.shape), min(img.shape))
                                                                             * pixel_size),
                                    sigma_scale=pixel_size_error, scale_tolerance=max(2 * pixel_size_error, 0.03),
                                    max_index=max_index, snr_min=snr_min)
    pk = global_id.peaks
    classes, spot_cls, spot_k, spot_w = [], [], [], []
    for ci, entry in enumerate(global_id.phases, start=1):
        name = entry["name"]
        if name == "unknown":
            continue
        sel = pk[pk.phase == name] if name != "ambiguous" else pk[pk.phase == "ambiguous"]
        if len(sel) == 0:
            continue
        classes.append({"label": len(classes) + 1, "name": name, "zone_axis": entry.get("zone_axis"),
                        "rotation_deg": entry.get("rotation_deg"), "n_spots": int(len(sel))})
        for r in sel.itertuples():
            spot_cls.append(len(classes))
            spot_k.append((r.ky_per_A, r.kx_per_A))
            spot_w.append(float(getattr(r, "snr", 1.0)))
    ni = (img.shape[0] - window_px) // step_px + 1
    nj = (img.shape[1] - window_px) // step_px + 1
    if not classes:
        labels = np.zeros((ni, nj), int)
        return PhaseMap(labels, np.zeros((1, ni, nj)), [], window_px, step_px, pixel_size,
                        _domain_table(labels, [], step_px, pixel_size), global_id.phases)
    spot_k = np.asarray(spot_k)
    spot_cls = np.asarray(spot_cls)
    # a spot that another class also has (same window Fourier pixel, or its Friedel mate) cannot
    # tell the classes apart: drop it from both, unless a class would be left with nothing
    grid = np.rint(spot_k * window_px * pixel_size).astype(int)
    keep = np.ones(len(spot_k), bool)
    for i in range(len(spot_k)):
        for j in range(len(spot_k)):
            if spot_cls[i] != spot_cls[j] and (np.all(np.abs(grid[i] - grid[j]) <= 1) or
                                               np.all(np.abs(grid[i] + grid[j]) <= 1)):
                keep[i] = False
    for c in np.unique(spot_cls):
        if not keep[spot_cls == c].any():
            keep[spot_cls == c] = True
    spot_k, spot_cls, spot_w = spot_k[keep], spot_cls[keep], np.asarray(spot_w)[keep]
    # control positions: the same spots rotated so they miss every spot (same |k|, no lattice):
    # each window's background there, and the null distribution of the evidence
    angles = _control_angles(spot_k, window_px, pixel_size, n=2)
    ctrl = [spot_k @ np.array([[np.cos(np.radians(a)), np.sin(np.radians(a))],
                               [-np.sin(np.radians(a)), np.cos(np.radians(a))]]) for a in angles]
    all_k = np.concatenate([spot_k] + ctrl) * pixel_size  # cycles per pixel
    pw = _window_dtft_power(img, window_px, step_px, all_k)
    ns = len(spot_k)
    ni, nj = pw.shape[1:]
    evidence = np.zeros((len(classes) + 1, ni, nj), np.float32)
    ratio = np.zeros((len(classes) + 1, ni, nj), np.float32)
    c0, c1 = pw[ns:2 * ns], pw[2 * ns:3 * ns] if len(angles) > 1 else pw[ns:2 * ns]
    for c in range(1, len(classes) + 1):
        sel = spot_cls == c
        # spots weighted by the root of their whole-image significance
        ww = np.sqrt(spot_w[sel])  # sqrt: favours strong spots but keeps several in the average
        wsel = (ww / ww.sum()).astype(np.float32)[:, None, None]
        a0, a1 = (c0[sel] * wsel).sum(0), (c1[sel] * wsel).sum(0)
        bg = 0.5 * (a0 + a1) + 1e-20
        evidence[c] = (pw[:ns][sel] * wsel).sum(0) / bg  # ~1 without lattice, >> 1 on the domain
        null = a0 / (a1 + 1e-20)
        lnull = np.log(null)
        med = float(np.median(lnull))
        thr = np.exp(med + window_snr * 1.4826 * float(np.median(np.abs(lnull - med))))
        ratio[c] = evidence[c] / max(thr, 1.5)
    best = np.argmax(ratio[1:], axis=0) + 1
    labels = np.where(np.max(ratio[1:], axis=0) >= 1.0, best, 0)
    labels = _majority(labels, len(classes))
    return PhaseMap(labels, evidence, classes, window_px, step_px, pixel_size,
                    _domain_table(labels, classes, step_px, pixel_size), global_id.phases)


def _majority(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """3x3 majority filter of a label map (removes single-window speckle; ties keep the centre)."""
    votes = np.stack([ndimage.uniform_filter((labels == c).astype(float), size=3, mode="nearest")
                      for c in range(n_classes + 1)])
    best = np.argmax(votes, axis=0)
    centre = np.take_along_axis(votes, labels[None], axis=0)[0]
    return np.where(votes.max(0) > centre + 1e-9, best, labels)


def _domain_table(labels, classes, step_px, pixel_size) -> pd.DataFrame:
    rows = []
    cell_nm2 = (step_px * pixel_size / 10.0) ** 2
    names = {c["label"]: c for c in classes}
    for lab in sorted(set(np.unique(labels)) - {0}):
        cc, n = ndimage.label(labels == lab)
        for k in range(1, n + 1):
            m = cc == k
            r, c = np.nonzero(m)
            info = names[lab]
            rows.append({"domain": len(rows) + 1, "phase": info["name"],
                         "zone_axis": " ".join(str(x) for x in (info.get("zone_axis") or [])),
                         "rotation_deg": info.get("rotation_deg"), "area_nm2": float(m.sum() * cell_nm2),
                         "centroid_row_A": float((r.mean() * step_px) * pixel_size),
                         "centroid_col_A": float((c.mean() * step_px) * pixel_size), "n_windows": int(m.sum())})
    return pd.DataFrame(rows, columns=["domain", "phase", "zone_axis", "rotation_deg", "area_nm2", "centroid_row_A",
                                       "centroid_col_A", "n_windows"])


def label_image(pm: PhaseMap, shape) -> np.ndarray:
    """Labels upsampled to the image grid (each window's label at its centre, nearest neighbour)."""
    rows = np.clip(((np.arange(shape[0]) - pm.window_px / 2) / pm.step_px).round().astype(int), 0, pm.labels.shape[0] - 1)
    cols = np.clip(((np.arange(shape[1]) - pm.window_px / 2) / pm.step_px).round().astype(int), 0, pm.labels.shape[1] - 1)
    return pm.labels[np.ix_(rows, cols)]


def write_map_outputs(od, rep, image, pm: PhaseMap, *, pixel_size: float) -> dict:
    """Write the map (MRC + PNG overlay) and the domain table; add them to the report."""
    from matplotlib.colors import ListedColormap

    from cryomat.lattice.figures import _COLORS
    from cryomat.report.figures import new_figure, show_image

    full = label_image(pm, np.shape(image))
    od.write_mrc("phase_map.mrc", full.astype(np.float32), pixel_size=pixel_size)
    od.write_csv("domains.csv", pm.domains)
    fig, ax = new_figure(2, 1, size=5.0)
    show_image(ax[0, 0], image, pixel_size=pixel_size, title="image")
    show_image(ax[0, 1], image, pixel_size=pixel_size, title="phase map", scalebar=False)
    cmap = ListedColormap(["#00000000"] + [_COLORS[i % len(_COLORS)] for i in range(len(pm.classes))])
    ax[0, 1].imshow(np.ma.masked_equal(full, 0), cmap=cmap, vmin=0, vmax=max(len(pm.classes), 1), alpha=0.45,
                    interpolation="nearest")
    for c in pm.classes:
        ax[0, 1].plot([], [], "s", color=_COLORS[(c["label"] - 1) % len(_COLORS)],
                      label=f"{c['name']} [{' '.join(map(str, c['zone_axis'] or []))}]")
    if pm.classes:
        ax[0, 1].legend(fontsize=8, loc="upper right")
    od.save_figure("phase_map.png", fig)
    rep.add_figure("phase_map.png", f"Sliding-window phase map ({pm.window_px} px windows, step {pm.step_px} px)")
    rep.add_table(pm.domains.round(3), title="Domains (domains.csv)")
    frac = {c["name"]: float((pm.labels == c["label"]).mean()) for c in pm.classes}
    return {"window_px": pm.window_px, "step_px": pm.step_px, "classes": pm.classes, "area_fraction": frac,
            "n_domains": int(len(pm.domains)),
            "domain_area_nm2": {c["name"]: float(pm.domains.area_nm2[pm.domains.phase == c["name"]].sum())
                                for c in pm.classes}}
