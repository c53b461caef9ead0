"""The SMPL kinematic tree: joint names, parents, rest offsets, and forward kinematics.

Coordinates are metres, **Y up**, the body facing +Z in its rest pose (the SMPL/AIST++ convention). Joint
``j``'s rest position relative to its parent is ``offsets[j]``; ``offsets[0]`` is the pelvis's rest position
(zero for the bundled skeleton, so a Motion's ``trans`` is the pelvis position). Forward kinematics exists in
numpy and torch with the same results (float64 agreement to ~1e-12; float32 to ~1e-6).

This module imports neither torch nor scipy (the Blender add-on uses it); the torch functions import torch when
called.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from e3d2_core import rotations
from e3d2_core.errors import E3D2Error
from e3d2_core.paths import asset_path

NUM_JOINTS = 24

# SMPL joint indices of the two halves (Bailando's split): the lower half carries the pelvis.
LOWER_JOINTS = (0, 1, 2, 4, 5, 7, 8, 10, 11)
UPPER_JOINTS = (3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23)


@dataclass(frozen=True)
class Skeleton:
    """A 24-joint SMPL tree. ``offsets`` is (24, 3) float64 in metres."""

    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray = field(repr=False)
    source: str = "bundled SMPL offsets"

    def __post_init__(self):
        offsets = np.asarray(self.offsets, dtype=np.float64)
        if offsets.shape != (NUM_JOINTS, 3) or len(self.names) != NUM_JOINTS or len(self.parents) != NUM_JOINTS:
            raise E3D2Error(f"a skeleton needs {NUM_JOINTS} joints with 3-d offsets, got {offsets.shape}")
        if any(p >= j for j, p in enumerate(self.parents)):
            raise E3D2Error("skeleton parents must precede their children")
        object.__setattr__(self, "offsets", offsets)

    @property
    def mirror_map(self) -> np.ndarray:
        """Index map that swaps each ``left_*`` joint with its ``right_*`` twin."""
        index = {name: i for i, name in enumerate(self.names)}
        swap = {"left_": "right_", "right_": "left_"}
        out = np.arange(NUM_JOINTS)
        for i, name in enumerate(self.names):
            for a, b in swap.items():
                if name.startswith(a):
                    out[i] = index[b + name[len(a):]]
        return out

    def rest_joints(self) -> np.ndarray:
        """(24, 3) joint positions in the rest (T-) pose with the pelvis at ``offsets[0]``."""
        return forward_kinematics(np.zeros((1, NUM_JOINTS, 3)), np.zeros((1, 3)), self)[0]

    def bone_lengths(self) -> np.ndarray:
        """(24,) length of each joint's offset from its parent (0 for the pelvis)."""
        lengths = np.linalg.norm(self.offsets, axis=-1)
        lengths[0] = 0.0
        return lengths

    def to_dict(self) -> dict:
        return {"names": list(self.names), "parents": list(self.parents),
                "offsets": self.offsets.tolist(), "source": self.source}

    @classmethod
    def from_dict(cls, data: dict) -> "Skeleton":
        try:
            return cls(tuple(data["names"]), tuple(int(p) for p in data["parents"]),
                       np.asarray(data["offsets"], dtype=np.float64), str(data.get("source", "")))
        except (KeyError, TypeError, ValueError) as err:
            raise E3D2Error(f"malformed skeleton description ({err})") from None


@lru_cache(maxsize=1)
def default_skeleton() -> Skeleton:
    """The bundled SMPL skeleton (``assets/smpl_skeleton.json``)."""
    data = json.loads(asset_path("smpl_skeleton.json").read_text())
    return Skeleton.from_dict({**data, "source": "bundled SMPL offsets"})


