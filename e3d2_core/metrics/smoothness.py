"""Frame-to-frame joint speed and acceleration, and how a seam between two motions compares with them.

Speed at frame t: |p_t − p_{t−1}|·fps (m/s); acceleration at frame t: |p_{t+1} − 2·p_t + p_{t−1}|·fps² (m/s²),
per joint, from (T, J, 3) joint positions in metres. A *seam* between frames f−1 and f (the last frame of one
motion and the first of the other) is judged by the values that straddle it: the speed at f and the
accelerations at f−1 and f (each needs frames on both sides), maximum over joints.
"""
from __future__ import annotations

import numpy as np

from e3d2_core.errors import E3D2Error


def joint_speeds(joints: np.ndarray, fps: float) -> np.ndarray:
    """(T, J, 3) metres -> (T−1, J) m/s: speed of each joint between consecutive frames."""
    joints = np.asarray(joints, dtype=np.float64)
    return np.linalg.norm(np.diff(joints, axis=0), axis=-1) * fps


def joint_accelerations(joints: np.ndarray, fps: float) -> np.ndarray:
    """(T, J, 3) metres -> (T−2, J) m/s²: magnitude of each joint's second difference (row t ↔ frame t+1)."""
    joints = np.asarray(joints, dtype=np.float64)
    return np.linalg.norm(joints[2:] - 2.0 * joints[1:-1] + joints[:-2], axis=-1) * fps * fps


def seam(joints: np.ndarray, fps: float, frame: int) -> dict:
    """The largest joint speed and acceleration across the seam between ``frame − 1`` and ``frame``.

    Returns {"speed": m/s, "acceleration": m/s², "root_step": metres the pelvis (joint 0) moves across it}.
    Accelerations that would need a frame outside the motion are left out.
    """
    joints = np.asarray(joints, dtype=np.float64)
    if not 1 <= frame < len(joints):
        raise E3D2Error(f"a seam needs frames on both sides; frame {frame} of {len(joints)}")
    speed = float(np.linalg.norm(joints[frame] - joints[frame - 1], axis=-1).max() * fps)
    accelerations = [np.linalg.norm(joints[t + 1] - 2.0 * joints[t] + joints[t - 1], axis=-1).max() * fps * fps
                     for t in (frame - 1, frame) if 1 <= t < len(joints) - 1]
    return {"speed": speed, "acceleration": float(max(accelerations)) if accelerations else 0.0,
            "root_step": float(np.linalg.norm(joints[frame, 0] - joints[frame - 1, 0]))}


def percentiles(tracks, q: float = 99.0) -> dict:
    """The ``q``-th percentile of joint speed and acceleration pooled over ``tracks`` [(joints, fps), …]."""
    speeds = np.concatenate([joint_speeds(j, fps).ravel() for j, fps in tracks])
    accelerations = np.concatenate([joint_accelerations(j, fps).ravel() for j, fps in tracks])
    return {"speed": float(np.percentile(speeds, q)), "acceleration": float(np.percentile(accelerations, q))}
