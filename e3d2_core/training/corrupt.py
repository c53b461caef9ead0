"""Corruptions of real or generated motion, for R_θ's robustness pairs (clean must rank above corrupted).

All act on joint positions (T, 24, 3), which is all R_θ reads. "noise" and "shuffle" are artefacts a reward must not
like; "slow" and "loop" are the *degenerate* dances an RL policy drifts into when nothing forbids them (a near-still
sway, a short move repeated against the music): ε-ranked demonstrations never contain them, so without these pairs
R_θ has no opinion on them and PPO finds and exploits that gap (docs/e3d2.md). "offbeat" keeps the dance as it is
and moves it against its music by about half a beat: only a reward that listens to the music can rank the real
timing above it, and RL against such a reward is paid for dancing on the beat.
"""
from __future__ import annotations

import numpy as np

from e3d2_core.errors import E3D2Error


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


def _interpolate(joints: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Joints at fractional frame indices (linear interpolation between neighbouring frames)."""
    frames = np.clip(frames, 0, len(joints) - 1)
    lo = np.floor(frames).astype(int)
    hi = np.minimum(lo + 1, len(joints) - 1)
    w = (frames - lo).astype(joints.dtype)[:, None, None]
    return joints[lo] * (1 - w) + joints[hi] * w


def slow_motion(joints: np.ndarray, rng: np.random.Generator, speed: tuple[float, float] = (0.05, 0.35)) -> np.ndarray:
    """The same length played at a random fraction of the speed from a random start: a smooth, valid pose sequence
    that barely moves and ignores the music (speed 0 would be a frozen pose)."""
    factor = float(rng.uniform(*speed))
    span = factor * (len(joints) - 1)
    start = float(rng.uniform(0, len(joints) - 1 - span))
    return _interpolate(joints, start + factor * np.arange(len(joints)))


def ping_pong_loop(joints: np.ndarray, rng: np.random.Generator, fps: float = 60.0,
                   seconds: tuple[float, float] = (0.3, 0.8)) -> np.ndarray:
    """A short random segment played forwards and backwards over and over (no seams, normal speeds): one move
    repeated regardless of the music."""
    size = max(2, min(len(joints), int(round(rng.uniform(*seconds) * fps))))
    start = int(rng.integers(0, len(joints) - size + 1))
    segment = joints[start:start + size]
    cycle = np.concatenate([segment, segment[-2:0:-1]]) if size > 2 else segment
    reps = -(-len(joints) // len(cycle))
    return np.concatenate([cycle] * reps)[:len(joints)].copy()


def offbeat_shift(joints: np.ndarray, rng: np.random.Generator, beat_period: float,
                  fraction: tuple[float, float] = (0.35, 0.65)) -> np.ndarray:
    """The same dance shifted in time by a random ``fraction`` of ``beat_period`` (frames), earlier or later,
    its ends held: every move now lands between the music's beats."""
    shift = float(rng.uniform(*fraction)) * float(beat_period) * (1.0 if rng.random() < 0.5 else -1.0)
    return _interpolate(joints, np.arange(len(joints)) + shift)


KINDS = ("noise", "shuffle", "slow", "loop", "offbeat")


def corrupt(joints: np.ndarray, kind: str, rng: np.random.Generator, fps: float = 60.0,
            beat_period: float | None = None) -> np.ndarray:
    """``kind`` "noise" (3 cm jitter), "shuffle" (0.5 s segments permuted), "slow" (5-35 % speed), "loop"
    (a 0.3-0.8 s move ping-ponged) or "offbeat" (moved by 35-65 % of ``beat_period`` frames against the
    music; needs ``beat_period``)."""
    if kind == "offbeat":
        if beat_period is None:
            raise E3D2Error("the offbeat corruption needs the music's beat period")
        return offbeat_shift(joints, rng, beat_period)
    if kind == "noise":
        return joint_noise(joints, rng)
    if kind == "shuffle":
        return time_shuffle(joints, rng, segment=max(2, int(round(0.5 * fps))))
    if kind == "slow":
        return slow_motion(joints, rng)
    if kind == "loop":
        return ping_pong_loop(joints, rng, fps)
    raise E3D2Error(f"unknown corruption {kind!r}; choose from {', '.join(KINDS)}")
