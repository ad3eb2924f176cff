"""A small U-Net for particle instance segmentation, trained on the ``particles`` simulator.

The network sees the polarity-normalised relative contrast (particles positive, as in
:func:`cryomat.segmentation.classical.relative_contrast`) and predicts three classes per pixel:
support, particle interior, particle boundary (a 2 px band, also between touching particles).
Instances are the connected interiors, grown by a watershed into the particle pixels. The
weights (``cryomat/data/models/segment_unet.pt``, float16, ~1 MB) come from
``python -m cryomat.segmentation.train_unet`` and run on the CPU (2 threads).

References
----------
Ronneberger, Fischer & Brox, U-Net (2015), doi:10.1007/978-3-319-24574-4_28;
Chen et al., DCAN: contour-aware networks for instance segmentation (2016), doi:10.1109/CVPR.2016.273.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
from scipy import ndimage as ndi

WEIGHTS = "segment_unet.pt"
TRAINED_PIXEL_SIZE_A = 5.0


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a declared dependency
        raise ImportError("method='unet' needs PyTorch: pip install torch") from exc
    return torch


def build_unet(base: int = 16, depth: int = 3, in_ch: int = 1, n_classes: int = 3):
    """The network: ``depth`` down/up levels, ``base`` channels doubling per level."""
    torch = _torch()
    nn = torch.nn

    def block(ci, co):
        return nn.Sequential(nn.Conv2d(ci, co, 3, padding=1, bias=False), nn.BatchNorm2d(co), nn.ReLU(inplace=True),
                             nn.Conv2d(co, co, 3, padding=1, bias=False), nn.BatchNorm2d(co), nn.ReLU(inplace=True))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            ch = [base * 2**i for i in range(depth + 1)]
            self.down = nn.ModuleList([block(in_ch if i == 0 else ch[i - 1], ch[i]) for i in range(depth)])
            self.bottom = block(ch[depth - 1], ch[depth])
            self.up = nn.ModuleList([nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2) for i in reversed(range(depth))])
            self.dec = nn.ModuleList([block(2 * ch[i], ch[i]) for i in reversed(range(depth))])
            self.head = nn.Conv2d(ch[0], n_classes, 1)
            self.pool = nn.MaxPool2d(2)

        def forward(self, x):
            skips = []
            for d in self.down:
                x = d(x)
                skips.append(x)
                x = self.pool(x)
            x = self.bottom(x)
            for up, dec, s in zip(self.up, self.dec, reversed(skips)):
                x = dec(torch.cat([up(x), s], dim=1))
            return self.head(x)

    return UNet()


def prepare_input(image, *, polarity: str = "auto") -> tuple[np.ndarray, str]:
    """Network input: relative contrast (particles positive), clipped to [-3, 3]."""
    from cryomat.segmentation.classical import relative_contrast

    y, pol = relative_contrast(np.asarray(image, dtype=np.float64), polarity=polarity)
    return np.clip(y, -3, 3).astype(np.float32), pol


def targets_from_labels(labels: np.ndarray, band_px: int = 1) -> np.ndarray:
    """Training targets: 0 support, 1 interior, 2 boundary band (inner ``band_px`` + contacts)."""
    from skimage.segmentation import find_boundaries

    lab = np.asarray(labels)
    t = (lab > 0).astype(np.int64)
    b = find_boundaries(lab, mode="inner")
    if band_px > 1:
        b = ndi.binary_dilation(b, iterations=band_px - 1) & (lab > 0)
    t[b] = 2
    return t


@lru_cache(maxsize=2)
def load_model(path: str | None = None):
    """The shipped network in eval mode (cached)."""
    torch = _torch()
    if path is None:
        path = str(resources.files("cryomat") / "data" / "models" / WEIGHTS)
    state = torch.load(path, map_location="cpu", weights_only=True)
    cfg = state.pop("_config", {"base": 16, "depth": 3})
    if isinstance(cfg, torch.Tensor):
        cfg = {"base": int(cfg[0]), "depth": int(cfg[1])}
    model = build_unet(base=cfg["base"], depth=cfg["depth"])
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model.eval()
    return model, cfg


def predict_probabilities(x: np.ndarray, *, tile: int = 512, overlap: int = 32, threads: int = 2) -> np.ndarray:
    """Class probabilities (3, rows, cols) of the prepared input, tiled to bound memory."""
    torch = _torch()
    torch.set_num_threads(max(1, int(threads)))
    model, cfg = load_model()
    mult = 2 ** cfg["depth"]
    h, w = x.shape
    out = np.zeros((3, h, w), np.float32)
    step = tile - 2 * overlap
    with torch.inference_mode():
        for r0 in range(0, h, step):
            for c0 in range(0, w, step):
                ra, ca = max(r0 - overlap, 0), max(c0 - overlap, 0)
                rb, cb = min(r0 + step + overlap, h), min(c0 + step + overlap, w)
                patch = x[ra:rb, ca:cb]
                ph, pw = patch.shape
                pad = ((0, (-ph) % mult), (0, (-pw) % mult))
                patch = np.pad(patch, pad, mode="reflect")
                p = torch.softmax(model(torch.from_numpy(patch)[None, None]), dim=1)[0].numpy()[:, :ph, :pw]
                rs, cs = r0 - ra, c0 - ca
                re, ce = min(rs + step, ph), min(cs + step, pw)
                out[:, r0:r0 + (re - rs), c0:c0 + (ce - cs)] = p[:, rs:re, cs:ce]
    return out


def labels_from_probabilities(prob: np.ndarray, *, split_touching: bool = True, min_area_px: int = 20) -> np.ndarray:
    """Instances: interiors (p_interior > 0.5) as seeds, grown into particle pixels
    (p_interior + p_boundary > 0.5). With ``split_touching=False`` touching instances are joined."""
    from skimage.segmentation import watershed

    from cryomat.segmentation.classical import _relabel

    fg = (prob[1] + prob[2]) > 0.5
    fg = ndi.binary_fill_holes(fg)
    seeds, _ = ndi.label(prob[1] > 0.5)
    lab = watershed(-prob[1], seeds, mask=fg)
    if not split_touching:
        lab = ndi.label(lab > 0)[0]
    areas = np.bincount(lab.ravel())
    small = areas < min_area_px
    small[0] = False
    lab[small[lab]] = 0
    return _relabel(lab)


def segment_unet(image, *, pixel_size: float, dose_e_per_A2: float | None = None, min_size_nm: float | None = None,
                 split_touching: bool = True, polarity: str = "auto") -> np.ndarray:
    """Instance labels from the shipped U-Net (see the module docstring).

    The network was trained at 5 A/px on 10-30 nm particles, 0.2-20 e/A^2; other pixel sizes are
    resampled to 5 A/px and back. ``dose_e_per_A2`` is accepted for API symmetry (the network
    estimates the noise itself).
    """
    px = float(pixel_size)
    if not np.isfinite(px) or px <= 0:
        raise ValueError(f"pixel_size must be a positive number of Angstrom, got {pixel_size!r}")
    img = np.asarray(image, dtype=np.float64)
    if np.ptp(img) == 0:
        return np.zeros(img.shape, np.int32)
    x, _ = prepare_input(img, polarity=polarity)
    scale = px / TRAINED_PIXEL_SIZE_A
    if abs(scale - 1) > 0.05:
        xs = ndi.zoom(x, scale, order=1)
    else:
        xs = x
    prob = predict_probabilities(xs)
    if xs.shape != x.shape:
        prob = np.stack([ndi.zoom(p, (x.shape[0] / p.shape[0], x.shape[1] / p.shape[1]), order=1) for p in prob])
        prob = prob[:, : x.shape[0], : x.shape[1]]
    area_min = np.pi * (min_size_nm * 10.0 / px / 2) ** 2 if min_size_nm is not None else 20.0
    lab = labels_from_probabilities(prob, split_touching=split_touching, min_area_px=int(max(4, area_min)))
    return lab
