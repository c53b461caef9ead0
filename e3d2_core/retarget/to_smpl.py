"""Retarget a BVH skeleton (e.g. CMU's) or named joint tracks onto the SMPL skeleton (the importers' direction;
the other direction, SMPL onto a character, is :mod:`e3d2_core.retarget.transfer`).

1. Forward kinematics of the file's own skeleton gives world positions and rotations of its joints.
2. A name map says where each SMPL joint's target lies on that skeleton (a joint, an End Site, or a point
   between two joints) and which of its joints lends each SMPL joint its twist (its world rotation).
3. All positions are scaled by the leg-length ratio (SMPL hip-to-ankle over the file's, rest pose), which makes
   the root translation SMPL-sized, so the stance foot does not slide.
4. Inverse kinematics (:mod:`e3d2_core.io.ik`) on the SMPL skeleton, with the file's root rotation as the
   pelvis's world rotation: bone directions follow the mocap, bone lengths stay SMPL's.

Both rest poses must be T-poses facing +Z with Y up (true of the CMU files and of SMPL); this is checked. Rigs whose
BVH rest pose is not a T-pose (iClone's ``CC_Base_*`` rig stores its OFFSETs in bone-local frames, so summing them
gives no standing pose) are retargeted from joint positions only: the leg scale comes from bone lengths, which no
pose changes, and IK fits every joint without a twist reference (as for position files).

A skeleton none of the maps fits gets a map proposed by the generic name matcher
(:func:`e3d2_core.retarget.names.propose_map`), retargeted from positions; joints it cannot place are named.
"""
from __future__ import annotations

import numpy as np

from e3d2_core.errors import E3D2Error
from e3d2_core.io.bvh import Bvh, bvh_forward_kinematics, bvh_rest_positions
from e3d2_core.io.ik import inverse_kinematics
from e3d2_core.skeleton import Skeleton, default_skeleton

# A target spec is a joint name, "<joint>/end" (that joint's End Site), ("lerp", a, b, t) = a + t (b - a),
# or a list of alternatives (the first one the file has).
# CMU's BVH release used for the salsa files (hip, abdomen, chest, lThigh, lShin, lFoot, lShldr, ...).
CMU = {
    "name": "CMU",
    "targets": {
        "pelvis": "hip", "left_hip": "lThigh", "right_hip": "rThigh", "spine1": "abdomen",
        "left_knee": "lShin", "right_knee": "rShin", "spine2": "chest", "left_ankle": "lFoot",
        "right_ankle": "rFoot",
        # SMPL has three spine joints where CMU has two: spine3 sits a fifth of the way from chest to neck
        # (SMPL's own spine2-spine3 : spine3-neck proportion).
        "spine3": ("lerp", "chest", "neck", 0.2),
        "left_foot": "lFoot/end", "right_foot": "rFoot/end", "neck": "neck",
        "left_collar": "lCollar", "right_collar": "rCollar",
        # SMPL's head joint is mid-skull; CMU's "head" is the skull base, its eyes are nearer SMPL's head.
        "head": [("lerp", "leftEye", "rightEye", 0.5), "head"],
        "left_shoulder": "lShldr", "right_shoulder": "rShldr", "left_elbow": "lForeArm",
        "right_elbow": "rForeArm", "left_wrist": "lHand", "right_wrist": "rHand",
        "left_hand": ["lMid1", "lHand/end"], "right_hand": ["rMid1", "rHand/end"],
    },
    "twist": {
        "pelvis": "hip", "left_hip": "lThigh", "right_hip": "rThigh", "spine1": "abdomen", "left_knee": "lShin",
        "right_knee": "rShin", "spine2": "chest", "left_ankle": "lFoot", "right_ankle": "rFoot",
        "spine3": "chest", "left_foot": "lFoot", "right_foot": "rFoot", "neck": "neck", "left_collar": "lCollar",
        "right_collar": "rCollar", "head": "head", "left_shoulder": "lShldr", "right_shoulder": "rShldr",
        "left_elbow": "lForeArm", "right_elbow": "rForeArm", "left_wrist": "lHand", "right_wrist": "rHand",
        "left_hand": "lHand", "right_hand": "rHand",
    },
}

