"""Character skeletons for the retargeting tests, built from the published bone names and hierarchies.

* Mixamo: ``mixamorig:Hips`` ... (Adobe's Mixamo skeleton: Hips > Spine > Spine1 > Spine2 > Neck > Head >
  HeadTop_End; Spine2 > LeftShoulder > LeftArm > LeftForeArm > LeftHand > LeftHand{Thumb,Index,Middle}1-3;
  Hips > LeftUpLeg > LeftLeg > LeftFoot > LeftToeBase > LeftToe_End), T-pose, centimetres, Y up facing +Z as
  Mixamo's FBX files are.
* UE5 Mannequin (Manny): root > pelvis > spine_01-05 > neck_01 > neck_02 > head; spine_05 > clavicle_l >
  upperarm_l > lowerarm_l > hand_l > middle_metacarpal_l > middle_01_l, with upperarm_twist_01_l and
  lowerarm_twist_01_l; pelvis > thigh_l > calf_l > foot_l > ball_l, with thigh_twist_01_l and calf_twist_01_l;
  root > ik_foot_root > ik_foot_l. A-pose (arms 45 degrees down, elbows bent 15 degrees), centimetres, Z up,
  facing -Y as Unreal characters import into Blender, every bone rolled 90 degrees (Unreal's bone axes).
* VRM (VRoid Studio's names): J_Bip_C_Hips > J_Bip_C_Spine > J_Bip_C_Chest > J_Bip_C_UpperChest >
  J_Bip_C_Neck > J_Bip_C_Head; J_Bip_L_Shoulder > J_Bip_L_UpperArm > J_Bip_L_LowerArm > J_Bip_L_Hand >
  J_Bip_L_Middle1; J_Bip_L_UpperLeg > J_Bip_L_LowerLeg > J_Bip_L_Foot > J_Bip_L_ToeBase; hair J_Sec_Hair*.
  T-pose, metres, Y up, facing -Z (VRM 0.x), 1.55 m tall, bones rolled -45 degrees.

Joint centres are SMPL's mean body (rigs place joints at joint centres too) with each rig's legs, arms and trunk
made 3-8 % longer or shorter (Mixamo legs 0.97, arms 1.04, trunk 1.04; UE5 1.04, 1.03, 0.96; VRM 1.06, 0.95,
0.92), so no rig is SMPL scaled; UE5's five spine bones sit evenly along the spine, not at SMPL's joints.
Each rig is a list of ``(name, parent, head, tail, roll)`` in armature space, the way an armature is built.

Real rigs with real proportions: :func:`makehuman_bones` reads MakeHuman's CC0 rigs (tests/data/makehuman_rigs.json:
its game-engine, Mixamo, CMU MotionBuilder and default skeletons, fitted to MakeHuman's default body).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from e3d2_core import rotations
from e3d2_core.retarget import kinematics as kin
from e3d2_core.retarget.rig import Rig
from e3d2_core.skeleton import default_skeleton


def _body(height: float, *, a_pose: bool = False, legs: float = 1.0, arms: float = 1.0, spine: float = 1.0) -> dict:
    """Joint positions (Y up, facing +Z, left at +X, feet on the floor) of a body ``height`` tall at the head
    joint: SMPL's mean body with its legs, arms and spine lengthened by the given factors."""
    rest = default_skeleton().rest_joints()
    j = {n: rest[i].copy() for i, n in enumerate(default_skeleton().names)}
    pelvis = j["pelvis"].copy()
    for side in ("left", "right"):          # each bone of a leg or an arm scaled, from its root outwards
        for chain, factor in (([f"{side}_hip", f"{side}_knee", f"{side}_ankle", f"{side}_foot"], legs),
                              ([f"{side}_shoulder", f"{side}_elbow", f"{side}_wrist", f"{side}_hand"], arms)):
            points = [j[c].copy() for c in chain]
            for k in range(1, len(chain)):
                j[chain[k]] = j[chain[k - 1]] + factor * (points[k] - points[k - 1])
    upper = ["spine1", "spine2", "spine3", "neck", "head", "left_collar", "right_collar", "left_shoulder",
             "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand"]
    for n in upper:                          # the trunk shortened or lengthened upwards from the pelvis
        j[n][1] = pelvis[1] + spine * (j[n][1] - pelvis[1])
    if a_pose:                               # arms 45 degrees down about each shoulder, elbows bent 15 degrees
        for side, x in (("left", 1.0), ("right", -1.0)):
            shoulder = j[f"{side}_shoulder"]
            down = rotations.axis_angle_to_matrix(np.array([0.0, 0.0, -x * np.radians(45.0)]))
            for n in (f"{side}_elbow", f"{side}_wrist", f"{side}_hand"):
                j[n] = shoulder + down @ (j[n] - shoulder)
            elbow = j[f"{side}_elbow"]
            bend = rotations.axis_angle_to_matrix(np.array([0.0, -x * np.radians(15.0), 0.0]))
            for n in (f"{side}_wrist", f"{side}_hand"):
                j[n] = elbow + bend @ (j[n] - elbow)
    floor = min(j["left_foot"][1], j["right_foot"][1]) - 0.03
    for n in j:
        j[n] = j[n] - np.array([0.0, floor, 0.0])
    scale = height / j["head"][1]
    p = {k: v * scale for k, v in j.items()}
    up = np.array([0.0, 1.0, 0.0])
    out = {"hips": p["pelvis"], "head": p["head"], "head_top": p["head"] + 0.075 * height * up, "neck": p["neck"]}
    spine_line = [p["pelvis"], p["spine1"], p["spine2"], p["spine3"], p["neck"]]
    out.update({"spine_a": p["spine1"], "spine_b": p["spine2"], "spine_c": p["spine3"]})
    out["spine_line"] = spine_line
    for s_, side in (("L", "left"), ("R", "right")):
        hand_dir = p[f"{side}_hand"] - p[f"{side}_wrist"]
        out.update({f"hip{s_}": p[f"{side}_hip"], f"knee{s_}": p[f"{side}_knee"], f"ankle{s_}": p[f"{side}_ankle"],
                    f"ball{s_}": p[f"{side}_foot"], f"toe{s_}": p[f"{side}_foot"] + np.array([0, 0, 0.03 * height]),
                    f"collar{s_}": p[f"{side}_collar"], f"shoulder{s_}": p[f"{side}_shoulder"],
                    f"elbow{s_}": p[f"{side}_elbow"], f"wrist{s_}": p[f"{side}_wrist"],
                    f"middle{s_}": p[f"{side}_hand"], f"middle_tip{s_}": p[f"{side}_hand"] + 0.5 * hand_dir,
                    f"thumb{s_}": p[f"{side}_wrist"] + 0.4 * hand_dir + np.array([0, -0.01, 0.02]) * height})
    return out


