"""Retargeting SMPL dances onto character rigs (Mixamo, UE5 mannequin, VRM), without Blender.

The rigs are built from their published bone names, hierarchies and rest poses (tests/humanoid_rigs.py); the
dance is real CMU salsa mocap (tests/data). Every check measures the result: joint positions against the source
normalised by body height, left/right, facing, the floor, and the keys against an independent evaluation of the
rig's pose.
"""
from pathlib import Path

import numpy as np
import pytest

import humanoid_rigs as hr
from e3d2_core.errors import E3D2Error
from e3d2_core.io import load_motion_file
from e3d2_core.retarget import bonemap, names, quality, transfer
from e3d2_core.retarget import kinematics as kin
from e3d2_core.retarget.rig import Rig, fit_rig
from e3d2_core.skeleton import default_skeleton, skeleton_with_offsets, world_pose

DATA = Path(__file__).resolve().parent / "data"
RIGS = {"mixamo": hr.mixamo_bones, "ue5": hr.ue5_bones, "vrm": hr.vrm_bones}


@pytest.fixture(scope="module")
def salsa():
    motion = load_motion_file(DATA / "cmu_salsa_60_01_clip.bvh", fps=60)
    return motion.poses.astype(np.float64), motion.trans.astype(np.float64), motion.fps


def fitted(kind, **kwargs):
    rig = hr.rig_from_bones(RIGS[kind](**kwargs), kind)
    found = names.detect_rig(rig.names, rig.parents)
    return rig, found, fit_rig(rig, found.bone_map)


# ---------------------------------------------------------------------------------------------- maps
@pytest.mark.parametrize("kind", sorted(RIGS))
def test_presets_are_detected_and_the_name_matcher_agrees(kind):
    rig, found, _ = fitted(kind)
    assert found.rig == kind and found.unmapped == ()
    assert names.propose_map(rig.names, rig.parents).bones == found.bone_map.bones


def test_mixamo_prefixes_any_number():
    for prefix in ("mixamorig:", "mixamorig1:", "mixamorig12:"):
        bones = [b[0] for b in hr.mixamo_bones(prefix)]
        found = names.detect_rig(bones, [-1] * len(bones))
        assert found.rig == "mixamo" and found.bone_map.bones["left_hip"] == f"{prefix}LeftUpLeg"


@pytest.mark.parametrize("name, side, rest", [
    ("thigh_l", "left", "thigh"), ("DEF-thigh.L", "left", "DEF-thigh"), ("LeftUpLeg", "left", "UpLeg"),
    ("leftUpperLeg", "left", "UpperLeg"), ("left_knee", "left", "knee"), ("CC_Base_R_Calf", "right", "CC_Base Calf"),
    ("J_Bip_R_Foot", "right", "J_Bip Foot"), ("L_Hip", "left", "Hip"), ("Bip01 R Thigh", "right", "Bip01 Thigh"),
    ("mixamorig:RightHand", "right", "Hand"), ("UpperArmRight", "right", "UpperArm"), ("pelvis", None, "pelvis"),
])
def test_sides_are_read_in_every_convention(name, side, rest):
    found, remainder = names.split_side(name)
    assert found == side and names.words(remainder) == names.words(rest)