def skeleton_from_smpl_model(model_path, betas=None, gender: str = "neutral") -> Skeleton:
    """The exact skeleton of a body shape, from a user's licensed SMPL model file, via ``smplx``.

    ``model_path`` is an SMPL ``.pkl``/``.npz`` file (or a folder that smplx understands); ``betas`` is up to
    10 shape coefficients (zeros when omitted). The pelvis offset is set to 0, so ``trans`` stays the pelvis.
    """
    import smplx  # imported here: only this path needs it
    import torch

    path = Path(model_path)
    if not path.exists():
        raise E3D2Error("SMPL model file not found", path=path)
    betas_t = torch.zeros(1, 10) if betas is None else torch.as_tensor(betas, dtype=torch.float32).reshape(1, -1)
    try:
        kwargs = {"model_path": str(path), "gender": gender, "num_betas": betas_t.shape[1]}
        if path.is_file():
            kwargs["ext"] = path.suffix.lstrip(".")
        model = smplx.SMPL(**kwargs)
    except Exception as err:  # smplx raises assorted errors for unreadable or foreign files
        raise E3D2Error(f"not a usable SMPL model file ({type(err).__name__}: {err})", path=path) from None
    with torch.no_grad():
        shaped = model.v_template + torch.einsum("vcb,b->vc", model.shapedirs[..., : betas_t.shape[1]], betas_t[0])
        joints = torch.einsum("jv,vc->jc", model.J_regressor, shaped).double().numpy()[:NUM_JOINTS]
    parents = tuple(int(p) for p in model.parents[:NUM_JOINTS].tolist())
    parents = (-1,) + parents[1:]
    if parents != default_skeleton().parents:
        raise E3D2Error("the model's kinematic tree is not SMPL's 24-joint tree", path=path)
    return Skeleton(default_skeleton().names, parents, offsets_from_joints(joints, parents),
                    source=f"smplx model {path.name}")


def skeleton_with_offsets(offsets: np.ndarray | None) -> Skeleton:
    """The bundled tree with other (24, 3) rest ``offsets`` in metres (a body shape's); the bundled skeleton when
    None."""
    if offsets is None:
        return default_skeleton()
    bundled = default_skeleton()
    return Skeleton(bundled.names, bundled.parents, offsets, source="given offsets")


def rest_positions(offsets: np.ndarray, parents) -> np.ndarray:
    """(J, 3) rest (T-pose) joint positions: the (J, 3) ``offsets`` accumulated down the tree (parents precede
    their children; -1 for the root)."""
    offsets = np.asarray(offsets, dtype=np.float64)
    joints = np.zeros((len(parents), 3))
    for j, p in enumerate(parents):
        joints[j] = offsets[j] + (joints[p] if p >= 0 else 0.0)
    return joints


def offsets_from_joints(joints: np.ndarray, parents) -> np.ndarray:
    """(J, 3) rest offsets from (J, 3) rest joint positions (e.g. an SMPL body's), the root's set to 0 so that a
    Motion's ``trans`` stays the pelvis position."""
    joints = np.asarray(joints, dtype=np.float64)
    offsets = joints - joints[[max(p, 0) for p in parents]]
    offsets[0] = 0.0
    return offsets


def forward_kinematics(poses: np.ndarray, trans: np.ndarray, skeleton: Skeleton | None = None) -> np.ndarray:
    """Joint positions from local rotations (numpy).

    Args:
        poses: (..., 24, 3) local axis-angle rotations in radians, SMPL joint order.
        trans: (..., 3) root translation in metres.
        skeleton: the tree to use; the bundled SMPL skeleton when None.
    Returns:
        (..., 24, 3) float64 joint positions in metres.
    """
    return world_pose(poses, trans, skeleton)[1]


def world_pose(poses: np.ndarray, trans: np.ndarray, skeleton: Skeleton | None = None):
    """World rotations and positions of the joints (numpy): :func:`forward_kinematics` with the rotations.

    Args:
        poses: (..., 24, 3) local axis-angle rotations in radians, SMPL joint order.
        trans: (..., 3) root translation in metres.
        skeleton: the tree to use; the bundled SMPL skeleton when None.
    Returns:
        world (..., 24, 3, 3) float64 rotation of each joint, positions (..., 24, 3) float64 in metres.
    """
    skeleton = skeleton or default_skeleton()
    poses = np.asarray(poses, dtype=np.float64)
    trans = np.asarray(trans, dtype=np.float64)
    _check_shapes(poses.shape, trans.shape)
    world, positions = _chain(rotations.axis_angle_to_matrix(poses), trans, skeleton, skeleton.offsets)
    return np.stack(world, -3), np.stack(positions, -2)


