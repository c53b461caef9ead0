"""Physical foot contact score (PFC) as EDGE's ``eval/eval_pfc.py`` defines it (lower is better).

EDGE's code assumes Z up, 30 fps and reports the mean over files times 10^4. Our tracks are Y up at 60 fps, so:

* axes: EDGE's up axis (z) is our y and its floor plane (x, y) is our (x, z) — the Y-up -> Z-up rotation
  (x, y, z) -> (x, -z, y) changes neither the clamp on the up component nor the horizontal norms;
* frame rate: the 60-fps track is sampled at 30 fps (every other frame, starting at frame 0), because the foot
  speeds are per-frame displacements (not divided by the frame time) and so depend on the frame rate;
* scale: the per-file score is multiplied by 10^4 (EDGE multiplies the mean; the same thing).

Per file: root acceleration ``a`` (finite differences at 1/30 s) with its up component clamped at >= 0, its norm
divided by its maximum over the clip; horizontal speeds of the feet joints (left ankle, left foot, right ankle,
right foot = SMPL 7, 10, 8, 11); score = mean_t( min(left speeds) * min(right speeds) * |a|/max|a| ).
"""
from __future__ import annotations

import numpy as np

from e3d2_core.errors import E3D2Error

EDGE_FPS = 30.0
SCALE = 1e4
FOOT_JOINTS = (7, 10, 8, 11)  # left ankle, left foot, right ankle, right foot
UP_AXIS = 1  # y up here (EDGE: z)
FLAT_AXES = (0, 2)


def pfc_score(positions: np.ndarray, fps: float = 60.0) -> float:
    """PFC (×10^4) of one (T, 24, 3) Y-up track at ``fps`` (an integer multiple of 30).

    Returns ``nan`` when the root never accelerates upwards or sideways (EDGE divides by that maximum).
    """
    step = int(round(fps / EDGE_FPS))
    if step < 1 or abs(step * EDGE_FPS - fps) > 1e-6:
        raise E3D2Error(f"PFC needs a frame rate that is a multiple of 30 fps, got {fps}")
    joints = np.asarray(positions, dtype=np.float64)[::step]
    if len(joints) < 3:
        raise E3D2Error("PFC needs at least 3 frames at 30 fps")
    dt = 1.0 / EDGE_FPS
    root_v = (joints[1:, 0] - joints[:-1, 0]) / dt
    root_a = (root_v[1:] - root_v[:-1]) / dt
    root_a[:, UP_AXIS] = np.maximum(root_a[:, UP_AXIS], 0.0)
    root_a = np.sqrt((root_a ** 2).sum(axis=-1))
    peak = root_a.max()
    if not peak > 0:
        return float("nan")
    root_a = root_a / peak
    feet = joints[:, FOOT_JOINTS][:, :, FLAT_AXES]
    foot_v = np.sqrt(((feet[2:] - feet[1:-1]) ** 2).sum(axis=-1))
    left = np.minimum(foot_v[:, 0], foot_v[:, 1])
    right = np.minimum(foot_v[:, 2], foot_v[:, 3])
    return float((left * right * root_a).mean() * SCALE)
