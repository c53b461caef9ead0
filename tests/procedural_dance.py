"""Procedural beat-locked dances and their "ε-degraded" versions, for testing R_θ without a trained policy.

A clean dance swings hips, knees, shoulders, elbows and spine on the music's beat period and bobs the pelvis; the
ε version mimics token-level ε-greedy noise: at each code step, with probability ε, the step's pose parameters
are replaced by random ones (random amplitudes and a random phase jump), and the phase error stays (compounds).
"""
from __future__ import annotations

import numpy as np

from e3d2_core.motion import Motion

SWING_JOINTS = (1, 2, 4, 5, 3, 16, 17, 18, 19)   # hips, knees, spine, shoulders, elbows


def music_features(steps: int, beat_period_steps: float, dim: int, rng: np.random.Generator) -> np.ndarray:
    """(steps, dim) code-rate music: column 0 a beat flag, column 1 the beat phase cosine, rest noise."""
    t = np.arange(steps)
    phase = 2 * np.pi * t / beat_period_steps
    beat = (np.mod(t, beat_period_steps) < 1).astype(np.float32)
    extra = rng.normal(0, 1, size=(steps, dim - 2)) * 0.5
    return np.concatenate([beat[:, None], np.cos(phase)[:, None], extra], 1).astype(np.float32)


def dance(steps: int, beat_period_steps: float, eps: float, rng: np.random.Generator, fps: float = 60.0,
          frames_per_step: int = 8, return_noise: bool = False):
    """A Motion of ``steps * frames_per_step`` frames, beat-locked when eps = 0 (and, with ``return_noise``, the
    (steps,) bool mask of the steps that were noisy)."""
    frames = steps * frames_per_step
    period = beat_period_steps * frames_per_step
    base_amp = rng.uniform(0.3, 0.6, size=len(SWING_JOINTS))
    axes = rng.normal(size=(len(SWING_JOINTS), 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    poses = np.zeros((frames, 24, 3), np.float32)
    trans = np.zeros((frames, 3), np.float32)
    phase_error = 0.0
    amp = base_amp.copy()
    noisy = np.zeros(steps, bool)
    for s in range(steps):
        noisy[s] = rng.random() < eps
        if noisy[s]:
            phase_error += rng.uniform(-np.pi, np.pi)
            amp = rng.uniform(0.0, 1.2, size=len(SWING_JOINTS))
            axes_step = axes + rng.normal(0, 0.7, size=axes.shape)
        else:
            amp = 0.7 * amp + 0.3 * base_amp
            axes_step = axes
        for f in range(frames_per_step):
            k = s * frames_per_step + f
            phase = 2 * np.pi * k / period + phase_error
            for j, joint in enumerate(SWING_JOINTS):
                poses[k, joint] = axes_step[j] * amp[j] * np.sin(phase + j * 0.5)
            trans[k] = (0.0, 0.92 + 0.04 * np.cos(2 * phase), 0.0)
    motion = Motion(poses, trans, fps)
    return (motion, noisy) if return_noise else motion


def micro_run(root, *, exact_beats: bool, test_items, reward: dict, rl: dict, name: str, device: str = "cpu"):
    """A whole E3D2 pipeline (vqvae -> ... -> bundle) in seconds on procedural shards; returns (config, run_dir).

    ``exact_beats`` stores 60-fps music beats in the shards (the code-rate beats moved 3 frames into their step,
    as a 60-fps tracker would place them); ``test_items`` are (name, music_id, seed) of the held-out split.
    """
    from e3d2_core.training import data as shards
    from e3d2_core.training import stages

    fps, music_fps, dim = 60.0, 7.5, 37

    def sequence(seq_name, music_id, steps, seed):
        rng = np.random.default_rng(seed)
        period = 4.0 + (seed % 3)
        motion = dance(steps, period, 0.0, rng)
        music = np.zeros((steps, dim), np.float32)
        music[:, :8] = music_features(steps, period, 8, rng)
        music[:, 33] = music[:, 0]                               # the compact kind's beat column
        beats = np.flatnonzero(music[:, 33] > 0.5) * 8 + 3 if exact_beats else None
        return shards.Sequence(seq_name, music_id, motion.poses, motion.trans, music, beats)

    data = root / "data"
    for split, items in (("train", [("a", "m0", 0), ("b", "m1", 1), ("c", "m2", 2)]), ("test", test_items)):
        seqs = [sequence(n, m, 80, s) for n, m, s in items]
        shards.write_shard(data / f"{split}.npz", seqs, fps=fps, music_fps=music_fps, music_kind="compact",
                           split=split, note=f"procedural {split} data, made in the test")
    train = {"optimizer": {"kind": "adam", "lr": 1e-3}, "checkpoint_every": 50, "log_every": 5,
             "precision": "fp32"}
    config = {"name": name, "seed": 0, "device": device, "fps": fps, "data": {"dir": str(data)},
              "music": {"kind": "compact", "fps": music_fps, "normalize": True},
              "vqvae": {"model": {"codebook_size": 16, "code_dim": 16, "width": 16, "depth": 1},
                        "data": {"window": 64, "stride": 32}, "train": {**train, "batch_size": 4, "steps": 6}},
              "bc": {"model": {"n_layer": 1, "n_head": 2, "n_embd": 16, "band": 8, "dropout": 0.0},
                     "data": {"length": 12, "stride": 4}, "train": {**train, "batch_size": 4, "steps": 6}},
              "demos": {"eps": [0.02, 0.5, 1.0], "takes": 2, "held_out_takes": 3},
              "reward": {"model": {"hidden": 16, "layers": 2},
                         "train": {"batch": 16, "min_len": 6, "max_len": 12, **reward}},
              "rl": {"songs": 1, "takes": 3, "window": 16, "eval_steps": 32, "checkpoint_every": 1, **rl},
              "report": {"resamples": 20}, "guide": {"takes": 2, "max_codes": 32, "repeat_cost": 1.5},
              "distill": {"takes": 1, "max_codes": 32, "steps": 3, "length": 8, "batch": 2}}
    run_dir = root / "run"
    options = stages.StageOptions(progress=False, device=device)
    beat_stages = ("guide", "distill") if exact_beats else ("guide",)     # π_beat learns from the songs' beats
    for stage in ("vqvae", "bc", "demos", "reward", "rl", "rl_hand", *beat_stages, "report", "bundle"):
        stages.run_stage(stage, config, run_dir, options)
    return config, run_dir
