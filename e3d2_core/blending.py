"""Joining motions without seams: the kinematics of editing a dance (pure numpy, batched over takes).

A *track* is a motion in the form blending needs: ``quats`` (B, T, 24, 4) unit quaternions (w, x, y, z) of the
SMPL local rotations (joint 0: the pelvis's world orientation) and ``trans`` (B, T, 3) pelvis positions in
metres, Y up, float64. Frames are consecutive at one frame rate; every function returns new arrays.

The operations, in the order :mod:`e3d2_core.editing` applies them:

* :func:`align_start` + :func:`inertialize` — the start seam. The new motion is first moved rigidly (a turn
  about +Y and a shift on the floor) so its frame just before the seam has the kept motion's heading and floor
  position; the remaining differences (pose, height, and the rates of change) are measured on the last two
  kept frames and decay after the seam as a critically damped spring,
  x(s) = (x0 + (v0 + λ·x0)·s)·e^(−λ·s): position *and* velocity continue the kept motion at the seam, and the
  offset is gone (below 2 % of x0) after 1 s at the default rate λ = 6/s; a gentle rate, because the spring's
  own acceleration at the seam is λ·(2·v0 + λ·x0).
* :func:`blend` with a guide — the start's ease. The new motion's own acceleration still passes through the
  spring (the decoder's frames are rougher than real dance), so the first frames start as a *guide* and turn
  into the new motion with a C3 weight (:func:`septic_step`): the kept dance's own continuation when it has
  one (a regenerated range), else the kept dance carried on by its momentum (:func:`carry_on`: velocity and
  acceleration continued, then damped). At the seam the result moves as the guide, so position, velocity
  and acceleration all carry across it.
* :func:`blend` with the kept motion — the end seam: the new motion hands back to the kept one over the blend
  (C3 weight). Both uses blend the pose (joints, pelvis tilt and height) in position but the floor motion
  (heading and floor path) in velocity, so a dance that spins or travels away from the other is slowed into
  it instead of whirled back (a blend of positions catches up at up to twice either motion's rate, and flips
  past a half turn).
* :func:`meet_root` — the root path of the new part is bent, by a smoothly growing rigid motion (turn about
  +Y and floor shift, smootherstep in time, zero rate at both ends), so that at the end of the blend it arrives
  exactly where, and facing where, the kept motion is.
* :func:`reach_pose` — an optional key pose: the difference to it at its frame is added with a smooth bump
  (1 at the frame, 0 and flat at the window's edges), so the pose is met exactly at its frame.
"""
from __future__ import annotations

import math

import numpy as np

from e3d2_core import rotations

CARRY_VELOCITY_TIME = 0.2      # s: how long a carried-on motion keeps its velocity (see carry_on)
CARRY_ACCELERATION_TIME = 0.1  # s: and its acceleration
DEFAULT_SPRING_RATE = 6.0       # 1/s: the start offset decays to (1 + 3)·e^(-3) ≈ 20 % of x0 in 0.5 s, 2 % in 1 s


