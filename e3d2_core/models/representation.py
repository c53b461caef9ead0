"""The product's motion representation: what the VQ-VAE reads and writes, frame by frame.

A Motion (SMPL local axis-angle ``poses`` (T,24,3), pelvis ``trans`` (T,3) metres, Y up, facing +Z) becomes two
per-frame feature tensors, one per body half (Bailando's split, ``skeleton.LOWER_JOINTS`` / ``UPPER_JOINTS``):

**Heading.** The body's heading ψ_t is the yaw of the pelvis's forward axis: f = R_t·(0,0,1),
ψ_t = atan2(f_x, f_z) (0 = facing +Z). H_t = rotation by ψ_t about +Y. R_t is the global orientation (SMPL
joint 0's rotation).

**Lower half, ``LOWER_DIM`` = 58 channels per frame, in this order:**

====  =======  ==========================================================================================
 ch    name     meaning
====  =======  ==========================================================================================
 0-5   orient   6D (first two matrix columns, ``rotations.matrix_to_rot6d``) of H_tᵀ·R_t: the global
               orientation with the heading removed (tilt and roll; its own heading is 0)
 6-53  joints   6D local rotations of the 8 lower joints after the pelvis, ``LOWER_JOINTS[1:]`` order
               (hips, knees, ankles, feet)
 54-55 vel      root velocity on the floor in the heading frame, m/s: (H_tᵀ·(trans_{t+1} − trans_t))_{x,z}·fps
 56    height   pelvis height trans_t.y in metres
 57    yaw      heading rate (ψ_{t+1} − ψ_t, wrapped to (−π, π]) · fps, rad/s
====  =======  ==========================================================================================

Channels 0-53 are the lower ``pose`` part (``LOWER_POSE_DIM``) that the VQ-VAE encoder reads; 54-57 are the
``root`` part (``ROOT_DIM``) that its root branch predicts. For the last frame, vel and yaw copy the frame before
(Bailando's convention); a one-frame motion has zero velocity.

**Upper half, ``UPPER_DIM`` = 90 channels:** 6D local rotations of the 15 ``UPPER_JOINTS``, in that order.

**Decoding** integrates the root: ψ_0 and the floor position (x, z) of frame 0 are given (default 0 and the
origin), ψ_{t+1} = ψ_t + yaw_t/fps, trans_{t+1}.xz = trans_t.xz + (H_t·vel_t)/fps, trans_t.y = height_t,
R_t = H_t·orient_t. Any 6-vector decodes to a rotation (Gram-Schmidt), so network outputs always give a valid
pose. features → motion → features is exact (up to float rounding) whenever orient carries no heading of its own,
which holds for every feature tensor made by :func:`encode`; motion → features → motion is exact too.

All functions are batched over leading dimensions, work in the input's dtype (use float64 for exactness checks)
and are differentiable.
"""
from __future__ import annotations

import math

import torch

from e3d2_core import rotations
from e3d2_core.skeleton import LOWER_JOINTS, NUM_JOINTS, UPPER_JOINTS

LOWER_POSE_DIM = 6 + 6 * (len(LOWER_JOINTS) - 1)   # 54: orient + lower joints
ROOT_DIM = 4                                        # vel x, vel z, height, yaw rate
LOWER_DIM = LOWER_POSE_DIM + ROOT_DIM               # 58
UPPER_DIM = 6 * len(UPPER_JOINTS)                   # 90


def yaw_matrix(angle: torch.Tensor) -> torch.Tensor:
    """(...,) yaw angles (radians, about +Y) -> (..., 3, 3) rotation matrices."""
    c, s = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    return torch.stack([torch.stack([c, zero, s], -1),
                        torch.stack([zero, one, zero], -1),
                        torch.stack([-s, zero, c], -1)], -2)


