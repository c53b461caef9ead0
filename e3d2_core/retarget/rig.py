"""A target armature at rest, and how its mapped bones line up with SMPL's joints (pure numpy).

:class:`Rig` holds what Blender calls ``Bone.matrix_local`` for every bone (armature space, the armature's own
units and axes) and the hierarchy. :func:`fit_rig` compares the mapped bones with SMPL's rest T-pose once:

* **frame** C: the rotation taking SMPL's frame (Y up, facing +Z, left at +X) into armature space, found from
  the rig's own rest pose (pelvis -> neck is up, right hip -> left hip is left); snapped to the axes when near
  them, so Z-up rigs facing -Y (Blender's habit), Y-up FBX rigs and VRM's -Z-facing avatars all work;
* **alignment** A_j per joint: the rotation from SMPL's rest bone direction(s) at joint j to the rig's (swing
  for one child, best fit for several): T-pose against A-pose and bent rest elbows and knees are absorbed here;
  bone rolls and per-bone axes are the rig's own rest rotations, never assumed;
* **driver** per joint: whose SMPL world rotation turns the bone. Its own, except where SMPL has a joint the
  rig lacks between the bone and all its mapped children: a chest bone without ``spine3`` above it carries the
  neck and collars, which hang off SMPL's ``spine3``, so it turns as ``spine3`` does;
* **scale** s: the rig's leg length (hip-knee-ankle) over SMPL's, for the root motion; the rig's floor (its rest
  feet's lowest point, or the armature's origin when the feet stand just above it) and body height.

``follows`` names bones whose world transform is copied from another bone by a full Copy Transforms
constraint (Rigify's ``ORG-shoulder.L`` copies ``shoulder.L``): the motion a child inherits comes from there.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from e3d2_core.errors import E3D2Error
from e3d2_core.retarget import kinematics as kin
from e3d2_core.retarget.bonemap import BoneMap, joint_names
from e3d2_core.skeleton import default_skeleton, skeleton_with_offsets

FOOT_JOINT_ABOVE_SOLE = 0.03  # metres: SMPL's toe-base joint above the sole (e3d2_core.io.floor's rule)
_LEGS = (("left_hip", "left_knee", "left_ankle", "left_foot"), ("right_hip", "right_knee", "right_ankle", "right_foot"))


@dataclass(frozen=True)
class Rig:
    """An armature's bones at rest.

    ``names`` (B,), ``parents`` (B,) index or -1, ``rest`` (B, 4, 4) each bone's rest matrix in armature space
    (Blender's ``Bone.matrix_local``: rotation columns are the bone's X, Y (along the bone) and Z axes, the
    translation is its head), ``tails`` (B, 3) optional bone tails, ``follows`` {bone: bone it copies}.
    """

    names: tuple
    parents: tuple
    rest: np.ndarray = field(repr=False)
    tails: np.ndarray | None = field(default=None, repr=False)
    follows: dict = field(default_factory=dict)
    name: str = "the armature"

    def __post_init__(self):
        rest = np.asarray(self.rest, dtype=np.float64)
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "parents", tuple(int(p) for p in self.parents))
        if rest.shape != (len(self.names), 4, 4) or len(self.parents) != len(self.names):
            raise E3D2Error(f"{self.name}: a rig needs one 4x4 rest matrix and one parent per bone "
                            f"({len(self.names)} bones, rest {rest.shape}, {len(self.parents)} parents)")
        object.__setattr__(self, "rest", rest)
        if self.tails is not None:
            object.__setattr__(self, "tails", np.asarray(self.tails, dtype=np.float64))

    def index(self, bone: str) -> int:
        try:
            return self.names.index(bone)
        except ValueError:
            raise E3D2Error(f"{self.name} has no bone {bone!r}") from None

    @property
    def heads(self) -> np.ndarray:
        """(B, 3) rest heads in armature space."""
        return self.rest[:, :3, 3]

    def carrier(self, bone: int, carriers) -> int:
        """The nearest bone among ``carriers`` (indices) whose motion ``bone``'s parent inherits rigidly, walking
        up the parents and jumping to the bone a parent copies (``follows``); -1 when none (a static parent)."""
        carriers = set(carriers)
        index = {n: i for i, n in enumerate(self.names)}
        i, seen = self.parents[bone], set()
        while i >= 0 and i not in seen:
            seen.add(i)
            if i in carriers:
                return i
            copied = self.follows.get(self.names[i])
            i = index[copied] if copied in index else self.parents[i]
        return -1


@dataclass(frozen=True)
class RigFit:
    """How ``rig``'s mapped bones correspond to SMPL's joints (see the module docstring).

    ``joints``: mapped SMPL joint indices; ``bones``: (24,) bone index per joint or -1; ``frame``: C (3, 3);
    ``rest_joints``: (24, 3) rig rest positions in SMPL's frame, rig units (nan when unmapped; each joint at its
    bone's head, the pelvis at its bone's tail where that is where the hips and spine start:
    ``pelvis_offset``, the pelvis joint less its bone's head at rest, armature space, is then non-zero); ``alignment``:
    (24, 3, 3); ``structural_parent``: (24,) nearest mapped SMPL ancestor or -1; ``driver``: (24,) the SMPL
    joint whose world rotation turns each mapped bone (itself, or the unmapped joint its children hang off);
    ``scale``: rig leg / SMPL leg
    (rig units per metre); ``floor``: the rig's floor height in SMPL's frame; ``height``: the mapped head's rest
    height above that floor; ``root_offset``: the rig's pelvis height over the scaled SMPL standing pelvis height.
    """

    rig: Rig
    bone_map: BoneMap
    joints: tuple
    bones: np.ndarray
    frame: np.ndarray
    rest_joints: np.ndarray
    alignment: np.ndarray
    structural_parent: np.ndarray
    scale: float
    floor: float
    height: float
    root_offset: float
    smpl_rest: np.ndarray
    smpl_floor: float
    pelvis_offset: np.ndarray = field(default_factory=lambda: np.zeros(3), repr=False)
    driver: np.ndarray = field(default_factory=lambda: np.arange(24), repr=False)

    @property
    def smpl_height(self) -> float:
        return float(self.smpl_rest[15, 1] - self.smpl_floor)

    def sole_heights(self, joints: np.ndarray) -> np.ndarray:
        """(T,) lowest sole point per frame (SMPL frame, rig units) from (T, 24, 3) rig joint positions: each
        mapped ankle/toe joint's height less its rest height above the floor, the lowest over both legs."""
        names = joint_names()
        heights = []
        for leg in _LEGS:
            for joint in leg[2:]:
                j = names.index(joint)
                if self.bones[j] >= 0:
                    heights.append(joints[:, j, 1] - (self.rest_joints[j, 1] - self.floor))
        return np.min(np.stack(heights, -1), -1)


