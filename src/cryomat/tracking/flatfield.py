"""Static specimen background (film texture) of a drifting series, and flat-fielding with it.

The amorphous film under growing crystals has a texture that moves with the specimen: after
the stage drift is removed it is the same in every frame, so its error in a crystal's fitted
edge is the same in every frame too and does not average out over a track. Where the film is
seen uncovered in some frames (before a crystal grows over it, or around it), its texture can be
measured there: each frame is normalised by its film level, moved into specimen coordinates
(shifted by minus its drift), the pixels covered by any detected object (dilated) are left
out, and the per-pixel mean over the remaining frames is the background ``B`` (relative, mean
1). Each frame is then divided by ``B`` moved back by its drift (the image is
``(1 + texture) (1 - C ...)``: the texture multiplies). Pixels seen uncovered in fewer than
``min_frames`` frames, and specimen area outside frame 0's field that no frame shows often
enough, keep ``B = 1`` (the local film mean).

The drift used here is that of the film itself, from phase correlation of every frame with
frame 0 (:func:`register_series`; Guizar-Sicairos et al., Opt. Lett. 33, 156, 2008,
doi:10.1364/OL.33.000156): the texture has to be aligned to a fraction of its correlation
length, better than the drift from the centroids of growing crystals.

Flat-field correction by a background estimated from the data itself, with objects masked:
e.g. Peng et al., Nat. Commun. 8, 14836 (2017), doi:10.1038/ncomms14836 (BaSiC).

:class:`FlatField` divides lazily, frame by frame (and crop by crop): a series is never
copied whole (a 4k x 4k x 100 float32 copy would need 6.7 GB).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def register_series(frames, *, max_px: int = 1024, upsample: int = 20) -> np.ndarray:
    """Drift of every frame against frame 0 by phase correlation, ``(T, 2)`` (row, col) px.

    Frame ``f`` shows the specimen moved by ``drift[f]`` (``drift[0] = 0``). The central
    ``max_px`` x ``max_px`` region (at most) is correlated with sub-pixel refinement to
    ``1 / upsample`` px (:func:`skimage.registration.phase_cross_correlation`).
    """
    from skimage.registration import phase_cross_correlation

    n = len(frames)
    h, w = np.shape(frames[0])
    r0, c0 = max((h - max_px) // 2, 0), max((w - max_px) // 2, 0)
    crop = (slice(r0, r0 + min(h, max_px)), slice(c0, c0 + min(w, max_px)))

    def prep(f):
        x = np.asarray(frames[f][crop], np.float64)
        return x - x.mean()

    ref = prep(0)
    out = np.zeros((n, 2))
    for f in range(1, n):
        out[f] = phase_cross_correlation(prep(f), ref, upsample_factor=upsample, normalization=None)[0]
    return out


def _pad_for(drift_rc) -> int:
    return int(np.ceil(np.abs(np.asarray(drift_rc, float)).max(initial=0.0))) + 2


def _shifted(b: np.ndarray, d, pad: int, rows: slice, cols: slice) -> np.ndarray:
    """``b`` (a canvas with ``pad`` px around frame 0's field) seen in a frame with drift ``d``,
    at that frame's pixels ``rows`` x ``cols``: bilinear ``b[x - d + pad]``, border values
    beyond the canvas."""
    hb, wb = b.shape
    fr, fc = np.floor(d[0]), np.floor(d[1])
    ar, ac = d[0] - fr, d[1] - fc
    # x - d + pad = (x - fr - 1 + pad) + (1 - ar): interpolate between integer offsets k and k + 1
    ri = np.clip(np.arange(rows.start, rows.stop) - int(fr) - 1 + pad, 0, hb - 1)
    ci = np.clip(np.arange(cols.start, cols.stop) - int(fc) - 1 + pad, 0, wb - 1)
    ri1, ci1 = np.clip(ri + 1, 0, hb - 1), np.clip(ci + 1, 0, wb - 1)
    wr, wc = 1.0 - ar, 1.0 - ac  # weight of the +1 neighbour
    top = b[np.ix_(ri, ci)] * (1 - wc) + b[np.ix_(ri, ci1)] * wc
    bot = b[np.ix_(ri1, ci)] * (1 - wc) + b[np.ix_(ri1, ci1)] * wc
    return top * (1 - wr) + bot * wr


def background_canvas(frames, labels, drift_rc, *, dilate: int = 3, min_frames: int = 2, order: int = 1,
                      ahead: int = 2, shrink: bool = True):
    """Relative film background in specimen coordinates on a canvas that covers every frame.

    Returns ``(B, n, pad)``: ``B`` (H + 2 pad, W + 2 pad), frame 0's field at ``[pad:pad+H,
    pad:pad+W]``, 1 where seen uncovered in fewer than ``min_frames`` frames; ``n`` how many
    frames saw each canvas pixel uncovered. A frame's film also leaves out what objects cover in
    the ``ahead`` frames after it (a nucleus is seen only once it has grown). With ``shrink``
    the per-pixel mean is shrunk towards 1 by how many frames saw it (Wiener: the texture
    variance against the noise variance of a mean of that many frames), so that pixels seen
    rarely add little noise.
    """
    t = len(frames)
    h, w = np.shape(frames[0])
    pad = _pad_for(drift_rc)
    shape = (h + 2 * pad, w + 2 * pad)
    acc = np.zeros(shape)
    acc2 = np.zeros(shape)
    cnt = np.zeros(shape, np.float32)
    buf, okb = np.zeros(shape, np.float32), np.zeros(shape, np.float32)  # frame on the canvas, reused
    im_s, ok_s = np.empty(shape, np.float32), np.empty(shape, np.float32)
    drift = np.asarray(drift_rc, float)
    inner = (slice(pad, pad + h), slice(pad, pad + w))
    for f in range(t):
        img = np.asarray(frames[f])
        cover = np.asarray(labels[f]) > 0
        for g in range(f + 1, min(f + ahead, t - 1) + 1):
            # a nucleus too small to be detected yet darkens the film it sits on: leave out
            # what the next frames' objects cover (moved to this frame's drift)
            cover |= _moved(np.asarray(labels[g]) > 0, np.round(drift[f] - drift[g]).astype(int))
        film = ~ndi.binary_dilation(cover, iterations=dilate)
        if film.sum() < 100:
            continue
        np.divide(img, float(np.median(img[film])), out=buf[inner], casting="unsafe")
        okb[inner] = film
        s = (-float(drift[f][0]), -float(drift[f][1]))
        ndi.shift(buf, s, output=im_s, order=order, mode="constant", cval=0.0)
        ndi.shift(okb, s, output=ok_s, order=1, mode="constant", cval=0.0)
        ok = ok_s > 0.999
        np.add(acc, im_s, out=acc, where=ok)
        np.multiply(im_s, im_s, out=im_s)
        np.add(acc2, im_s, out=acc2, where=ok)
        cnt += ok
    good = cnt >= min_frames
    if not good.any():
        return np.ones(shape, np.float32), cnt, pad
    n = np.maximum(cnt, 1.0)
    mean = np.divide(acc, n, out=acc)
    if shrink and good.sum() >= 100 and (cnt[good] >= 2).all():
        # Wiener shrinkage of the per-pixel mean towards 1: the texture is static (variance
        # st2 over pixels), the noise is what varies between frames (variance sn2 per frame),
        # so a pixel seen n times is trusted by st2 / (st2 + sn2 / n)
        var = acc2
        var -= n * mean**2
        var /= np.maximum(n - 1.0, 1.0)
        sn2 = float(np.median(var[good]))
        st2 = max(float(np.var(mean[good])) - sn2 * float(np.mean(1.0 / n[good])), 0.0)
        wt = np.divide(sn2, n, out=var)
        wt += st2 + 1e-30
        np.divide(st2, wt, out=wt)
        mean -= 1.0
        mean *= wt
        mean += 1.0
    mean[~good] = 1.0
    return mean.astype(np.float32), cnt, pad


def _moved(mask: np.ndarray, d) -> np.ndarray:
    """``mask`` moved by the integer (row, col) ``d``, False where it came from outside."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    dr, dc = int(d[0]), int(d[1])
    if abs(dr) >= h or abs(dc) >= w:
        return out
    out[max(dr, 0):h + min(dr, 0), max(dc, 0):w + min(dc, 0)] = mask[max(-dr, 0):h - max(dr, 0),
                                                                     max(-dc, 0):w - max(dc, 0)]
    return out


