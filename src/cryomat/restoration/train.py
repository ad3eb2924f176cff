"""Train the small shipped denoising networks on the simulator (run once by a developer).

``python -m cryomat.restoration.train --minutes 6`` writes ``cryomat/data/models/denoise_n2v.pt``
(base 8 channels, about 29 k parameters, ~120 kB). The Noise2Noise tier (:mod:`.fusion`) is small
enough to be trained on each image and ships no weights.

The shipped weights are a *starting point*: they are pre-trained with the simulator's clean truth
(noisy -> clean in the noise-normalised domain; for the Noise2Noise model, one half plus its fast-tier
estimate -> the clean half) on crystalline nanoparticles on amorphous support and on purely
amorphous fields (so that no lattice prior is learned where there is none), HAADF and phase
contrast, counting detector, 2 to 128 e/px, fixed seeds. On a user's image they are fine-tuned
with the self-supervised losses only (blind-spot, or even -> odd), and nothing is downloaded.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _scenes(n: int, seed: int, size: int = 192):
    from cryomat.simulate import physics
    from cryomat.simulate.nanoparticles import nanoparticle_scene, record

    rng = np.random.default_rng(seed)
    doses = np.geomspace(2, 128, 7)
    out = []
    for i in range(n):
        px = rng.uniform(0.3, 0.8)
        if i % 4 == 3:  # amorphous only: no lattice to learn
            vp = physics.amorphous_potential((size, size), pixel_size=px, rng=rng, ring_A=rng.uniform(2.0, 3.8))
            inten = 1 + 0.15 * (vp - vp.mean()) / vp.std()
        else:
            inten, _ = nanoparticle_scene((size, size), pixel_size=px, rng=rng,
                                          contrast="haadf" if i % 2 == 0 else "phase")
        dose = float(doses[i % len(doses)])
        noisy, clean, frames = record(inten, dose_e_per_px=dose, rng=rng, n_frames=2)
        out.append((noisy, clean, frames[0], frames[1]))
    return out


def _prepared(scenes, kind):
    from cryomat.restoration import learned as L
    from cryomat.restoration.noise import estimate_noise_model

    prep = []
    for noisy, clean, even, odd in scenes:
        nm, _ = estimate_noise_model(noisy)
        z, m, s = L.normalise(noisy, nm)
        prep.append(([z], ((clean - m) / s).astype(np.float32)))
    return prep


def train_shipped(minutes: float = 6.0, seed: int = 0, out_dir=None, n_scenes: int = 16) -> dict:
    """Pre-train both shipped models for ``minutes`` of wall time each and save them."""
    import torch

    from cryomat.restoration import learned as L

    out_dir = L.MODELS_DIR if out_dir is None else out_dir
    scenes = _scenes(n_scenes, seed)
    rng = np.random.default_rng(seed)
    info = {}
    for kind in ("n2v",):
        prep = _prepared(scenes, kind)
        model = L.new_model(kind)

        def make_batch():
            inputs, target = prep[rng.integers(len(prep))]
            patches = L._random_patches([*inputs, target], 48, 8, rng)
            inp = torch.from_numpy(np.stack(patches[:-1], 1))
            t = torch.from_numpy(patches[-1])[:, None]
            return inp, t, torch.ones_like(t)

        t0 = time.perf_counter()
        while time.perf_counter() - t0 < minutes * 60:
            L._train(model, make_batch, epochs=1, steps_per_epoch=10, lr=1e-3, seed=int(rng.integers(1 << 30)))
        model.history = {"pretrained_steps": int(model.history["epochs"]) * 10,
                         "pretrain_time_s": model.history["train_time_s"],
                         "pretrain_final_mse": model.history["final_loss"], "pretraining": "simulator, supervised"}
        L.save_model(model, out_dir / f"denoise_{kind}.pt")
        info[kind] = model.describe()
        print(kind, info[kind], flush=True)
    return info


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    train_shipped(a.minutes, a.seed)