def heading(global_orient: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) pelvis rotation -> (...,) heading ψ = atan2(f_x, f_z) of its forward (+Z) axis."""
    forward = global_orient[..., :, 2]
    return torch.atan2(forward[..., 0], forward[..., 2])


def _wrap(angle: torch.Tensor) -> torch.Tensor:
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def _forward_difference(x: torch.Tensor, frames: int | None = None) -> torch.Tensor:
    """(..., T, C) -> (..., T, C): x_{t+1} − x_t, the last frame copying the one before (zeros if T = 1).

    With ``frames`` given, ``x`` already holds the T−1 differences and only the copy is appended."""
    if frames is None:
        if x.shape[-2] < 2:
            return torch.zeros_like(x)
        x = x[..., 1:, :] - x[..., :-1, :]
    elif frames < 2:
        return x.new_zeros(x.shape[:-2] + (frames, x.shape[-1]))
    return torch.cat([x, x[..., -1:, :]], dim=-2)


def encode(poses: torch.Tensor, trans: torch.Tensor, fps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Motion -> (lower (..., T, 58), upper (..., T, 90)) features.

    Args:
        poses: (..., T, 24, 3) axis-angle local rotations (radians).
        trans: (..., T, 3) pelvis translation in metres.
        fps: frames per second (velocities are per second).
    """
    poses, trans = torch.as_tensor(poses), torch.as_tensor(trans)
    local = rotations.axis_angle_to_matrix(poses)                     # (..., T, 24, 3, 3)
    root = local[..., 0, :, :]
    psi = heading(root)                                                # (..., T)
    head = yaw_matrix(psi)
    orient = head.transpose(-1, -2) @ root
    vel = _forward_difference((head[..., :-1, :, :].transpose(-1, -2)                  # (..., T, 3) m/s,
                               @ (trans[..., 1:, :] - trans[..., :-1, :])[..., None])[..., 0] * fps,
                              frames=trans.shape[-2])                                # frame t's own heading
    yaw_rate = _wrap(_forward_difference(psi[..., None]))[..., 0] * fps
    lower = torch.cat([rotations.matrix_to_rot6d(orient),
                       rotations.matrix_to_rot6d(local[..., LOWER_JOINTS[1:], :, :]).flatten(-2),
                       vel[..., [0, 2]], trans[..., 1:2], yaw_rate[..., None]], dim=-1)
    upper = rotations.matrix_to_rot6d(local[..., UPPER_JOINTS, :, :]).flatten(-2)
    return lower, upper


def local_matrices(lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """(..., T, 58|54), (..., T, 90) -> (..., T, 24, 3, 3) local rotations with the heading-free pelvis orientation.

    Only the pose channels are read, so the root part may be absent (the VQ-VAE's pose decoder output).
    """
    mats = lower.new_zeros(lower.shape[:-1] + (NUM_JOINTS, 3, 3))
    mats[..., 0, :, :] = rotations.rot6d_to_matrix(lower[..., 0:6])
    lower_j = lower[..., 6:LOWER_POSE_DIM].unflatten(-1, (len(LOWER_JOINTS) - 1, 6))
    mats[..., list(LOWER_JOINTS[1:]), :, :] = rotations.rot6d_to_matrix(lower_j)
    mats[..., list(UPPER_JOINTS), :, :] = rotations.rot6d_to_matrix(upper.unflatten(-1, (len(UPPER_JOINTS), 6)))
    return mats


def integrate_root(root: torch.Tensor, fps: float, *, init_xz=None, init_heading=None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., T, 4) root channels -> (trans (..., T, 3) metres, heading (..., T) radians).

    ``init_xz`` (..., 2) is frame 0's floor position (default the origin); ``init_heading`` (...,) its heading
    (default 0, facing +Z).
    """
    batch = root.shape[:-2]
    psi0 = root.new_zeros(batch) if init_heading is None else torch.as_tensor(init_heading, dtype=root.dtype,
                                                                                device=root.device).expand(batch)
    xz0 = root.new_zeros(batch + (2,)) if init_xz is None else torch.as_tensor(init_xz, dtype=root.dtype,
                                                                                 device=root.device).expand(batch + (2,))
    yaw_steps = root[..., :-1, 3] / fps
    psi = torch.cat([psi0[..., None], psi0[..., None] + torch.cumsum(yaw_steps, -1)], -1)
    vel = torch.stack([root[..., 0], torch.zeros_like(root[..., 0]), root[..., 1]], -1)   # heading frame
    world_step = (yaw_matrix(psi) @ vel[..., None])[..., 0] / fps                           # (..., T, 3)
    xz = torch.cat([xz0[..., None, :], xz0[..., None, :] + torch.cumsum(world_step[..., :-1, [0, 2]], -2)], -2)
    trans = torch.stack([xz[..., 0], root[..., 2], xz[..., 1]], -1)
    return trans, psi


def decode(lower: torch.Tensor, upper: torch.Tensor, fps: float, *, init_xz=None, init_heading=None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(lower (..., T, 58), upper (..., T, 90)) -> (poses (..., T, 24, 3) axis-angle, trans (..., T, 3) metres)."""
    mats = local_matrices(lower, upper)
    trans, psi = integrate_root(lower[..., LOWER_POSE_DIM:], fps, init_xz=init_xz, init_heading=init_heading)
    mats[..., 0, :, :] = yaw_matrix(psi) @ mats[..., 0, :, :]
    return rotations.matrix_to_axis_angle(mats), trans
