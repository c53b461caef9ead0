"""Foot contact cleanup: find when each foot stands on the floor, pin it there by two-bone leg IK.

1. **Contacts** (:func:`detect_contacts`): a foot is in contact while its sole is within ``height`` of the floor
   and its ankle moves slower than ``speed`` over the floor; gaps and blips shorter than ``min_seconds`` are
   closed and dropped, so a contact is one steady interval.
2. **Pins** (:func:`pin_targets`): during a contact the ankle's goal is one point (the contact's mean position,
   never below the floor); it blends in and out over ``blend_seconds`` with a smoothstep, so nothing pops.
   Outside contacts the goal is the ankle itself, lifted where the foot would be below the floor.
3. **IK** (:func:`two_bone_ik`): the thigh and shin turn so the ankle reaches its goal, the knee staying in the
   leg's own bend plane (the knee's forward direction settles a straight leg); the foot keeps its world
   orientation. Nothing above the hips changes.

:func:`lock_feet` applies this to an SMPL motion (poses, trans) in metres; the retargeting applies the same
pinning to a character's own legs (:mod:`e3d2_core.retarget.transfer`). Pure numpy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from e3d2_core.retarget import kinematics as kin
from e3d2_core.retarget.rig import FOOT_JOINT_ABOVE_SOLE
from e3d2_core.skeleton import local_pose, skeleton_with_offsets, world_pose

CONTACT_HEIGHT = 0.06     # metres above the floor a sole may be and still stand
CONTACT_SPEED = 0.5       # metres per second an ankle may slide and still stand
MIN_CONTACT_SECONDS = 0.1
BLEND_SECONDS = 0.12
SMPL_LEGS = ((1, 4, 7, 10), (2, 5, 8, 11))   # (hip, knee, ankle, toe) for the left and right legs
_FORWARD = np.array([0.0, 0.0, 1.0])         # SMPL's front: where a knee bends to


@dataclass(frozen=True)
class FootLock:
    """What :func:`lock_feet` did: ``contacts`` (T, 2) bool (left, right), and the mean horizontal ankle speed
    during contacts before and after (m/s)."""

    contacts: np.ndarray
    slide_before: float
    slide_after: float


def horizontal_speed(points: np.ndarray, fps: float) -> np.ndarray:
    """(T,) speed over the floor (x, z) of (T, 3) Y-up points; the first frame repeats the second's."""
    step = np.linalg.norm(np.diff(points[:, [0, 2]], axis=0), axis=-1) * fps
    return np.concatenate([step[:1], step]) if len(step) else np.zeros(len(points))


def detect_contacts(ankle: np.ndarray, toe: np.ndarray | None, fps: float, *, floor: float = 0.0,
                    ankle_above_sole: float, toe_above_sole: float = FOOT_JOINT_ABOVE_SOLE,
                    height: float = CONTACT_HEIGHT, speed: float = CONTACT_SPEED,
                    min_seconds: float = MIN_CONTACT_SECONDS) -> np.ndarray:
    """(T,) bool: frames where one foot stands.

    Args:
        ankle, toe: (T, 3) Y-up positions of the foot's ankle and toe joints (toe may be None).
        fps: frames per second.
        floor: the floor's height; ``ankle_above_sole``/``toe_above_sole``: each joint's height above the sole
            when the foot is flat (same units as the positions).
        height, speed: a sole within ``height`` of the floor whose ankle moves under ``speed`` per second.
        min_seconds: shorter contacts, and shorter gaps inside one, are dropped / closed.
    """
    sole = ankle[:, 1] - ankle_above_sole
    if toe is not None:
        sole = np.minimum(sole, toe[:, 1] - toe_above_sole)
    contact = (sole - floor < height) & (horizontal_speed(ankle, fps) < speed)
    shortest = max(int(round(min_seconds * fps)), 1)
    contact = _fill_short_runs(contact, False, shortest)     # close short gaps
    return _fill_short_runs(contact, True, shortest)         # drop short contacts


