"""Corruptions of real or generated motion, for R_θ's robustness pairs (clean must rank above corrupted).

Both act on joint positions (T, 24, 3), which is all R_θ reads.
"""
from __future__ import annotations

import numpy as np


def joint_noise(joints: np.ndarray, rng: np.random.Generator, std: float = 0.03) -> np.ndarray:
    """Independent Gaussian jitter of ``std`` metres on every joint coordinate of every frame."""
    return joints + rng.normal(0.0, std, size=joints.shape).astype(joints.dtype)


def time_shuffle(joints: np.ndarray, rng: np.random.Generator, segment: int = 30) -> np.ndarray:
    """Cut into segments of ``segment`` frames and permute them (each keeps its absolute position), so the
    result jumps at every seam and loses its timing against the music. The permutation moves every segment."""
    n = len(joints) // segment
    if n < 2:
        return joints[::-1].copy()
    order = rng.permutation(n)
    while n > 1 and np.any(order == np.arange(n)):
        order = rng.permutation(n)
    pieces = [joints[i * segment:(i + 1) * segment] for i in order]
    return np.concatenate(pieces + [joints[n * segment:]])


def corrupt(joints: np.ndarray, kind: str, rng: np.random.Generator, fps: float = 60.0) -> np.ndarray:
    """``kind`` "noise" (3 cm jitter) or "shuffle" (0.5 s segments permuted)."""
    if kind == "noise":
        return joint_noise(joints, rng)
    if kind == "shuffle":
        return time_shuffle(joints, rng, segment=max(2, int(round(0.5 * fps))))
    raise ValueError(f"unknown corruption {kind!r}")


def resample_joints(joints: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Linear interpolation of (T, 24, 3) positions to another frame rate (frame k at time k / fps_out)."""
    if abs(fps_in - fps_out) < 1e-9:
        return np.asarray(joints, dtype=np.float32)
    t_in = np.arange(len(joints)) / fps_in
    t_out = np.arange(int(np.floor(t_in[-1] * fps_out + 1e-6)) + 1) / fps_out
    flat = np.asarray(joints, dtype=np.float64).reshape(len(joints), -1)
    out = np.stack([np.interp(t_out, t_in, flat[:, k]) for k in range(flat.shape[1])], 1)
    return out.reshape(len(t_out), *joints.shape[1:]).astype(np.float32)
