"""Rotations and SMPL forward kinematics in numpy alone.

The retargeting code runs inside Blender's own Python, which has numpy but neither torch nor scipy, so it cannot
use :mod:`e3d2_core.rotations` or :mod:`e3d2_core.skeleton` (both import torch). These are the few pieces it
needs, batched over leading axes. Quaternions are (w, x, y, z), Blender's order; matrices act on column vectors.
"""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np

_TINY = 1e-9


# ---------------------------------------------------------------------------------------------- rotations
def axis_angle_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle (radians) -> (..., 3, 3) rotation matrices (Rodrigues)."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    angle = np.linalg.norm(rotvec, axis=-1, keepdims=True)
    axis = rotvec / np.maximum(angle, _TINY)
    x, y, z = np.moveaxis(axis, -1, 0)
    cos, sin = np.cos(angle[..., 0]), np.sin(angle[..., 0])
    one = 1.0 - cos
    return np.stack([
        cos + x * x * one, x * y * one - z * sin, x * z * one + y * sin,
        y * x * one + z * sin, cos + y * y * one, y * z * one - x * sin,
        z * x * one - y * sin, z * y * one + x * sin, cos + z * z * one,
    ], axis=-1).reshape(rotvec.shape[:-1] + (3, 3))


def matrix_to_quaternion(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation -> (..., 4) (w, x, y, z) with w >= 0 (Shepperd's method, stable everywhere)."""
    m = np.asarray(matrix, dtype=np.float64)
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    candidates = np.stack([
        np.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + 2 * m[..., 0, 0] - trace, m[..., 0, 1] + m[..., 1, 0],
                  m[..., 0, 2] + m[..., 2, 0]], -1),
        np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 + 2 * m[..., 1, 1] - trace,
                  m[..., 1, 2] + m[..., 2, 1]], -1),
        np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                  1 + 2 * m[..., 2, 2] - trace], -1),
    ], axis=-2)  # each row is 4 q times its largest component
    best = np.argmax(np.stack([trace, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1), axis=-1)
    q = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(quat: np.ndarray) -> np.ndarray:
    """(..., 4) (w, x, y, z), any length > 0 -> (..., 3, 3)."""
    q = np.asarray(quat, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], axis=-1).reshape(q.shape[:-1] + (3, 3))


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) axis-angle with the angle in [0, pi]."""
    q = matrix_to_quaternion(matrix)
    sin_half = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(sin_half, q[..., :1])
    return q[..., 1:] * np.where(sin_half > 1e-12, angle / np.maximum(sin_half, 1e-12), 2.0)


def continuous_quaternions(quat: np.ndarray) -> np.ndarray:
    """Flip signs along time (axis 0) so consecutive quaternions lie in one hemisphere (no F-curve jumps)."""
    quat = np.array(quat, dtype=np.float64, copy=True)
    flips = np.cumsum(np.sum(quat[1:] * quat[:-1], axis=-1) < 0, axis=0) % 2
    quat[1:][flips.astype(bool)] *= -1
    return quat


def quaternion_slerp(a: np.ndarray, b: np.ndarray, t) -> np.ndarray:
    """Spherical interpolation between (..., 4) unit quaternions at fraction ``t`` (broadcast to (...,))."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    t = np.asarray(t, np.float64)[..., None]
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin = np.sin(theta)
    near = sin < 1e-6
    wa = np.where(near, 1.0 - t, np.sin((1.0 - t) * theta) / np.where(near, 1.0, sin))
    wb = np.where(near, t, np.sin(t * theta) / np.where(near, 1.0, sin))
    out = wa * a + wb * b
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def matrix_to_euler(matrix: np.ndarray, order: str = "XYZ") -> np.ndarray:
    """(..., 3, 3) -> (..., 3) Euler angles (radians) for Blender's rotation modes: ``"XYZ"`` means
    R = Rz @ Ry @ Rx (X applied first); angles are listed as (x, y, z) whatever the order, as Blender stores them.
    Along a leading time axis, unwrap them with :func:`continuous_euler`."""
    m = np.asarray(matrix, np.float64)
    i, j, k = ("XYZ".index(a) for a in order)
    sign = 1.0 if (i, j, k) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)) else -1.0
    first = np.arctan2(sign * m[..., k, j], m[..., k, k])
    second = np.arcsin(np.clip(-sign * m[..., k, i], -1.0, 1.0))
    third = np.arctan2(sign * m[..., j, i], m[..., i, i])
    out = np.empty(m.shape[:-2] + (3,))
    out[..., i], out[..., j], out[..., k] = first, second, third
    return out


def euler_to_matrix(angles: np.ndarray, order: str = "XYZ") -> np.ndarray:
    """(..., 3) Euler angles (x, y, z) in Blender's ``order`` -> (..., 3, 3); inverse of :func:`matrix_to_euler`."""
    angles = np.asarray(angles, np.float64)
    out = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3))
    for axis in order:                      # the first axis of the order is applied first
        vector = np.zeros(angles.shape)
        a = "XYZ".index(axis)
        vector[..., a] = angles[..., a]
        out = axis_angle_to_matrix(vector) @ out
    return out


def continuous_euler(angles: np.ndarray) -> np.ndarray:
    """(T, ..., 3) Euler angles unwrapped along time (no 2 pi jumps between frames)."""
    return np.unwrap(np.asarray(angles, np.float64), axis=0)


