"""Scale-free indexing of FFT spots and phase identification with explicit ambiguity.

For every candidate phase and zone axis, pairs of experimental spots are matched to pairs of
template spots by their *spacing ratio* and *inter-spot angle* (both independent of the pixel
size); each match fixes a similarity transform (one global scale factor s and an in-plane
rotation, optionally mirrored for the opposite beam direction), which is refined by least
squares on all matched spots. A hypothesis is scored by

    score = E x R x exp(-(ln s)^2 / (2 sigma_s^2)),

E the SNR-weighted fraction of observed spots it explains (a spot explained by a kinematically
almost absent reflection, |F|^2 < 1 % of the strongest, counts only partly), R the |F|^2-weighted
fraction of the template spots in the observed frequency range that are found (so ice Ih is
penalised when its Ih-only 3.90/3.44/2.67 A spots are absent), and the last factor the prior that
the pixel size is right to within ``sigma_s`` (default 3 %).

"Found" uses the spectrum itself where the peak table carries it (``find_fft_peaks`` attaches a
:class:`~cryomat.lattice.peaks.SpectrumEvidence`): a predicted spot below the detection threshold
counts as seen when the significance at exactly its predicted position has p <= 0.002 under the
empirical null of the spectrum (no search over positions, so no look-elsewhere penalty), and a
predicted spot expected well above threshold whose position shows only noise counts against the
hypothesis. This is what separates ice Ih [0001] (weak Ih-only 3.90 A spots under the amorphous
ring, 1.96 A spots) from ice Ic [111] (2.25 A ring only) at 20 e/A^2. The per-spot p-values come
from :class:`~cryomat.lattice.peaks.PredictedSpotTest` (exact-frequency power of a lightly tapered
spectrum); when every detected spot lies on one line, the hypothesis's predicted spots off that
line are combined by Fisher's method, and a joint p <= 1e-5 (``pool_p_direction``; ~10^2
hypotheses compete) supplies the second lattice direction (Li [210]: (002) detected, the {1-21}
1.43 A spots seen jointly; ice Ih [2-10]: (0002) plus the 1.45-1.48 A spots). Weak spots confirmed
as such a jointly significant set are evidence every hypothesis has to explain (its explained
fraction counts them), and a spot confirmed only weakly where a hypothesis expects it far above
threshold counts as only partly found. The result names the best phase only when no other
phase comes close (``ambiguity_ratio``) and at least two non-collinear spots are explained; it
says ``"ambiguous"`` (with the candidates) or ``"unknown"`` otherwise. Domains of several phases
are found one after another on the spots left unexplained.

References
----------
Li et al., Science 358, 506 (2017), doi:10.1126/science.aam6014 (SEI phases indexed from FFTs);
Mugnaioli & Kolb-type spacing/angle indexing, e.g. Zaefferer, J. Appl. Cryst. 33, 10 (2000),
doi:10.1107/S0021889899010894 (ratio-and-angle indexing of spot patterns).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from cryomat.lattice.phases import Phase, get_phase

DEFAULT_PHASES = ("Li", "Li2O", "LiF", "Li2CO3", "ice-Ih", "ice-Ic")


@dataclass
class ZoneMatch:
    """One indexing hypothesis: a phase at a zone axis, with its fitted scale and rotation."""

    phase: str
    zone_axis: tuple[int, int, int]
    score: float
    explained: float
    recall: float
    scale_factor: float
    rotation_deg: float
    mirrored: bool
    matched: dict = field(default_factory=dict)  # peak index -> (h, k, l, d_template_A)
    n_noncollinear: int = 0
    confirmed: list = field(default_factory=list)  # (h, k, l, kx, ky, p) predicted spots seen below snr_min
    pooled_p_off_line: float = 1.0  # Fisher p of the predicted spots off the line of the detected ones
    pooled_p: float = 1.0  # Fisher p of all undetected predicted spots
    predicted: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)), repr=False)  # (kx, ky) of every template spot

    def to_dict(self) -> dict:
        return {"name": self.phase, "zone_axis": list(self.zone_axis), "score": round(self.score, 4),
                "explained_fraction": round(self.explained, 4), "template_recall": round(self.recall, 4),
                "matched_peaks": len(self.matched), "confirmed_weak_spots": len(self.confirmed) // 2,
                "off_line_pooled_p": float(f"{self.pooled_p_off_line:.3g}"),
                "scale_factor": round(self.scale_factor, 5),
                "rotation_deg": round(self.rotation_deg, 3), "mirrored": self.mirrored}


@dataclass
class PhaseID:
    """Phase identification of one set of spots.

    ``phases``: one entry per domain found; each has ``name`` (a phase, ``"ambiguous"`` or
    ``"unknown"``), ``zone_axis``, ``score``, ``matched_peaks``, ``scale_factor`` and, when
    ambiguous, ``candidates``. ``peaks``: the input table with ``hkl``, ``phase`` and
    ``d_fit_A`` (the template spacing divided by the fitted scale) filled in where indexed.
    """

    phases: list[dict]
    peaks: pd.DataFrame
    matches: list[ZoneMatch]

    def to_dict(self) -> dict:
        return {"phases": self.phases}


class _Templates:
    """Zone-axis spot templates of the candidate phases, cached per resolution limit."""

    def __init__(self, phases, *, d_min: float, max_index: int, temperature_K):
        self.items = []
        for p in phases:
            ph = p if isinstance(p, Phase) else get_phase(p, temperature_K=temperature_K)
            for uvw in ph.zone_axes(max_index=max_index, d_min=d_min, min_spots=2):
                pat = ph.zone_pattern(uvw, d_min=d_min)
                g = pat[["gx_per_A", "gy_per_A"]].to_numpy()
                w = pat.F_abs_A.to_numpy() ** 2
                self.items.append((ph, uvw, g, w / w.max(), pat[["h", "k", "l"]].to_numpy(), pat.d_A.to_numpy()))


def _angle(a, b):
    return math.atan2(a[0] * b[1] - a[1] * b[0], a[0] * b[0] + a[1] * b[1])


def _match(P, g, s, theta, mirror, k_tol, rel_tol):
    """Nearest template spot for each experimental vector (both Friedel signs) under the transform."""
    gg = g.copy()
    if mirror:
        gg[:, 1] = -gg[:, 1]
    c, sn = math.cos(theta), math.sin(theta)
    Q = s * np.stack([c * gg[:, 0] - sn * gg[:, 1], sn * gg[:, 0] + c * gg[:, 1]], axis=1)
    dr = P[:, None, 0] - Q[None, :, 0]
    dc = P[:, None, 1] - Q[None, :, 1]
    d2 = dr * dr + dc * dc
    j = np.argmin(d2, axis=1)
    dist = np.sqrt(d2[np.arange(len(P)), j])
    tol = k_tol + rel_tol * np.hypot(P[:, 0], P[:, 1])
    return j, dist <= tol, gg, Q


def _fit(P, G):
    """Least-squares similarity (scale, rotation) mapping template vectors G onto observed P."""
    zp = P[:, 0] + 1j * P[:, 1]
    zg = G[:, 0] + 1j * G[:, 1]
    z = np.sum(zp * np.conj(zg)) / np.sum(np.abs(zg) ** 2)
    return float(abs(z)), float(np.angle(z))


def _half_plane(Q):
    """True for one spot of each Friedel pair (ky > 0, or ky ~ 0 and kx > 0)."""
    eps = 1e-9
    return (Q[:, 1] > eps) | ((np.abs(Q[:, 1]) <= eps) & (Q[:, 0] > 0))


def _off_line(Q, V, min_angle_deg=8.0):
    """True for vectors Q whose direction differs by more than ``min_angle_deg`` from every vector in V."""
    if len(V) == 0:
        return np.ones(len(Q), bool)
    aq = np.degrees(np.arctan2(Q[:, 1], Q[:, 0]))[:, None]
    av = np.degrees(np.arctan2(V[:, 1], V[:, 0]))[None, :]
    d = np.abs(aq - av) % 180.0
    return np.all(np.minimum(d, 180.0 - d) > min_angle_deg, axis=1)


def _pooled(evidence, Q, wg, detected, P_ok, weak_F2_pool):
    """Per-spot p-values of the predicted spots in the predicted-spot test, and Fisher-combined p-values.

    Returns (p_spot, off, p_off, p_all): ``off`` marks the undetected predicted spots (one per Friedel
    pair, |F|^2 >= ``weak_F2_pool`` of the strongest) off the line of the detected spots, p_off
    their Fisher-combined p-value (the second lattice direction when all detected spots are collinear),
    p_all the Fisher-combined p-value of all undetected predicted spots.
    """
    pooled = getattr(evidence, "pooled", None) if evidence is not None else None
    if pooled is None:
        return None, np.zeros(len(Q), bool), 1.0, 1.0
    _z, p = pooled.pvalues(Q[:, 0], Q[:, 1])
    use = _half_plane(Q) & ~detected & (wg >= weak_F2_pool) & (p < 1.0)
    off = use & _off_line(Q, P_ok)
    p_off = _fisher(p[off]) if off.any() else 1.0
    return p, off, p_off, _fisher(p[use])


def _friedel_mates(Q, mask):
    """Mask of the template spots that are the Friedel mates (-g) of the spots in ``mask``."""
    out = np.zeros(len(Q), bool)
    for i in np.flatnonzero(mask):
        d = np.linalg.norm(Q + Q[i], axis=1)
        out[np.argmin(d)] = True
    return out


def _fisher(p) -> float:
    from scipy.stats import chi2

    p = np.asarray(p, dtype=np.float64)
    if p.size == 0:
        return 1.0
    return float(chi2.sf(-2.0 * np.log(np.clip(p, 1e-300, 1.0)).sum(), 2 * p.size))


def _evaluate(P, wP, kmax, item, s, theta, mirror, k_tol, rel_tol, sigma_s, snr_min, evidence=None, alpha=0.002,
              weak_F2=0.01, weak_F2_pool=0.02):
    ph, uvw, g, wg, hkl, dd = item
    for _ in range(2):
        j, ok, gg, Q = _match(P, g, s, theta, mirror, k_tol, rel_tol)
        if ok.sum() < 1:
            return None
        s, theta = _fit(P[ok], gg[j[ok]])
    j, ok, gg, Q = _match(P, g, s, theta, mirror, k_tol, rel_tol)
    if ok.sum() < 1:
        return None
    # a spot explained by a kinematically almost absent reflection (|F|^2 < 1 % of the pattern's
    # strongest) is only partly explained: a bright spot there needs a CTF/dynamical accident, e.g.
    # Li2O (002), |F| = 0.27 A, posing as ice Ic (022), 9.9 A, in the Ic [100] / Li2O [100] twin
    plaus = np.sqrt(np.clip(wg[j[ok]] / weak_F2, 0.0, 1.0))
    explained = float((wP[ok] * plaus).sum() / wP.sum())
    qk = np.linalg.norm(Q, axis=1)
    found = np.zeros(len(g), bool)
    found[j[ok]] = True
    confirmed = np.zeros(len(g), bool)
    p_conf = np.ones(len(g))
    p_off, off, p_all = 1.0, np.zeros(len(g), bool), 1.0
    if evidence is not None:
        # a predicted spot below the detection threshold is still seen if the spectrum is significant
        # exactly where the hypothesis puts it (no search, so a p-value of alpha suffices)
        detected = found.copy()
        p_spot, off, p_off, p_all = _pooled(evidence, Q, wg, detected, P[ok], weak_F2_pool)
        if p_spot is None:
            _z, p = evidence.significance(Q[:, 0], Q[:, 1])
        else:
            p = p_spot
        confirmed = (p <= alpha) & ~found
        found |= confirmed
        p_conf = p
    # template spots count as missing only up to the highest frequency this hypothesis explains
    # (a stray noise spot near Nyquist must not put the whole high-order pattern "in range")
    kmax = min(kmax, 1.03 * float(np.max(np.hypot(P[ok, 0], P[ok, 1]))))
    inrange = (qk <= kmax) | found
    # a missing template spot counts against the hypothesis only as far as it should have been
    # seen: its expected SNR is the observed SNR per unit |F|^2 of the matched spots times its |F|^2
    per_w = np.median(wP[ok] / np.maximum(wg[j[ok]], 1e-6))
    expected = per_w * wg
    vis = np.clip((expected - snr_min) / (2.0 * snr_min), 0.0, 1.0)
    vis[found] = 1.0
    wv = wg * vis
    # a spot seen only below the detection threshold where the hypothesis expects it far above
    # (SNR > 2 snr_min) is only partly found: e.g. Li2O [100]'s weak (002) at the place of ice Ic
    # [100]'s strongest (022) under a 2.6 % scale change
    credit = np.ones(len(g))
    credit[confirmed] = np.clip(2.0 * snr_min / np.maximum(expected[confirmed], 1e-12), 0.0, 1.0)
    recall = float((wv * credit)[found & inrange].sum() / max(wv[inrange].sum(), 1e-12))
    prior = math.exp(-0.5 * (math.log(s) / sigma_s) ** 2)
    score = explained * recall * prior
    return score, explained, recall, s, theta, j, ok, confirmed, Q, p_conf, (p_off, off, p_all)


def _noncollinear(vectors, min_angle_deg=8.0) -> int:
    """1 if all vectors are (anti)parallel, 2 if at least two directions differ by > min angle."""
    if len(vectors) == 0:
        return 0
    ang = np.degrees(np.arctan2(vectors[:, 1], vectors[:, 0])) % 180.0
    diff = np.abs(ang[:, None] - ang[None, :]) % 180.0
    diff = np.minimum(diff, 180.0 - diff)
    return 2 if np.any(diff > min_angle_deg) else 1


def _search(P, wP, kmax, templates, *, k_tol, rel_tol, scale_tolerance, sigma_s, angle_tol_deg, n_anchor, snr_min,
            evidence=None, confirm_p=0.002, confirm_p_direction=5e-4, pool_p_direction=1e-5):
    """Best hypothesis per (phase, zone axis) for observed half-plane vectors P with weights wP."""
    order = np.argsort(-wP)
    anchors = []
    top = order[:n_anchor]
    for a in range(len(top)):
        for b in range(a + 1, len(top)):
            pa, pb = P[top[a]], P[top[b]]
            ang = abs(math.degrees(_angle(pa, pb))) % 180.0
            if min(ang, 180 - ang) > 8.0:
                anchors.append((top[a], top[b]))
    single = not anchors
    # the strongest spot alone is always an anchor too: a stray noise spot must not hide a zone whose
    # other spots are only seen jointly in the spectrum (e.g. ice Ih [2-10]: 3.68 A + weak 1.48 A)
    anchors = anchors[:6] + [(order[0], None)]
    Pfull = np.concatenate([P, -P])
    wfull = np.concatenate([wP, wP])
    results = []
    for item in templates.items:
        ph, uvw, g, wg, hkl, dd = item
        glen = np.linalg.norm(g, axis=1)
        best = None
        for ia, ib in anchors:
            pa = P[ia]
            la = np.linalg.norm(pa)
            s_a = la / glen
            ca = np.abs(np.log(s_a)) <= scale_tolerance
            if not ca.any():
                continue
            for mirror in (False, True):
                gg = g.copy()
                if mirror:
                    gg[:, 1] = -gg[:, 1]
                for i in np.flatnonzero(ca):
                    if ib is None:
                        cand = [(s_a[i], _angle(gg[i], pa))]
                    else:
                        pb = P[ib]
                        ratio = np.linalg.norm(pb) / la
                        alpha = _angle(pa, pb)
                        rg = glen / glen[i]
                        beta = np.arctan2(gg[i, 0] * gg[:, 1] - gg[i, 1] * gg[:, 0], gg @ gg[i])
                        dang = np.degrees(np.abs((beta - alpha + np.pi) % (2 * np.pi) - np.pi))
                        okj = (np.abs(rg / ratio - 1) <= 2 * rel_tol + k_tol / la) & (dang <= angle_tol_deg)
                        if not okj.any():
                            continue
                        cand = [(s_a[i], _angle(gg[i], pa))]
                    for s, theta in cand:
                        r = _evaluate(Pfull, wfull, kmax, item, s, theta, mirror, k_tol, rel_tol, sigma_s, snr_min,
                                      evidence, confirm_p)
                        if r is None or abs(math.log(r[3])) > scale_tolerance:
                            continue
                        if best is None or r[0] > best[0][0]:
                            best = (r, mirror)
                if best is not None and best[0][1] > 0.999 and best[0][2] > 0.999:
                    break
        if best is None:
            continue
        (score, explained, recall, s, theta, j, ok, conf, Q, pconf, (p_off, off, p_all)), mirror = best
        n = len(P)
        matched = {}
        for idx in range(2 * n):
            if ok[idx]:
                pi = idx % n
                if pi not in matched:
                    h, k, l = (int(x) for x in hkl[j[idx]])
                    if idx >= n:
                        h, k, l = -h, -k, -l
                    matched[pi] = (h, k, l, float(dd[j[idx]]))
        # a weak spot may supply the second lattice direction only at a p-value that survives the
        # search over all hypotheses (phases x zone axes x anchor choices: ~10^3 predicted positions)
        strong_conf = conf & (pconf <= confirm_p_direction)
        seen_vectors = np.concatenate([P[list(matched)], Q[strong_conf]]) if matched else Q[strong_conf]
        ncol = _noncollinear(seen_vectors) if len(seen_vectors) else 0
        if ncol < 2 and len(matched) and p_off <= pool_p_direction:
            # the predicted spots off the detected line are jointly significant at a level that
            # survives the search over hypotheses: they supply the second lattice direction, and
            # those clearly above the noise themselves (p <= 0.01) are listed as seen, so a rival
            # that does not predict them cannot make the answer ambiguous
            ncol = 2
            conf = conf | (off & (pconf <= 0.01))
            conf |= _friedel_mates(Q, conf)
        confirmed = [(*(int(x) for x in hkl[i]), float(Q[i, 0]), float(Q[i, 1]), float(pconf[i]))
                     for i in np.flatnonzero(conf)]
        results.append(ZoneMatch(phase=ph.name, zone_axis=tuple(int(x) for x in uvw), score=score, explained=explained,
                                 recall=recall, scale_factor=s, rotation_deg=math.degrees(theta), mirrored=mirror,
                                 matched=matched, n_noncollinear=ncol, confirmed=confirmed, pooled_p_off_line=p_off,
                                 pooled_p=p_all, predicted=Q))
    return results, single


def _predicted_by(m: ZoneMatch, V, k_tol, rel_tol) -> np.ndarray:
    """True for each vector of V (1/A) within the matching tolerance of a spot hypothesis ``m`` predicts."""
    V = np.asarray(V, dtype=np.float64).reshape(-1, 2)
    Q = m.predicted
    if not len(V):
        return np.zeros(0, bool)
    if not len(Q):
        return np.zeros(len(V), bool)
    d = np.linalg.norm(V[:, None, :] - Q[None, :, :], axis=2).min(axis=1)
    return d <= k_tol + rel_tol * np.linalg.norm(V, axis=1)


def _rescore_confirmed(res, P, wP, *, earlier, k_tol, rel_tol, pool_p, weight):
    """Scores with the jointly confirmed weak spots of all hypotheses added to the evidence to explain.

    The evidence set U: weak spots (p <= confirm_p each) of every hypothesis whose undetected
    predicted spots are jointly significant at ``pool_p`` (Fisher), one per Friedel pair, minus
    those an earlier domain predicts. Each counts up to ``weight`` (in detected-spot SNR units) in
    the explained fraction, so e.g. LiF [100] explaining two ~2.0 A spots of ice Ih [101] loses to
    ice Ih, whose ten further predicted spots are seen in the spectrum.
    """
    pts = [np.array([c[3:6] for c in m.confirmed]) for m in res if m.pooled_p <= pool_p and m.confirmed]
    if not pts:
        return res
    U = np.concatenate(pts)
    U = U[_half_plane(U[:, :2])]
    keep = []
    for v in U[np.argsort(U[:, 2])]:  # one entry per position
        if all(np.linalg.norm(v[:2] - u[:2]) > k_tol for u in keep):
            keep.append(v)
    U = np.array(keep).reshape(-1, 3)
    for m in earlier:
        U = U[~_predicted_by(m, U[:, :2], k_tol, rel_tol)]
    if not len(U):
        return res
    # a confirmed spot at p <= 1e-6 weighs as much as a spot at the detection threshold, one at the
    # confirmation limit (p = 0.002) about half as much
    wu = weight * np.clip(np.log(U[:, 2]) / math.log(1e-6), 0.0, 1.0)
    U = U[:, :2]
    W = float(np.sum(wP))
    out = []
    for m in res:
        hit = _predicted_by(m, np.concatenate([U, -U]), k_tol, rel_tol)
        got = float(np.sum(wu * (hit[:len(U)] | hit[len(U):])))
        e2 = (m.explained * W + got) / (W + float(wu.sum()))
        out.append(replace(m, score=m.score * e2 / max(m.explained, 1e-12), explained=e2))
    return out


def _spacing_twins(P, templates, tol) -> list[str]:
    """Phases with a reflection whose spacing matches every observed |k| within ``tol`` (relative)."""
    k = np.linalg.norm(P, axis=1)
    names = []
    for ph, uvw, g, wg, hkl, dd in templates.items:
        if ph.name in names:
            continue
        kt = 1.0 / dd
        if all(np.any(np.abs(np.log(kk / kt)) <= tol) for kk in k):
            names.append(ph.name)
    return names


def identify_phases(peaks: pd.DataFrame, *, phases=DEFAULT_PHASES, temperature_K: float | None = None,
                    k_tol_per_A: float = 0.004, rel_tol: float = 0.012, scale_tolerance: float = 0.06,
                    sigma_scale: float = 0.03, angle_tol_deg: float = 3.0, ambiguity_ratio: float = 0.85,
                    min_score: float = 0.3, max_domains: int = 3, max_index: int = 2, d_min: float | None = None,
                    n_anchor: int = 5, snr_min: float = 12.0, use_spectrum: bool = True,
                    confirm_p: float = 0.002, confirm_p_direction: float = 5e-4,
                    pool_p_direction: float = 1e-5, confirmed_weight: float = 1.0) -> PhaseID:
    """Index FFT spots against a phase library and name the phase(s), or say it cannot.

    Parameters
    ----------
    peaks : table from :func:`cryomat.lattice.find_fft_peaks` (``kx_per_A, ky_per_A, snr``).
    phases : library names or :class:`Phase` objects to consider.
    temperature_K : use the library cells at this temperature.
    k_tol_per_A, rel_tol : a spot matches a predicted one within ``k_tol + rel_tol |k|`` (1/A);
        ``k_tol`` about one Fourier pixel, 1 / (N pixel_size).
    scale_tolerance : largest |ln s| accepted for the global scale factor (pixel-size error).
    sigma_scale : width of the prior on ln s (the expected calibration error).
    angle_tol_deg : inter-spot angle tolerance for the ratio-and-angle pair search.
    ambiguity_ratio : a second phase scoring at least this fraction of the best makes the
        answer ``"ambiguous"``.
    min_score : below this the answer is ``"unknown"``.
    max_domains : how many phases to look for one after another.
    max_index : zone axes up to this index are considered.
    d_min : smallest template spacing (A); default just below the smallest observed spacing.
    snr_min : the significance threshold the spots were found with; a predicted spot that is
        missing counts against a hypothesis in proportion to how far above it it should have been.
    use_spectrum : if the table carries ``attrs["spectrum_evidence"]`` (from :func:`find_fft_peaks`),
        look at each hypothesis's predicted spot positions in the significance map: a predicted spot
        whose local significance has a p-value <= ``confirm_p`` under the empirical null of the
        spectrum counts as seen (it also supplies the second, non-collinear direction when only one
        spot was detected). Position known in advance means no search, hence the low threshold.
    confirm_p : p-value for such a confirmation (default 0.002: with ~10-30 predicted positions per
        hypothesis, a wrong one gains a chance confirmation in a few % of cases, and still needs
        the right spacings, angles and scale to score).
    confirm_p_direction : stricter p-value for a weak spot that supplies the only second lattice
        direction (one detected spacing + one confirmed spot): the hypotheses tried then amount to
        a search over ~10^2-10^3 predicted positions; 5e-4 (with the rival and twin checks) gave no
        wrong label from a confirmed direction in the phase-ID benchmark.
    pool_p_direction : joint (Fisher) p-value of a hypothesis's undetected predicted spots off the
        line of the detected ones at which they supply the second direction; 1e-5 with ~10^2
        hypotheses per image keeps the family-wise false rate ~1e-3. On the benchmark the true
        zone gave 1e-6..1e-29 where the spots are above noise, wrong hypotheses >= 1e-2.
    confirmed_weight : weight (in units of ``snr_min``) of a jointly confirmed weak spot, at
        p <= 1e-6, in every hypothesis's explained fraction (less for weaker ones).

    Returns
    -------
    :class:`PhaseID`.
    """
    if not isinstance(peaks, pd.DataFrame) or not {"kx_per_A", "ky_per_A"} <= set(peaks.columns):
        raise ValueError("peaks must be a DataFrame with kx_per_A and ky_per_A columns (from find_fft_peaks)")
    if not phases:
        raise ValueError("phases must name at least one phase")
    pk = peaks.reset_index(drop=True).copy()
    pk["hkl"] = ""
    pk["phase"] = ""
    pk["d_fit_A"] = np.nan
    pk["d_template_A"] = np.nan
    out: list[dict] = []
    matches: list[ZoneMatch] = []
    if len(pk) == 0:
        return PhaseID([{"name": "unknown", "reason": "no lattice spots above the significance threshold"}], pk, [])
    P_all = pk[["kx_per_A", "ky_per_A"]].to_numpy(dtype=np.float64)
    w_all = pk["snr"].to_numpy(dtype=np.float64) if "snr" in pk else np.ones(len(pk))
    w_all = np.clip(w_all, 1e-3, None)
    kobs = np.linalg.norm(P_all, axis=1)
    evidence = peaks.attrs.get("spectrum_evidence") if use_spectrum else None
    dmin = d_min if d_min is not None else 0.97 / kobs.max()
    if evidence is not None and d_min is None:
        # predicted spots up to 2 x the largest detected |k| can still be confirmed in the spectrum
        dmin = max(min(dmin / 2.0, 1.2), 1.0 / evidence.k_max_per_A)
    templates = _Templates(phases, d_min=dmin, max_index=max_index, temperature_K=temperature_K)
    remaining = np.arange(len(pk))
    for _dom in range(max_domains):
        if len(remaining) == 0:
            break
        P, wP = P_all[remaining], w_all[remaining]
        kmax = 1.03 * kobs.max()
        res, single = _search(P, wP, kmax, templates, k_tol=k_tol_per_A, rel_tol=rel_tol,
                              scale_tolerance=scale_tolerance, sigma_s=sigma_scale, angle_tol_deg=angle_tol_deg,
                              n_anchor=n_anchor, snr_min=snr_min, evidence=evidence, confirm_p=confirm_p,
                              confirm_p_direction=confirm_p_direction, pool_p_direction=pool_p_direction)
        if not res:
            if _dom == 0:
                out.append({"name": "unknown", "reason": "no library zone axis matches the spot spacings and angles",
                            "matched_peaks": 0})
            break
        # weak spots that some hypothesis confirmed as a jointly significant set are evidence every
        # hypothesis has to explain: one that does not predict them explains less of the spectrum
        res = _rescore_confirmed(res, P, wP, earlier=matches, k_tol=k_tol_per_A, rel_tol=rel_tol,
                                 pool_p=pool_p_direction, weight=confirmed_weight * snr_min)
        # a hypothesis that sees two lattice directions (detected, or its predicted off-line spots
        # jointly significant: pool_p_direction) is preferred to ones that only explain collinear
        # spots, which could only answer "unknown" or "ambiguous"
        res.sort(key=lambda m: (-(m.n_noncollinear >= 2), -m.score))
        best = res[0]
        per_phase: dict[str, ZoneMatch] = {}
        for m in res:
            if m.phase not in per_phase:
                per_phase[m.phase] = m
        # a rival makes the answer ambiguous only if it explains (mostly) the same spots; a phase that
        # explains other spots is a second domain, found in the next round
        wb = sum(wP[i] for i in best.matched)

        def _overlap(m):
            return sum(wP[i] for i in m.matched if i in best.matched) / max(wb, 1e-12)

        def _uncovered(a, b):
            """Spots that hypothesis ``a`` confirmed in the spectrum and ``b`` does not predict there."""
            if not a.confirmed:
                return 0
            va = np.array([c[3:5] for c in a.confirmed])
            return int(np.sum(~_predicted_by(b, va, k_tol_per_A, rel_tol)))

        # a rival that leaves significant predicted spots of the best unexplained, while the best
        # explains all of the rival's, has lost on the evidence even if its score is close
        # the calibration prior alone does not make a rival: its fit to the spots (explained x
        # recall) has to be close too (ice Ic [111] vs its Ih [0001] twin, 0.5 % apart in scale: a
        # 3 % pixel-size error favours whichever twin's cell is nearer, whatever the spots say)
        rivals = [m for name, m in per_phase.items() if name != best.phase and m.score >= ambiguity_ratio * best.score
                  and m.explained * m.recall >= ambiguity_ratio * best.explained * best.recall
                  and _overlap(m) >= 0.5 and not (_uncovered(best, m) > 0 and _uncovered(m, best) == 0)]
        entry = best.to_dict()
        if best.score < min_score or best.n_noncollinear < 2 and not single:
            if _dom > 0:
                break
            entry = {**entry, "name": "unknown", "best_guess": best.phase,
                     "reason": f"best score {best.score:.2f} below {min_score} or spots collinear"}
        elif best.n_noncollinear < 2:
            # twins within two calibration sigmas: a 3 % pixel-size error must not turn a twin into a match
            twins = _spacing_twins(P[list(best.matched)], templates, 2.0 * sigma_scale)
            entry = {**entry, "name": best.phase if twins == [best.phase] else ("ambiguous" if twins else "unknown"),
                     "candidates": twins, "reason": "one spacing only (no inter-spot angle): named only if no other "
                                                    "phase has a reflection within the calibration tolerance"}
        elif rivals:
            entry = {**entry, "name": "ambiguous", "candidates": [best.to_dict()] + [r.to_dict() for r in rivals],
                     "reason": "another phase explains the spots almost as well"}
        out.append(entry)
        matches.append(best)
        used = []
        for pi, (h, k, l, dt) in best.matched.items():
            gi = remaining[pi]
            if entry["name"] in ("ambiguous", "unknown"):
                pk.at[gi, "phase"] = entry["name"]
            else:
                pk.at[gi, "phase"] = best.phase
                pk.at[gi, "hkl"] = f"{h} {k} {l}"
                pk.at[gi, "d_template_A"] = dt
                pk.at[gi, "d_fit_A"] = dt / best.scale_factor  # spacing of the globally fitted lattice
            used.append(pi)
        if entry["name"] in ("ambiguous", "unknown"):
            break
        remaining = np.delete(remaining, used)
        if len(remaining) < 2:
            break
    return PhaseID(out, pk, matches)
