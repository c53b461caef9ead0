"""Motion importers: every supported file becomes a :class:`~e3d2_core.motion.Motion` (Y up, metres, facing +Z,
feet's floor contact at y = 0) or, for position-only consumers, a (T, 24, 3) joint track.

Formats (``fmt``, or guessed from the extension):

=========== ====================================================================== ==============
``motion``  ``.npz`` Motion                                                         its own fps
``aistpp``  ``.pkl`` AIST++ motion (smpl_poses, smpl_trans, smpl_scaling), Y up     60 fps
``bvh``     ``.bvh`` (CMU names, or SMPL joint names), retargeted to SMPL          the file's
``joints``  ``.csv`` / ``.npy`` joint positions (T, 72) or (T, 24, 3), metres        ``fps`` needed
``bailando`` Bailando's pickled ``{'pred_position': (T, 72)}`` ``.npy``, Y up        60 fps
``edge``    EDGE's ``.pkl`` (smpl_poses + smpl_trans, or full_pose), Z up           30 fps
=========== ====================================================================== ==============

``bailando`` and ``edge`` files are pickles of another program's output; they are read only when named, and
like AIST++ pickles only through a data-only unpickler (:mod:`e3d2_core.io.safe_pickle`) that cannot run code.
``up`` is the source's up axis; ``"z"`` converts by the rotation (x, y, z) -> (x, z, -y), never by swapping
axes (which would mirror the body). ``None`` means the format's own convention (EDGE: z, all others: y).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from e3d2_core import rotations
from e3d2_core.errors import E3D2Error
from e3d2_core.io import formats
from e3d2_core.io.floor import floor_height
from e3d2_core.io.ik import inverse_kinematics
from e3d2_core.motion import MAX_FPS, Motion
from e3d2_core.skeleton import Skeleton, default_skeleton, forward_kinematics

FORMATS = ("motion", "aistpp", "bvh", "joints", "bailando", "edge")
_BY_SUFFIX = {".npz": "motion", ".pkl": "aistpp", ".bvh": "bvh", ".csv": "joints", ".npy": "joints"}
_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # (x, y, z) -> (x, z, -y)

__all__ = ["FORMATS", "detect_format", "load_motion_file", "load_joint_track"]


def detect_format(path, fmt: str | None = None) -> str:
    """The format name for ``path``: ``fmt`` if given (validated), else from the extension."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise E3D2Error(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in _BY_SUFFIX:
        raise E3D2Error(f"cannot tell the format from the extension '{suffix}' (known: "
                        f"{', '.join(sorted(_BY_SUFFIX))}; Bailando/EDGE outputs need --format)", path=path)
    return _BY_SUFFIX[suffix]


def load_motion_file(path, *, fmt: str | None = None, fps: float | None = None, up: str | None = None,
                     skeleton: Skeleton | None = None, floor: bool = True) -> Motion:
    """Read any supported file as a Motion on ``skeleton`` (the bundled SMPL skeleton when None).

    Args:
        path: the source file.
        fmt: one of :data:`FORMATS`; guessed from the extension when None (never ``bailando``/``edge``).
        fps: the source's frame rate; overrides the file's or the format's, required for joint positions.
        up: the source's up axis ("y" or "z"); None: the format's convention.
        skeleton: the target skeleton; a non-default one is stored in ``meta["skeleton"]``.
        floor: put the feet's floor contact at y = 0 (:mod:`e3d2_core.io.floor`); ignored for ``.npz`` Motions.
    Returns:
        A Motion at the source's frame rate, with ``meta`` = {source, format, source_fps, ...}.
    """
    path = Path(path)
    fmt = detect_format(path, fmt)
    skeleton = skeleton or default_skeleton()
    fps = _check_fps(fps, path)
    meta = {"source": path.name, "format": fmt}

    if fmt == "motion":
        motion = Motion.load(path)
        if fps is not None:
            motion = motion.copy(fps=fps)
        poses, trans, source_fps = motion.poses, motion.trans, motion.fps
        meta = {**motion.meta, **meta}
        up = up or "y"
        if up != "y":
            poses, trans = _rotate_root(poses, trans, up)
        floor = False
    else:
        data = _read(path, fmt, skeleton, up)
        source_fps = fps or data.fps
        if source_fps is None:
            raise E3D2Error(f"{fmt} files carry no frame rate: give the source's with --fps", path=path)
        source_up = data.up if fmt == "bvh" else up or data.up   # the BVH retarget already turned it Y up
        if isinstance(data, formats.Positions):
            poses, trans = inverse_kinematics(_to_y_up(data.joints, source_up), skeleton)
        else:
            poses, trans = _rotate_root(data.poses, data.trans, source_up)
        meta.update(data.info)
    meta["source_fps"] = float(source_fps)
    if floor:
        height = floor_height(forward_kinematics(poses, trans, skeleton), skeleton)
        trans = np.array(trans, dtype=np.float64)
        trans[:, 1] -= height
        meta["floor_shift_m"] = round(-height, 6)
    if skeleton is not default_skeleton():
        meta["skeleton"] = skeleton.to_dict()
    motion = Motion(poses, trans, source_fps, meta)
    motion.validate(path=path)
    return motion


