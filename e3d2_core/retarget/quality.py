"""How faithfully a retargeted dance follows its SMPL source (pure numpy; used by the tests and the benchmark).

Both skeletons are compared in SMPL's frame (Y up, facing +Z) with positions divided by body height: the
source's is its head joint's height above its standing floor, the rig's its mapped head bone's rest height
above its floor (:class:`~e3d2_core.retarget.rig.RigFit`). Horizontal positions are measured from each
one's starting spot (the source's first-frame pelvis, the rig's rest pelvis), heights from each one's floor.
"""
from __future__ import annotations

import numpy as np

from e3d2_core.retarget.bonemap import MAJOR_JOINTS, joint_names
from e3d2_core.retarget.rig import RigFit, smpl_sole_heights


def normalised_source(source: np.ndarray, fit: RigFit) -> np.ndarray:
    """(T, 24, 3) SMPL joints (metres, floor at 0) from the first frame's pelvis spot, over the source's height."""
    source = np.asarray(source, np.float64)
    origin = np.array([source[0, 0, 0], 0.0, source[0, 0, 2]])
    return (source - origin) / fit.smpl_height


def normalised_rig(joints: np.ndarray, fit: RigFit, *, armature_space: bool = True) -> np.ndarray:
    """(T, 24, 3) rig joints (armature space, or SMPL's frame) from the rig's spot and floor, over its height."""
    joints = np.asarray(joints, np.float64)
    if armature_space:
        joints = joints @ fit.frame
    origin = np.array([fit.rest_joints[0, 0], fit.floor, fit.rest_joints[0, 2]])
    return (joints - origin) / fit.height


def joint_error(source: np.ndarray, joints: np.ndarray, fit: RigFit, *, armature_space: bool = True,
                names=MAJOR_JOINTS) -> dict:
    """Per-joint mean distance (fraction of body height) between source and rig, over the mapped ``names``;
    ``"mean"`` is their average, ``"joints"`` the names measured.

    """
    index = joint_names()
    a = normalised_source(source, fit)
    b = normalised_rig(joints, fit, armature_space=armature_space)
    measured = [n for n in names if fit.bones[index.index(n)] >= 0]
    per = {n: float(np.linalg.norm(a[:, index.index(n)] - b[:, index.index(n)], axis=-1).mean()) for n in measured}
    return {"mean": float(np.mean(list(per.values()))), "per_joint": per, "joints": measured}


def left_stays_left(source: np.ndarray, joints: np.ndarray, fit: RigFit, *, armature_space: bool = True) -> float:
    """Fraction of frames in which the rig's left hip and shoulder are on the source's left side (1.0 = always)."""
    b = np.asarray(joints, np.float64) @ fit.frame if armature_space else np.asarray(joints, np.float64)
    good = []
    for left, right in ((1, 2), (16, 17)):
        if fit.bones[left] >= 0 and fit.bones[right] >= 0:
            good.append(np.sum((source[:, left] - source[:, right]) * (b[:, left] - b[:, right]), axis=-1) > 0)
    return float(np.mean(np.all(good, axis=0)))


def facing_error_degrees(source: np.ndarray, joints: np.ndarray, fit: RigFit, *, armature_space: bool = True):
    """(mean, max) angle in degrees between the source's and the rig's facing (the horizontal normal of the hips'
    left-right line) over the frames."""
    b = np.asarray(joints, np.float64) @ fit.frame if armature_space else np.asarray(joints, np.float64)

    def heading(j):
        side = j[:, 1] - j[:, 2]
        return np.arctan2(-side[:, 2], side[:, 0])      # front = side x up = (-side_z, 0, side_x)

    diff = np.angle(np.exp(1j * (heading(source) - heading(b))))
    return float(np.degrees(np.abs(diff)).mean()), float(np.degrees(np.abs(diff)).max())


def lowest_sole(joints: np.ndarray, fit: RigFit, *, armature_space: bool = True) -> float:
    """The lowest sole point of the rig over the dance, relative to its floor, in fractions of its height
    (>= 0: never below the floor)."""
    b = np.asarray(joints, np.float64) @ fit.frame if armature_space else np.asarray(joints, np.float64)
    return float((fit.sole_heights(b) - fit.floor).min() / fit.height)


def lowest_source_sole(source: np.ndarray, fit: RigFit) -> float:
    """The same for the SMPL source, in fractions of its height."""
    return float(smpl_sole_heights(source, fit.smpl_rest).min() / fit.smpl_height)


def source_on_rig_proportions(world: np.ndarray, fit: RigFit) -> np.ndarray:
    """(T, 24, 3) the source's pose on the rig's proportions, pelvis at the origin, SMPL's frame, rig units.

    Each mapped joint hangs off its nearest mapped ancestor p, turned by the SMPL world rotation that drives p
    (``world``, (T, 24, 3, 3); :attr:`RigFit.driver`): along SMPL's rest direction at the rig's rest length where p has one mapped child (a limb
    segment: the rig's T- or A-pose plays no part), by the rig's own rest offset where it has several (the hips
    off the pelvis, the collars off the chest: the character's build). A character whose limbs and trunk differ
    from SMPL's cannot put its joints where SMPL's are, however well it is retargeted; against this reference
    the character's build does not count, the retargeting does: the rig's axes, rolls and rest pose, the baking,
    and the one choice :func:`~e3d2_core.retarget.rig.fit_rig` makes at a joint with several children (the
    best-fit turn that brings the character's hips, or its neck and collars, toward SMPL's directions; the
    reference keeps them as the character has them). Unmapped joints stay nan.
    """
    world = np.asarray(world, np.float64)
    out = np.full(world.shape[:2] + (3,), np.nan)
    out[:, 0] = 0.0
    children = {p: [j for j in fit.joints if fit.structural_parent[j] == p] for p in fit.joints}
    for j in fit.joints[1:]:
        p = fit.structural_parent[j]
        offset = fit.rest_joints[j] - fit.rest_joints[p]
        if len(children[p]) == 1:
            direction = fit.smpl_rest[j] - fit.smpl_rest[p]
            offset = direction / np.linalg.norm(direction) * np.linalg.norm(offset)
        out[:, j] = out[:, p] + world[:, fit.driver[p]] @ offset
    return out


def pose_error_on_rig_proportions(world: np.ndarray, joints: np.ndarray, fit: RigFit, *,
                                  armature_space: bool = True, names=MAJOR_JOINTS) -> dict:
    """Like :func:`joint_error`, for the pose alone: each mapped joint's distance from the rig's pelvis against
    :func:`source_on_rig_proportions`, as a fraction of the rig's height. ``joint_error`` less this is what
    the character's proportions and its root motion (scaled by leg length) add."""
    index = joint_names()
    b = np.asarray(joints, np.float64) @ fit.frame if armature_space else np.asarray(joints, np.float64)
    a = source_on_rig_proportions(world, fit)
    measured = [n for n in names if fit.bones[index.index(n)] >= 0]
    per = {n: float(np.linalg.norm(a[:, index.index(n)] - (b[:, index.index(n)] - b[:, 0]), axis=-1).mean()
                    / fit.height) for n in measured}
    return {"mean": float(np.mean(list(per.values()))), "per_joint": per, "joints": measured}