def test_name_matcher_reads_the_importers_iclone_and_neo_rigs():
    """The generic matcher agrees with the hand-made maps of the CMU re-exports on the limbs and the head."""
    from e3d2_core.io.bvh import read_bvh
    from e3d2_core.retarget.to_smpl import ICLONE, NEO

    bvh = read_bvh(DATA / "cmu_modern_05_03_clip.bvh")
    proposal = names.propose_map([j.name for j in bvh.joints], [j.parent for j in bvh.joints]).bones
    limbs = ["pelvis", "left_hip", "left_knee", "left_ankle", "left_foot", "right_hip", "right_knee", "right_ankle",
             "left_collar", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow",
             "right_wrist", "neck"]
    assert {j: proposal[j] for j in limbs} == {j: ICLONE["targets"][j] for j in limbs}
    neo = [n for n in NEO["targets"].values() if isinstance(n, str) and "/" not in n]
    parents = {"Neo_Hips": None, "Neo_Spine": "Neo_Hips", "Neo_Spine1": "Neo_Spine", "Neo_Spine2": "Neo_Spine1",
               "Neo_Neck": "Neo_Spine2", "Neo_Head": "Neo_Neck"}
    for side in ("Left", "Right"):
        parents.update({f"Neo_{side}UpLeg": "Neo_Hips", f"Neo_{side}Leg": f"Neo_{side}UpLeg",
                        f"Neo_{side}Foot": f"Neo_{side}Leg", f"Neo_{side}ToeBase": f"Neo_{side}Foot",
                        f"Neo_{side}Shoulder": "Neo_Spine2", f"Neo_{side}Arm": f"Neo_{side}Shoulder",
                        f"Neo_{side}ForeArm": f"Neo_{side}Arm", f"Neo_{side}Hand": f"Neo_{side}ForeArm"})
    order = list(parents)
    assert sorted(order) == sorted(neo)
    proposal = names.propose_map(order, [order.index(parents[n]) if parents[n] else -1 for n in order]).bones
    assert all(proposal[j] == t for j, t in NEO["targets"].items() if isinstance(t, str) and "/" not in t)


def test_a_bvh_no_map_knows_is_read_through_the_name_matcher(tmp_path):
    """CMU's salsa file with its joints renamed Mixamo-style: imported by name matching, like the CMU map."""
    text = (DATA / "cmu_salsa_60_01_clip.bvh").read_text()
    renames = {"hip": "Hips", "abdomen": "Spine", "chest": "Spine1", "neck": "Neck", "head": "Head",
               "lCollar": "LeftShoulder", "lShldr": "LeftArm", "lForeArm": "LeftForeArm", "lHand": "LeftHand",
               "rCollar": "RightShoulder", "rShldr": "RightArm", "rForeArm": "RightForeArm", "rHand": "RightHand",
               "lThigh": "LeftUpLeg", "lShin": "LeftLeg", "lFoot": "LeftFoot", "rThigh": "RightUpLeg",
               "rShin": "RightLeg", "rFoot": "RightFoot"}
    lines = []
    for line in text.splitlines():
        words_ = line.split()
        if len(words_) == 2 and words_[0] in ("ROOT", "JOINT") and words_[1] in renames:
            line = line.replace(words_[1], renames[words_[1]])
        elif len(words_) == 2 and words_[0] in ("ROOT", "JOINT"):
            line = line.replace(words_[1], f"extra_{words_[1]}")
        lines.append(line)
    renamed = tmp_path / "renamed.bvh"
    renamed.write_text("\n".join(lines) + "\n")
    motion = load_motion_file(renamed, fps=60)
    reference = load_motion_file(DATA / "cmu_salsa_60_01_clip.bvh", fps=60)
    assert motion.meta["bvh_skeleton"] == "matched by name"
    a, b = motion.joints(), reference.joints()
    for parent, child in ((1, 4), (4, 7), (2, 5), (5, 8), (16, 18), (18, 20), (17, 19), (19, 21)):
        want, got = b[:, child] - b[:, parent], a[:, child] - a[:, parent]
        cos = np.sum(want * got, -1) / np.linalg.norm(want, axis=-1) / np.linalg.norm(got, axis=-1)
        assert cos.mean() > 0.97, (parent, child, cos.mean())   # the limbs point the same way
    assert abs(motion.meta["bvh_leg_scale"] / reference.meta["bvh_leg_scale"] - 1) < 0.05


# ---------------------------------------------------------------------------------------------- transfer
@pytest.mark.parametrize("kind", sorted(RIGS))
def test_retargeted_joints_follow_the_source(kind, salsa):
    poses, trans, fps = salsa
    rig, found, fit = fitted(kind)
    channels = transfer.retarget_motion(poses, trans, fps, fit)
    _, source = world_pose(poses, trans)
    error = quality.joint_error(source, channels.joints, fit)
    assert error["mean"] < 0.03 and len(error["joints"]) == 18
    check_side_facing_floor_and_keys(rig, fit, channels, source)