def _fill_short_runs(mask: np.ndarray, value: bool, shortest: int) -> np.ndarray:
    """Flip interior runs of ``value`` shorter than ``shortest`` frames (runs touching either end stay)."""
    mask = mask.copy()
    for start, stop in _runs(mask == value):
        if stop - start < shortest and (value or (start > 0 and stop < len(mask))):
            mask[start:stop] = not value
    return mask


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def pin_targets(points: np.ndarray, contacts: np.ndarray, fps: float, *, lowest: float | None = None,
                blend_seconds: float = BLEND_SECONDS):
    """The ankle's goal per frame and how much it is pinned.

    Args:
        points: (T, 3) the ankle's positions; contacts: (T,) bool.
        lowest: the lowest height the pin may have (the floor plus the ankle's height above its sole).
        blend_seconds: how long the pin takes to blend in before a contact and out after it.
    Returns:
        goals (T, 3) and weights (T,) in [0, 1] (1 during contacts).
    """
    frames = len(points)
    blend = max(int(round(blend_seconds * fps)), 1)
    goals = points.astype(np.float64).copy()
    weights = np.zeros(frames)
    t = np.arange(frames)
    for start, stop in _runs(contacts):
        pin = points[start:stop].mean(axis=0)
        if lowest is not None:
            pin[1] = max(pin[1], lowest)
        ramp_in = np.clip((t - (start - blend)) / blend, 0.0, 1.0)
        ramp_out = np.clip(((stop - 1 + blend) - t) / blend, 0.0, 1.0)
        weight = _smoothstep(np.minimum(ramp_in, ramp_out))
        closer = weight > weights
        goals[closer] = points[closer] + weight[closer, None] * (pin - points[closer])
        weights = np.maximum(weights, weight)
    return goals, weights


def _smoothstep(x: np.ndarray) -> np.ndarray:
    return x * x * (3.0 - 2.0 * x)


def two_bone_ik(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, goal: np.ndarray, forward: np.ndarray):
    """World rotations that bring a leg's ankle to ``goal`` (all (T, 3)); ``forward`` (T, 3) is where the knee
    points (it decides the bend of a straight leg).

    Returns (upper, lower), each (T, 3, 3): pre-multiply the thigh's world rotation by ``upper`` and the shin's by
    ``lower @ upper``. Bone lengths are kept; a goal out of reach is approached as far as the leg allows.
    """
    thigh, shin = knee - hip, ankle - knee
    l1 = np.linalg.norm(thigh, axis=-1)
    l2 = np.linalg.norm(shin, axis=-1)
    reach = goal - hip
    distance = np.linalg.norm(reach, axis=-1)
    distance = np.clip(distance, np.abs(l1 - l2) + 1e-9, (l1 + l2) * (1.0 - 1e-9))
    along = reach / np.maximum(np.linalg.norm(reach, axis=-1, keepdims=True), 1e-12)
    bend = thigh + 1e-3 * l1[:, None] * forward
    bend = bend - np.sum(bend * along, axis=-1, keepdims=True) * along
    bend = bend / np.maximum(np.linalg.norm(bend, axis=-1, keepdims=True), 1e-12)
    a = (l1 ** 2 - l2 ** 2 + distance ** 2) / (2.0 * distance)
    h = np.sqrt(np.maximum(l1 ** 2 - a ** 2, 0.0))
    new_knee = hip + a[:, None] * along + h[:, None] * bend
    upper = kin.swing_rotation(thigh, new_knee - hip)
    turned_shin = np.einsum("tij,tj->ti", upper, shin)
    lower = kin.swing_rotation(turned_shin, hip + distance[:, None] * along - new_knee)
    return upper, lower


def lock_legs(world: np.ndarray, positions: np.ndarray, legs, contacts: np.ndarray, fps: float, *,
              ankle_lowest, toe_lowest, blend_seconds: float = BLEND_SECONDS):
    """Pin the ankles of ``legs`` during ``contacts`` and keep the feet above the floor.

    Args:
        world: (T, J, 3, 3) world rotations in SMPL's frame (a knee's rotation turns SMPL's front, +Z, to
            where that knee points); positions: (T, J, 3), Y up.
        legs: per leg (hip, knee, ankle, toe or -1) indices into J.
        contacts: (T, len(legs)) bool.
        ankle_lowest, toe_lowest: per leg, the lowest height the ankle / toe joint may reach (floor + its height
            above the sole).
    Returns:
        new world rotations and positions (copies; only the legs' hip, knee, ankle and toe entries change: the
        thigh and shin turn, the foot keeps its world orientation, so the toe moves with the ankle).
    """
    world = np.array(world, dtype=np.float64, copy=True)
    positions = np.array(positions, dtype=np.float64, copy=True)
    for k, (hip, knee, ankle, toe) in enumerate(legs):
        goals, _ = pin_targets(positions[:, ankle], contacts[:, k], fps, lowest=ankle_lowest[k],
                               blend_seconds=blend_seconds)
        lift = np.maximum(ankle_lowest[k] - goals[:, 1], 0.0)
        if toe >= 0:
            toe_goal = positions[:, toe, 1] + goals[:, 1] - positions[:, ankle, 1]
            lift = np.maximum(lift, toe_lowest[k] - toe_goal)
        goals[:, 1] += lift
        forward = np.einsum("tij,j->ti", world[:, knee], _FORWARD)
        upper, lower = two_bone_ik(positions[:, hip], positions[:, knee], positions[:, ankle], goals, forward)
        thigh = positions[:, knee] - positions[:, hip]
        shin = positions[:, ankle] - positions[:, knee]
        world[:, hip] = upper @ world[:, hip]
        world[:, knee] = lower @ upper @ world[:, knee]
        new_knee = positions[:, hip] + np.einsum("tij,tj->ti", upper, thigh)
        new_ankle = new_knee + np.einsum("tij,tj->ti", lower @ upper, shin)   # the goal when within reach
        if toe >= 0:
            positions[:, toe] += new_ankle - positions[:, ankle]           # the foot keeps its orientation
        positions[:, knee], positions[:, ankle] = new_knee, new_ankle
    return world, positions


