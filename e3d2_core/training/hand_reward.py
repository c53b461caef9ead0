"""The hand-designed reward of the paper's Table 3: beat alignment (+-5 per step) plus body orientation.

This is Bailando's ``UpDownReward`` re-implemented from its description, per code step:

* **beat**: motion beats are strict local minima of the mean joint speed, Gaussian-smoothed with sigma = 5 frames
  at 60 fps (scaled with the frame rate); music beats are the beat one-hot. Both become per-step flags (max over the
  step's frames) and ``r_beat = 10 * (music_beat AND motion_beat - 0.5)``, i.e. +5 / -5. ``beat_mode="paper"``
  gives the variant a code comment attributes to the paper: +5 in steps without a music beat.
* **orientation**: the horizontal normal of the upper body's plane (pelvis, both collars) and of the lower body's
  plane (pelvis, both knees), each given a consistent forward sign; per frame their dot product, per step its
  minimum over frames, set to 1 where it is >= 0 (facing the same way) and kept negative otherwise.

**Sign fix (labelled):** Bailando multiplies the lower-body normal by the *upper*-body sign, which cancels the
upper sign in the dot product and leaves the lower normal's direction arbitrary; here the lower normal gets its own
sign (``down_direct``), so the term means what it says. (Bailando trains with this term's weight at 0.)
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.signal import argrelextrema

from e3d2_core.errors import E3D2Error

# column of the beat one-hot in each music feature kind (e3d2_core.audio, docs/audio-and-preview.md)
BEAT_COLUMN = {"bailando": 53, "compact": 33}
PELVIS, LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE, LEFT_ANKLE, RIGHT_ANKLE = 0, 1, 2, 4, 5, 7, 8
NECK, LEFT_COLLAR, RIGHT_COLLAR, HEAD = 12, 13, 14, 15


def motion_beat_flags(joints: np.ndarray, fps: float) -> np.ndarray:
    """(B, T) 0/1 motion beats: strict local minima of the smoothed mean joint speed.

    Args:
        joints: (B, T, 24, 3) positions in metres.
        fps: frame rate; the smoothing sigma is 5 frames at 60 fps.
    """
    joints = np.asarray(joints, dtype=np.float64)
    speed = np.linalg.norm(joints[:, 1:] - joints[:, :-1], axis=-1).mean(-1)  # (B, T-1)
    flags = np.zeros(joints.shape[:2], dtype=np.float32)
    for b, signal in enumerate(speed):
        smooth = gaussian_filter1d(signal, 5.0 * fps / 60.0)
        flags[b, argrelextrema(smooth, np.less)[0]] = 1.0
    return flags


def beat_reward(joints: np.ndarray, music_beats: np.ndarray, fps: float, frames_per_step: int = 8,
                mode: str = "code") -> np.ndarray:
    """(B, N) per-step beat reward, +5 or -5.

    Args:
        joints: (B, T, 24, 3) positions.
        music_beats: 0/1 music-beat flags, (B, T) at the motion's frame rate or (B, N) per code step (the beat
            column of code-rate music features).
        mode: "code" (Bailando's code) or "paper" (+5 in steps without a music beat).
    """
    n = joints.shape[1] // frames_per_step
    motion = motion_beat_flags(joints, fps)[:, :n * frames_per_step]
    motion = motion.reshape(len(motion), n, frames_per_step).max(-1)
    music = np.asarray(music_beats, dtype=np.float32)
    if music.shape[1] >= n * frames_per_step and frames_per_step > 1:
        music = music[:, :n * frames_per_step].reshape(len(music), n, frames_per_step).max(-1)
    elif music.shape[1] >= n:
        music = (music[:, :n] > 0).astype(np.float32)
    else:
        raise E3D2Error(f"music beats cover {music.shape[1]} entries, the motion {n} steps")
    reward = (music * motion - 0.5) * 10.0
    if mode == "paper":
        reward = np.where(music > 0, reward, 5.0)
    elif mode != "code":
        raise E3D2Error(f"unknown beat mode {mode!r}")
    return reward.astype(np.float32)


def _horizontal_unit_normal(a, b, direction):
    """Normal of the plane through the origin, a and b, flipped to agree with ``direction``; y zeroed."""
    normal = np.cross(a, b)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-9
    sign = np.sum(normal * direction, -1, keepdims=True)
    normal = normal * (sign / (np.abs(sign) + 1e-5))
    normal[..., 1] = 0.0
    return normal


def orientation_reward(joints: np.ndarray, frames_per_step: int = 8) -> np.ndarray:
    """(B, N) per-step orientation consistency of upper and lower body, in [-1, 0) or exactly 1."""
    joints = np.asarray(joints, dtype=np.float64)
    rel = joints - joints[:, :, PELVIS:PELVIS + 1]
    up = _horizontal_unit_normal(rel[..., RIGHT_COLLAR, :], rel[..., LEFT_COLLAR, :],
                                 rel[..., HEAD, :] - rel[..., NECK, :])
    down_direction = (2 * rel[..., LEFT_KNEE, :] - rel[..., LEFT_HIP, :] - rel[..., LEFT_ANKLE, :]
                      + 2 * rel[..., RIGHT_KNEE, :] - rel[..., RIGHT_HIP, :] - rel[..., RIGHT_ANKLE, :])
    down = _horizontal_unit_normal(rel[..., LEFT_KNEE, :], rel[..., RIGHT_KNEE, :], down_direction)  # own sign
    n = joints.shape[1] // frames_per_step
    dot = (up * down).sum(-1)[:, :n * frames_per_step].reshape(len(joints), n, frames_per_step).min(-1)
    return np.where(dot >= 0, 1.0, dot).astype(np.float32)


def hand_reward(joints, music_beats, fps: float, frames_per_step: int = 8, orientation_weight: float = 1.0,
                beat_mode: str = "code") -> torch.Tensor:
    """(B, N) float32 tensor: beat reward + ``orientation_weight`` x orientation reward (Table 3's reward).

    Args:
        joints: (B, T, 24, 3) positions (numpy or torch) at ``fps``.
        music_beats: (B, T) music-beat one-hot at ``fps``, or (B, N) per code step.
    """
    joints = joints.detach().cpu().numpy() if torch.is_tensor(joints) else np.asarray(joints)
    beats = music_beats.detach().cpu().numpy() if torch.is_tensor(music_beats) else np.asarray(music_beats)
    reward = beat_reward(joints, beats, fps, frames_per_step, beat_mode)
    if orientation_weight:
        reward = reward + orientation_weight * orientation_reward(joints, frames_per_step)
    return torch.from_numpy(reward)
