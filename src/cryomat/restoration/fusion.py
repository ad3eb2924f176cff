"""Noise2Noise tier: a small network that learns, on the image itself, how to fuse classical estimates.

Per pixel it sees the noise-normalised image and a stack of classical estimates of it (the fast
tier's output, the global SURE-Wiener, local empirical Wiener at 16/32/64-px tiles, the Wiener in
the Anscombe domain, Gaussian low-passes) and predicts a correction on top of the fast tier
(last layer starts at zero, so an untrained network *is* the fast tier). It is trained with the
Noise2Noise loss on independent pairs:

- counted data (Poisson, uncorrelated): binomial thinning, a ~ Bin(y, p) and b = y - a are
  independent Poisson images; the network maps a (with p = 0.6, close to the full dose) to
  b p / (1 - p), an unbiased target for E[a]; every split is a fresh pair;
- otherwise even/odd halves of a movie, in both directions.

Inference runs on the full-dose image (not on the halves), so nothing of the dose is lost. A
held-out pair picks how much of the learned correction to keep (0 to 1), so the tier never does
worse than the fast tier on the held-out loss. The features are global (Fourier filters), the
network sees 3 x 3 pixels, so tiled prediction is seamless.

References
----------
J. Lehtinen et al., "Noise2Noise", ICML (2018), arXiv:1803.04189;
T. Bepler et al., "Topaz-Denoise", Nat. Commun. 11, 5208 (2020), doi:10.1038/s41467-020-18952-1;
N. Moran et al., "Noisier2Noise", CVPR (2020), doi:10.1109/CVPR42600.2020.01204 (training on a
further-corrupted input). Binomial thinning: if y ~ Poisson(lam) and a ~ Bin(y, p), then a and
y - a are independent Poisson(p lam) and Poisson((1 - p) lam) (the same split as the validation
module's unsupervised MSE).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cryomat.restoration.noise import NoiseModel, estimate_noise_model, noise_power

FEATURES = ("noisy", "fast", "wiener_global", "local32", "local16", "local64", "wiener_vst", "gauss1", "gauss2")
BASE = FEATURES.index("fast")
THIN_P = 0.6


def features(image, noise_model: NoiseModel | None = None) -> tuple[np.ndarray, float, float]:
    """Normalised classical estimates of ``image`` (detector units): (len(FEATURES), row, col) float32,
    and the normalisation (mean, noise std at the mean) that maps them back to detector units."""
    from cryomat.restoration.classical import denoise_fast, local_wiener, wiener_sure
    from cryomat.restoration.vst import anscombe, inverse_anscombe

    x = np.asarray(image, dtype=np.float64)
    if noise_model is None:
        noise_model, x = estimate_noise_model(x)
    g, c = noise_model.gain, noise_model.intercept
    m = float(x.mean())
    v0 = max(g * m + c, 1e-12)
    s = float(np.sqrt(v0))
    z = ((x - m) / s).astype(np.float32)
    res = denoise_fast(x.astype(np.float32), noise_model=noise_model, remove_offsets=False, keep_parts=True)
    fast = res.denoised
    npow = noise_power(noise_model, z.shape)
    zg = res.parts["global"]  # the fast tier's global SURE-Wiener, same normalisation
    fn = (lambda shp: noise_power(noise_model, shp)) if npow is not None else None

    def var_fn(mz):
        return (g * (np.asarray(mz) * s + m) + c) / v0

    locs = [res.parts["local"] if t == 32 and "local" in res.parts else
            local_wiener(z, zg, noise_power_fn=fn, tile=t, var_fn=var_fn) if min(z.shape) >= 2 * t else zg
            for t in (32, 16, 64)]
    va = anscombe(x, gain=g, intercept=c)
    vg, _ = wiener_sure(va, noise_power=npow)
    vst = (inverse_anscombe(vg, gain=g, intercept=c) - m) / s
    stack = [z, (fast - m) / s, zg, *locs, vst, ndimage.gaussian_filter(z, 1.0), ndimage.gaussian_filter(z, 2.0)]
    return np.stack([np.asarray(a, np.float32) for a in stack]), m, s


def build_net(width: int = 16):
    """3 x 3 conv over the feature stack, two 1 x 1 layers, output added to the fast-tier channel."""
    from cryomat.restoration.learned import _torch

    torch = _torch()
    nn = torch.nn

    class FusionNet(nn.Module):
        def __init__(self):
            super().__init__()
            n = len(FEATURES)
            self.body = nn.Sequential(nn.Conv2d(n, width, 3, padding=1, padding_mode="reflect"), nn.LeakyReLU(0.1),
                                      nn.Conv2d(width, width, 1), nn.LeakyReLU(0.1), nn.Conv2d(width, 1, 1))
            nn.init.zeros_(self.body[-1].weight)
            nn.init.zeros_(self.body[-1].bias)
            self.register_buffer("scale", torch.ones(()))

        def forward(self, x):
            return x[:, BASE:BASE + 1] + self.scale * self.body(x)

    return FusionNet()


def counted_pairs(image, rng: np.random.Generator, n: int, p: float = THIN_P):
    """``n`` Noise2Noise pairs by binomial thinning of integer counts: (features of a, target of E[a])."""
    y = np.rint(np.asarray(image, np.float64)).astype(np.int64)
    out = []
    for _ in range(n):
        a = rng.binomial(y, p)
        b = (y - a).astype(np.float64)
        f, m, s = features(a.astype(np.float64))
        out.append((f, ((b * (p / (1 - p)) - m) / s).astype(np.float32)))
    return out


def halves_pairs(even, odd):
    """Noise2Noise pairs from independent halves, both directions (target in the input's units)."""
    e = np.asarray(even, np.float64)
    o = np.asarray(odd, np.float64)
    out = []
    for a, b in ((e, o), (o, e)):
        f, m, s = features(a)
        out.append((f, ((b * (a.mean() / max(b.mean(), 1e-12)) - m) / s).astype(np.float32)))
    return out


def _flip(a, k: int):
    """One of the 4 flips that keep rows as rows (row/column-correlated noise stays as it is)."""
    if k & 1:
        a = a[..., ::-1, :]
    if k & 2:
        a = a[..., :, ::-1]
    return a


def make_batches(pairs, rng: np.random.Generator, crop: int = 192, batch: int = 1):
    """A closure returning (input, target, weight) tensors: random crops of random pairs, flipped."""
    from cryomat.restoration.learned import _torch

    torch = _torch()

    def make():
        f, t = pairs[int(rng.integers(len(pairs)))]
        h, w = t.shape
        cr = min(crop, h, w)
        xs, ts = [], []
        for _ in range(batch):
            r, c = int(rng.integers(0, h - cr + 1)), int(rng.integers(0, w - cr + 1))
            k = int(rng.integers(4))
            xs.append(np.ascontiguousarray(_flip(f[:, r:r + cr, c:c + cr], k)))
            ts.append(np.ascontiguousarray(_flip(t[None, r:r + cr, c:c + cr], k)))
        tt = torch.from_numpy(np.stack(ts))
        return torch.from_numpy(np.stack(xs)), tt, torch.ones_like(tt)

    return make


def choose_scale(net, pairs, scales=(0.0, 0.25, 0.5, 0.75, 1.0, 1.25)) -> tuple[float, dict]:
    """The fraction of the learned correction with the lowest Noise2Noise loss on held-out ``pairs``
    (0 = the fast tier). Returns (scale, {scale: loss})."""
    from cryomat.restoration.learned import _torch

    torch = _torch()
    acc = {float(a): 0.0 for a in scales}
    with torch.no_grad():
        old = float(net.scale)
        net.scale.fill_(1.0)
        for f, t in pairs:
            x = torch.from_numpy(f)[None]
            base = f[BASE]
            r = net(x)[0, 0].numpy() - base
            for a in acc:
                acc[a] += float(np.mean((base + a * r - t) ** 2))
        net.scale.fill_(old)
    best = min(acc, key=acc.get)
    return best, acc