# ---------------------------------------------------------------------------------------------- conversions
def to_track(poses: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(…, T, 24, 3) axis-angle, (…, T, 3) -> float64 quaternions (…, T, 24, 4) continuous in time, trans."""
    quats = rotations.axis_angle_to_quaternion(np.asarray(poses, dtype=np.float64))
    return make_continuous(quats), np.array(trans, dtype=np.float64)


def from_track(quats: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`to_track`: axis-angle poses (angles in [0, π]) and trans, float64."""
    return rotations.quaternion_to_axis_angle(np.asarray(quats, dtype=np.float64)), np.array(trans, np.float64)


def make_continuous(quats: np.ndarray, axis: int = -3) -> np.ndarray:
    """Flip quaternion signs along the time ``axis`` (default: (…, T, J, 4)) so neighbours share a hemisphere."""
    return rotations.continuous_quaternions(quats, axis=axis)


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_exp(rotvec: np.ndarray) -> np.ndarray:
    """(…, 3) rotation vectors -> (…, 4) quaternions."""
    return rotations.axis_angle_to_quaternion(np.asarray(rotvec, dtype=np.float64))


def quat_log(q: np.ndarray) -> np.ndarray:
    """(…, 4) quaternions -> (…, 3) rotation vectors of the same rotation (angle ≤ π)."""
    return rotations.quaternion_to_axis_angle(np.asarray(q, dtype=np.float64))


def rotation_offset(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Rotation vectors δ with exp(δ) ⊗ source = target ((…, 4) quaternions each)."""
    return quat_log(rotations.quaternion_multiply(target, quat_conjugate(source)))


def apply_rotation_offset(offset: np.ndarray, q: np.ndarray) -> np.ndarray:
    """exp(offset) ⊗ q for (…, 3) rotation vectors and (…, 4) quaternions."""
    return rotations.quaternion_multiply(quat_exp(offset), q)


def yaw_quat(angle: np.ndarray) -> np.ndarray:
    """(…,) angles about +Y (radians) -> (…, 4) quaternions."""
    angle = np.asarray(angle, dtype=np.float64)
    zero = np.zeros_like(angle)
    return np.stack([np.cos(angle / 2), zero, np.sin(angle / 2), zero], -1)


def heading(root_quat: np.ndarray) -> np.ndarray:
    """(…, 4) pelvis orientation -> (…,) heading ψ = atan2(f_x, f_z) of its forward (+Z) axis (0 = facing +Z)."""
    forward = rotations.quaternion_to_matrix(np.asarray(root_quat, dtype=np.float64))[..., :, 2]
    return np.arctan2(forward[..., 0], forward[..., 2])


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Angles wrapped to [−π, π)."""
    return np.remainder(np.asarray(angle) + math.pi, 2 * math.pi) - math.pi


def rotate_about_y(points_xz: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(…, 2) floor (x, z) vectors turned by ``angle`` (…,) about +Y (the same turn as :func:`yaw_quat`)."""
    c, s = np.cos(angle), np.sin(angle)
    x, z = points_xz[..., 0], points_xz[..., 1]
    return np.stack([c * x + s * z, -s * x + c * z], -1)


# ---------------------------------------------------------------------------------------------- weights
def smootherstep(x: np.ndarray) -> np.ndarray:
    """6x⁵ − 15x⁴ + 10x³ on [0, 1] (clipped): 0 → 1 with zero first and second derivative at both ends."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return x * x * x * (x * (6.0 * x - 15.0) + 10.0)


def septic_step(x: np.ndarray) -> np.ndarray:
    """−20x⁷ + 70x⁶ − 84x⁵ + 35x⁴ on [0, 1] (clipped): 0 → 1 with zero first to third derivative at both ends.

    Flatter at its ends than :func:`smootherstep` (1 − w ≈ 35·(1 − x)⁴ against 10·(1 − x)³ near x = 1), for
    about 30 % more curvature in the middle."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return x ** 4 * (35.0 + x * (-84.0 + x * (70.0 - 20.0 * x)))


def spring(x0: np.ndarray, v0: np.ndarray, steps: np.ndarray, rate: float) -> np.ndarray:
    """Critically damped decay of an offset: (x0 + (v0 + λ·x0)·s)·e^(−λ·s) at ``steps`` s (frames, (S,)).

    ``x0``, ``v0`` (…, C) offset and its change per frame; ``rate`` λ per frame. Returns (…, S, C): the value
    at s = 0 is x0 and its slope there v0.
    """
    s = np.asarray(steps, dtype=np.float64)[:, None]
    x0, v0 = np.asarray(x0)[..., None, :], np.asarray(v0)[..., None, :]
    return (x0 + (v0 + rate * x0) * s) * np.exp(-rate * s)


# ---------------------------------------------------------------------------------------------- the start seam
def align_start(quats: np.ndarray, trans: np.ndarray, at: int, target_root: np.ndarray,
                target_trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move each take rigidly so its frame ``at`` has the target's heading and floor position.

    Args:
        quats, trans: (B, T, 24, 4), (B, T, 3) the new motion.
        at: the frame to align.
        target_root: (4,) the kept motion's pelvis orientation at that moment; target_trans: (3,) its position.
    Returns:
        quats, trans turned about +Y through the aligned frame's pelvis and shifted on the floor (heights kept).
    """
    turn = wrap_angle(heading(target_root) - heading(quats[:, at, 0]))                     # (B,)
    quats = quats.copy()
    quats[:, :, 0] = rotations.quaternion_multiply(yaw_quat(turn)[:, None], quats[:, :, 0])
    pivot = trans[:, at, [0, 2]]                                                            # (B, 2)
    floor = rotate_about_y(trans[:, :, [0, 2]] - pivot[:, None], turn[:, None])
    trans = trans.copy()
    trans[:, :, [0, 2]] = floor + np.asarray(target_trans, np.float64)[[0, 2]]
    return make_continuous(quats), trans


def inertialize(quats: np.ndarray, trans: np.ndarray, kept_quats: np.ndarray, kept_trans: np.ndarray,
                seam: int, *, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Carry the kept motion's pose and velocity across the seam into the new motion.

    Args:
        quats, trans: (B, T, 24, 4), (B, T, 3) the new motion; frames ``seam-2`` and ``seam-1`` are its version
            of the last kept frames (the decoder's reconstruction), frames from ``seam`` on replace the kept ones.
        kept_quats, kept_trans: (K, 24, 4), (K, 3) the kept motion's last K = 1 or 2 frames before the seam.
        rate: λ of :func:`spring`, per frame.
    Returns:
        quats, trans from frame ``seam`` on: the new motion plus the decaying offset, whose value and slope at
        ``seam - 1`` are the kept motion's minus the new motion's.
    """
    k = len(kept_quats)
    q_new, t_new = quats[:, seam - k:seam], trans[:, seam - k:seam]                         # (B, K, …)
    kept_q = np.where(np.sum(kept_quats[None] * q_new, -1, keepdims=True) < 0, -kept_quats[None], kept_quats[None])
    rot = rotation_offset(kept_q, q_new)                                                    # (B, K, 24, 3)
    pos = kept_trans[None] - t_new                                                          # (B, K, 3)
    x_rot, x_pos = rot[:, -1], pos[:, -1]
    v_rot = rot[:, -1] - rot[:, 0] if k == 2 else np.zeros_like(x_rot)
    v_pos = pos[:, -1] - pos[:, 0] if k == 2 else np.zeros_like(x_pos)
    steps = np.arange(1, quats.shape[1] - seam + 1)
    rot_off = np.moveaxis(spring(x_rot, v_rot, steps, rate), -2, 1)                         # (B, S, 24, 3)
    pos_off = spring(x_pos, v_pos, steps, rate)                                             # (B, S, 3)
    return (make_continuous(apply_rotation_offset(rot_off, quats[:, seam:])), trans[:, seam:] + pos_off)


def carry_on(quats: np.ndarray, trans: np.ndarray, steps: int, fps: float, *,
             velocity_time: float = CARRY_VELOCITY_TIME,
             acceleration_time: float = CARRY_ACCELERATION_TIME) -> tuple[np.ndarray, np.ndarray]:
    """The motion carried on past its last frame by its own momentum: a guide to ease out of where nothing follows.

    Each rotation (as a rotation vector relative to the last frame) and the pelvis position continue with the
    last frames' velocity *and* acceleration, so position, velocity and acceleration all carry across the last
    frame; then the acceleration dies out (time constant ``acceleration_time``) and the velocity after it
    (``velocity_time``), so the guide comes to rest instead of flying off. Per frame s = 1, 2, …:
    u_s = ρ·u_(s−1) + (a + (1 − ρ)·v)·σ^(s−1), x_s = x_(s−1) + u_s, with u_0 = v, ρ = e^(−1/(velocity_time·fps)),
    σ = e^(−1/(acceleration_time·fps)): the second difference across the last frame is exactly a.

    Args:
        quats, trans: (K, 24, 4), (K, 3) the motion's last K frames (K ≥ 1; with fewer than 3 the acceleration,
            with 1 the velocity too, is taken as zero).
        steps: frames to make after the last one.
        fps: frames per second (the time constants are in seconds).
    Returns:
        quats, trans: (steps, 24, 4), (steps, 3) the frames after the last one.
    """
    quats, trans = np.asarray(quats, np.float64), np.asarray(trans, np.float64)
    last_q = quats[-1]
    # rotation vectors of the previous frames relative to the last one (per joint), then positions
    back_rot = [rotation_offset(quats[-k], last_q) for k in (2, 3) if len(quats) >= k]          # (24, 3) each
    back_pos = [trans[-k] - trans[-1] for k in (2, 3) if len(trans) >= k]
    rho = math.exp(-1.0 / max(velocity_time * fps, 1e-9))
    sigma = math.exp(-1.0 / max(acceleration_time * fps, 1e-9))

    def carried(back, shape):
        v = -back[0] if back else np.zeros(shape)
        a = back[1] - 2.0 * back[0] if len(back) > 1 else np.zeros(shape)
        drive, u, x, out = a + (1.0 - rho) * v, v, np.zeros(shape), []
        for s in range(steps):
            u = rho * u + drive * sigma ** s
            x = x + u
            out.append(x)
        return np.stack(out) if out else np.zeros((0,) + shape)

    rot = carried(back_rot, last_q.shape[:-1] + (3,))                                       # (S, 24, 3)
    pos = carried(back_pos, trans.shape[1:])                                                # (S, 3)
    out_q = apply_rotation_offset(rot, np.broadcast_to(last_q, rot.shape[:-1] + (4,)))
    return make_continuous(np.concatenate([last_q[None], out_q]), axis=0)[1:], trans[-1] + pos


def blend(quats: np.ndarray, trans: np.ndarray, other_quats: np.ndarray, other_trans: np.ndarray,
          weight: np.ndarray, before_root: np.ndarray, before_trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blend a motion with another one (weight 1 = the other), the floor motion in velocity.

    The pose (every joint, the pelvis's tilt relative to its heading, the pelvis height) is blended as in
    :func:`crossfade`. The floor motion (heading and floor position) is blended in *velocity*: each frame's
    turn and step (in the body's own heading frame) are the weighted mean of the two motions', integrated
    from the frame before. So the result never turns or travels faster than either motion does (a blend of
    positions has to catch up with a motion that turns or travels away from the other, up to twice as fast as
    either, and one that spins past a half turn from the other has no good blend of positions at all); where
    the weight is 0 or 1 the result is one motion, moved rigidly on the floor.

    Args:
        quats, trans: (B, T, 24, 4), (B, T, 3) the motion.
        other_quats, other_trans: (S, 24, 4), (S, 3) the other motion on the first S ≤ T frames.
        weight: (S,) the other's weight per frame (beyond S: 0).
        before_root, before_trans: (4,) and (3,), or per take (B, 4) and (B, 3): the pelvis in the frame before
            the first one, where the result starts from.
    Returns:
        quats, trans (B, T, …).
    """
    b, t = trans.shape[:2]
    s = len(weight)
    w = np.zeros(t)
    w[:s] = np.asarray(weight, np.float64)
    psi0 = np.broadcast_to(heading(before_root), (b,))[:, None]                             # (B, 1)
    floor0 = np.broadcast_to(np.asarray(before_trans, np.float64)[..., [0, 2]], (b, 2))[:, None]

    def increments(psi, floor):   # (B, N) headings, (B, N, 2) floor positions -> turns, steps in heading frame
        prev_psi = np.concatenate([psi0, psi[:, :-1]], 1)
        prev_floor = np.concatenate([floor0, floor[:, :-1]], 1)
        return wrap_angle(psi - prev_psi), rotate_about_y(floor - prev_floor, -prev_psi)

    psi_new = heading(quats[:, :, 0])                                                       # (B, T)
    turn, step = increments(psi_new, trans[:, :, [0, 2]])
    psi_other = heading(other_quats[:, 0])                                                  # (S,)
    other_floor = np.asarray(other_trans, np.float64)[:, [0, 2]]
    turn_other, step_other = increments(np.broadcast_to(psi_other, (b, s)), np.broadcast_to(other_floor, (b, s, 2)))
    turn = turn * (1.0 - w)
    step = step * (1.0 - w)[:, None]
    turn[:, :s] += turn_other * w[:s]
    step[:, :s] += step_other * w[:s, None]
    psi = psi0 + np.cumsum(turn, axis=1)                                                    # (B, T)
    floor = floor0 + np.cumsum(rotate_about_y(step, np.concatenate([psi0, psi[:, :-1]], 1)), axis=1)

    # the pose relative to the heading: pelvis tilt and the other joints, crossfaded (the height too)
    local = np.array(quats, np.float64)
    local[:, :, 0] = rotations.quaternion_multiply(yaw_quat(-psi_new), local[:, :, 0])
    other_local = np.array(other_quats, np.float64)
    other_local[:, 0] = rotations.quaternion_multiply(yaw_quat(-psi_other), other_local[:, 0])
    height = np.array(trans[:, :, 1], np.float64)
    local[:, :s], mixed = crossfade(local[:, :s], trans[:, :s], other_local, other_trans, w[:s])
    height[:, :s] = mixed[:, :, 1]
    local[:, :, 0] = rotations.quaternion_multiply(yaw_quat(psi), local[:, :, 0])
    return make_continuous(local), np.stack([floor[..., 0], height, floor[..., 1]], -1)


# ---------------------------------------------------------------------------------------------- root path, key poses
def meet_root(quats: np.ndarray, trans: np.ndarray, end: int, target_root: np.ndarray,
              target_trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bend each take's root path so frame ``end`` has the target's heading and floor position.

    A rigid motion (turn Δψ·S about +Y through the first frame's pelvis, then a floor shift d·S) grows with
    S = smootherstep(t / end): frame 0 is untouched, frame ``end`` arrives exactly, the added motion starts and
    stops with zero rate. Frames after ``end`` get the full transform.

    Args:
        quats, trans: (B, T, 24, 4), (B, T, 3); target_root (4,), target_trans (3,) the kept motion at ``end``.
    """
    b, t = trans.shape[:2]
    turn = wrap_angle(heading(target_root) - heading(quats[:, end, 0]))                    # (B,)
    pivot = trans[:, 0, [0, 2]]
    arrived = rotate_about_y(trans[:, end, [0, 2]] - pivot, turn) + pivot
    shift = np.asarray(target_trans, np.float64)[[0, 2]] - arrived                          # (B, 2)
    weight = smootherstep(np.arange(t) / max(end, 1))                                       # (T,)
    angle = turn[:, None] * weight[None]                                                    # (B, T)
    quats = quats.copy()
    quats[:, :, 0] = rotations.quaternion_multiply(yaw_quat(angle), quats[:, :, 0])
    trans = trans.copy()
    floor = rotate_about_y(trans[:, :, [0, 2]] - pivot[:, None], angle) + pivot[:, None]
    trans[:, :, [0, 2]] = floor + shift[:, None] * weight[None, :, None]
    return make_continuous(quats), trans


def bump(num_frames: int, at: int, before: int, after: int) -> np.ndarray:
    """(T,) weights: 1 at ``at``, rising over ``before`` frames and falling over ``after`` (smootherstep)."""
    t = np.arange(num_frames, dtype=np.float64)
    rise = smootherstep((t - (at - before)) / before) if before > 0 else (t >= at).astype(float)
    fall = smootherstep(((at + after) - t) / after) if after > 0 else (t <= at).astype(float)
    return np.where(t <= at, rise, fall)


def reach_pose(quats: np.ndarray, trans: np.ndarray, at: int, pose_quats: np.ndarray,
               pose_trans: np.ndarray | None, before: int, after: int) -> tuple[np.ndarray, np.ndarray]:
    """Add the difference to a key pose with a :func:`bump`, so every take holds the pose exactly at ``at``.

    ``pose_quats`` (24, 4): the local rotations to meet (joint 0 in the world). ``pose_trans`` (3,): the pelvis
    position to meet, or None to keep each take's own position and heading (the pose is then met relative to
    the body: its pelvis tilt and every joint, the heading of the take).
    """
    target = np.broadcast_to(np.asarray(pose_quats, np.float64), quats[:, at].shape).copy()
    if pose_trans is None:        # the take's own heading: turn the key pose's pelvis onto it
        turn = wrap_angle(heading(quats[:, at, 0]) - heading(target[:, 0]))
        target[:, 0] = rotations.quaternion_multiply(yaw_quat(turn), target[:, 0])
    offset = rotation_offset(target, quats[:, at])                                          # (B, 24, 3)
    weight = bump(quats.shape[1], at, before, after)                                        # (T,)
    quats = apply_rotation_offset(offset[:, None] * weight[None, :, None, None], quats)
    trans = trans.copy()
    if pose_trans is not None:
        trans += (np.asarray(pose_trans, np.float64) - trans[:, at])[:, None] * weight[None, :, None]
    return make_continuous(quats), trans


# ---------------------------------------------------------------------------------------------- the end seam
def unwrap_rotation_vectors(rotvec: np.ndarray, axis: int = -3) -> np.ndarray:
    """Rotation vectors along the time ``axis`` (default: (…, T, J, 3)) made continuous past a half turn.

    A rotation vector names its rotation with an angle ≤ π; a difference that keeps growing (one motion spinning
    away from another) jumps from +π to −π about the axis. Each frame gets the same rotation written as
    n·(θ + 2πk), the k that lies closest to the frame before, so the angle can grow past π without a jump."""
    r = np.moveaxis(np.array(rotvec, dtype=np.float64), axis, 0)
    out = r.copy()
    for t in range(1, len(r)):
        angle = np.linalg.norm(r[t], axis=-1, keepdims=True)
        n = r[t] / np.maximum(angle, 1e-12)
        along = np.sum(out[t - 1] * n, -1, keepdims=True)             # the previous vector along this axis
        turns = np.where(angle > 1e-9, np.round((along - angle) / (2.0 * math.pi)), 0.0)
        out[t] = n * (angle + 2.0 * math.pi * turns)
    return np.moveaxis(out, 0, axis)


def crossfade(quats: np.ndarray, trans: np.ndarray, kept_quats: np.ndarray, kept_trans: np.ndarray,
              weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blend (B, T, …) new frames into (T, …) kept frames: weight (T,) 0 = new, 1 = kept.

    Rotations: exp(w·δ) ⊗ new, with δ the rotation from new to kept in every frame, unwrapped in time (the
    same as a slerp while new and kept are less than a half turn apart; where one spins away from the other
    past a half turn, a slerp would flip to the other way round, this keeps turning the same way). The root:
    a linear blend."""
    kept_quats = np.broadcast_to(kept_quats, quats.shape)
    w = np.asarray(weight, np.float64)
    offset = unwrap_rotation_vectors(rotation_offset(kept_quats, quats), axis=1)            # (B, T, 24, 3)
    blended = apply_rotation_offset(offset * w[None, :, None, None], quats)
    return make_continuous(blended), trans + (np.asarray(kept_trans)[None] - trans) * w[None, :, None]
