"""Rotation conversions in numpy, with torch twins for tensors (:mod:`e3d2_core.rotations_torch`).

Conventions: axis-angle is a 3-vector whose norm is the angle in radians; quaternions are (w, x, y, z), Blender's
order; matrices act on column vectors (``v' = R @ v``); the 6D representation is the first two *columns* of the
matrix, flattened as (c0x, c0y, c0z, c1x, c1y, c1z) -- Zhou et al., CVPR 2019. Every function takes any number of
leading batch dimensions.

Numpy arrays (and anything array-like) are computed here in float64 and returned as numpy; torch tensors go to the
torch twin of the same name, which uses the same formulas. This module imports neither torch nor scipy, so the
Blender add-on and every other torch-free reader of Motions can use it.
"""
from __future__ import annotations

import functools
import sys

import numpy as np

_EPS = 1e-8


def _is_tensor(x) -> bool:
    # torch cannot have made x unless it is already imported: no import here, so numpy callers never load torch
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _torch_twin(fn):
    """Hand torch tensors to the function of the same name in :mod:`e3d2_core.rotations_torch`."""

    @functools.wraps(fn)
    def dispatch(x, *args, **kwargs):
        if _is_tensor(x):
            from e3d2_core import rotations_torch

            return getattr(rotations_torch, fn.__name__)(x, *args, **kwargs)
        return fn(x, *args, **kwargs)

    return dispatch


def _norm(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x, axis=-1, keepdims=True)


@_torch_twin
def axis_angle_to_quaternion(aa) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 4) unit quaternion (w, x, y, z)."""
    aa = np.asarray(aa, dtype=np.float64)
    angle = _norm(aa)
    half = 0.5 * angle
    # sin(x/2)/x, with its Taylor series near zero (the torch twin's gradients stay finite there)
    scale = np.where(angle < 1e-4, 0.5 - angle * angle / 48.0, np.sin(half) / np.maximum(angle, 1e-12))
    return np.concatenate([np.cos(half), aa * scale], axis=-1)


@_torch_twin
def quaternion_to_axis_angle(q) -> np.ndarray:
    """(..., 4) quaternion (w, x, y, z), not necessarily unit -> (..., 3) axis-angle with angle in [0, pi]."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.maximum(_norm(q), _EPS)
    q = np.where(q[..., :1] < 0, -q, q)  # same rotation, angle <= pi
    xyz = q[..., 1:]
    sin_half = _norm(xyz)
    angle = 2.0 * np.arctan2(sin_half, q[..., :1])
    scale = np.where(sin_half < 1e-6, 2.0 / np.maximum(q[..., :1], _EPS), angle / np.maximum(sin_half, 1e-12))
    return xyz * scale


@_torch_twin
def quaternion_to_matrix(q) -> np.ndarray:
    """(..., 4) quaternion (w, x, y, z), any length > 0 -> (..., 3, 3) rotation matrix."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.maximum(_norm(q), _EPS)
    w, x, y, z = np.moveaxis(q, -1, 0)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ]
    return np.stack(rows, axis=-1).reshape(q.shape[:-1] + (3, 3))


@_torch_twin
def matrix_to_quaternion(m) -> np.ndarray:
    """(..., 3, 3) rotation matrix -> (..., 4) unit quaternion (w, x, y, z) with w >= 0.

    Picks, per matrix, the best-conditioned of the four classic formulas (largest denominator).
    """
    m = np.asarray(m, dtype=np.float64)
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    candidates = np.stack([
        np.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
        np.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
        np.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
        np.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
    ], axis=-2)  # (..., 4, 4): row k is 4*q*q_k for the k-th largest component
    diag = np.stack([candidates[..., k, k] for k in range(4)], -1)
    best = np.argmax(diag, axis=-1)
    chosen = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    q = chosen / np.maximum(_norm(chosen), _EPS)
    return np.where(q[..., :1] < 0, -q, q)


@_torch_twin
def axis_angle_to_matrix(aa) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrix."""
    return quaternion_to_matrix(axis_angle_to_quaternion(aa))


@_torch_twin
def matrix_to_axis_angle(m) -> np.ndarray:
    """(..., 3, 3) rotation matrix -> (..., 3) axis-angle."""
    return quaternion_to_axis_angle(matrix_to_quaternion(m))


@_torch_twin
def matrix_to_rot6d(m) -> np.ndarray:
    """(..., 3, 3) rotation matrix -> (..., 6): its first two columns."""
    m = np.asarray(m, dtype=np.float64)
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


@_torch_twin
def rot6d_to_matrix(d6) -> np.ndarray:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt; any 6-vector maps to a valid rotation."""
    d6 = np.asarray(d6, dtype=np.float64)
    a, b = d6[..., :3], d6[..., 3:]
    c0 = a / np.maximum(_norm(a), 1e-12)
    c1 = b - np.sum(c0 * b, axis=-1, keepdims=True) * c0
    c1 = c1 / np.maximum(_norm(c1), 1e-12)
    c2 = np.cross(c0, c1)
    return np.stack([c0, c1, c2], axis=-1)


@_torch_twin
def axis_angle_to_rot6d(aa) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 6)."""
    return matrix_to_rot6d(axis_angle_to_matrix(aa))


@_torch_twin
def rot6d_to_axis_angle(d6) -> np.ndarray:
    """(..., 6) -> (..., 3) axis-angle."""
    return matrix_to_axis_angle(rot6d_to_matrix(d6))


@_torch_twin
def quaternion_multiply(a, b) -> np.ndarray:
    """Hamilton product of (..., 4) quaternions (w, x, y, z), in their own dtype."""
    a, b = np.asarray(a), np.asarray(b)
    aw, ax, ay, az = (a[..., i] for i in range(4))
    bw, bx, by, bz = (b[..., i] for i in range(4))
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], -1)


@_torch_twin
def quaternion_slerp(q0, q1, t) -> np.ndarray:
    """Spherical interpolation between (..., 4) quaternions at fraction ``t`` (broadcast to (...,)).

    Takes the short way round (flips q1 when the dot product is negative); falls back to a normalised
    linear blend when the two are nearly equal.
    """
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    theta = np.arccos(np.minimum(np.abs(dot), 1.0))
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-6
    w0 = np.where(near, 1 - t, np.sin((1 - t) * theta) / np.maximum(sin_theta, 1e-12))
    w1 = np.where(near, t, np.sin(t * theta) / np.maximum(sin_theta, 1e-12))
    q = w0 * q0 + w1 * q1
    return q / np.maximum(_norm(q), _EPS)


def continuous_quaternions(quat, axis: int = 0) -> np.ndarray:
    """(..., 4) quaternions with signs flipped along the time ``axis`` so that neighbours lie in one hemisphere
    (no jumps when they are blended or keyed as F-curves); a float64 copy."""
    quat = np.moveaxis(np.array(quat, dtype=np.float64), axis, 0)
    flips = (np.cumsum(np.sum(quat[1:] * quat[:-1], axis=-1) < 0, axis=0) % 2).astype(bool)
    quat[1:][flips] *= -1
    return np.moveaxis(quat, 0, axis)
