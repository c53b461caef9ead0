"""Where is the floor? Importers put the feet's floor contact at y = 0 with one documented rule.

SMPL joints sit inside the body, so a foot on the floor has its joints above it: the foot (toe-base) joint about
``FOOT_JOINT_ABOVE_SOLE`` = 3 cm above the sole (an estimate of the SMPL foot's thickness under that joint), and
the ankle that plus its rest height above the foot joint (6 cm on the bundled skeleton, so 9 cm). Each frame's
lowest sole point is estimated as the lowest of ``foot - 3 cm`` and ``ankle - 9 cm`` over both legs (the ankle
term catches tip-toes, the foot term flat feet and heels); the floor is the ``FLOOR_PERCENTILE``-th percentile
of that over the clip -- a low percentile rather than the minimum, so a few glitched frames cannot lift the whole
dance, while jumps (frames with both feet in the air) cannot lower it.
"""
from __future__ import annotations

import numpy as np

from e3d2_core.skeleton import Skeleton, default_skeleton

FOOT_JOINT_ABOVE_SOLE = 0.03  # metres
FLOOR_PERCENTILE = 5.0

_LEGS = ((7, 10), (8, 11))  # (ankle, foot) joint indices, left then right


def sole_heights(joints: np.ndarray, skeleton: Skeleton | None = None) -> np.ndarray:
    """(T,) estimated height of the lowest sole point per frame, from (T, 24, 3) Y-up joints in metres."""
    skeleton = skeleton or default_skeleton()
    rest = skeleton.rest_joints()
    heights = []
    for ankle, foot in _LEGS:
        ankle_above_sole = FOOT_JOINT_ABOVE_SOLE + rest[ankle, 1] - rest[foot, 1]
        heights.append(joints[:, foot, 1] - FOOT_JOINT_ABOVE_SOLE)
        heights.append(joints[:, ankle, 1] - ankle_above_sole)
    return np.min(np.stack(heights, axis=-1), axis=-1)


def floor_height(joints: np.ndarray, skeleton: Skeleton | None = None) -> float:
    """Height (metres) of the floor the dancer stands on: a low percentile of :func:`sole_heights`."""
    return float(np.percentile(sole_heights(np.asarray(joints, dtype=np.float64), skeleton), FLOOR_PERCENTILE))