def along_spine(body: dict, fraction: float) -> np.ndarray:
    """The point ``fraction`` (0 = pelvis, 1 = neck) of the way up the spine polyline, by length."""
    line = body["spine_line"]
    lengths = [np.linalg.norm(b - a) for a, b in zip(line[:-1], line[1:])]
    goal = fraction * sum(lengths)
    for a, b, length in zip(line[:-1], line[1:], lengths):
        if goal <= length:
            return a + (b - a) * goal / length
        goal -= length
    return line[-1]


def _tail(head, tail, minimum=1e-3):
    tail = np.asarray(tail, float)
    return tail if np.linalg.norm(tail - head) > minimum else head + np.array([0.0, 0.05, 0.0])


def mixamo_bones(prefix: str = "mixamorig:", height: float = 180.0):
    """Mixamo's skeleton (see the module docstring): (name, parent, head, tail, roll) in cm, Y up, facing +Z."""
    b = _body(height, legs=0.97, arms=1.04, spine=1.04)
    bones = [("Hips", None, "hips", "spine_a"), ("Spine", "Hips", "spine_a", "spine_b"),
             ("Spine1", "Spine", "spine_b", "spine_c"), ("Spine2", "Spine1", "spine_c", "neck"),
             ("Neck", "Spine2", "neck", "head"), ("Head", "Neck", "head", "head_top"),
             ("HeadTop_End", "Head", "head_top", None)]
    for s, side in (("L", "Left"), ("R", "Right")):
        bones += [(f"{side}Shoulder", "Spine2", f"collar{s}", f"shoulder{s}"),
                  (f"{side}Arm", f"{side}Shoulder", f"shoulder{s}", f"elbow{s}"),
                  (f"{side}ForeArm", f"{side}Arm", f"elbow{s}", f"wrist{s}"),
                  (f"{side}Hand", f"{side}ForeArm", f"wrist{s}", f"middle{s}"),
                  (f"{side}HandMiddle1", f"{side}Hand", f"middle{s}", f"middle_tip{s}"),
                  (f"{side}HandThumb1", f"{side}Hand", f"thumb{s}", f"middle{s}"),
                  (f"{side}UpLeg", "Hips", f"hip{s}", f"knee{s}"),
                  (f"{side}Leg", f"{side}UpLeg", f"knee{s}", f"ankle{s}"),
                  (f"{side}Foot", f"{side}Leg", f"ankle{s}", f"ball{s}"),
                  (f"{side}ToeBase", f"{side}Foot", f"ball{s}", f"toe{s}"),
                  (f"{side}Toe_End", f"{side}ToeBase", f"toe{s}", None)]
    return _build(bones, b, prefix=prefix, up="y", front="+z", roll=0.0)


