"""Kinetic features (72-d): per joint, horizontal and vertical kinetic energy and "energy expenditure".

Same definition as the AIST++ API / Bailando ``utils/features/kinetic.py`` (fairmotion lineage), vectorised.
For every frame ``i = 1 .. T-1`` a velocity is averaged over the frame differences ``d_k = p_k - p_{k-1}`` with
``k`` in ``[i-2, i+2]`` clipped to the valid range ``[1, T-1]``; an acceleration is averaged likewise over
``k`` in ``[i-2, i+2]`` clipped to ``[1, T-2]``. Each of the three numbers per joint is a mean over the T-1 frames:

1. ``|v_xz|^2`` (horizontal plane, Y up),
2. ``v_y^2``,
3. ``|a|`` with the reference's operator-precedence bug kept: ``v1 = p_k - p_{k-1} / dt`` (not
   ``(p_k - p_{k-1}) / dt``), so the term is not translation invariant. ``fixed=True`` uses the true second
   difference ``(p_{k+1} - 2 p_k + p_{k-1}) / dt^2`` instead.

The reference's ``frame_time`` is 1/60 s: inputs must be 60-fps tracks.
"""
from __future__ import annotations

import numpy as np

from e3d2_core.errors import E3D2Error

FRAME_TIME = 1.0 / 60.0
HALF_WINDOW = 2
MIN_FRAMES = 2 * HALF_WINDOW + 1  # one full sliding window


def _window_sums(values: np.ndarray, first: int, last: int, length: int):
    """Sums of ``values[k]`` for ``k`` in ``[i-2, i+2] ∩ [first, last]``, for ``i = 1 .. length-1``.

    ``values``: (last-first+1, ...) indexed by ``k - first``. Returns (sums (length-1, ...), counts (length-1,)).
    """
    pad = [(HALF_WINDOW + 1, HALF_WINDOW + 1)] + [(0, 0)] * (values.ndim - 1)
    padded = np.pad(values, pad)  # padded[k - first + 3] = values[k - first]
    frames = np.arange(1, length)
    sums = np.zeros((length - 1,) + values.shape[1:], dtype=values.dtype)
    for offset in range(-HALF_WINDOW, HALF_WINDOW + 1):  # five shifted slices, not a loop over frames
        start = 1 + offset - first + HALF_WINDOW + 1
        sums += padded[start:start + length - 1]
    counts = np.minimum(frames + HALF_WINDOW, last) - np.maximum(frames - HALF_WINDOW, first) + 1
    return sums, counts


def kinetic_features(positions: np.ndarray, *, fixed: bool = False, frame_time: float = FRAME_TIME) -> np.ndarray:
    """72 kinetic features of one track.

    Parameters
    ----------
    positions : (T, J, 3) float, metres, Y up, 60 fps, T >= 5.
    fixed : use the correct acceleration instead of the reference's precedence bug.
    frame_time : seconds per frame (the reference's 1/60).

    Returns
    -------
    (3 J,) float32, joint-major: ``[E_h(j), E_v(j), A(j)]`` for each joint j.
    """
    p = np.asarray(positions, dtype=np.float64)
    length = p.shape[0]
    if length < 3:
        raise E3D2Error(f"kinetic features need at least 3 frames, got {length}")
    dt = frame_time

    # velocity: differences d_k, k = 1 .. T-1
    diffs = p[1:] - p[:-1]
    vel_sum, vel_count = _window_sums(diffs, 1, length - 1, length)
    vel = vel_sum / (vel_count[:, None, None] * dt)
    horizontal = (vel[..., 0] ** 2 + vel[..., 2] ** 2).sum(axis=0) / (length - 1.0)
    vertical = (vel[..., 1] ** 2).sum(axis=0) / (length - 1.0)

    # acceleration terms a_k, k = 1 .. T-2
    prev, cur, nxt = p[:-2], p[1:-1], p[2:]
    if fixed:
        acc = (nxt - 2.0 * cur + prev) / dt / dt
    else:
        v2 = (nxt - cur) / dt
        v1 = cur - prev / dt  # the reference's precedence bug, kept on purpose
        acc = (v2 - v1) / dt
    acc_sum, acc_count = _window_sums(acc, 1, length - 2, length)
    energy = np.sqrt((((acc_sum / acc_count[:, None, None]) ** 2).sum(axis=-1))).sum(axis=0) / (length - 1.0)

    return np.stack([horizontal, vertical, energy], axis=1).reshape(-1).astype(np.float32)