def lock_feet(poses: np.ndarray, trans: np.ndarray, fps: float, offsets: np.ndarray | None = None, *,
              contacts: np.ndarray | None = None, floor: float = 0.0, blend_seconds: float = BLEND_SECONDS):
    """Foot-locked SMPL poses: the feet pinned during their contacts, never below ``floor``.

    Args:
        poses: (T, 24, 3) axis-angle; trans: (T, 3) metres, Y up (a Motion's); fps: its frame rate.
        offsets: the skeleton's (24, 3) rest offsets (the bundled SMPL skeleton's when None).
        contacts: (T, 2) bool (left, right) to use instead of detecting them.
    Returns:
        poses (T, 24, 3) with only the hips', knees' and ankles' rotations changed, the same trans, and a
        :class:`FootLock` report.
    """
    skeleton = skeleton_with_offsets(offsets)
    rest = skeleton.rest_joints()
    world, positions = world_pose(poses, trans, skeleton)
    ankle_above = [FOOT_JOINT_ABOVE_SOLE + rest[a, 1] - rest[t, 1] for _, _, a, t in SMPL_LEGS]
    if contacts is None:
        contacts = np.stack([detect_contacts(positions[:, a], positions[:, t], fps, floor=floor,
                                             ankle_above_sole=ankle_above[k])
                             for k, (_, _, a, t) in enumerate(SMPL_LEGS)], axis=-1)
    new_world, new_positions = lock_legs(world, positions, SMPL_LEGS, contacts, fps,
                                         ankle_lowest=[floor + h for h in ankle_above],
                                         toe_lowest=[floor + FOOT_JOINT_ABOVE_SOLE] * 2, blend_seconds=blend_seconds)
    new_poses = local_pose(new_world, skeleton)
    before = _contact_slide(positions, contacts, fps)
    after = _contact_slide(world_pose(new_poses, trans, skeleton)[1], contacts, fps)
    return new_poses, np.asarray(trans, np.float64), FootLock(contacts, before, after)


def _contact_slide(positions: np.ndarray, contacts: np.ndarray, fps: float) -> float:
    """Mean horizontal ankle speed over the contact frames of both feet (m/s; 0 without contacts)."""
    speeds = [horizontal_speed(positions[:, a], fps)[contacts[:, k]] for k, (_, _, a, _) in enumerate(SMPL_LEGS)]
    speeds = np.concatenate(speeds)
    return float(speeds.mean()) if len(speeds) else 0.0


def lock_motion_feet(motion, **kwargs):
    """A copy of ``motion`` (an :class:`e3d2_core.motion.Motion`) with its feet locked (:func:`lock_feet`);
    ``meta["foot_lock"]`` records the contact share and the sliding before and after (m/s)."""
    offsets = motion.skeleton.offsets if "skeleton" in motion.meta else None
    poses, trans, report = lock_feet(motion.poses, motion.trans, motion.fps, offsets, **kwargs)
    locked = motion.copy(poses=poses, trans=trans)
    locked.meta["foot_lock"] = {"contact_share": [round(float(v), 4) for v in report.contacts.mean(axis=0)],
                                "slide_before": round(report.slide_before, 5),
                                "slide_after": round(report.slide_after, 5)}
    return locked
