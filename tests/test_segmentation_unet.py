"""The shipped U-Net: loads on CPU, segments simulated particles, CLI --method unet."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

from cryomat.segmentation import match_instances, segment_particles
from cryomat.simulate.particles import particle_image


def test_weights_are_shipped_and_small():
    p = resources.files("cryomat") / "data" / "models" / "segment_unet.pt"
    assert p.is_file()
    assert p.stat().st_size < 5e6  # "a few MB at most"


def test_unet_segments_simulated_particles():
    s = particle_image((256, 256), dose_e_per_A2=3.0, n_particles=10, rng=np.random.default_rng(11))
    lab = segment_particles(s.image, pixel_size=s.pixel_size, method="unet", split_touching=True)
    assert lab.dtype == np.int32 and lab.shape == s.image.shape
    sc = match_instances(s.labels, lab)
    # a short CPU training (see train_unet.py): the network finds most particles; the classical
    # path is the accurate one (benchmarks/bench_segment.py reports both)
    assert sc.f1 >= 0.7, sc.to_dict()


def test_unet_empty_image():
    flat = np.random.default_rng(0).poisson(25.0, size=(128, 128)).astype(np.float32)
    assert segment_particles(flat, pixel_size=5.0, method="unet").max() <= 1


def test_cli_unet(tmp_path):
    from cryomat.cli.main import main
    from cryomat.io.writers import write_mrc

    s = particle_image((128, 128), dose_e_per_A2=3.0, n_particles=4, rng=np.random.default_rng(2))
    f = write_mrc(tmp_path / "a.mrc", s.image, pixel_size=5.0)
    assert main(["segment", str(f), "--out", str(tmp_path / "o"), "--method", "unet"]) == 0
    assert (tmp_path / "o" / "particles.csv").is_file()
