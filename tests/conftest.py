"""Shared fixtures: tiny randomly initialised model bundles (until a trained default checkpoint exists)."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

# Tiny models are far faster on one thread, and the suite shares 2 cores with other jobs: with two threads each,
# oversubscribed cores make small ops 10-100x slower (measured).
torch.set_num_threads(1)

# The real data folder for the recipe tests: $E3D2_DATA, else a checkout's sibling reference copy when present
# (tests that need it skip without it).
_REFERENCE_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not os.environ.get("E3D2_DATA") and _REFERENCE_DATA.is_dir():
    os.environ["E3D2_DATA"] = str(_REFERENCE_DATA)

TINY_VQVAE = {"codebook_size": 16, "code_dim": 8, "width": 16, "depth": 2, "decode_chunk": 16}
TINY_POLICY = {"n_layer": 2, "n_head": 2, "n_embd": 16, "band": 28, "vocab": 16, "music_dim": 438, "dropout": 0.0}


def make_tiny_bundle(path, *, seed: int = 0, vqvae=None, policy=None):
    """Save a bundle with small random VQ-VAE and policy at ``path`` and return the bundle dict.

    The codebooks are filled from encoder outputs of a synthetic dance so that codes decode to varied poses.
    """
    from e3d2_core.checkpoint import save_bundle
    from e3d2_core.models.policy import DancePolicy
    from e3d2_core.models.vqvae import ChoreographicMemory
    from e3d2_core.skeleton import default_skeleton

    torch.manual_seed(seed)
    vq = ChoreographicMemory({**TINY_VQVAE, **(vqvae or {})})
    pol = DancePolicy({**TINY_POLICY, **(policy or {})})
    poses, trans = synthetic_dance(2, 128)
    vq.train()
    vq({"poses": torch.from_numpy(poses), "trans": torch.from_numpy(trans)})     # initialises the codebooks
    vq.eval()
    dim = pol.config["music_dim"]
    bundle = {"music": {"kind": "bailando", "fps": vq.fps / vq.downsample, "mean": torch.zeros(dim),
                        "std": torch.ones(dim)},
              "skeleton": default_skeleton().to_dict(), "data_note": "random weights (tests)",
              "vqvae": {"config": vq.config, "state_dict": vq.state_dict()},
              "policy": {"config": pol.config, "state_dict": pol.state_dict()},
              "model_card": {"name": "tiny-random"}}
    save_bundle(path, bundle)
    return bundle


def synthetic_dance(batch: int, frames: int, fps: float = 60.0, seed: int = 0):
    """A real-looking dance: every joint swings periodically, the body turns, travels and bobs.

    Returns poses (B,T,24,3) float32 axis-angle and trans (B,T,3) float32 metres (pelvis about 0.93 m up).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / fps
    amp = rng.uniform(0.05, 0.5, (batch, 1, 24, 3))
    freq = rng.uniform(0.5, 2.5, (batch, 1, 24, 3))
    phase = rng.uniform(0, 2 * math.pi, (batch, 1, 24, 3))
    poses = amp * np.sin(2 * math.pi * freq * t[None, :, None, None] + phase)
    turn = rng.uniform(-2.0, 2.0, (batch, 1))
    poses[:, :, 0, 1] = turn * t[None] + rng.uniform(-3, 3, (batch, 1))        # heading turns steadily
    poses[:, :, 0, [0, 2]] *= 0.3                                              # little tilt
    trans = np.stack([0.4 * np.sin(1.3 * t)[None].repeat(batch, 0),
                      0.93 + 0.05 * np.abs(np.sin(2 * math.pi * t))[None].repeat(batch, 0),
                      0.25 * t[None].repeat(batch, 0)], -1)
    return poses.astype(np.float32), trans.astype(np.float32)


@pytest.fixture(scope="session")
def tiny_bundle_path(tmp_path_factory):
    """Path of a tiny random bundle (built once per test session)."""
    path = tmp_path_factory.mktemp("bundle") / "tiny.pt"
    make_tiny_bundle(path)
    return path


@pytest.fixture(scope="session")
def tiny_models(tiny_bundle_path):
    """(vqvae, policy) built from the tiny bundle."""
    from e3d2_core.checkpoint import build_generator_models, load_bundle

    return build_generator_models(load_bundle(tiny_bundle_path), tiny_bundle_path)


@pytest.fixture(scope="session")
def song_clip(tmp_path_factory):
    """10 s of the bundled song "Vibe Ace" as a WAV, with a feature cache of its own for the session (the
    editing tests of the core and of the add-on share it, so the music is analysed once)."""
    import os

    from editing_support import write_song_clip

    folder = tmp_path_factory.mktemp("song_clip")
    old = os.environ.get("E3D2_CACHE")
    os.environ["E3D2_CACHE"] = str(folder / "cache")
    yield write_song_clip(folder / "vibe_ace_10s.wav", seconds=10.0)
    if old is None:
        os.environ.pop("E3D2_CACHE", None)
    else:
        os.environ["E3D2_CACHE"] = old
