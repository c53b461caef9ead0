"""Motion files for the add-on: a saved Motion ``.npz`` as the arrays the keyers take, and back (no bpy)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from e3d2_core.motion import Motion


def load_motion_arrays(path, fps: float | None = None) -> dict:
    """A Motion ``.npz`` (read by the torch-free :class:`~e3d2_core.motion.Motion`), resampled to ``fps`` when
    given, as the dict the keyers take: float64 "poses" (T, 24, 3) and "trans" (T, 3), "fps", "meta"."""
    motion = Motion.load(path)
    if fps is not None and abs(fps - motion.fps) >= 1e-9:
        motion = motion.resample(fps)
    return {"poses": motion.poses.astype(np.float64), "trans": motion.trans.astype(np.float64), "fps": motion.fps,
            "meta": motion.meta}


def save_motion_arrays(path, poses: np.ndarray, trans: np.ndarray, fps: float, meta: dict) -> Path:
    """Write SMPL arrays read back from an action as a Motion ``.npz`` for the backend."""
    return Motion(poses, trans, fps, meta).save(path)
