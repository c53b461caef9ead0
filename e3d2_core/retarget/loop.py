"""Loop tools for a take, on SMPL arrays (pure numpy): make it loop, mirror it.

:func:`make_loop` shortens a take to ``length`` frames and blends its first ``blend`` frames from the frames that
follow its new end into its own start: played in a cycle, frame ``length - 1`` runs straight on into frame 0.
Rotations are slerped, the height blended; travel over the floor carries on across the seam (the take's last
frames are moved by the loop's travel), so a loop played with root motion never slides, and one cycled in
place restarts from its first spot. :func:`loop_length` picks a whole number of beats.
"""
from __future__ import annotations

import numpy as np

from e3d2_core.errors import E3D2Error
from e3d2_core import rotations
from e3d2_core.skeleton import default_skeleton


def loop_length(frames: int, blend: int, fps: float, bpm: float | None) -> int:
    """The longest loop (frames) that leaves ``blend`` frames after it and, with a tempo, lasts whole beats."""
    longest = frames - blend
    if bpm is None or bpm <= 0:
        return longest
    beat = 60.0 * fps / bpm
    beats = int(np.floor(longest / beat + 1e-9))
    return int(round(beats * beat)) if beats >= 1 else longest


def make_loop(poses: np.ndarray, trans: np.ndarray, blend: int, length: int | None = None):
    """A looping take.

    Args:
        poses: (T, 24, 3) axis-angle; trans: (T, 3) metres, Y up.
        blend: frames over which the end blends into the start (e.g. two beats' worth).
        length: frames of the loop (default ``T - blend``); ``length + blend`` must not exceed T.
    Returns:
        poses (length, 24, 3), trans (length, 3).
    """
    poses = np.asarray(poses, np.float64)
    trans = np.asarray(trans, np.float64)
    frames = len(poses)
    length = frames - blend if length is None else int(length)
    if blend < 1 or length < 2 * blend or length + blend > frames:
        raise E3D2Error(f"a {frames}-frame take cannot loop over {length} frames with a {blend}-frame blend "
                        f"(it needs at least three blends' worth of frames)")
    weight = _smooth((np.arange(blend) + 1) / (blend + 1))
    quats = rotations.matrix_to_quaternion(rotations.axis_angle_to_matrix(poses))
    head = rotations.quaternion_slerp(quats[length:length + blend], quats[:blend], weight[:, None])
    out_quats = quats[:length].copy()
    out_quats[:blend] = head
    travel = trans[length] - trans[0]
    travel[1] = 0.0                        # height loops; travel over the floor carries on
    follow = trans[length:length + blend] - travel
    out_trans = trans[:length].copy()
    out_trans[:blend] = follow + weight[:, None] * (trans[:blend] - follow)
    return rotations.matrix_to_axis_angle(rotations.quaternion_to_matrix(out_quats)), out_trans


def _smooth(x: np.ndarray) -> np.ndarray:
    return x * x * (3.0 - 2.0 * x)


def mirror(poses: np.ndarray, trans: np.ndarray):
    """Left/right mirror image through the body's sagittal (YZ) plane (as :meth:`e3d2_core.motion.Motion.mirror`):
    every left joint swaps with its right twin, axis-angle (x, y, z) -> (x, -y, -z), trans x -> -x."""
    names = default_skeleton().names
    swap = [names.index("right_" + n[5:]) if n.startswith("left_") else
            names.index("left_" + n[6:]) if n.startswith("right_") else i for i, n in enumerate(names)]
    poses = np.asarray(poses, np.float64)[:, swap] * np.array([1.0, -1.0, -1.0])
    return poses, np.asarray(trans, np.float64) * np.array([-1.0, 1.0, 1.0])
