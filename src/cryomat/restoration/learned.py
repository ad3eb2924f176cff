"""Learned tier: self-supervised denoising networks in PyTorch on the CPU.

- Noise2Void-style blind spot for a single image (N2V2 variant: median replacement of the masked
  pixels and average pooling instead of max pooling, no top-level skip connection, against
  checkerboard artefacts; structN2V: the mask extends along the rows or columns when the noise is
  correlated along them).
- Noise2Noise (:mod:`.fusion`): a small network over the fast tier and other classical estimates,
  trained on independent pairs (binomial thinning of counted data, or even/odd movie halves) and
  applied to the full-dose image; it predicts a correction on top of the fast tier (the last layer
  starts at zero) and a held-out pair sets how much of it is kept.
- Global normalisation: images are brought to unit noise with the detected noise model, once for
  the whole image, and tiled inference uses that same normalisation with overlapping tiles whose
  borders are discarded, so there are no seams.

Small blind-spot weights trained on the simulator may ship in ``cryomat/data/models/`` and are
fine-tuned on the image at hand; the Noise2Noise network is trained on each image; nothing is
downloaded.

References
----------
A. Krull, T.-O. Buchholz, F. Jug, "Noise2Void", CVPR (2019), doi:10.1109/CVPR.2019.00223;
E. Hoeck et al., "N2V2", ECCV Workshops (2022), doi:10.1007/978-3-031-25069-9_33;
C. Broaddus et al., "Removing structured noise with self-supervised blind-spot networks (structN2V)",
ISBI (2020), doi:10.1109/ISBI45749.2020.9098336;
J. Lehtinen et al., "Noise2Noise", ICML (2018), arXiv:1803.04189;
T. Bepler et al., "Topaz-Denoise", Nat. Commun. 11, 5208 (2020), doi:10.1038/s41467-020-18952-1.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cryomat.restoration.noise import NoiseModel, estimate_noise_model

MODELS_DIR = Path(__file__).resolve().parents[1] / "data" / "models"


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a runtime dependency
        raise ImportError("the learned tier needs PyTorch (pip install torch)") from exc
    torch.set_num_threads(2)
    return torch


def _build_unet(in_ch: int, base: int = 8, residual: bool = False):
    torch = _torch()
    nn = torch.nn

    def block(ci, co):
        return nn.Sequential(nn.Conv2d(ci, co, 3, padding=1), nn.LeakyReLU(0.1),
                             nn.Conv2d(co, co, 3, padding=1), nn.LeakyReLU(0.1))

    class UNet(nn.Module):
        """Two-level U-Net; average pooling and no top-level skip (N2V2)."""

        def __init__(self):
            super().__init__()
            self.e1 = block(in_ch, base)
            self.e2 = block(base, 2 * base)
            self.b = block(2 * base, 4 * base)
            self.d2 = block(4 * base + 2 * base, 2 * base)
            self.d1 = block(2 * base, base)
            self.out = nn.Conv2d(base, 1, 1)
            self.pool = nn.AvgPool2d(2)
            self.residual = residual
            if residual:
                nn.init.zeros_(self.out.weight)
                nn.init.zeros_(self.out.bias)

        def forward(self, x):
            e1 = self.e1(x)
            e2 = self.e2(self.pool(e1))
            b = self.b(self.pool(e2))
            up = nn.functional.interpolate(b, scale_factor=2, mode="bilinear", align_corners=False)
            d2 = self.d2(torch.cat([up, e2], 1))
            d1 = self.d1(nn.functional.interpolate(d2, scale_factor=2, mode="bilinear", align_corners=False))
            y = self.out(d1)
            return y + x[:, 1:2] if self.residual else y

    return UNet()


def _build_n2v(base: int = 8, size: int = 15):
    """Blind-spot network = J-invariant linear prior (fixed per image) + a U-Net residual on top of it.

    The prior is a convolution with the image's own SURE-chosen Wiener kernel whose centre tap is
    zero; the U-Net sees the (masked) image and the prior and starts at zero output, so training
    starts from a sound blind denoiser and only learns local corrections.
    """
    torch = _torch()
    nn = torch.nn
    unet = _build_unet(2, base=base, residual=True)

    class N2VNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.prior = nn.Conv2d(1, 1, size, padding=size // 2, padding_mode="reflect", bias=False)
            self.prior.weight.requires_grad_(False)
            self.set_prior(np.full((size, size), 1.0 / (size * size - 1), np.float32))
            self.unet = unet

        def set_prior(self, kernel):
            k = torch.as_tensor(np.asarray(kernel, np.float32))
            with torch.no_grad():
                self.prior.weight.copy_(k[None, None])

        def forward(self, x):
            return self.unet(torch.cat([x, self.prior(x)], 1))

    return N2VNet()


class DenoiseNet:
    """A trained network with what is needed to apply it again (``kind`` ``"n2v"`` or ``"n2n"``)."""

    def __init__(self, kind: str, net, *, config: dict | None = None, history: dict | None = None):
        if kind not in ("n2v", "n2n"):
            raise ValueError(f"kind must be 'n2v' or 'n2n', got {kind!r}")
        self.kind = kind
        self.net = net
        self.config = dict(config or {})
        self.history = dict(history or {})

    def describe(self) -> dict:
        n = sum(p.numel() for p in self.net.parameters())
        return {"kind": self.kind, "n_parameters": int(n), **self.config, **self.history}


def new_model(kind: str, *, base: int = 8) -> DenoiseNet:
    """An untrained network: blind-spot (prior + residual U-Net) for n2v; for n2n the fusion network of
    :mod:`.fusion` (``base`` = its width, 16 by default). Both start at their prior (zero residual)."""
    if kind == "n2n":
        from cryomat.restoration import fusion

        width = 16 if base == 8 else base
        return DenoiseNet(kind, fusion.build_net(width), config={"base_channels": width, "arch": "fusion",
                                                                 "features": list(fusion.FEATURES)})
    return DenoiseNet(kind, _build_n2v(base=base), config={"base_channels": base})


def save_model(model: DenoiseNet, path) -> Path:
    """Save weights and configuration as a ``.pt`` file (atomically)."""
    torch = _torch()
    from cryomat.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"kind": model.kind, "config": model.config, "history": model.history,
                    "state_dict": model.net.state_dict(), "format": "cryomat-denoise-1"}, tmp)
    return Path(path)


def load_model(path) -> DenoiseNet:
    """Load a model saved by :func:`save_model` (``ValueError`` naming the file if it is not one)."""
    torch = _torch()
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a cryomat denoising model ({exc.__class__.__name__})") from exc
    if not isinstance(doc, dict) or doc.get("format") != "cryomat-denoise-1":
        raise ValueError(f"{path}: not a cryomat denoising model")
    if doc["kind"] == "n2n" and doc["config"].get("arch") != "fusion":
        raise ValueError(f"{path}: a Noise2Noise model of an older format (U-Net on halves); retrain it")
    m = new_model(doc["kind"], base=int(doc["config"].get("base_channels", 8)))
    m.net.load_state_dict(doc["state_dict"])
    m.config.update(doc["config"])
    m.history = dict(doc.get("history", {}))
    return m


def shipped_model(kind: str) -> DenoiseNet | None:
    """The small simulator-trained model shipped with cryomat, or None if absent."""
    p = MODELS_DIR / f"denoise_{kind}.pt"
    return load_model(p) if p.is_file() else None


# --- normalisation -------------------------------------------------------------------------------
def normalise(image, model: NoiseModel | None = None) -> tuple[np.ndarray, float, float]:
    """Global normalisation to unit noise: z = (x - mean) / sqrt(noise variance at the mean)."""
    x = np.asarray(image, dtype=np.float64)
    if model is None:
        model, x = estimate_noise_model(x)
    m = float(x.mean())
    s = float(np.sqrt(max(model.gain * m + model.intercept, 1e-12)))
    return ((x - m) / s).astype(np.float32), m, s


def _prior_kernel(z, noise_model: NoiseModel | None):
    from cryomat.restoration.classical import blind_kernel
    from cryomat.restoration.noise import noise_power

    npow = noise_power(noise_model, np.shape(z)) if noise_model is not None else None
    return blind_kernel(z, noise_power=npow)


# --- training ------------------------------------------------------------------------------------
def _random_patches(arrs, size, n, rng):
    h, w = arrs[0].shape
    size = min(size, h - h % 4, w - w % 4)
    r = rng.integers(0, h - size + 1, n)
    c = rng.integers(0, w - size + 1, n)
    out = []
    for a in arrs:
        p = np.stack([a[i:i + size, j:j + size] for i, j in zip(r, c)])
        out.append(p)
    # random flips and transposes (the noise model is symmetric under them, except correlated axes)
    k = rng.integers(0, 4)
    out = [np.rot90(p, k, axes=(1, 2)) if k in (0, 2) else p for p in out]
    if rng.random() < 0.5:
        out = [p[:, :, ::-1] for p in out]
    return [np.ascontiguousarray(p) for p in out]


def _n2v_mask(batch, rng, frac: float, struct: str | None):
    """Blind-spot inputs: masked pixels get the median of their 8 neighbours (N2V2); with ``struct``
    ``"row"`` (``"col"``) the 2 pixels on each side along the row (column) get random values too."""
    torch = _torch()
    b, _, h, w = batch.shape
    n = max(1, int(h * w * frac))
    rows = torch.as_tensor(rng.integers(0, h, (b, n)))
    cols = torch.as_tensor(rng.integers(0, w, (b, n)))
    unf = torch.nn.functional.unfold(torch.nn.functional.pad(batch, (1, 1, 1, 1), mode="reflect"), 3)
    neigh = torch.cat([unf[:, :4], unf[:, 5:]], 1)
    med = neigh.median(dim=1).values.view(b, 1, h, w)
    x = batch.clone()
    bi = torch.arange(b)[:, None].expand(b, n)
    x[bi, 0, rows, cols] = med[bi, 0, rows, cols]
    if struct:
        for d in (-2, -1, 1, 2):
            rr = rows if struct == "col" else rows
            cc = cols
            if struct == "row":
                cc = (cols + d).clamp(0, w - 1)
            else:
                rr = (rows + d).clamp(0, h - 1)
            x[bi, 0, rr, cc] = torch.randn(b, n) * batch.std()
    mask = torch.zeros_like(batch)
    mask[bi, 0, rows, cols] = 1.0
    return x, mask


def _train(model: DenoiseNet, make_batch, *, epochs: int, steps_per_epoch: int, lr: float, seed: int) -> DenoiseNet:
    torch = _torch()
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps_per_epoch))
    model.net.train()
    t0 = time.perf_counter()
    losses = []
    for _ in range(epochs):
        for _ in range(steps_per_epoch):
            batch = make_batch()
            inp, target, weight = batch[:3]
            if len(batch) > 3:
                model.net.set_prior(batch[3])
            pred = model.net(inp)
            loss = ((pred - target) ** 2 * weight).sum() / weight.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
    model.net.eval()
    prev = int(model.history.get("epochs", 0))
    model.history.update({"epochs": prev + epochs, "train_time_s": time.perf_counter() - t0 +
                          float(model.history.get("train_time_s", 0.0)),
                          "final_loss": float(np.mean(losses[-steps_per_epoch:]))})
    return model


def train_n2v(image, *, epochs: int = 5, steps_per_epoch: int = 10, patch: int = 48, batch: int = 8,
              lr: float = 4e-4, seed: int = 0, struct: str | None = None, model: DenoiseNet | None = None,
              noise_model: NoiseModel | None = None, mask_frac: float = 0.015) -> DenoiseNet:
    """Train (or fine-tune) a blind-spot network on one image; starts from the shipped weights.

    Parameters
    ----------
    image : (row, col) detector image.
    epochs, steps_per_epoch, patch, batch : training length and patch size (px).
    struct : ``None``, ``"row"`` or ``"col"``: structN2V mask along rows/columns for correlated noise.
    model : a model to continue training (default: the shipped one, else a new one).
    """
    torch = _torch()
    if struct not in (None, "row", "col"):
        raise ValueError(f"struct must be None, 'row' or 'col', got {struct!r}")
    z, _, _ = normalise(image, noise_model)
    kernel = _prior_kernel(z, noise_model)
    rng = np.random.default_rng(seed)
    if model is None:
        model = shipped_model("n2v") or new_model("n2v")
        if "epochs" in model.history:
            model.history = {"pretrained_epochs": model.history["epochs"]}

    def make_batch():
        (p,) = _random_patches([z], patch, batch, rng)
        t = torch.from_numpy(p)[:, None]
        x, mask = _n2v_mask(t, rng, mask_frac, struct)
        return x, t, mask, kernel

    model.config.update({"struct": struct})
    return _train(model, make_batch, epochs=epochs, steps_per_epoch=steps_per_epoch, lr=lr, seed=seed)


def train_n2n(even, odd=None, *, epochs: int = 5, steps_per_epoch: int = 40, crop: int = 192, batch: int = 1,
              lr: float = 1e-2, seed: int = 0, model: DenoiseNet | None = None, pairs: str = "auto",
              n_pairs: int = 3) -> DenoiseNet:
    """Train (or fine-tune) the Noise2Noise fusion network (:mod:`.fusion`) on one image.

    Parameters
    ----------
    even, odd : independent halves (sums of even / odd movie frames), or ``even`` alone = one image
        of electron counts (``odd`` None).
    pairs : ``"thinning"`` (binomial thinning of the counts; needs integer, uncorrelated counts),
        ``"halves"`` (even -> odd and odd -> even), or ``"auto"``: thinning for counted data, halves
        otherwise.
    epochs, steps_per_epoch, crop, batch, lr : training length (steps), crop size (px), batch, rate.
    n_pairs : thinning pairs drawn for training (one more is held out to choose how much of the
        learned correction to keep).

    Returns
    -------
    :class:`DenoiseNet` of kind ``"n2n"`` (config ``residual_scale``: the kept fraction).
    """
    from cryomat.restoration import fusion
    from cryomat.restoration.validation import is_counted

    e = np.asarray(even, np.float64)
    o = None if odd is None else np.asarray(odd, np.float64)
    if e.ndim != 2 or (o is not None and o.shape != e.shape):
        raise ValueError(f"even and odd must be 2D images of one shape, got {e.shape} and "
                         f"{None if o is None else o.shape}")
    full = e if o is None else e + o
    if pairs == "auto":
        nm, _ = estimate_noise_model(full)
        pairs = "thinning" if (is_counted(full) and nm.kind == "counting" and not nm.correlated) else "halves"
    if pairs not in ("thinning", "halves"):
        raise ValueError(f"pairs must be 'auto', 'thinning' or 'halves', got {pairs!r}")
    if pairs == "halves" and o is None:
        raise ValueError("Noise2Noise on non-counted data needs even/odd halves (--even/--odd or a movie)")
    if pairs == "thinning" and not is_counted(full):
        raise ValueError("binomial thinning needs integer electron counts")
    rng = np.random.default_rng(seed)
    if pairs == "thinning":
        train = fusion.counted_pairs(full, rng, n_pairs)
        held = fusion.counted_pairs(full, rng, 1)
    else:
        train = held = fusion.halves_pairs(e, o)
    if model is None:
        model = new_model("n2n")
    model.net.scale.fill_(1.0)
    _train(model, fusion.make_batches(train, rng, crop=crop, batch=batch), epochs=epochs,
           steps_per_epoch=steps_per_epoch, lr=lr, seed=seed)
    scale, losses = fusion.choose_scale(model.net, held)
    model.net.scale.fill_(scale)
    model.config.update({"pairs": pairs, "thinning_p": fusion.THIN_P if pairs == "thinning" else None,
                         "residual_scale": scale, "heldout_loss_by_scale": {str(k): v for k, v in losses.items()}})
    return model


# --- inference -----------------------------------------------------------------------------------
def _run_net(net, x: np.ndarray, tile: int | None, overlap: int = 32) -> np.ndarray:
    """Apply the network to (C, row, col) normalised input, whole or in overlapping tiles."""
    torch = _torch()
    c, h, w = x.shape
    mult = 4

    def fwd(a):
        ph, pw = (-a.shape[1]) % mult, (-a.shape[2]) % mult
        ap = np.pad(a, ((0, 0), (0, ph), (0, pw)), mode="reflect") if (ph or pw) else a
        with torch.no_grad():
            y = net(torch.from_numpy(np.ascontiguousarray(ap))[None])[0, 0].numpy()
        return y[: a.shape[1], : a.shape[2]]

    if not tile or tile >= max(h, w):
        return fwd(x)
    tile = max(int(tile), 16)
    if tile < 3 * overlap:  # small tiles: a quarter of the tile as overlap, so that half of it is kept
        overlap = tile // 4
    core = tile - 2 * overlap
    xp = np.pad(x, ((0, 0), (overlap, overlap + core), (overlap, overlap + core)), mode="reflect")
    out = np.zeros((h, w), np.float32)
    for r0 in range(0, h, core):
        for c0 in range(0, w, core):
            y = fwd(xp[:, r0:r0 + tile, c0:c0 + tile])
            hh, ww = min(core, h - r0), min(core, w - c0)
            out[r0:r0 + hh, c0:c0 + ww] = y[overlap:overlap + hh, overlap:overlap + ww]
    return out


def predict(model: DenoiseNet, image, *, tile: int | None = None, noise_model: NoiseModel | None = None,
            odd=None) -> np.ndarray:
    """Denoise ``image`` (detector units) with a trained model; float32 output in the same units.

    For an ``n2n`` model the output estimates the expectation of ``image`` itself (the network was
    trained at close to the full dose); pass ``odd`` as well (``image`` = even) to denoise the full-dose
    sum even + odd.
    ``tile`` (px): overlapping tiles, 32-px borders discarded (a quarter of the tile below 96 px), one
    global normalisation.
    """
    x = np.asarray(image, dtype=np.float64)
    if model.kind == "n2v":
        z, m, s = normalise(x, noise_model)
        model.net.set_prior(_prior_kernel(z, noise_model))  # the prior is the image's own blind Wiener
        return (_run_net(model.net, z[None], tile) * s + m).astype(np.float32)
    from cryomat.restoration import fusion

    if odd is not None:
        x = x + np.asarray(odd, np.float64)
        noise_model = None
    f, m, s = fusion.features(x, noise_model)
    return (_run_net(model.net, f, tile, overlap=8) * s + m).astype(np.float32)