def rotation_about_up(angle: float) -> np.ndarray:
    """(3, 3) rotation by ``angle`` radians about +Y (counter-clockwise seen from above)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def swing_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3, 3) smallest rotations turning direction ``a`` onto direction ``b`` (both (..., 3)).

    A zero-length direction gives the identity; opposite directions turn by pi about an axis perpendicular to a.
    """
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    na, nb = np.linalg.norm(a, axis=-1, keepdims=True), np.linalg.norm(b, axis=-1, keepdims=True)
    valid = (na[..., 0] > _TINY) & (nb[..., 0] > _TINY)
    ua, ub = a / np.maximum(na, _TINY), b / np.maximum(nb, _TINY)
    cos = np.sum(ua * ub, axis=-1)
    vx = skew(np.cross(ua, ub))
    rot = np.eye(3) + vx + (vx @ vx) / np.maximum(1.0 + cos, 1e-12)[..., None, None]
    helper = np.eye(3)[np.argmin(np.abs(ua), axis=-1)]
    perp = np.cross(ua, helper)
    perp /= np.maximum(np.linalg.norm(perp, axis=-1, keepdims=True), _TINY)
    flip = 2.0 * perp[..., :, None] * perp[..., None, :] - np.eye(3)
    rot = np.where((cos < -1.0 + 1e-9)[..., None, None], flip, rot)
    return np.where(valid[..., None, None], rot, np.eye(3))


def kabsch_rotation(rest: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation best turning the directions ``rest`` (C, 3) onto ``wanted`` (..., C, 3) (unit-weighted)."""
    rest_u = rest / np.maximum(np.linalg.norm(rest, axis=-1, keepdims=True), _TINY)
    wanted_u = wanted / np.maximum(np.linalg.norm(wanted, axis=-1, keepdims=True), _TINY)
    covariance = np.einsum("...ci,cj->...ij", wanted_u, rest_u)
    u, _, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(u @ vt))
    sign = np.where(sign == 0, 1.0, sign)
    correction = np.broadcast_to(np.eye(3), covariance.shape).copy()
    correction[..., 2, 2] = sign
    return u @ correction @ vt


def skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) cross-product matrices."""
    zero = np.zeros(v.shape[:-1])
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)


def snap_to_axes(rotation: np.ndarray, tolerance: float = 0.35) -> np.ndarray:
    """The nearest axis-aligned rotation when ``rotation`` (3, 3) is within ``tolerance`` of one, else itself."""
    snapped = np.round(rotation)
    if abs(np.linalg.det(snapped) - 1.0) < 1e-9 and np.allclose(snapped @ snapped.T, np.eye(3)) \
            and np.abs(rotation - snapped).max() < tolerance:
        return snapped
    return rotation


# ---------------------------------------------------------------------------------------------- SMPL
@lru_cache(maxsize=1)
def smpl_data() -> tuple[tuple[str, ...], tuple[int, ...], np.ndarray]:
    """The bundled SMPL skeleton: (24 names, 24 parents (-1 root), (24, 3) offsets in metres, Y up, facing +Z)."""
    from e3d2_core.paths import asset_path

    data = json.loads(asset_path("smpl_skeleton.json").read_text())
    offsets = np.asarray(data["offsets"], dtype=np.float64)
    offsets.setflags(write=False)
    return tuple(data["names"]), tuple(int(p) for p in data["parents"]), offsets


def smpl_rest_joints(offsets: np.ndarray | None = None) -> np.ndarray:
    """(24, 3) rest (T-pose) joint positions, pelvis at ``offsets[0]``."""
    _, parents, default = smpl_data()
    offsets = default if offsets is None else np.asarray(offsets, np.float64)
    joints = np.zeros((len(parents), 3))
    for j, p in enumerate(parents):
        joints[j] = offsets[j] + (joints[p] if p >= 0 else 0.0)
    return joints


def smpl_forward(poses: np.ndarray, trans: np.ndarray, offsets: np.ndarray | None = None):
    """World rotations and positions of the SMPL joints.

    Args:
        poses: (T, 24, 3) local axis-angle, radians.
        trans: (T, 3) root translation, metres.
        offsets: (24, 3) rest offsets (the bundled skeleton's when None).
    Returns:
        world (T, 24, 3, 3) rotations and positions (T, 24, 3), Y up.
    """
    _, parents, default = smpl_data()
    offsets = default if offsets is None else np.asarray(offsets, np.float64)
    local = axis_angle_to_matrix(poses)
    world = np.empty_like(local)
    positions = np.empty(local.shape[:-1])
    world[:, 0] = local[:, 0]
    positions[:, 0] = np.asarray(trans, np.float64) + offsets[0]
    for j in range(1, len(parents)):
        p = parents[j]
        world[:, j] = world[:, p] @ local[:, j]
        positions[:, j] = positions[:, p] + world[:, p] @ offsets[j]
    return world, positions


def smpl_local(world: np.ndarray) -> np.ndarray:
    """(T, 24, 3, 3) world rotations -> (T, 24, 3) local axis-angle (inverse of :func:`smpl_forward`'s chain)."""
    _, parents, _ = smpl_data()
    local = np.empty_like(world)
    local[:, 0] = world[:, 0]
    for j in range(1, len(parents)):
        local[:, j] = np.swapaxes(world[:, parents[j]], -1, -2) @ world[:, j]
    return matrix_to_axis_angle(local)