# iClone / Character Creator's rig (CMU subject 05 as re-exported by iClone): 100 joints, rest pose not a T-pose.
ICLONE = {
    "name": "iClone CC_Base",
    "rest_pose": "any",
    "targets": {
        "pelvis": "CC_Base_Pelvis", "left_hip": "CC_Base_L_Thigh", "right_hip": "CC_Base_R_Thigh",
        "spine1": "CC_Base_Spine01", "left_knee": "CC_Base_L_Calf", "right_knee": "CC_Base_R_Calf",
        "spine2": "CC_Base_Spine02", "left_ankle": "CC_Base_L_Foot", "right_ankle": "CC_Base_R_Foot",
        "spine3": ("lerp", "CC_Base_Spine02", "CC_Base_NeckTwist01", 0.2),
        "left_foot": "CC_Base_L_ToeBase", "right_foot": "CC_Base_R_ToeBase", "neck": "CC_Base_NeckTwist01",
        "left_collar": "CC_Base_L_Clavicle", "right_collar": "CC_Base_R_Clavicle",
        "head": [("lerp", "CC_Base_L_Eye", "CC_Base_R_Eye", 0.5), "CC_Base_Head"],
        "left_shoulder": "CC_Base_L_Upperarm", "right_shoulder": "CC_Base_R_Upperarm",
        "left_elbow": "CC_Base_L_Forearm", "right_elbow": "CC_Base_R_Forearm",
        "left_wrist": "CC_Base_L_Hand", "right_wrist": "CC_Base_R_Hand",
        "left_hand": ["CC_Base_L_Mid1", "CC_Base_L_Hand/end"], "right_hand": ["CC_Base_R_Mid1", "CC_Base_R_Hand/end"],
    },
    "twist": {},
}

# A Unity-humanoid style 22-bone rig (``Neo_*``: CMU subject 85 as retargeted for keijiro/CMUMocap), read from
# FBX by Blender's importer (training/fbx_joints.py): bone heads, plus a bone's tail as "<bone>/end".
NEO = {
    "name": "Neo humanoid",
    "rest_pose": "any",
    "targets": {
        "pelvis": "Neo_Hips", "left_hip": "Neo_LeftUpLeg", "right_hip": "Neo_RightUpLeg", "spine1": "Neo_Spine",
        "left_knee": "Neo_LeftLeg", "right_knee": "Neo_RightLeg", "spine2": "Neo_Spine1",
        "left_ankle": "Neo_LeftFoot", "right_ankle": "Neo_RightFoot", "spine3": "Neo_Spine2",
        "left_foot": "Neo_LeftToeBase", "right_foot": "Neo_RightToeBase", "neck": "Neo_Neck",
        "left_collar": "Neo_LeftShoulder", "right_collar": "Neo_RightShoulder", "head": "Neo_Head",
        "left_shoulder": "Neo_LeftArm", "right_shoulder": "Neo_RightArm", "left_elbow": "Neo_LeftForeArm",
        "right_elbow": "Neo_RightForeArm", "left_wrist": "Neo_LeftHand", "right_wrist": "Neo_RightHand",
        "left_hand": "Neo_LeftHand/end", "right_hand": "Neo_RightHand/end",
    },
    "twist": {},
}

_SMPL_NAMES = default_skeleton().names
# BVH files written from an SMPL rig: our names (pelvis, left_hip, ...) or SMPL's own (Pelvis, L_Hip, ...).
SMPL_SNAKE = {"name": "SMPL", "targets": {n: n for n in _SMPL_NAMES}, "twist": {n: n for n in _SMPL_NAMES}}
_SMPL_CAPS = ("Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle", "Spine3",
              "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder", "R_Shoulder", "L_Elbow",
              "R_Elbow", "L_Wrist", "R_Wrist", "L_Hand", "R_Hand")
SMPL_SHORT = {"name": "SMPL (L_Hip style)", "targets": dict(zip(_SMPL_NAMES, _SMPL_CAPS)),
              "twist": dict(zip(_SMPL_NAMES, _SMPL_CAPS))}

SKELETON_MAPS = (CMU, SMPL_SNAKE, SMPL_SHORT, ICLONE)
_LEFT_RIGHT_HIPS = (1, 2)
_ANKLES = (7, 8)