def smpl_sole_heights(joints: np.ndarray, rest: np.ndarray | None = None) -> np.ndarray:
    """(T,) lowest sole point per frame of SMPL joints (T, 24, 3), metres (e3d2_core.io.floor's rule)."""
    rest = default_skeleton().rest_joints() if rest is None else rest
    heights = []
    for ankle, foot in ((7, 10), (8, 11)):
        heights.append(joints[:, foot, 1] - FOOT_JOINT_ABOVE_SOLE)
        heights.append(joints[:, ankle, 1] - (FOOT_JOINT_ABOVE_SOLE + rest[ankle, 1] - rest[foot, 1]))
    return np.min(np.stack(heights, -1), -1)


def fit_rig(rig: Rig, bone_map: BoneMap, smpl_offsets: np.ndarray | None = None) -> RigFit:
    """Compare ``rig``'s mapped bones (``bone_map``) with SMPL's rest pose; raises E3D2Error when a mapped bone
    is missing from the rig or the map lacks a required joint."""
    from e3d2_core.retarget.names import require_humanoid

    require_humanoid(bone_map, rig.name)
    names = joint_names()
    smpl_parents = default_skeleton().parents
    bones = np.full(len(names), -1)
    for j, joint in enumerate(names):
        bone = bone_map.bones[joint]
        if bone:
            bones[j] = rig.index(bone)
    mapped = tuple(int(j) for j in np.flatnonzero(bones >= 0))
    heads = np.full((len(names), 3), np.nan)
    heads[list(mapped)] = rig.heads[bones[list(mapped)]]
    pelvis_offset = _pelvis_offset(rig, bones, heads)
    heads[0] = heads[0] + pelvis_offset

    smpl_rest = skeleton_with_offsets(smpl_offsets).rest_joints()
    frame = _body_frame(heads, names)
    rest_joints = heads @ frame          # C^T h for each row: armature space -> SMPL frame
    parent = np.full(len(names), -1)
    for j in mapped:
        p = smpl_parents[j]
        while p >= 0 and bones[p] < 0:
            p = smpl_parents[p]
        parent[j] = p

    alignment = np.broadcast_to(np.eye(3), (len(names), 3, 3)).copy()
    for j in mapped:        # SMPL order: parents first
        kids = [c for c in mapped if parent[c] == j]
        if kids:
            smpl_dirs = smpl_rest[kids] - smpl_rest[j]
            rig_dirs = rest_joints[kids] - rest_joints[j]
            alignment[j] = kin.swing_rotation(smpl_dirs[0], rig_dirs[0]) if len(kids) == 1 \
                else kin.kabsch_rotation(smpl_dirs, rig_dirs)
        elif parent[j] >= 0:
            alignment[j] = alignment[parent[j]]

    driver = np.arange(len(names))
    for j in mapped:
        hung_from = {int(smpl_parents[c]) for c in mapped if parent[c] == j}
        if len(hung_from) == 1 and bones[q := hung_from.pop()] < 0:
            driver[j] = q

    scale = _leg_length(rest_joints, names) / _leg_length(smpl_rest, names)
    if not np.isfinite(scale) or scale <= 0:
        raise E3D2Error(f"{rig.name}: its legs have no length at rest (hip, knee and ankle bones coincide)")
    floor = _rig_floor(rig, bones, frame, rest_joints, names)
    head_joint = next(j for j in (15, 12, 9, 6, 3) if bones[j] >= 0)
    height = float(rest_joints[head_joint, 1] - floor)
    smpl_floor = float(min(smpl_rest[10, 1], smpl_rest[11, 1]) - FOOT_JOINT_ABOVE_SOLE)
    root_offset = float(rest_joints[0, 1] - floor - scale * (smpl_rest[0, 1] - smpl_floor))
    return RigFit(rig, bone_map, mapped, bones, frame, rest_joints, alignment, parent, float(scale), floor,
                  height, root_offset, smpl_rest, smpl_floor, pelvis_offset, driver)


