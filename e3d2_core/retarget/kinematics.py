"""The rotation geometry of retargeting, in numpy alone (it runs inside Blender's own Python): Euler angles in
Blender's modes, turns about the vertical, the smallest rotation between two directions, Kabsch alignment,
snapping to the axes. Batched over leading axes; matrices act on column vectors.

The conversions between axis-angle, quaternions and matrices are :mod:`e3d2_core.rotations`'s, SMPL forward
kinematics is :mod:`e3d2_core.skeleton`'s (both torch-free too).
"""
from __future__ import annotations

import numpy as np

from e3d2_core import rotations

_TINY = 1e-9


# ---------------------------------------------------------------------------------------------- rotations
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
        out = rotations.axis_angle_to_matrix(vector) @ out
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