def retarget_bvh(bvh: Bvh, skeleton: Skeleton | None = None, *, up: str = "y"):
    """SMPL poses and root translation that dance ``bvh``'s motion on ``skeleton``.

    Returns:
        poses (F, 24, 3) axis-angle, trans (F, 3) metres (before floor placement), and a dict of facts
        (``skeleton_map``, ``leg_scale``).
    """
    skeleton = skeleton or default_skeleton()
    mapping, names = _choose_map(bvh)
    up_rotation = _up_rotation(up)

    if mapping.get("rest_pose") == "any":
        return _retarget_positions(bvh, mapping, names, skeleton, up_rotation)
    rest, rest_ends = bvh_rest_positions(bvh)
    rest_targets = _targets(mapping, names, rest[None], {k: v[None] for k, v in rest_ends.items()})[0]
    rest_targets = rest_targets @ up_rotation.T
    _check_rest_pose(rest_targets, bvh)
    scale = _leg_length(skeleton.rest_joints()) / _leg_length(rest_targets)

    positions, world, ends = bvh_forward_kinematics(bvh)
    targets = _targets(mapping, names, positions, ends) @ up_rotation.T * scale
    # World rotations in the Y-up frame: U R U^T (both rest frames are the identity there).
    twist = {j: up_rotation @ world[:, names[_plain(mapping["twist"][smpl_name])]] @ up_rotation.T
             for j, smpl_name in enumerate(skeleton.names)}
    poses, trans = inverse_kinematics(targets, skeleton, root_rotation=twist[0], reference_rotations=twist)
    return poses, trans, {"skeleton_map": mapping["name"], "leg_scale": float(scale)}


def _retarget_positions(bvh: Bvh, mapping, names, skeleton: Skeleton, up_rotation: np.ndarray):
    """Retarget from world joint positions alone (a rig whose BVH rest pose is not a T-pose)."""
    positions, _, ends = bvh_forward_kinematics(bvh)
    targets = _targets(mapping, names, positions, ends) @ up_rotation.T
    scale = leg_scale(targets[0], skeleton)
    poses, trans = inverse_kinematics(targets * scale, skeleton)
    return poses, trans, {"skeleton_map": mapping["name"], "leg_scale": float(scale)}


def smpl_targets(mapping: dict, positions: dict[str, np.ndarray]) -> np.ndarray:
    """(F, 24, 3) SMPL joint targets from named joint tracks ``{name or "<name>/end": (F, 3)}`` (any rig, any
    units) by ``mapping``'s target specs; raises E3D2Error naming the joints it lacks."""
    keys = {_plain(k): k for k in positions}
    names = {k: i for i, k in enumerate(keys)}
    stacked = np.stack([positions[keys[k]] for k in keys], axis=1)
    ends = {names[k[:-4]]: stacked[:, i] for k, i in names.items() if k.endswith("/end") and k[:-4] in names}
    missing = sorted({_first_missing(spec, names) for spec in mapping["targets"].values()} - {None})
    if missing:
        raise E3D2Error(f"no mapping to SMPL from the {mapping['name']} rig: missing joints {', '.join(missing)}")
    return _targets(mapping, names, stacked, ends)


def leg_scale(targets: np.ndarray, skeleton: Skeleton | None = None) -> float:
    """SMPL's hip-knee-ankle length over that of ``targets`` (24, 3) (any pose: bone lengths do not change)."""
    return _chain_length((skeleton or default_skeleton()).rest_joints()) / _chain_length(targets)


def _chain_length(joints: np.ndarray) -> float:
    """Hip-knee-ankle bone length (mean of both legs): the same in every pose."""
    legs = [(1, 4, 7), (2, 5, 8)]
    return float(np.mean([np.linalg.norm(joints[k] - joints[h]) + np.linalg.norm(joints[a] - joints[k])
                          for h, k, a in legs]))


def _choose_map(bvh: Bvh):
    """The first skeleton map whose joints the file has; otherwise an error naming what is missing."""
    names = {_plain(joint.name): i for i, joint in enumerate(bvh.joints)}
    best = None
    for mapping in SKELETON_MAPS:
        missing = sorted({_first_missing(spec, names) for spec in mapping["targets"].values()} - {None}
                         | {n for n in mapping["twist"].values() if _plain(n) not in names})
        if not missing:
            return mapping, names
        if best is None or len(missing) < len(best[1]):
            best = (mapping, missing)
    matched = matched_map([j.name for j in bvh.joints], [j.parent for j in bvh.joints])
    if not isinstance(matched, list):
        return matched, names
    mapping, missing = best
    raise E3D2Error(f"unknown BVH skeleton: no mapping to SMPL (closest: {mapping['name']}, missing joints "
                    f"{', '.join(missing)}; matching by name found no bone for {', '.join(matched)})",
                    path=bvh.path)