def specimen_background(frames, labels, drift_rc, **kw):
    """Relative film background in the coordinates of frame 0 (drift 0).

    ``frames`` (T, H, W), ``labels`` (T, H, W) detected objects, ``drift_rc`` (T, 2) cumulative
    drift (px; frame ``f`` shows the specimen moved by ``drift_rc[f]``). Returns ``(B, n)``:
    ``B`` (H, W) mean relative film intensity (1 where seen in fewer than ``min_frames``
    frames), ``n`` the number of frames each pixel was seen uncovered in
    (:func:`background_canvas`, cropped to frame 0's field).
    """
    h, w = np.shape(frames[0])
    b, cnt, p = background_canvas(frames, labels, drift_rc, **kw)
    return b[p:p + h, p:p + w], cnt[p:p + h, p:p + w]


class FlatFrame:
    """One frame divided by the specimen background, computed when indexed: ``frame[r0:r1, c0:c1]``
    computes that crop only; any other index (or ``np.asarray(frame)``) the whole frame."""

    def __init__(self, img, b, d, pad, seen=None):
        self._img, self._b, self._d, self._pad, self._seen = img, b, d, pad, seen
        self.shape = tuple(np.shape(img))
        self.ndim = 2
        self.dtype = np.dtype(np.float32)

    def _crop(self, rows: slice, cols: slice) -> np.ndarray:
        raw = np.asarray(self._img[rows, cols], np.float32)
        bf = _shifted(self._b, self._d, self._pad, rows, cols)
        return (raw / np.clip(bf, 0.2, None)).astype(np.float32)

    def flattened(self) -> np.ndarray:
        """Pixels of this frame whose background was measured (seen uncovered often enough)."""
        full = (slice(0, self.shape[0]), slice(0, self.shape[1]))
        if self._seen is None:
            return np.ones(self.shape, bool)
        return _shifted(self._seen, self._d, self._pad, *full) > 0.5

    def __array__(self, dtype=None, copy=None):
        out = self._crop(slice(0, self.shape[0]), slice(0, self.shape[1]))
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key):
        if (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, slice) and k.step in (None, 1)
                                                              for k in key)):
            rows, cols = (slice(*k.indices(n)[:2]) for k, n in zip(key, self.shape))
            return self._crop(rows, cols)
        return np.asarray(self)[key]