def check_side_facing_floor_and_keys(rig, fit, channels, source):
    """Left stays left, facing is kept, no foot below the floor, and the keys, evaluated as Blender evaluates a
    pose, put the bones where the retargeting said."""
    assert quality.left_stays_left(source, channels.joints, fit) == 1.0
    assert quality.facing_error_degrees(source, channels.joints, fit)[1] < 3.0
    assert quality.lowest_sole(channels.joints, fit) >= -1e-9
    posed = transfer.pose_matrices(rig, channels)
    points = posed[:, fit.bones[list(fit.joints)]][..., :3, 3]
    points[:, 0] = transfer.pelvis_joint(posed[:, fit.bones[0]], fit)     # may sit off its bone's head
    np.testing.assert_allclose(points, channels.joints[:, list(fit.joints)], atol=1e-6 * fit.height)


# MakeHuman's rigs (CC0) on its default body: real proportions, not SMPL's. Their rest joints are 2.6-9.7 % of
# height away from SMPL's before anything moves (A-pose arms, wider and lower hips, another spine), so the raw
# joint error measures the body as much as the retargeting; the pose on the rig's own proportions measures the
# retargeting alone (quality.pose_error_on_rig_proportions).
MAKEHUMAN = {"game_engine": ("ue4", 0.05, 0.025), "mixamo": ("mixamo", 0.06, 0.03), "cmu_mb": ("mixamo", 0.045, 0.045),
             "default": ("generic", 0.06, 0.025)}


@pytest.mark.parametrize("kind", sorted(MAKEHUMAN))
def test_real_makehuman_rigs_dance_with_their_own_proportions(kind, salsa):
    poses, trans, fps = salsa
    preset, raw_bound, pose_bound = MAKEHUMAN[kind]
    rig = hr.rig_from_bones(hr.makehuman_bones(kind), f"MakeHuman {kind}")
    found = names.detect_rig(rig.names, rig.parents)
    assert found.rig == preset
    fit = fit_rig(rig, found.bone_map)
    channels = transfer.retarget_motion(poses, trans, fps, fit)
    world, source = world_pose(poses, trans)
    raw = quality.joint_error(source, channels.joints, fit)
    pose = quality.pose_error_on_rig_proportions(world, channels.joints, fit)
    assert raw["mean"] < raw_bound and pose["mean"] < pose_bound
    for leg in ("left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle"):
        assert pose["per_joint"][leg] < 0.015   # the legs differ only by the pelvis's best-fit turn at rest
    check_side_facing_floor_and_keys(rig, fit, channels, source)


def test_the_name_matcher_maps_makehumans_own_rig():
    """MakeHuman's default rig (163 bones, .L/.R, split limb bones, face bones) has no preset: the matcher
    finds its body and says it has no hand joint."""
    bones = hr.makehuman_bones("default")
    found = names.detect_rig([b[0] for b in bones], [[b[0] for b in bones].index(b[1]) if b[1] else -1 for b in bones])
    assert found.rig == "generic" and set(found.unmapped) == {"left_hand", "right_hand"}
    got = found.bone_map.bones
    assert (got["left_hip"], got["left_knee"], got["left_ankle"]) == ("upperleg01.L", "lowerleg01.L", "foot.L")
    assert (got["right_shoulder"], got["right_elbow"], got["right_wrist"]) == ("upperarm01.R", "lowerarm01.R", "wrist.R")
    assert (got["neck"], got["head"], got["left_collar"]) == ("neck01", "head", "clavicle.L")
    # five equal toes: the foot joint is the middle one, where SMPL's sits (not the little toe)
    assert (got["left_foot"], got["right_foot"]) == ("toe3-1.L", "toe3-1.R")