def matched_map(joint_names, parents):
    """A positions-only mapping proposed by the generic name matcher, or the list of SMPL joints it could not
    place. Leaf joints it misses (toes, hands, head) come from their parent's End Site, spine joints it misses
    from points between the pelvis and the chest or neck."""
    from e3d2_core.retarget.names import propose_map

    bones = propose_map(joint_names, parents).bones
    targets = {}
    for joint, bone in bones.items():
        if bone:
            targets[joint] = bone
    leaf_parent = {"left_foot": "left_ankle", "right_foot": "right_ankle", "left_hand": "left_wrist",
                   "right_hand": "right_wrist", "head": "neck"}
    for leaf, parent in leaf_parent.items():
        if leaf not in targets and parent in targets:
            targets[leaf] = [f"{targets[parent]}/end", targets[parent]]
    top = targets.get("spine3") or targets.get("neck")
    if "pelvis" in targets and isinstance(top, str):
        for joint, t in (("spine1", 0.33), ("spine2", 0.66), ("spine3", 0.8)):
            targets.setdefault(joint, ("lerp", targets["pelvis"], top, t))
    missing = [j for j in _SMPL_NAMES if j not in targets]
    if missing:
        return missing
    return {"name": "matched by name", "rest_pose": "any", "targets": targets, "twist": {}}


def _plain(name: str) -> str:
    """Joint names compare without case or a namespace prefix ("mixamorig:Hips" -> "hips")."""
    return name.rsplit(":", 1)[-1].lower()


def _first_missing(spec, names):
    """None when ``spec`` (or one of its alternatives) can be placed on the file's skeleton, else a joint name."""
    alternatives = spec if isinstance(spec, list) else [spec]
    for option in alternatives:
        needed = [option.split("/")[0]] if isinstance(option, str) else list(option[1:3])
        missing = [n for n in needed if _plain(n) not in names]
        if not missing:
            return None
    first = alternatives[0]
    needed = [first.split("/")[0]] if isinstance(first, str) else list(first[1:3])
    return next(n for n in needed if _plain(n) not in names)


def _targets(mapping, names, positions, ends) -> np.ndarray:
    """(F, 24, 3) target positions of the SMPL joints on the file's skeleton."""

    def place(spec):
        if isinstance(spec, list):
            for option in spec:
                try:
                    return place(option)
                except KeyError:
                    continue
            raise KeyError(spec)
        if isinstance(spec, tuple):
            _, a, b, t = spec
            pa, pb = positions[:, names[_plain(a)]], positions[:, names[_plain(b)]]
            return pa + t * (pb - pa)
        if spec.endswith("/end"):
            return ends[names[_plain(spec[:-4])]]
        return positions[:, names[_plain(spec)]]

    return np.stack([place(mapping["targets"][name]) for name in _SMPL_NAMES], axis=1)


def _leg_length(joints: np.ndarray) -> float:
    """Rest-pose height of the hip joints above the ankles (mean of both legs)."""
    return float(np.mean(joints[list(_LEFT_RIGHT_HIPS), 1]) - np.mean(joints[list(_ANKLES), 1]))


def _check_rest_pose(rest_targets: np.ndarray, bvh: Bvh) -> None:
    """The file's rest pose must stand up (+Y), with its left at +X and toes towards +Z, like SMPL's."""
    up = rest_targets[12, 1] - rest_targets[0, 1] > 0 and rest_targets[0, 1] > rest_targets[7, 1]
    left = rest_targets[16, 0] > rest_targets[17, 0] and rest_targets[1, 0] > rest_targets[2, 0]
    forward = rest_targets[10, 2] > rest_targets[7, 2] and rest_targets[11, 2] > rest_targets[8, 2]
    if not (up and left and forward):
        problems = [w for w, ok in (("upright along +Y", up), ("left side at +X", left),
                                    ("toes towards +Z", forward)) if not ok]
        raise E3D2Error(f"unsupported BVH rest pose: not {', '.join(problems)} (try --up z for Z-up files)",
                        path=bvh.path)
    if _leg_length(rest_targets) <= 0:
        raise E3D2Error("unsupported BVH rest pose: ankles are not below the hips", path=bvh.path)


def _up_rotation(up: str) -> np.ndarray:
    """Rotation taking the source's frame to Y up: identity, or (x, y, z) -> (x, z, -y) for Z up."""
    if up == "y":
        return np.eye(3)
    if up == "z":
        return np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    raise E3D2Error(f"up axis must be 'y' or 'z', got {up!r}")