def ue5_bones(height: float = 180.0):
    """The UE5 mannequin (see the module docstring): cm, Z up, facing -Y, A-pose, rolled bones."""
    b = _body(height, a_pose=True, legs=1.04, arms=1.03, spine=0.96)
    for k, f in zip(("spine_a", "spine_ab", "spine_b", "spine_c", "spine_d"), (0.1, 0.28, 0.46, 0.64, 0.82)):
        b[k] = along_spine(b, f)
    b["neck2"] = (b["neck"] + b["head"]) / 2
    b["floor"] = np.zeros(3)
    bones = [("root", None, "floor", None), ("pelvis", "root", "hips", "spine_a"),
             ("spine_01", "pelvis", "spine_a", "spine_ab"), ("spine_02", "spine_01", "spine_ab", "spine_b"),
             ("spine_03", "spine_02", "spine_b", "spine_c"), ("spine_04", "spine_03", "spine_c", "spine_d"),
             ("spine_05", "spine_04", "spine_d", "neck"), ("neck_01", "spine_05", "neck", "neck2"),
             ("neck_02", "neck_01", "neck2", "head"), ("head", "neck_02", "head", "head_top"),
             ("ik_foot_root", "root", "floor", None)]
    for s in ("l", "r"):
        S = s.upper()
        bones += [(f"clavicle_{s}", "spine_05", f"collar{S}", f"shoulder{S}"),
                  (f"upperarm_{s}", f"clavicle_{s}", f"shoulder{S}", f"elbow{S}"),
                  (f"upperarm_twist_01_{s}", f"upperarm_{s}", f"shoulder{S}", f"elbow{S}"),
                  (f"lowerarm_{s}", f"upperarm_{s}", f"elbow{S}", f"wrist{S}"),
                  (f"lowerarm_twist_01_{s}", f"lowerarm_{s}", f"elbow{S}", f"wrist{S}"),
                  (f"hand_{s}", f"lowerarm_{s}", f"wrist{S}", f"middle{S}"),
                  (f"middle_metacarpal_{s}", f"hand_{s}", f"wrist{S}", f"middle{S}"),
                  (f"middle_01_{s}", f"middle_metacarpal_{s}", f"middle{S}", f"middle_tip{S}"),
                  (f"thigh_{s}", "pelvis", f"hip{S}", f"knee{S}"),
                  (f"thigh_twist_01_{s}", f"thigh_{s}", f"hip{S}", f"knee{S}"),
                  (f"calf_{s}", f"thigh_{s}", f"knee{S}", f"ankle{S}"),
                  (f"calf_twist_01_{s}", f"calf_{s}", f"knee{S}", f"ankle{S}"),
                  (f"foot_{s}", f"calf_{s}", f"ankle{S}", f"ball{S}"),
                  (f"ball_{s}", f"foot_{s}", f"ball{S}", f"toe{S}"),
                  (f"ik_foot_{s}", "ik_foot_root", f"ankle{S}", f"ball{S}")]
    return _build(bones, b, prefix="", up="z", front="-y", roll=np.pi / 2)