def forward_kinematics_torch(poses, trans, skeleton: Skeleton | None = None, *, rotation_matrices: bool = False):
    """Joint positions from local rotations (torch, differentiable, any device and dtype).

    Args:
        poses: (..., 24, 3) axis-angle tensor, or (..., 24, 3, 3) matrices with ``rotation_matrices=True``.
        trans: (..., 3) root translation in metres.
    Returns:
        (..., 24, 3) joint positions in metres, ``poses``' dtype and device.
    """
    import torch

    skeleton = skeleton or default_skeleton()
    local = poses if rotation_matrices else rotations.axis_angle_to_matrix(poses)
    _check_shapes(local.shape[:-1], trans.shape)
    offsets = torch.as_tensor(skeleton.offsets, dtype=local.dtype, device=local.device)
    return torch.stack(_chain(local, trans, skeleton, offsets)[1], -2)


def global_rotations(local, skeleton: Skeleton | None = None):
    """(..., 24, 3, 3) local rotation matrices -> world rotation of each joint (numpy or torch)."""
    skeleton = skeleton or default_skeleton()
    world = [local[..., 0, :, :]]
    for j in range(1, NUM_JOINTS):
        world.append(world[skeleton.parents[j]] @ local[..., j, :, :])
    if isinstance(local, np.ndarray):
        return np.stack(world, -3)
    import torch

    return torch.stack(world, -3)


def local_pose(world: np.ndarray, skeleton: Skeleton | None = None) -> np.ndarray:
    """(..., 24, 3, 3) world rotations -> (..., 24, 3) local axis-angle: the inverse of :func:`world_pose`'s chain."""
    skeleton = skeleton or default_skeleton()
    world = np.asarray(world, dtype=np.float64)
    local = np.empty_like(world)
    local[..., 0, :, :] = world[..., 0, :, :]
    for j in range(1, NUM_JOINTS):
        local[..., j, :, :] = np.swapaxes(world[..., skeleton.parents[j], :, :], -1, -2) @ world[..., j, :, :]
    return rotations.matrix_to_axis_angle(local)


def _chain(local, trans, skeleton: Skeleton, offsets):
    """Walk the tree (numpy or torch): world rotation = parent world @ local; position = parent + parent world @
    offset. Returns the lists of per-joint world rotations and positions."""
    world_rot = [local[..., 0, :, :]]
    positions = [trans + offsets[0]]
    for j in range(1, NUM_JOINTS):
        p = skeleton.parents[j]
        positions.append(positions[p] + (world_rot[p] @ offsets[j][:, None])[..., 0])
        world_rot.append(world_rot[p] @ local[..., j, :, :])
    return world_rot, positions


def _check_shapes(pose_shape, trans_shape):
    if tuple(pose_shape[-2:]) != (NUM_JOINTS, 3) or tuple(trans_shape[-1:]) != (3,) \
            or tuple(pose_shape[:-2]) != tuple(trans_shape[:-1]):
        raise E3D2Error(f"forward kinematics needs poses (..., 24, 3) and trans (..., 3) with the same batch "
                        f"shape, got {tuple(pose_shape)} and {tuple(trans_shape)}")


def body_frame(joints: np.ndarray) -> np.ndarray:
    """(..., T, 24, 3) world positions -> the same turned about the pelvis by minus the body's heading (the hip
    line's yaw): limbs moving and the body travelling count as motion, turning does not -- so a spin is not
    taken for fast motion (the beat guide) nor for a wide range of poses (the plausibility measures)."""
    across = joints[..., 1, :] - joints[..., 2, :]                          # left hip - right hip
    yaw = np.arctan2(across[..., 0], across[..., 2])[..., None]             # (..., T, 1)
    local = joints - joints[..., :1, :]
    cos, sin = np.cos(yaw), np.sin(yaw)
    x, z = local[..., 0], local[..., 2]
    turned = np.stack([cos * x - sin * z, local[..., 1], sin * x + cos * z], -1)
    return turned + joints[..., :1, :]
