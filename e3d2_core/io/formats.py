"""Readers for each source format. Each returns raw data in the source's own frame, fully validated:

* :class:`Rotations` -- SMPL local axis-angle poses (T, 24, 3) and pelvis translation (T, 3) in metres;
* :class:`Positions` -- joint positions (T, 24, 3) in metres, SMPL joint order.

Converting up axes, inverse kinematics and floor placement happen in :mod:`e3d2_core.io`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from e3d2_core.errors import E3D2Error
from e3d2_core.io.safe_pickle import load_pickle, load_pickled_npy
from e3d2_core.skeleton import NUM_JOINTS

AISTPP_FPS = 60.0     # AIST++ motion annotations
BAILANDO_FPS = 60.0   # Bailando's output (pred_position), Y up
EDGE_FPS = 30.0       # EDGE's output, Z up

# Plausible pelvis-to-neck distance (metres) of a human on the SMPL joint order; SMPL's is 0.53 m.
_TORSO_RANGE = (0.25, 1.2)


@dataclass
class Rotations:
    poses: np.ndarray     # (T, 24, 3) float64 axis-angle
    trans: np.ndarray     # (T, 3) float64 metres
    fps: float | None
    up: str               # the source's up axis, "y" or "z"
    info: dict = field(default_factory=dict)   # facts for Motion.meta (e.g. the BVH skeleton map)


@dataclass
class Positions:
    joints: np.ndarray    # (T, 24, 3) float64 metres
    fps: float | None
    up: str
    info: dict = field(default_factory=dict)


def read_aistpp_pkl(path) -> Rotations:
    """AIST++ motion: ``smpl_poses`` (N, 72), ``smpl_trans`` (N, 3), ``smpl_scaling`` (1,); Y up, 60 fps.

    AIST++ stores translation multiplied by the body's scale; dividing by ``smpl_scaling`` gives metres.
    """
    data = _dict(load_pickle(path), path, "an AIST++ motion")
    poses = _array(data, "smpl_poses", path)
    trans = _array(data, "smpl_trans", path)
    scaling = _array(data, "smpl_scaling", path).reshape(-1)
    if scaling.size != 1 or not scaling[0] > 0:
        raise E3D2Error(f"smpl_scaling must be one positive number, got {scaling[:3]}", path=path)
    poses = _poses(poses, path, "smpl_poses")
    trans = _trans(trans, poses.shape[0], path, "smpl_trans")
    return Rotations(poses, trans / scaling[0], AISTPP_FPS, "y")


def read_edge_pkl(path) -> Rotations | Positions:
    """EDGE output: ``smpl_poses`` (T, 72) + ``smpl_trans`` (T, 3) when present, else ``full_pose`` (T, 24, 3)
    joint positions; Z up, 30 fps."""
    data = _dict(load_pickle(path), path, "an EDGE output")
    if "smpl_poses" in data and "smpl_trans" in data:
        poses = _poses(_array(data, "smpl_poses", path), path, "smpl_poses")
        trans = _trans(_array(data, "smpl_trans", path), poses.shape[0], path, "smpl_trans")
        return Rotations(poses, trans, EDGE_FPS, "z")
    if "full_pose" not in data:
        raise E3D2Error(f"not an EDGE output: needs 'full_pose' or 'smpl_poses'+'smpl_trans', has "
                        f"{', '.join(map(str, data)) or 'nothing'}", path=path)
    return Positions(joint_array(_array(data, "full_pose", path), path, "full_pose"), EDGE_FPS, "z")


def read_bailando_npy(path) -> Positions:
    """Bailando output: a pickled ``.npy`` holding ``{'pred_position': (T, 72)}``; Y up, 60 fps."""
    data = _dict(load_pickled_npy(path), path, "a Bailando output")
    return Positions(joint_array(_array(data, "pred_position", path), path, "pred_position"), BAILANDO_FPS, "y")


def read_joint_file(path) -> Positions:
    """Joint positions from ``.csv`` (comma-separated, T rows of 72 numbers, optional header row) or a plain
    ``.npy`` ((T, 72) or (T, 24, 3)); metres; no frame rate."""
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as err:
            if "pickle" in str(err):
                raise E3D2Error("this .npy holds pickled objects, not an array of joint positions; for "
                                "Bailando's output use --format bailando", path=path) from None
            raise E3D2Error(f"truncated or malformed .npy ({err})", path=path) from None
        except (OSError, EOFError) as err:
            raise E3D2Error(f"unreadable .npy ({err})", path=path) from None
    else:
        array = _read_csv(path)
    return Positions(joint_array(array, path, "joint positions"), None, "y")


def joint_array(array, path, what: str) -> np.ndarray:
    """Validate (T, 72) or (T, 24, 3) joint positions in metres; returns (T, 24, 3) float64."""
    array = np.asarray(array)
    if array.dtype.kind not in "fiu":
        raise E3D2Error(f"{what} must be numbers, got dtype {array.dtype}", path=path)
    if array.ndim == 2 and array.shape[1] == NUM_JOINTS * 3:
        array = array.reshape(-1, NUM_JOINTS, 3)
    if array.ndim != 3 or array.shape[1:] != (NUM_JOINTS, 3):
        raise E3D2Error(f"{what} must be (T, 72) or (T, 24, 3) (24 SMPL joints), got {array.shape}", path=path)
    if array.shape[0] < 1:
        raise E3D2Error(f"{what} has no frames", path=path)
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        bad = int(np.argwhere(~np.isfinite(array))[0, 0])
        raise E3D2Error(f"{what} contain NaN or infinite values (first at frame {bad})", path=path)
    torso = float(np.median(np.linalg.norm(array[:, 12] - array[:, 0], axis=-1)))
    if not _TORSO_RANGE[0] <= torso <= _TORSO_RANGE[1]:
        raise E3D2Error(f"{what} do not look like metres in SMPL joint order (pelvis-to-neck distance "
                        f"{torso:.3g}, expected {_TORSO_RANGE[0]}-{_TORSO_RANGE[1]} m)", path=path)
    return array


def _read_csv(path: Path) -> np.ndarray:
    with open(path, encoding="utf-8", errors="replace") as handle:
        first = handle.readline()
    skip = 0 if _numeric_row(first) else 1
    try:
        array = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2)
    except ValueError as err:
        raise E3D2Error(f"malformed CSV: {str(err).splitlines()[0]}", path=path) from None
    if array.size == 0:
        raise E3D2Error("CSV has no rows of numbers", path=path)
    return array


def _numeric_row(line: str) -> bool:
    try:
        [float(v) for v in line.split(",")]
        return True
    except ValueError:
        return False


def _dict(value, path, what: str) -> dict:
    if not isinstance(value, dict):
        raise E3D2Error(f"not {what}: expected a dict of arrays, found {type(value).__name__}", path=path)
    return value


def _array(data: dict, key: str, path) -> np.ndarray:
    if key not in data:
        raise E3D2Error(f"missing '{key}' (has {', '.join(map(str, data)) or 'nothing'})", path=path)
    try:
        array = np.asarray(data[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise E3D2Error(f"'{key}' is not an array of numbers", path=path) from None
    if not np.isfinite(array).all():
        raise E3D2Error(f"'{key}' contains NaN or infinite values", path=path)
    return array


def _poses(poses: np.ndarray, path, key: str) -> np.ndarray:
    if poses.ndim == 2 and poses.shape[1] == NUM_JOINTS * 3:
        poses = poses.reshape(-1, NUM_JOINTS, 3)
    if poses.ndim != 3 or poses.shape[1:] != (NUM_JOINTS, 3) or poses.shape[0] < 1:
        raise E3D2Error(f"'{key}' must be (T, 72) axis-angle with T >= 1, got {poses.shape}", path=path)
    return poses


def _trans(trans: np.ndarray, frames: int, path, key: str) -> np.ndarray:
    if trans.shape != (frames, 3):
        raise E3D2Error(f"'{key}' must be ({frames}, 3) to match the poses, got {trans.shape}", path=path)
    return trans


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise E3D2Error("no such file", path=path)
    if path.stat().st_size == 0:
        raise E3D2Error("file is empty", path=path)
