"""Superlattice (charge-order, PLD) reflections: fractional-position spots, q refinement, lock-in maps.

1. The fundamental reciprocal basis (b1, b2) comes from the strongest spots (shortest basis that
   indexes them with integers) unless given.
2. Every significant spot gets fractional indices f = B^-1 k. Spots on integers are fundamental;
   spots within ``frac_tol`` of a fraction with denominator <= ``max_denominator`` are
   superlattice candidates, and their significance is their robust spectral SNR (see
   :func:`cryomat.lattice.peaks.background_snr`).
3. The modulation vector q (in r.l.u. and 1/A) is refined by least squares from all satellites
   k = G + m q (m = +-1, +-2).
4. Lock-in: demodulating the image at a satellite (I(r) exp(-2 pi i k.r), Gaussian low-pass)
   gives maps of its local amplitude and phase (Hytch-style, as used for charge order by
   Savitzky et al.).

References
----------
Savitzky et al., Nat. Commun. 8, 1883 (2017), doi:10.1038/s41467-017-02156-1;
Hytch, Snoeck & Kilaas, Ultramicroscopy 74, 131 (1998), doi:10.1016/S0304-3991(98)00035-7;
El Baggari et al., PNAS 115, 1445 (2018), doi:10.1073/pnas.1714901115 (cryo-STEM of charge order).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd

from cryomat.lattice.peaks import find_fft_peaks


def fundamental_basis(peaks: pd.DataFrame, *, n_strong: int = 6) -> np.ndarray:
    """Reciprocal basis (2x2, rows b1, b2 in (kx, ky) 1/A) from the strongest spots.

    The two shortest non-collinear vectors among the ``n_strong`` strongest spots (and their
    sums and differences) that index all of them with integers.
    """
    if len(peaks) < 2:
        raise ValueError("need at least two lattice spots to define the fundamental lattice")
    P = peaks.sort_values("snr", ascending=False)[["kx_per_A", "ky_per_A"]].to_numpy()[:n_strong]
    cand = list(P) + [a - b for i, a in enumerate(P) for b in P[i + 1:]] + [a + b for i, a in enumerate(P) for b in P[i + 1:]]
    cand = [c for c in cand if np.linalg.norm(c) > 1e-6]
    cand.sort(key=lambda c: np.linalg.norm(c))
    best = None
    for i, b1 in enumerate(cand):
        for b2 in cand[i + 1:]:
            cr = abs(b1[0] * b2[1] - b1[1] * b2[0])
            if cr < 0.2 * np.linalg.norm(b1) * np.linalg.norm(b2):
                continue
            B = np.stack([b1, b2])
            f = np.linalg.solve(B.T, P.T).T
            if np.all(np.abs(f - np.rint(f)) < 0.08):
                area = cr
                if best is None or area > best[0] + 1e-12:  # the largest cell (in k) that still indexes all
                    best = (area, B)
        if best is not None and i > 12:
            break
    if best is None:
        raise ValueError("the strongest spots do not form a 2D lattice")
    b1, b2 = best[1]
    for _ in range(20):  # Lagrange-Gauss reduction: shortest basis of the same lattice
        if np.linalg.norm(b2) < np.linalg.norm(b1):
            b1, b2 = b2, b1
        m = np.rint(b1 @ b2 / (b1 @ b1))
        if m == 0:
            break
        b2 = b2 - m * b1
    return np.stack([b1, b2])


def _nearest_fraction(x: float, max_den: int) -> Fraction:
    return Fraction(x).limit_denominator(max_den)


def find_superlattice(image, *, pixel_size: float, basis: np.ndarray | None = None, snr_min: float = 8.0,
                      max_denominator: int = 6, frac_tol: float = 0.03, d_min: float | None = None,
                      max_peaks: int = 200, strong_rel: float = 0.03, snr_detect: float = 12.0) -> dict:
    """Spots at fractional positions of the fundamental lattice, with significance and refined q.

    A superlattice is declared (``detected``) only when at least two satellites with SNR >=
    ``snr_detect`` share one q (up to sign and harmonics), which keeps single noise spikes out.
    ``strong_rel``: spots above this fraction of the strongest define the fundamental lattice.

    Returns
    -------
    dict with ``detected``, ``peaks`` (DataFrame: kx_per_A, ky_per_A, d_spacing_A, snr, f1, f2, kind
    ('fundamental' | 'superlattice' | 'other'), fraction), ``basis_per_A`` (2x2), ``q_rlu``,
    ``q_per_A``, ``q_significance`` (largest satellite SNR), ``n_superlattice``.
    """
    peaks = find_fft_peaks(image, pixel_size=pixel_size, snr_min=snr_min, d_min=d_min, max_peaks=max_peaks,
                           refine_taper="hann")
    if basis is None:
        # fundamental spots are the strong ones: satellites of a modulation are >~30x weaker
        strong = peaks[peaks.snr >= max(3 * snr_min, strong_rel * peaks.snr.max())] if len(peaks) else peaks
        basis = fundamental_basis(strong if len(strong) >= 2 else peaks, n_strong=12)
    B = np.asarray(basis, dtype=np.float64)
    k = peaks[["kx_per_A", "ky_per_A"]].to_numpy()
    f = np.linalg.solve(B.T, k.T).T if len(k) else np.zeros((0, 2))
    kinds, fracs = [], []
    for fi in f:
        if np.all(np.abs(fi - np.rint(fi)) < frac_tol):
            kinds.append("fundamental")
            fracs.append(f"{int(np.rint(fi[0]))} {int(np.rint(fi[1]))}")
            continue
        fr = [_nearest_fraction(x, max_denominator) for x in fi]
        if all(abs(float(a) - x) < frac_tol for a, x in zip(fr, fi)):
            kinds.append("superlattice")
            fracs.append(f"{fr[0]} {fr[1]}")
        else:
            kinds.append("other")
            fracs.append("")
    peaks = peaks.copy()
    peaks["f1"], peaks["f2"] = f[:, 0] if len(f) else [], f[:, 1] if len(f) else []
    peaks["kind"], peaks["fraction"] = kinds, fracs
    sat = peaks[peaks.kind == "superlattice"]
    q, sig = None, 0.0
    if len(sat):
        # q: the satellite offset from its nearest fundamental, sign-aligned with the strongest one
        off = sat[["f1", "f2"]].to_numpy() - np.rint(sat[["f1", "f2"]].to_numpy())
        ref = off[np.argmax(sat.snr.to_numpy())]
        cands = []
        for o in off:
            for m in (1, 2):  # first and second harmonics
                for sg in (1, -1):
                    qq = sg * o / m
                    qq = qq - np.rint(qq - ref)  # same cell as the reference
                    cands.append((np.linalg.norm(qq - ref), qq, m))
        good = [(c[1], w) for c, w in zip(cands, np.repeat(sat.snr.to_numpy(), 4)) if c[0] < 2 * frac_tol]
        if good:
            q = np.average(np.array([g[0] for g in good]), axis=0, weights=[g[1] for g in good])
        else:
            q = ref
        sig = float(sat.snr.max())
        # satellites consistent with q (k = G + m q, |m| <= 2) above the detection threshold
        strong_sat = 0
        for o, sn in zip(off, sat.snr.to_numpy()):
            if sn < snr_detect:
                continue
            if any(np.all(np.abs((o - m * q) - np.rint(o - m * q)) < 2 * frac_tol) for m in (1, -1, 2, -2)):
                strong_sat += 1
        detected = strong_sat >= 2
    else:
        detected = False
    out = {"detected": bool(detected), "peaks": peaks, "basis_per_A": B, "n_superlattice": int(len(sat)), "q_significance": sig,
           "q_rlu": None if q is None else q.tolist(),
           "q_per_A": None if q is None else (q @ B).tolist()}
    return out


def lock_in(image, k_per_A, *, pixel_size: float, sigma_A: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Local amplitude and phase (rad) of the Fourier component at ``k_per_A`` (kx, ky) by lock-in.

    The image is multiplied by exp(-2 pi i k . r) and low-passed with a Gaussian of width
    ``sigma_A`` (default: 1.5 periods of the component), so the amplitude is in image units and
    the phase map shows where the modulation is displaced.
    """
    a = np.asarray(image, dtype=np.float64)
    a = a - a.mean()
    kx, ky = float(k_per_A[0]), float(k_per_A[1])
    kn = math.hypot(kx, ky)
    if kn <= 0:
        raise ValueError("k_per_A must be a non-zero spatial frequency")
    sigma = sigma_A if sigma_A else 1.5 / kn
    rows = np.arange(a.shape[0])[:, None] * pixel_size
    cols = np.arange(a.shape[1])[None, :] * pixel_size
    demod = a * np.exp(-2j * np.pi * (kx * cols + ky * rows))
    fr = np.fft.fftfreq(a.shape[0], pixel_size)[:, None]
    fc = np.fft.fftfreq(a.shape[1], pixel_size)[None, :]
    lp = np.exp(-2 * (np.pi * sigma) ** 2 * (fr**2 + fc**2))
    z = np.fft.ifft2(np.fft.fft2(demod) * lp)
    return 2 * np.abs(z), np.angle(z)


def compare_superlattices(a: dict, b: dict, *, tol: float = 0.04) -> pd.DataFrame:
    """Superlattice spots of result ``a`` and whether result ``b`` has one at the same fractional position."""
    rows = []
    for src, other, name in ((a, b, "image"), (b, a, "reference")):
        sa = src["peaks"][src["peaks"].kind == "superlattice"]
        so = other["peaks"][other["peaks"].kind == "superlattice"]
        fo = so[["f1", "f2"]].to_numpy()
        for r in sa.itertuples():
            v = np.array([r.f1, r.f2])
            d = np.min(np.minimum(np.linalg.norm(fo - v, axis=1), np.linalg.norm(fo + v, axis=1))) if len(fo) else np.inf
            rows.append({"found_in": name, "fraction": r.fraction, "f1": r.f1, "f2": r.f2,
                         "d_spacing_A": r.d_spacing_A, "snr": r.snr, "also_in_other": bool(d < tol)})
    return pd.DataFrame(rows, columns=["found_in", "fraction", "f1", "f2", "d_spacing_A", "snr", "also_in_other"])
