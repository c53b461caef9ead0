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
          frames_per_step: int = 8) -> Motion:
    """A Motion of ``steps * frames_per_step`` frames, beat-locked when eps = 0."""
    frames = steps * frames_per_step
    period = beat_period_steps * frames_per_step
    base_amp = rng.uniform(0.3, 0.6, size=len(SWING_JOINTS))
    axes = rng.normal(size=(len(SWING_JOINTS), 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    poses = np.zeros((frames, 24, 3), np.float32)
    trans = np.zeros((frames, 3), np.float32)
    phase_error = 0.0
    amp = base_amp.copy()
    for s in range(steps):
        if rng.random() < eps:
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
    return Motion(poses, trans, fps)
