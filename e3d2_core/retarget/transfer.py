"""Move an SMPL dance onto a character's armature, and read a character's motion back as SMPL (pure numpy).

SMPL -> rig (:func:`retarget_motion`), in world space:

1. SMPL's forward kinematics gives each joint's world rotation G_j (its rest is the T-pose, so G_j is also the
   turn away from rest); ``facing`` turns the whole dance about the vertical.
2. The mapped bone of joint j turns the same way, measured from the rig's own rest: its world delta is
   D_j = G_j A_j^T, where A_j (:mod:`~e3d2_core.retarget.rig`) takes SMPL's rest bone direction to the rig's, so
   an A-pose arm ends where SMPL's T-pose arm ends; bones between mapped ones follow their mapped parent.
3. The hips travel as SMPL's pelvis does from its first frame, scaled by the leg-length ratio (so stride
   lengths fit the legs), starting from the rig's own standing spot (or stay there: ``in_place``); the feet are put on the rig's floor (the same low
   percentile of sole heights as the source's) and any frame where a foot would still dip below it is lifted
   smoothly. With ``foot_lock`` each foot is pinned during the source's contacts by two-bone IK of the rig's
   own legs (:mod:`~e3d2_core.retarget.footlock`).
4. Baking: each keyed bone's pose (Blender's ``rotation_quaternion`` in its rest frame, ``location`` for the
   hips) is solved from its wanted armature-space rotation and its parent's posed matrix, the parent's being
   the posed matrix of the nearest keyed bone it inherits from (through unkeyed helper bones and full Copy
   Transforms constraints: :meth:`Rig.carrier`), so rigs whose controls sit on helper bones bake exactly.

Rig -> SMPL (:func:`motion_from_pose`) inverts steps 2 and 3 from the posed world matrices of the read bones,
so the reward model can score a character's dance and a take on a character can be edited as SMPL.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from e3d2_core.errors import E3D2Error
from e3d2_core.retarget import footlock
from e3d2_core import rotations
from e3d2_core.retarget import kinematics as kin
from e3d2_core.retarget.bonemap import joint_names
from e3d2_core.retarget.rig import FOOT_JOINT_ABOVE_SOLE, Rig, RigFit, smpl_sole_heights
from e3d2_core.skeleton import default_skeleton, local_pose, skeleton_with_offsets, world_pose

FLOOR_PERCENTILE = 5.0     # as e3d2_core.io.floor: a low percentile, so glitches and jumps do not move the floor
LIFT_SECONDS = 0.1         # a lift to keep a foot above the floor ramps in and out over this long
_LEGS = ((1, 4, 7, 10), (2, 5, 8, 11))


@dataclass(frozen=True)
class Channels:
    """Keys for one armature.

    ``bones`` (K,) the keyed bones; ``quats`` (T, K, 4) their ``rotation_quaternion`` (w, x, y, z), continuous
    in time; ``root_bone`` and ``location`` (T, 3): the hips' ``location``; ``properties`` {bone: {name: value}}
    to key constant; ``joints`` (T, 24, 3) where the mapped joints end up (armature space, nan if unmapped);
    ``contacts`` (T, 2) the foot contacts that were pinned (None without foot lock).
    """

    bones: tuple
    quats: np.ndarray
    root_bone: str
    location: np.ndarray
    properties: dict
    joints: np.ndarray
    scale: float
    unmapped: tuple
    contacts: np.ndarray | None = None


def retarget_motion(poses: np.ndarray, trans: np.ndarray, fps: float, fit: RigFit, *, in_place: bool = False,
                    facing: float = 0.0, foot_lock: bool = False, smpl_offsets: np.ndarray | None = None) -> Channels:
    """Keys that dance an SMPL motion on ``fit``'s rig.

    Args:
        poses: (T, 24, 3) SMPL axis-angle; trans: (T, 3) metres, Y up, floor at 0 (a Motion's); fps: its rate.
        fit: :func:`~e3d2_core.retarget.rig.fit_rig` of the rig and its bone map.
        in_place: the hips stay over the rig's standing spot (no travel).
        facing: radians to turn the dance about the vertical.
        foot_lock: pin each foot during its contacts (two-bone IK on the rig's legs).
        smpl_offsets: the source skeleton's (24, 3) offsets (the bundled SMPL's when None).
    """
    poses = np.asarray(poses, np.float64)
    trans = np.asarray(trans, np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (24, 3) or trans.shape != (len(poses), 3) or len(poses) < 1:
        raise E3D2Error(f"retargeting needs poses (T, 24, 3) and trans (T, 3), got {poses.shape} and {trans.shape}")
    world, source = world_pose(poses, trans, skeleton_with_offsets(smpl_offsets))
    if facing:
        turn = kin.rotation_about_up(facing)
        world, source = turn @ world, source @ turn.T
    delta, joints = rig_joints(world, source, fit, in_place=in_place)
    contacts = None
    if foot_lock:
        delta, joints, contacts = _lock_rig_feet(delta, joints, source, fps, fit, smpl_offsets)
    joints[..., 1] += _smooth_lift(np.maximum(fit.floor - fit.sole_heights(joints), 0.0), fps)[:, None]
    return bake(delta, joints, fit, contacts)


def rig_joints(world: np.ndarray, source: np.ndarray, fit: RigFit, *, in_place: bool = False):
    """World deltas (T, 24, 3, 3) and positions (T, 24, 3) of the rig's mapped joints in SMPL's frame (rig units)
    for SMPL world rotations ``world`` and joint positions ``source`` (metres)."""
    frames = len(world)
    delta = np.broadcast_to(np.eye(3), (frames, 24, 3, 3)).copy()
    joints = np.full((frames, 24, 3), np.nan)
    mapped = list(fit.joints)
    delta[:, mapped] = world[:, fit.driver[mapped]] @ np.swapaxes(fit.alignment[mapped], -1, -2)[None]
    rest = fit.rest_joints
    joints[:, 0] = 0.0
    for j in mapped[1:]:
        p = fit.structural_parent[j]
        joints[:, j] = joints[:, p] + np.einsum("tij,j->ti", delta[:, p], rest[j] - rest[p])
    pelvis = np.empty((frames, 3))
    # the rig starts where it stands (travel is measured from the first frame) and stays there in place
    travel = 0.0 if in_place else fit.scale * (source[:, 0, [0, 2]] - source[:1, 0, [0, 2]])
    pelvis[:, [0, 2]] = rest[0, [0, 2]] + travel
    pelvis[:, 1] = fit.floor + fit.root_offset + fit.scale * source[:, 0, 1]
    joints[:, mapped] += pelvis[:, None]
    # feet on the rig's floor as the source's are on its own (the same low percentile of sole heights)
    target_sole = np.percentile(fit.sole_heights(joints) - fit.floor, FLOOR_PERCENTILE)
    source_sole = np.percentile(smpl_sole_heights(source, fit.smpl_rest), FLOOR_PERCENTILE)
    joints[:, mapped, 1] += fit.scale * source_sole - target_sole
    return delta, joints


def _lock_rig_feet(delta, joints, source, fps, fit: RigFit, smpl_offsets):
    """Pin the rig's feet during the source's foot contacts (detected in metres on the SMPL dance)."""
    rest = skeleton_with_offsets(smpl_offsets).rest_joints()
    contacts = np.stack([footlock.detect_contacts(source[:, a], source[:, t], fps,
                                                  ankle_above_sole=FOOT_JOINT_ABOVE_SOLE + rest[a, 1] - rest[t, 1])
                         for _, _, a, t in _LEGS], axis=-1)
    legs = [(h, k, a, t if fit.bones[t] >= 0 else -1) for h, k, a, t in _LEGS]
    ankle_lowest = [fit.rest_joints[a, 1] for _, _, a, _ in legs]
    toe_lowest = [fit.rest_joints[t, 1] if t >= 0 else -np.inf for _, _, _, t in legs]
    delta, joints = footlock.lock_legs(delta, joints, legs, contacts, fps, ankle_lowest=ankle_lowest,
                                       toe_lowest=toe_lowest)
    return delta, joints, contacts


def _smooth_lift(need: np.ndarray, fps: float) -> np.ndarray:
    """A smooth curve >= ``need`` (T,) everywhere: a running maximum, then a running mean of the same width."""
    if not need.any():
        return need
    radius = max(int(round(LIFT_SECONDS * fps)), 1)
    padded = np.pad(need, radius, mode="edge")
    peak = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1).max(axis=-1)
    padded = np.pad(peak, radius, mode="edge")
    window = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1)
    return window.mean(axis=-1)


def bake(delta: np.ndarray, joints: np.ndarray, fit: RigFit, contacts=None) -> Channels:
    """Keys from world deltas (T, 24, 3, 3) and joint positions (T, 24, 3) in SMPL's frame (see the module)."""
    rig, frame = fit.rig, fit.frame
    names = joint_names()
    mapped = list(fit.joints)
    bone_of = {int(fit.bones[j]): j for j in mapped}
    keyed = _carrier_order(rig, list(bone_of))
    arm_delta = frame[None] @ delta @ frame.T[None]                    # C D C^T: armature space
    arm_joints = joints @ frame.T
    frames = len(delta)
    posed = {}
    quats = np.empty((frames, len(keyed), 4))
    root = int(fit.bones[0])
    location = np.zeros((frames, 3))
    for k, (b, carrier) in enumerate(keyed):
        j = bone_of[b]
        p = rig.parents[b]
        parent_rest = rig.rest[p] if p >= 0 else np.eye(4)
        if carrier >= 0:
            parent_pose = posed[carrier] @ (np.linalg.inv(rig.rest[carrier]) @ parent_rest)
        else:
            parent_pose = np.broadcast_to(parent_rest, (frames, 4, 4))
        to_bone = parent_pose @ (np.linalg.inv(parent_rest) @ rig.rest[b])        # pose of the bone at basis = I
        wanted = arm_delta[:, j] @ rig.rest[b][:3, :3]
        basis = np.swapaxes(to_bone[:, :3, :3], -1, -2) @ wanted
        matrix = np.array(to_bone)
        matrix[:, :3, :3] = wanted
        if b == root:
            head = arm_joints[:, 0] - arm_delta[:, 0] @ fit.pelvis_offset   # the joint may sit off the head
            offset = head - to_bone[:, :3, 3]
            location = np.einsum("tji,tj->ti", to_bone[:, :3, :3], offset)     # R^T (head - t)
            matrix[:, :3, 3] = head
        posed[b] = matrix
        quats[:, k] = rotations.matrix_to_quaternion(basis)
    quats = rotations.continuous_quaternions(quats)
    unmapped = tuple(n for n in names if not fit.bone_map.bones[n])
    return Channels(tuple(rig.names[b] for b, _ in keyed), quats, rig.names[root], location,
                    dict(fit.bone_map.properties), arm_joints, fit.scale, unmapped, contacts)


def _carrier_order(rig: Rig, keyed: list[int]) -> list[tuple[int, int]]:
    """[(bone, carrier)] of the keyed bones, each after the bone it inherits from; refuses a cycle."""
    carrier = {b: rig.carrier(b, keyed) for b in keyed}
    seen = set()
    for b in keyed:
        chain, i = [], b
        while i >= 0 and i not in chain:
            chain.append(i)
            i = carrier[i]
        if i >= 0:
            raise E3D2Error(f"{rig.name}: bones {', '.join(rig.names[c] for c in chain)} inherit from each other")
    order, done = [], set()

    def visit(b):
        if b in done:
            return
        if carrier[b] >= 0:
            visit(carrier[b])
        done.add(b)
        order.append((b, carrier[b]))

    for b in keyed:
        visit(b)
    del seen
    return order


# ---------------------------------------------------------------------------------------------- rig -> SMPL
def motion_from_pose(matrices: np.ndarray, fit: RigFit):
    """SMPL poses (T, 24, 3) and trans (T, 3) from the posed armature-space matrices (T, 24, 4, 4) of ``fit``'s
    mapped bones (one per SMPL joint, in SMPL order; entries of unmapped joints are ignored).

    Joints without a bone keep their parent's world rotation (no local turn); a bone driven by another SMPL joint
    (:attr:`RigFit.driver`) gives its rotation to that joint, and its own joint keeps its parent's. The inverse of :func:`retarget_motion` without
    its floor placement and foot lock.
    """
    matrices = np.asarray(matrices, np.float64)
    frame = fit.frame
    parents = default_skeleton().parents
    frames = len(matrices)
    world = np.empty((frames, 24, 3, 3))
    driven = {}          # SMPL joint -> the world rotation of the bone it drives
    for j in range(24):
        b = fit.bones[j]
        if b >= 0:
            arm_delta = matrices[:, j, :3, :3] @ fit.rig.rest[b][:3, :3].T
            driven[int(fit.driver[j])] = frame.T @ arm_delta @ frame @ fit.alignment[j]
        if j in driven:
            world[:, j] = driven.pop(j)
        else:
            world[:, j] = world[:, parents[j]] if parents[j] >= 0 else np.eye(3)
    pelvis = pelvis_joint(matrices[:, 0], fit) @ frame               # SMPL frame, rig units
    trans = np.empty((frames, 3))
    trans[:, [0, 2]] = (pelvis[:, [0, 2]] - fit.rest_joints[0, [0, 2]]) / fit.scale
    trans[:, 1] = (pelvis[:, 1] - fit.floor - fit.root_offset) / fit.scale
    return local_pose(world), trans


def pelvis_joint(matrices: np.ndarray, fit: RigFit) -> np.ndarray:
    """(..., 3) armature-space pelvis joint from the posed matrices (..., 4, 4) of its bone: the bone's head,
    moved by ``fit.pelvis_offset`` turned as the bone is (where the joint sits off the head)."""
    matrices = np.asarray(matrices, np.float64)
    turn = matrices[..., :3, :3] @ fit.rig.rest[fit.bones[0]][:3, :3].T
    return matrices[..., :3, 3] + turn @ fit.pelvis_offset


def pose_matrices(rig: Rig, channels: Channels) -> np.ndarray:
    """(T, B, 4, 4) posed armature-space matrices of every bone of a plain rig (no constraints but ``follows``)
    keyed with ``channels``: Blender's pose evaluation, for checking bakes without Blender."""
    frames = len(channels.quats)
    keyed = {rig.index(n): k for k, n in enumerate(channels.bones)}
    root = rig.index(channels.root_bone)
    posed = np.empty((frames, len(rig.names), 4, 4))
    index = {n: i for i, n in enumerate(rig.names)}
    done = np.zeros(len(rig.names), bool)

    def evaluate(b):
        if done[b]:
            return
        p = rig.parents[b]
        if p >= 0:
            evaluate(p)
            parent = posed[:, p]
            copied = rig.follows.get(rig.names[p])
            if copied in index:
                evaluate(index[copied])
                parent = posed[:, index[copied]] @ (np.linalg.inv(rig.rest[index[copied]]) @ rig.rest[p])
            local = parent @ (np.linalg.inv(rig.rest[p]) @ rig.rest[b])
        else:
            local = np.broadcast_to(rig.rest[b], (frames, 4, 4))
        basis = np.broadcast_to(np.eye(4), (frames, 4, 4)).copy()
        if b in keyed:
            basis[:, :3, :3] = rotations.quaternion_to_matrix(channels.quats[:, keyed[b]])
        if b == root:
            basis[:, :3, 3] = channels.location
        posed[:, b] = local @ basis
        done[b] = True

    for b in range(len(rig.names)):
        evaluate(b)
    return posed