def load_joint_track(path, *, fmt: str | None = None, fps: float | None = None, up: str | None = None,
                     floor: bool = True):
    """Joint positions for position-only consumers (metrics).

    Returns:
        joints (T, 24, 3) float64 metres, Y up, SMPL joint order (feet's floor contact at y = 0 unless
        ``floor=False``); and the frame rate (``fps`` if given, else the file's or format's, else None).
    Position files (``.csv``/``.npy``, Bailando, EDGE ``full_pose``) are used as they are (no IK); rotation
    files go through forward kinematics on the bundled skeleton.
    """
    path = Path(path)
    fmt = detect_format(path, fmt)
    fps = _check_fps(fps, path)
    if fmt in ("joints", "bailando", "edge"):
        data = {"joints": formats.read_joint_file, "bailando": formats.read_bailando_npy,
                "edge": formats.read_edge_pkl}[fmt](path)
        if isinstance(data, formats.Positions):
            joints = _to_y_up(data.joints, up or data.up)
        else:
            poses, trans = _rotate_root(data.poses, data.trans, up or data.up)
            joints = forward_kinematics(poses, trans)
        source_fps = fps or data.fps
        if floor:
            joints = joints.copy()
            joints[..., 1] -= floor_height(joints)
        return joints, source_fps
    motion = load_motion_file(path, fmt=fmt, fps=fps, up=up, floor=floor)
    return motion.joints().astype(np.float64), motion.fps


# ---------------------------------------------------------------------------------------------------- helpers
def _read(path: Path, fmt: str, skeleton: Skeleton, up: str | None):
    if fmt == "aistpp":
        return formats.read_aistpp_pkl(path)
    if fmt == "edge":
        return formats.read_edge_pkl(path)
    if fmt == "bailando":
        return formats.read_bailando_npy(path)
    if fmt == "joints":
        return formats.read_joint_file(path)
    return _read_bvh(path, skeleton, up or "y")


def _read_bvh(path: Path, skeleton: Skeleton, up: str) -> formats.Rotations:
    from e3d2_core.io.bvh import read_bvh
    from e3d2_core.retarget.to_smpl import retarget_bvh

    bvh = read_bvh(path)
    poses, trans, info = retarget_bvh(bvh, skeleton, up=up)
    # retarget_bvh already turned the motion Y up.
    return formats.Rotations(poses, trans, _snap_fps(bvh.fps), "y",
                             info={"bvh_skeleton": info["skeleton_map"], "bvh_leg_scale": round(info["leg_scale"], 6)})


def _snap_fps(fps: float) -> float:
    """BVH frame times are rounded (1/120 s -> 0.008333): 120.0048 fps is 120."""
    nearest = round(fps)
    return float(nearest) if nearest > 0 and abs(fps - nearest) < 1e-4 * fps else float(fps)


def _check_fps(fps, path) -> float | None:
    if fps is None:
        return None
    fps = float(fps)
    if not (np.isfinite(fps) and 0.0 < fps <= MAX_FPS):
        raise E3D2Error(f"--fps must be in (0, {MAX_FPS:g}], got {fps:g}", path=path)
    return fps


def _check_up(up: str) -> str:
    if up not in ("y", "z"):
        raise E3D2Error(f"up axis must be 'y' or 'z', got {up!r}")
    return up


def _to_y_up(joints: np.ndarray, up: str) -> np.ndarray:
    return joints @ _Z_UP.T if _check_up(up) == "z" else joints


def _rotate_root(poses: np.ndarray, trans: np.ndarray, up: str):
    """Z up -> Y up for a rotation motion: pre-multiply the pelvis orientation and rotate the translation."""
    if _check_up(up) == "y":
        return np.asarray(poses, dtype=np.float64), np.asarray(trans, dtype=np.float64)
    poses = np.array(poses, dtype=np.float64)
    root = rotations.axis_angle_to_matrix(poses[:, 0])
    poses[:, 0] = rotations.matrix_to_axis_angle(_Z_UP @ root)
    return poses, np.asarray(trans, dtype=np.float64) @ _Z_UP.T