def vrm_bones(height: float = 1.55):
    """A VRoid VRM avatar (see the module docstring): metres, Y up, facing -Z, T-pose."""
    b = _body(height, legs=1.06, arms=0.95, spine=0.92)
    b["hair"] = b["head_top"] + np.array([0.0, 0.0, -0.05])
    bones = [("Root", None, "hips", None), ("J_Bip_C_Hips", "Root", "hips", "spine_a"),
             ("J_Bip_C_Spine", "J_Bip_C_Hips", "spine_a", "spine_b"),
             ("J_Bip_C_Chest", "J_Bip_C_Spine", "spine_b", "spine_c"),
             ("J_Bip_C_UpperChest", "J_Bip_C_Chest", "spine_c", "neck"),
             ("J_Bip_C_Neck", "J_Bip_C_UpperChest", "neck", "head"),
             ("J_Bip_C_Head", "J_Bip_C_Neck", "head", "head_top"),
             ("J_Sec_Hair1_01", "J_Bip_C_Head", "head_top", "hair")]
    for s in ("L", "R"):
        bones += [(f"J_Bip_{s}_Shoulder", "J_Bip_C_UpperChest", f"collar{s}", f"shoulder{s}"),
                  (f"J_Bip_{s}_UpperArm", f"J_Bip_{s}_Shoulder", f"shoulder{s}", f"elbow{s}"),
                  (f"J_Bip_{s}_LowerArm", f"J_Bip_{s}_UpperArm", f"elbow{s}", f"wrist{s}"),
                  (f"J_Bip_{s}_Hand", f"J_Bip_{s}_LowerArm", f"wrist{s}", f"middle{s}"),
                  (f"J_Bip_{s}_Middle1", f"J_Bip_{s}_Hand", f"middle{s}", f"middle_tip{s}"),
                  (f"J_Bip_{s}_UpperLeg", "J_Bip_C_Hips", f"hip{s}", f"knee{s}"),
                  (f"J_Bip_{s}_LowerLeg", f"J_Bip_{s}_UpperLeg", f"knee{s}", f"ankle{s}"),
                  (f"J_Bip_{s}_Foot", f"J_Bip_{s}_LowerLeg", f"ankle{s}", f"ball{s}"),
                  (f"J_Bip_{s}_ToeBase", f"J_Bip_{s}_Foot", f"ball{s}", f"toe{s}")]
    return _build(bones, b, prefix="", up="y", front="-z", roll=-np.pi / 4)


_AXES = {"+x": (1, 0, 0), "-x": (-1, 0, 0), "+y": (0, 1, 0), "-y": (0, -1, 0), "+z": (0, 0, 1), "-z": (0, 0, -1)}


def _build(bones, body, *, prefix, up, front, roll):
    """(name, parent, head, tail, roll) in armature space: the body (Y up, facing +Z) turned so that up and
    front are the given armature axes."""
    up_axis = np.array(_AXES["+" + up])
    front_axis = np.array(_AXES[front])
    left_axis = np.cross(up_axis, front_axis)          # left = up x front for a right-handed body frame
    turn = np.stack([left_axis, up_axis, front_axis], axis=-1)   # body (x left, y up, z front) -> armature
    out = []
    for name, parent, head, tail in bones:
        h = turn @ body[head]
        t = turn @ body[tail] if tail is not None else h + up_axis * 0.03 * body["head_top"][1]
        out.append((prefix + name, prefix + parent if parent else None, h, _tail(h, t), roll))
    return out


def bone_matrix(head, tail, roll) -> np.ndarray:
    """(4, 4) a bone's rest matrix as Blender builds it: Y along head -> tail, then ``roll`` about Y."""
    direction = np.asarray(tail, float) - np.asarray(head, float)
    align = kin.swing_rotation(np.array([0.0, 1.0, 0.0]), direction)
    c, s = np.cos(roll), np.sin(roll)
    rolled = align @ np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = rolled, head
    return matrix


def rig_from_bones(bones, name: str = "rig") -> Rig:
    """A :class:`Rig` from (name, parent, head, tail, roll) rows."""
    names = [b[0] for b in bones]
    parents = [names.index(b[1]) if b[1] else -1 for b in bones]
    rest = np.stack([bone_matrix(b[2], b[3], b[4]) for b in bones])
    tails = np.stack([np.asarray(b[3], float) for b in bones])
    return Rig(names, parents, rest, tails, name=name)


MAKEHUMAN = Path(__file__).resolve().parent / "data" / "makehuman_rigs.json"


def makehuman_bones(kind: str):
    """One of MakeHuman's rigs ("game_engine", "mixamo", "cmu_mb", "default"): (name, parent, head, tail, roll)
    rows in metres, Z up, facing -Y, parents first."""
    rows = json.loads(MAKEHUMAN.read_text())["rigs"][kind]["bones"]
    return [(n, p, np.array(h, float), np.array(t, float), float(roll)) for n, p, h, t, roll in rows]