class FlatField:
    """A series divided lazily by its static specimen background (:func:`background_canvas`).

    Behaves as a read-only (T, H, W) float32 sequence: ``ff[t]`` is a :class:`FlatFrame`
    (``np.asarray(ff[t])`` the full flat-fielded frame, ``ff[t][r0:r1, c0:c1]`` a crop
    computed alone); only three canvas-sized float32 arrays (background, frames seen, measured
    mask; each a little larger than one frame) are held besides the raw series.
    """

    def __init__(self, frames, labels, drift_rc, **kw):
        self.frames = frames
        self.drift = np.asarray(drift_rc, float)
        self.background, self.seen, self.pad = background_canvas(frames, labels, self.drift, **kw)
        self._measured = (self.seen >= kw.get("min_frames", 2)).astype(np.float32)
        self.shape = (len(frames), *np.shape(frames[0]))
        self.ndim = 3
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, t):
        if not isinstance(t, (int, np.integer)):
            raise TypeError("FlatField is indexed by one frame number")
        t = int(t) + (len(self) if t < 0 else 0)
        if not 0 <= t < len(self):
            raise IndexError(f"frame {t} out of range for {len(self)} frames")
        return FlatFrame(self.frames[t], self.background, self.drift[t], self.pad, self._measured)

    def __iter__(self):
        return (self[t] for t in range(len(self)))


def flat_field(frames, labels, drift_rc, **kw) -> FlatField:
    """Frames divided by the static specimen background moved to each frame's drift
    (:func:`background_canvas`), lazily: a :class:`FlatField` (index it per frame; the series
    is not copied)."""
    return FlatField(frames, labels, drift_rc, **kw)
