"""Constraints on a regenerated range: joints kept where they were, and key poses to hit.

* **Kept joints** (``keep=["feet"]``, ``["root"]``, ``["left_wrist", "head"]``…): during the regenerated range
  (and its blend) each kept joint stays at its world position in the input dance. ``root``/``pelvis`` keeps the
  root path exactly (the pelvis translation is copied). Any other joint is held by inverse kinematics in two
  passes: (1) :func:`hold_joints` solves small rotation offsets on the joints between the pelvis and the held
  ones, and a pelvis shift unless the root is kept, with L-BFGS on forward kinematics over all frames at once,
  penalising offsets and their change from frame to frame (so the dance's own movement survives and the
  result stays continuous with the frames around it); (2) :func:`snap_joints` then closes what is left frame
  by frame, analytically: a two-bone solve (hip-knee-ankle, shoulder-elbow-wrist, …) in the limb's current
  bending plane, or one swing of the parent when the parent is held too (toes, hands). A joint out of reach
  (farther from its chain's base than the bones are long) stays as close as the straight limb gets, and the
  error says so. Aliases: ``feet`` = both ankles and toes, ``hands`` = both wrists and hands.
* **Key poses** (:class:`PoseTarget`): a pose (all 24 local rotations, and optionally the pelvis position) to
  be met at a given time inside the range; see :func:`e3d2_core.blending.reach_pose`.

How well each holds is measured and stored in the result's ``meta["edit"]`` (``keep_error_cm``,
``pose_error_cm``); docs/editing.md has the numbers on the bundled model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from e3d2_core import rotations
from e3d2_core.errors import E3D2Error
from e3d2_core.skeleton import NUM_JOINTS, Skeleton, forward_kinematics_torch

ALIASES = {
    "feet": ("left_ankle", "right_ankle", "left_foot", "right_foot"),
    "hands": ("left_wrist", "right_wrist", "left_hand", "right_hand"),
    "root": ("pelvis",),
}
ROOT = 0
IK_ITERATIONS = 60
# Weights of the inverse kinematics, against the position error in cm² (per held joint and frame):
OFFSET_WEIGHT = 1.0          # per rad² of a rotation offset
SMOOTH_WEIGHT = 10.0         # per rad² of an offset's change from one frame to the next
SHIFT_SMOOTH_WEIGHT = 0.1   # per cm² of the pelvis shift's change from one frame to the next


@dataclass(frozen=True)
class PoseTarget:
    """A key pose to hit at ``time`` seconds (on the edited dance's timeline).

    ``poses``: (24, 3) SMPL local axis-angle (joint 0: the pelvis's world orientation); ``trans``: (3,) the
    pelvis position in metres, or None to meet the pose where the new dance is (its floor position, height and
    heading; the pelvis tilt and every joint's rotation come from the pose).
    """

    time: float
    poses: np.ndarray
    trans: np.ndarray | None = None

    @classmethod
    def from_motion(cls, time: float, motion, at: float | None = None, *, with_position: bool = False):
        """The pose of ``motion`` (a Motion or .npz path) at ``at`` seconds (its first frame when None)."""
        from e3d2_core.motion import Motion

        motion = Motion.load(motion) if not isinstance(motion, Motion) else motion
        frame = 0 if at is None else int(round(float(at) * motion.fps))
        if not 0 <= frame < motion.num_frames:
            raise E3D2Error(f"the key pose's source has no frame at {at} s (it is {motion.duration:.2f} s long)")
        return cls(float(time), motion.poses[frame].astype(np.float64),
                   motion.trans[frame].astype(np.float64) if with_position else None)

    def checked(self) -> "PoseTarget":
        poses = np.asarray(self.poses, dtype=np.float64)
        if poses.shape != (NUM_JOINTS, 3) or not np.isfinite(poses).all():
            raise E3D2Error(f"a key pose needs (24, 3) finite axis-angle rotations, got {poses.shape}")
        trans = None if self.trans is None else np.asarray(self.trans, dtype=np.float64)
        if trans is not None and (trans.shape != (3,) or not np.isfinite(trans).all()):
            raise E3D2Error(f"a key pose's position must be 3 finite numbers, got {trans.shape}")
        return PoseTarget(float(self.time), poses, trans)


def kept_joints(names, skeleton: Skeleton) -> tuple[int, ...]:
    """Joint names and aliases -> sorted SMPL indices; one clear error for an unknown name."""
    if isinstance(names, str):
        names = [names]
    index = {name: i for i, name in enumerate(skeleton.names)}
    found = set()
    for name in names or ():
        key = str(name).strip().lower()
        if not key:
            continue
        for joint in ALIASES.get(key, (key,)):
            if joint not in index:
                raise E3D2Error(f"unknown joint to keep: {name!r} (use feet, hands, root or one of "
                                f"{', '.join(skeleton.names)})")
            found.add(index[joint])
    return tuple(sorted(found))


def chain_joints(joints, skeleton: Skeleton) -> tuple[int, ...]:
    """The joints whose rotation moves any of ``joints``: their ancestors, without the pelvis (sorted)."""
    free = set()
    for j in joints:
        parent = skeleton.parents[j]
        while parent > ROOT:
            free.add(parent)
            parent = skeleton.parents[parent]
    return tuple(sorted(free))


def hold_joints(poses: np.ndarray, trans: np.ndarray, targets: np.ndarray, joints, skeleton: Skeleton, *,
                root_fixed: bool, root_guess: np.ndarray | None = None,
                iterations: int = IK_ITERATIONS) -> tuple[np.ndarray, np.ndarray]:
    """Pose offsets that put ``joints`` at ``targets`` in every frame (inverse kinematics, L-BFGS).

    The frames just outside the given ones are taken as unchanged (offsets and pelvis shift 0 there), so the
    smoothness term also keeps the result continuous with the motion around it.

    Args:
        poses: (B, T, 24, 3) axis-angle; trans: (B, T, 3) metres.
        targets: (T, 24, 3) world positions to hold (only the ``joints`` columns are read).
        joints: SMPL indices to hold (the pelvis excluded: it is kept by copying the translation).
        root_fixed: the pelvis position may not move (the root path is kept as well).
        root_guess: (T, 3) where the pelvis was when the targets were made (the input dance): the pelvis shift
            starts from its difference (so the body starts over the joints it must hold).
    Returns:
        poses, trans (float64) with offsets on the joints of :func:`chain_joints` (and the pelvis position).
    """
    joints = [j for j in joints if j != ROOT]
    free = [ROOT] + list(chain_joints(joints, skeleton))      # the pelvis may tilt a little too
    poses = np.asarray(poses, np.float64)
    trans = np.asarray(trans, np.float64)
    if not joints:
        return poses, trans
    base = torch.from_numpy(rotations.axis_angle_to_matrix(poses))                        # (B, T, 24, 3, 3)
    base_trans = torch.from_numpy(trans)
    goal = torch.from_numpy(np.asarray(targets, np.float64)[:, joints])[None]            # (1, T, J, 3)
    offsets = torch.zeros(poses.shape[:2] + (len(free), 3), dtype=torch.float64, requires_grad=True)
    guess = np.zeros_like(trans) if root_fixed or root_guess is None else np.asarray(root_guess, np.float64) - trans
    shift = torch.tensor(guess, dtype=torch.float64, requires_grad=not root_fixed)
    variables = [offsets] + ([] if root_fixed else [shift])
    optimiser = torch.optim.LBFGS(variables, lr=1.0, max_iter=iterations, tolerance_grad=1e-10,
                                  tolerance_change=1e-14, history_size=20, line_search_fn="strong_wolfe")
    frames = poses.shape[1]

    def padded(x):                 # the unchanged frames on both sides
        edge = x.new_zeros(x.shape[:1] + (1,) + x.shape[2:])
        return torch.cat([edge, x, edge], 1)

    def posed():
        local = base.clone()
        local[:, :, free] = rotations.axis_angle_to_matrix(offsets) @ base[:, :, free]
        return forward_kinematics_torch(local, base_trans + shift, skeleton, rotation_matrices=True)

    def objective():
        optimiser.zero_grad()
        error_cm2 = 1e4 * (posed()[:, :, joints] - goal).square().sum(-1).sum(-1)          # (B, T)
        loss = error_cm2.sum(-1) + OFFSET_WEIGHT * offsets.square().sum((-1, -2, -3))
        loss = loss + SMOOTH_WEIGHT * padded(offsets).diff(dim=1).square().sum((-1, -2, -3))
        loss = loss + SHIFT_SMOOTH_WEIGHT * 1e4 * padded(shift).diff(dim=1).square().sum((-1, -2))
        loss = loss.mean() / frames
        loss.backward()
        return loss

    optimiser.step(objective)
    with torch.no_grad():
        local = base.clone()
        local[:, :, free] = rotations.axis_angle_to_matrix(offsets) @ base[:, :, free]
        new_poses = rotations.matrix_to_axis_angle(local).numpy()
        return new_poses, (base_trans + shift).numpy()


# ---------------------------------------------------------------------------------------------- exact pass
def _positions(world: np.ndarray, trans: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """(N, 24, 3, 3) world rotations, (N, 3) pelvis -> (N, 24, 3) joint positions."""
    pos = [trans + skeleton.offsets[0]]
    for j in range(1, NUM_JOINTS):
        p = skeleton.parents[j]
        pos.append(pos[p] + world[:, p] @ skeleton.offsets[j])
    return np.stack(pos, 1)


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 3, 3) smallest rotations turning directions ``a`` onto ``b`` (N, 3)."""
    from e3d2_core.io.ik import swing_rotation

    return swing_rotation(a, b)


def _axis_rotation(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations by ``angle`` (N,) about unit ``axis`` (N, 3)."""
    return rotations.axis_angle_to_matrix(axis * angle[:, None])


def snap_joints(poses: np.ndarray, trans: np.ndarray, targets: np.ndarray, joints, skeleton: Skeleton, *,
                passes: int = 2) -> np.ndarray:
    """Close the remaining distance of held joints exactly, frame by frame (analytic two-bone solves).

    Args:
        poses: (N, 24, 3) axis-angle; trans: (N, 3); targets: (N, 24, 3) (the ``joints`` columns are read).
        joints: SMPL indices to hold; each is solved after its parent (index order), ``passes`` times so that
            chains sharing a base (both arms below spine3) settle together.
    Returns:
        poses (N, 24, 3) float64; the pelvis position and orientation are never touched.
    """
    from e3d2_core.skeleton import global_rotations

    joints = sorted(j for j in joints if j != ROOT and skeleton.parents[j] != ROOT)
    local = rotations.axis_angle_to_matrix(np.asarray(poses, np.float64))
    trans = np.asarray(trans, np.float64)
    targets = np.asarray(targets, np.float64)
    parents = skeleton.parents
    for _ in range(passes if joints else 0):
        for j in joints:
            world = global_rotations(local, skeleton)
            pos = _positions(world, trans, skeleton)
            p = parents[j]
            g = parents[p]
            goal = targets[:, j]
            if p in joints or g == ROOT:          # the parent stays where it is: turn it to point at the goal
                turn = _swing(pos[:, j] - pos[:, p], goal - pos[:, p])
                new_world_p = turn @ world[:, p]
                local[:, p] = np.swapaxes(world[:, g], -1, -2) @ new_world_p
                continue
            a, b, c = pos[:, g], pos[:, p], pos[:, j]
            l1, l2 = np.linalg.norm(b - a, axis=-1), np.linalg.norm(c - b, axis=-1)
            reach = np.clip(np.linalg.norm(goal - a, axis=-1), np.abs(l1 - l2) + 1e-6, l1 + l2 - 1e-6)
            want = np.arccos(np.clip((l1 ** 2 + l2 ** 2 - reach ** 2) / (2 * l1 * l2), -1.0, 1.0))
            u, v = c - b, a - b
            now = np.arccos(np.clip(np.sum(u * v, -1) / (l1 * l2 + 1e-12), -1.0, 1.0))
            axis = np.cross(u, v)
            norm = np.linalg.norm(axis, axis=-1, keepdims=True)
            fallback = world[:, p, :, 0]                    # a straight limb bends about its joint's x axis
            axis = np.where(norm > 1e-6, axis / np.maximum(norm, 1e-12), fallback)
            bend = _axis_rotation(axis, now - want)             # moves c towards a: the inner angle shrinks
            world_p = bend @ world[:, p]
            bent_c = b + (bend @ u[..., None])[..., 0]
            turn = _swing(bent_c - a, goal - a)
            world_g = turn @ world[:, g]
            world_p = turn @ world_p
            # where turning the parent alone reaches the goal (it lies at the bone's length from the parent),
            # do only that: the grandparent, and whatever else hangs from it, stays where it is
            direct = (np.abs(np.linalg.norm(goal - b, axis=-1) - l2) < 1e-9)[:, None, None]
            world_g = np.where(direct, world[:, g], world_g)
            world_p = np.where(direct, _swing(c - b, goal - b) @ world[:, p], world_p)
            local[:, g] = np.swapaxes(world[:, parents[g]], -1, -2) @ world_g
            local[:, p] = np.swapaxes(world_g, -1, -2) @ world_p
    return rotations.matrix_to_axis_angle(local)