def _pelvis_offset(rig: Rig, bones: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """(3,) where the pelvis joint sits from its bone's head (armature space, at rest): zero, unless the bone's
    tail is where the thighs start and its head is well away from there (MakeHuman's ``root`` starts 8 cm behind
    the body and ends between the hips), when the joint is at the tail."""
    if rig.tails is None or bones[1] < 0 or bones[2] < 0:
        return np.zeros(3)
    between_hips = (heads[1] + heads[2]) / 2
    head, tail = heads[0], rig.tails[bones[0]]
    hip_width = np.linalg.norm(heads[1] - heads[2])
    from_head, from_tail = np.linalg.norm(head - between_hips), np.linalg.norm(tail - between_hips)
    if from_tail < 0.25 * hip_width and from_head > 2.0 * from_tail + 0.1 * hip_width:
        return tail - head
    return np.zeros(3)


def _body_frame(heads: np.ndarray, names) -> np.ndarray:
    """C (3, 3): SMPL frame -> armature space, from the rig's up (pelvis -> highest mapped torso joint) and left
    (right hip -> left hip) directions."""
    index = {n: i for i, n in enumerate(names)}
    top = next(index[n] for n in ("neck", "head", "spine3", "spine2", "spine1") if np.isfinite(heads[index[n]]).all())
    up = heads[top] - heads[index["pelvis"]]
    side = heads[index["left_hip"]] - heads[index["right_hip"]]
    if np.linalg.norm(up) < 1e-9 or np.linalg.norm(side) < 1e-9:
        raise E3D2Error("the rig's rest pose has its hips or its torso collapsed to a point")
    up = up / np.linalg.norm(up)
    side = side - up * np.dot(side, up)
    side = side / np.linalg.norm(side)
    axes = np.stack([side, up, np.cross(side, up)], axis=-1)     # columns: the rig's left, up, front
    return kin.snap_to_axes(axes)                                # SMPL's axes are the identity


def _leg_length(joints: np.ndarray, names) -> float:
    index = {n: i for i, n in enumerate(names)}
    lengths = [np.linalg.norm(joints[index[k]] - joints[index[h]]) + np.linalg.norm(joints[index[a]] - joints[index[k]])
               for h, k, a, _ in _LEGS]
    return float(np.mean(lengths))


def _rig_floor(rig: Rig, bones, frame, rest_joints, names) -> float:
    """The rig's floor height (SMPL frame): the armature's origin plane when the rest feet stand on or just above
    it (within a tenth of the leg length), else the lowest point of the foot bones."""
    points = []
    for leg in _LEGS:
        for joint in leg[2:]:
            b = bones[names.index(joint)]
            if b >= 0:
                points.append(rig.heads[b] @ frame)
                if rig.tails is not None:
                    points.append(rig.tails[b] @ frame)
    lowest = float(min(p[1] for p in points))
    leg = _leg_length(rest_joints, names)
    return 0.0 if 0.0 <= lowest <= 0.1 * leg else lowest