def test_rest_pose_rolls_and_axes_do_not_change_the_dance(salsa):
    """The same body in T-pose and in A-pose, with other bone rolls: the dance puts its joints in one place."""
    poses, trans, fps = salsa
    t_bones = hr.ue5_bones()
    a_rig = hr.rig_from_bones(t_bones)
    body_t = hr._body(180.0, legs=1.04, arms=1.03, spine=0.96)
    body_a = hr._body(180.0, a_pose=True, legs=1.04, arms=1.03, spine=0.96)
    moved = {k for k in body_t if k != "spine_line" and not np.allclose(body_t[k], body_a[k])}
    assert {"elbowL", "wristR"} <= moved                                # the arms really differ at rest
    results = []
    for roll in (0.0, 1.3):
        bones = [(n, p, h, t, roll) for n, p, h, t, _ in t_bones]
        rig = hr.rig_from_bones(bones)
        fit = fit_rig(rig, names.detect_rig(rig.names, rig.parents).bone_map)
        results.append(transfer.retarget_motion(poses, trans, fps, fit).joints)
    np.testing.assert_allclose(results[0], results[1], atol=1e-6)
    fit_a = fit_rig(a_rig, names.detect_rig(a_rig.names, a_rig.parents).bone_map)
    t_rig = _t_posed(a_rig, fit_a)
    fit_t = fit_rig(t_rig, names.detect_rig(t_rig.names, t_rig.parents).bone_map)
    a = transfer.retarget_motion(poses, trans, fps, fit_a).joints
    t = transfer.retarget_motion(poses, trans, fps, fit_t).joints
    np.testing.assert_allclose(a, t, atol=1e-4 * fit_a.height)


def _t_posed(rig: Rig, fit) -> Rig:
    """The rig with its rest pose changed to SMPL's T-pose directions (its bones turned, their rolls kept)."""
    zero = np.zeros((1, 24, 3))
    channels = transfer.retarget_motion(zero, np.array([[0.0, 0.9, 0.0]]), 30.0, fit)
    posed = transfer.pose_matrices(rig, channels)[0]
    return Rig(rig.names, rig.parents, posed, None, name="t-posed")


def test_makehumans_root_bone_dances_about_the_pelvis_not_its_head():
    """MakeHuman's default ``root`` runs from 8 cm behind the body to between the hips: the pelvis joint is its
    tail, and nothing changes for rigs whose pelvis bone starts at the pelvis."""
    rig = hr.rig_from_bones(hr.makehuman_bones("default"))
    fit = fit_rig(rig, names.detect_rig(rig.names, rig.parents).bone_map)
    root = rig.index("root")
    np.testing.assert_allclose(fit.pelvis_offset, rig.tails[root] - rig.heads[root])
    assert np.linalg.norm(fit.pelvis_offset) > 0.07
    for kind in sorted(RIGS):
        assert not fitted(kind)[2].pelvis_offset.any()
    for kind in ("game_engine", "mixamo", "cmu_mb"):
        other = hr.rig_from_bones(hr.makehuman_bones(kind))
        assert not fit_rig(other, names.detect_rig(other.names, other.parents).bone_map).pelvis_offset.any()


@pytest.mark.parametrize("kind", ["mixamo", "makehuman_default"])
def test_reading_the_keys_back_gives_the_source_rotations(kind, salsa):
    poses, trans, fps = salsa
    if kind == "mixamo":
        rig, found, fit = fitted("mixamo")
    else:
        rig = hr.rig_from_bones(hr.makehuman_bones("default"))
        fit = fit_rig(rig, names.detect_rig(rig.names, rig.parents).bone_map)
    channels = transfer.retarget_motion(poses, trans, fps, fit)
    posed = transfer.pose_matrices(rig, channels)[:, np.maximum(fit.bones, 0)]
    back, back_trans = transfer.motion_from_pose(posed, fit)
    world, _ = world_pose(poses, trans)
    world_back, _ = world_pose(back, back_trans)
    mapped = list(fit.joints)              # MakeHuman's rig has no hand joints: those keep the wrist's turn
    np.testing.assert_allclose(world_back[:, mapped], world[:, mapped], atol=1e-6)
    travel = trans[:, [0, 2]] - trans[:1, [0, 2]]
    np.testing.assert_allclose(back_trans[:, [0, 2]], travel, atol=1e-6)


