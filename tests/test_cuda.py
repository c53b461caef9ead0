"""The CUDA paths: training, R_θ training and generation on a GPU agree with the CPU, and what a GPU writes loads
on a machine without one. Skipped where torch sees no CUDA device (CI); run them on a GPU machine with
``python -m pytest -q tests/test_cuda.py``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_tiny_bundle
from training_fixtures import MotionWindows, TinyMotionAutoencoder, flat_params

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

DATA = Path(__file__).parent / "data"
CONFIG = {"batch_size": 4, "epochs": 2, "optimizer": {"kind": "adam", "lr": 3e-3, "betas": [0.5, 0.999]},
          "seed": 7, "checkpoint_every": 4, "log_every": 2}


@pytest.fixture
def exact_fp32():
    """CPU-vs-GPU agreement is checked in true fp32: Ampere and later GPUs otherwise run fp32 convolutions and
    matrix products in TF32 (10-bit mantissa), which moves results by ~1e-3."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _train(work_dir, device, **config):
    from e3d2_core.training.trainer import TrainConfig, Trainer
    torch.manual_seed(0)
    model = TinyMotionAutoencoder()
    trainer = Trainer(model, MotionWindows(), TrainConfig.from_dict({**CONFIG, **config}), work_dir,
                      device=device, progress=False)
    trainer.fit()
    return model, trainer


def test_fp32_training_on_cuda_matches_the_cpu_and_its_checkpoint_loads_without_a_gpu(tmp_path, exact_fp32):
    from e3d2_core.training.trainer import list_checkpoints
    cpu, _ = _train(tmp_path / "cpu", "cpu", precision="fp32")
    gpu, trainer = _train(tmp_path / "gpu", "cuda", precision="fp32")
    assert trainer.device.type == "cuda"
    assert torch.allclose(flat_params(gpu).cpu(), flat_params(cpu), atol=1e-4, rtol=1e-3)
    newest = list_checkpoints(tmp_path / "gpu" / "checkpoints")[-1]
    state = torch.load(newest, map_location="cpu", weights_only=True)
    assert state["step"] == trainer.total_steps


def test_bf16_autocast_training_on_cuda_learns(tmp_path):
    _, trainer = _train(tmp_path / "bf16", "cuda", precision="bf16", epochs=6)
    assert trainer.autocast_dtype == torch.bfloat16
    rows = [json.loads(x) for x in (tmp_path / "bf16" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in rows) and rows[-1]["loss"] < rows[0]["loss"]


def _ranked_groups(seed=0):
    """Two songs, three noise ranks, two takes each: smooth motion plus rank-scaled jitter."""
    from e3d2_core.models.reward import step_features
    from e3d2_core.training.trex import RankedGroup, Trajectory
    rng = np.random.default_rng(seed)
    groups = []
    for song in range(2):
        t = np.arange(48 * 8)[:, None, None] / 60.0
        base = 0.3 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0, (1, 24, 3)) * t) + rng.normal(0, 0.2, (1, 24, 3))
        music = torch.from_numpy(rng.normal(size=(48, 37)).astype(np.float32))
        trajectories = []
        for rank in (0.0, 0.5, 1.0):
            for _ in range(2):
                joints = base + rank * rng.normal(0, 0.05, base.shape)
                feats = step_features(torch.from_numpy(joints.astype(np.float32))[None], 60.0,
                                      frame_velocities=True)[0]
                trajectories.append(Trajectory(features=feats, rank=rank))
        groups.append(RankedGroup(music=music, trajectories=trajectories, name=f"song{song}"))
    return groups


def test_reward_model_trains_on_cuda_like_on_the_cpu(exact_fp32):
    from e3d2_core.models.reward import RewardModel
    from e3d2_core.training.trex import pairwise_accuracy, return_per_minute, train_trex
    groups = _ranked_groups()
    config = {"music_dim": 37, "hidden": 16, "layers": 2, "frame_velocities": True, "frame_encoder": 8,
              "dropout": 0.0}     # dropout masks come from each device's own generator
    models = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = RewardModel(config)
        model.fit_normalisation(torch.cat([t.features for g in groups for t in g.trajectories]),
                                torch.cat([g.music for g in groups]))
        model.to(device)
        state = train_trex(model, groups, groups[1:], steps=30, batch=8, lr=1e-3, min_len=6, max_len=12,
                           eval_every=10, noise_weight=0.0, ema=0.9)
        assert state["step"] == 30 and model.motion_mean.device.type == device
        models[device] = model.cpu()
    cpu, gpu = models["cpu"], models["cuda"]
    feats = torch.cat([t.features[None] for t in groups[0].trajectories])
    music = groups[0].music[None].expand(len(feats), -1, -1)
    assert torch.allclose(cpu(feats, music), gpu(feats, music), atol=1e-3, rtol=1e-3)
    assert pairwise_accuracy(gpu.cuda(), groups, 10) == pairwise_accuracy(cpu, groups, 10)
    assert return_per_minute(gpu, groups).keys() == return_per_minute(cpu, groups).keys()


def test_generation_on_cuda_matches_the_cpu(tmp_path, exact_fp32):
    from e3d2_core.api import generate
    bundle = tmp_path / "tiny.pt"
    make_tiny_bundle(bundle)
    song = DATA / "loop_amen.flac"
    kwargs = dict(seconds=3.0, seed=0, temperature=0.7, checkpoint=bundle, precision="fp32")
    on_cpu = generate(song, device="cpu", **kwargs)
    on_gpu = generate(song, device="cuda", **kwargs)
    # sampling draws from a CPU generator, so the same probabilities give the same codes on either device
    for key in ("codes_up", "codes_down"):
        assert on_gpu.meta[key] == on_cpu.meta[key]
    assert np.allclose(on_gpu.poses, on_cpu.poses, atol=1e-3)
    fast = generate(song, device="cuda", **{**kwargs, "precision": "bf16"})
    assert fast.meta["precision"] == "bf16" and np.isfinite(fast.poses).all()
    assert fast.poses.shape == on_cpu.poses.shape


def test_every_e3d2_stage_runs_on_cuda_and_its_bundle_dances_on_the_cpu(tmp_path):
    """vqvae -> bc -> demos -> reward -> rl -> rl_hand -> report -> bundle with device cuda (procedural data), then
    the bundle on a machine without a GPU: everything it holds loads to the CPU and generates."""
    from e3d2_core.api import generate
    from e3d2_core.checkpoint import load_bundle
    from procedural_dance import micro_run
    _, run = micro_run(tmp_path, exact_beats=False, name="micro-cuda", test_items=[("t", "m9", 9)],
                       reward={"steps": 20, "eval_every": 10}, rl={"iterations": 2, "eval_every": 2},
                       device="cuda")
    rl_log = [json.loads(x) for x in (run / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert rl_log and all(np.isfinite(r["reward_raw"]) for r in rl_log if "reward_raw" in r)
    bundle = load_bundle(run / "model.pt")
    tensors = [v for part in ("vqvae", "policy", "policy_rl") for v in bundle[part]["state_dict"].values()]
    assert all(t.device.type == "cpu" for t in tensors)
    dance = generate(DATA / "loop_amen.flac", seconds=2.0, checkpoint=run / "model.pt", device="cpu",
                     pick="best", takes=2)
    assert dance.meta["policy"] == "rl" and np.isfinite(dance.poses).all()
