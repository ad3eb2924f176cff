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
``min_frames`` frames keep ``B = 1`` (the local film mean).

Flat-field correction by a background estimated from the data itself, with objects masked:
e.g. Peng et al., Nat. Commun. 8, 14836 (2017), doi:10.1038/ncomms14836 (BaSiC).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def specimen_background(frames, labels, drift_rc, *, dilate: int = 3, min_frames: int = 3, order: int = 1):
    """Relative film background in the coordinates of frame 0 (drift 0).

    ``frames`` (T, H, W), ``labels`` (T, H, W) detected objects, ``drift_rc`` (T, 2) cumulative
    drift (px; frame ``f`` shows the specimen moved by ``drift_rc[f]``). Returns ``(B, n)``:
    ``B`` (H, W) mean relative film intensity (1 where seen in fewer than ``min_frames``
    frames), ``n`` the number of frames each pixel was seen uncovered in.
    """
    frames = np.asarray(frames)
    t, h, w = frames.shape
    acc = np.zeros((h, w))
    cnt = np.zeros((h, w))
    for f in range(t):
        img = np.asarray(frames[f], np.float64)
        film = ~ndi.binary_dilation(np.asarray(labels[f]) > 0, iterations=dilate)
        if film.sum() < 100:
            continue
        rel = img / float(np.median(img[film]))
        s = (-float(drift_rc[f][0]), -float(drift_rc[f][1]))
        im_s = ndi.shift(rel, s, order=order, mode="nearest")
        ok = ndi.shift(film.astype(np.float64), s, order=1, mode="constant", cval=0.0) > 0.999
        acc[ok] += im_s[ok]
        cnt[ok] += 1
    b = np.ones((h, w))
    good = cnt >= min_frames
    b[good] = acc[good] / cnt[good]
    return b, cnt


def flat_field(frames, labels, drift_rc, **kw) -> np.ndarray:
    """Frames divided by the static specimen background moved to each frame's drift
    (:func:`specimen_background`). Returns float32 (T, H, W)."""
    frames = np.asarray(frames)
    b, _ = specimen_background(frames, labels, drift_rc, **kw)
    out = np.empty(frames.shape, np.float32)
    for f in range(len(frames)):
        bf = ndi.shift(b, (float(drift_rc[f][0]), float(drift_rc[f][1])), order=1, mode="nearest")
        out[f] = np.asarray(frames[f], np.float64) / np.clip(bf, 0.2, None)
    return out