def test_a_chest_without_spine3_bends_as_smpls_spine3_does():
    """MakeHuman's CMU MotionBuilder rig has no spine3: its chest bone carries the neck and collars, which hang
    off SMPL's spine3, so a bend at spine3 alone bends the character's neck by that angle, and reads back there."""
    rig = hr.rig_from_bones(hr.makehuman_bones("cmu_mb"))
    fit = fit_rig(rig, names.detect_rig(rig.names, rig.parents).bone_map)
    assert fit.bones[9] < 0 and fit.driver[6] == 9 and fit.driver[3] == 3
    poses = np.zeros((2, 24, 3))
    poses[1, 9] = [np.radians(40.0), 0.0, 0.0]                     # a bow at spine3 only
    trans = np.tile([0.0, 0.9, 0.0], (2, 1))
    channels = transfer.retarget_motion(poses, trans, 60.0, fit)
    neck = channels.joints[:, 12] - channels.joints[:, 6]
    cos = neck[0] @ neck[1] / np.linalg.norm(neck[0]) / np.linalg.norm(neck[1])
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))) == pytest.approx(40.0, abs=0.5)
    posed = transfer.pose_matrices(rig, channels)[:, np.maximum(fit.bones, 0)]
    back, _ = transfer.motion_from_pose(posed, fit)
    np.testing.assert_allclose(back[1, 9], poses[1, 9], atol=1e-6)     # the bend is spine3's again
    np.testing.assert_allclose(back[1, [3, 6]], 0.0, atol=1e-6)


def test_in_place_and_facing(salsa):
    poses, trans, fps = salsa
    rig, found, fit = fitted("vrm")
    still = transfer.retarget_motion(poses, trans, fps, fit, in_place=True).joints @ fit.frame
    np.testing.assert_allclose(still[:, 0, [0, 2]], fit.rest_joints[None, 0, [0, 2]].repeat(len(poses), 0), atol=1e-9)
    turned = transfer.retarget_motion(poses, trans, fps, fit, facing=np.pi / 2).joints
    _, source = world_pose(poses, trans)
    _, turned_source = world_pose(poses, trans)
    turned_source = turned_source @ kin.rotation_about_up(np.pi / 2).T
    assert quality.facing_error_degrees(turned_source, turned, fit)[1] < 3.0
    assert quality.facing_error_degrees(source, turned, fit)[0] > 80.0


def test_foot_lock_on_the_rig_pins_its_feet(salsa):
    poses, trans, fps = salsa
    rig, found, fit = fitted("ue5")
    raw = transfer.retarget_motion(poses, trans, fps, fit)
    locked = transfer.retarget_motion(poses, trans, fps, fit, foot_lock=True)
    from e3d2_core.retarget.footlock import horizontal_speed
    for k, ankle in enumerate((7, 8)):
        contact = locked.contacts[:, k]
        before = horizontal_speed(raw.joints[:, ankle] @ fit.frame, fps)[contact].mean()
        after = horizontal_speed(locked.joints[:, ankle] @ fit.frame, fps)[contact].mean()
        assert after < 0.5 * before
    assert quality.lowest_sole(locked.joints, fit) >= -1e-9
    # joints above the legs stay within 2 cm of the raw dance (they move only where the raw dance was lifted
    # to keep a foot above the floor, which the locked legs now do themselves)
    upper = [0, 3, 6, 9, 12, 15, 16, 17, 18, 19, 20, 21]
    assert np.abs(locked.joints[:, upper] - raw.joints[:, upper]).max() < 0.02 * fit.scale


# ---------------------------------------------------------------------------------------------- bad input
def test_a_rig_that_is_not_a_humanoid_is_named_in_one_line():
    chain = [("Bone" + (f".{i:03d}" if i else ""), i - 1) for i in range(6)]
    with pytest.raises(E3D2Error) as err:
        names.require_humanoid(names.detect_rig([c[0] for c in chain], [c[1] for c in chain]).bone_map, "'Snake'")
    message = str(err.value)
    assert "\n" not in message and "'Snake' is not a humanoid" in message
    assert all(j in message for j in bonemap.REQUIRED)


def test_a_partial_map_dances_what_it_has_and_names_the_rest(salsa):
    poses, trans, fps = salsa
    rig = hr.rig_from_bones(hr.mixamo_bones())
    full = names.detect_rig(rig.names, rig.parents).bone_map
    partial = full
    for joint in ("left_collar", "left_shoulder", "left_elbow", "left_wrist", "left_hand", "spine2"):
        partial = partial.with_bone(joint, None)
    fit = fit_rig(rig, partial)
    channels = transfer.retarget_motion(poses, trans, fps, fit)
    assert set(channels.unmapped) == {"left_collar", "left_shoulder", "left_elbow", "left_wrist", "left_hand", "spine2"}
    assert "mixamorig:LeftArm" not in channels.bones and "mixamorig:RightArm" in channels.bones
    _, source = world_pose(poses, trans)
    assert quality.joint_error(source, channels.joints, fit)["mean"] < 0.03


