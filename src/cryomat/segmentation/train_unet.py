"""Train the shipped particle U-Net on the ``particles`` simulator (CPU, 2 threads).

    python -m cryomat.segmentation.train_unet --out src/cryomat/data/models/segment_unet.pt

Training data: simulated 192x192 images at 5 A/px, doses log-uniform in 0.2-20 e/A^2, all five
particle classes, bright-field (80 %) and HAADF (20 %), random crops with flips and 90 degree
rotations. Loss: class-weighted cross-entropy (support, interior, boundary). Seeded. A checkpoint
is written every 50 steps.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def make_dataset(n: int, *, seed: int, size: int = 256):
    from cryomat.segmentation.unet import prepare_input, targets_from_labels
    from cryomat.simulate.particles import CLASSES, particle_image

    rng = np.random.default_rng(seed)
    xs, ts = [], []
    for i in range(n):
        dose = float(np.exp(rng.uniform(np.log(0.2), np.log(20.0))))
        mode = "haadf" if rng.random() < 0.2 else "tem"
        sim = particle_image((size, size), dose_e_per_A2=dose, n_particles=int(rng.integers(4, 16)), classes=CLASSES,
                             touching_fraction=0.25, mode=mode, rng=rng)
        x, _ = prepare_input(sim.image, polarity="dark" if mode == "tem" else "bright")
        xs.append(x)
        ts.append(targets_from_labels(sim.labels).astype(np.int8))
    return np.stack(xs), np.stack(ts)


def train(out: str, *, n_images: int = 80, steps: int = 600, batch: int = 8, crop: int = 80, seed: int = 0,
          base: int = 8, depth: int = 3, threads: int = 2, log_every: int = 50) -> dict:
    import torch

    from cryomat.segmentation.unet import build_unet

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    t0 = time.time()
    x, t = make_dataset(n_images, seed=seed, size=192)
    print(f"dataset {x.shape} in {time.time() - t0:.0f} s", flush=True)
    rng = np.random.default_rng(seed + 1)
    model = build_unet(base=base, depth=depth)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / 20) * (0.3 if k > 0.7 * steps else 1.0))
    frac = np.bincount(t.ravel(), minlength=3) / t.size
    weight = torch.tensor(np.clip(1.0 / (3 * frac), 0.2, 10.0), dtype=torch.float32)
    lossf = torch.nn.CrossEntropyLoss(weight=weight)
    model.train()
    run = 0.0
    for step in range(steps):
        idx = rng.integers(0, len(x), batch)
        r = rng.integers(0, x.shape[1] - crop + 1, batch)
        c = rng.integers(0, x.shape[2] - crop + 1, batch)
        xb = np.stack([x[i, a:a + crop, b:b + crop] for i, a, b in zip(idx, r, c)])
        tb = np.stack([t[i, a:a + crop, b:b + crop] for i, a, b in zip(idx, r, c)])
        k = int(rng.integers(4))
        xb, tb = np.rot90(xb, k, axes=(1, 2)), np.rot90(tb, k, axes=(1, 2))
        if rng.random() < 0.5:
            xb, tb = xb[:, :, ::-1], tb[:, :, ::-1]
        xt = torch.from_numpy(np.ascontiguousarray(xb))[:, None]
        tt = torch.from_numpy(np.ascontiguousarray(tb).astype(np.int64))
        loss = lossf(model(xt), tt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        run = 0.95 * run + 0.05 * float(loss.detach()) if step else float(loss.detach())
        if step % log_every == 0 or step == steps - 1:
            print(f"step {step} loss {run:.4f} {time.time() - t0:.0f} s", flush=True)
            _save(model, out, base, depth)  # checkpoint (the run can be stopped at any point)
    _save(model, out, base, depth)
    return {"steps": steps, "loss": run, "seconds": time.time() - t0}


def _save(model, out, base, depth):
    import torch

    state = {k: v.detach().half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    state["_config"] = torch.tensor([base, depth])
    torch.save(state, out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--images", type=int, default=80)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    print(train(a.out, n_images=a.images, steps=a.steps, seed=a.seed, threads=a.threads))


if __name__ == "__main__":
    main()