def test_bone_map_files_round_trip_and_bad_ones_are_refused_with_their_line(tmp_path):
    rig = hr.rig_from_bones(hr.mixamo_bones())
    found = names.detect_rig(rig.names, rig.parents).bone_map
    path = bonemap.save_bone_map(found, tmp_path / "map.json")
    assert bonemap.load_bone_map(path, rig.names).bones == found.bones
    text = path.read_text().splitlines()
    line = next(i for i, t in enumerate(text, 1) if '"left_knee"' in t)
    broken = tmp_path / "broken.json"
    broken.write_text("\n".join(text[:line - 1] + [text[line - 1].rstrip(",")] + text[line:]) + "\n")
    with pytest.raises(E3D2Error, match=rf"broken.json: line {line + 1}: not valid JSON"):
        bonemap.load_bone_map(broken, rig.names)
    missing = tmp_path / "missing.json"
    missing.write_text(path.read_text().replace('"mixamorig:LeftLeg"', '"mixamorig:LeftLegg"'))
    with pytest.raises(E3D2Error, match=rf"missing.json: line {line}: 'Char' has no bone 'mixamorig:LeftLegg' "
                                        r"\(mapped to left_knee\)"):
        bonemap.load_bone_map(missing, rig.names, armature="'Char'")
    unknown = tmp_path / "unknown.json"
    unknown.write_text(path.read_text().replace('"left_knee"', '"left_kneee"'))
    with pytest.raises(E3D2Error, match=rf"line {line}: 'left_kneee' is not an SMPL joint"):
        bonemap.load_bone_map(unknown, rig.names)
    not_a_map = tmp_path / "list.json"
    not_a_map.write_text("[1, 2]\n")
    with pytest.raises(E3D2Error, match="not a bone map"):
        bonemap.load_bone_map(not_a_map)


def test_an_unknown_preset_is_refused():
    with pytest.raises(E3D2Error, match="unknown rig preset 'maya'.*mixamo"):
        names.detect_rig(["a"], [-1], "maya")


# ---------------------------------------------------------------------------------------------- loop tools
def test_make_loop_runs_on_across_its_seam(salsa):
    from e3d2_core.retarget import loop

    poses, trans, fps = salsa
    blend = 30
    length = loop.loop_length(len(poses), blend, fps, bpm=120.0)
    assert length % 30 == 0 and length + blend <= len(poses)             # whole beats at 120 bpm, 60 fps
    looped, looped_trans = loop.make_loop(poses, trans, blend, length)
    _, joints = world_pose(looped, looped_trans)
    travel = looped_trans[0] - trans[length]
    travel[1] = 0
    # the frame after the last is the first, moved by the loop's travel: no bigger a step than inside the take
    seam = np.linalg.norm(joints[0] - travel - joints[-1], axis=-1).max()
    steps = np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(axis=-1)
    assert seam <= np.percentile(steps, 99)
    np.testing.assert_allclose(looped[blend:], poses[blend:length], atol=1e-9)


def test_mirror_twice_is_the_take():
    from e3d2_core.retarget import loop

    rng = np.random.default_rng(1)
    poses, trans = rng.normal(0, 0.4, (20, 24, 3)), rng.normal(0, 0.4, (20, 3))
    again = loop.mirror(*loop.mirror(poses, trans))
    np.testing.assert_allclose(again[0], poses)
    np.testing.assert_allclose(again[1], trans)
    swap = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]
    offsets = default_skeleton().offsets
    symmetric = (offsets + offsets[swap] * [-1, 1, 1]) / 2       # on a symmetric body the mirror image is exact
    _, a = world_pose(poses, trans, skeleton_with_offsets(symmetric))
    _, b = world_pose(*loop.mirror(poses, trans), skeleton_with_offsets(symmetric))
    np.testing.assert_allclose(b[:, swap] * [-1, 1, 1], a, atol=1e-9)
