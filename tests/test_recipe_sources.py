"""The bundled recipe's motion sources: true frame rates, the iClone and Neo rigs, FBX through Blender's importer,
and the data-folder check."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from e3d2_core.errors import E3D2Error
from e3d2_core.io import load_motion_file
from e3d2_core.retarget.to_smpl import ICLONE, NEO, smpl_targets
from training import prepare_bundled

DATA = Path(__file__).parent / "data"

# a 22-bone Neo_* humanoid (bone heads in metres, Blender Z up, facing -Y as Blender characters do)
NEO_BONES = {
    "Neo_Hips": (None, (0, 0, 0.95)), "Neo_LeftUpLeg": ("Neo_Hips", (0.09, 0, 0.9)),
    "Neo_LeftLeg": ("Neo_LeftUpLeg", (0.09, 0, 0.5)), "Neo_LeftFoot": ("Neo_LeftLeg", (0.09, 0, 0.08)),
    "Neo_LeftToeBase": ("Neo_LeftFoot", (0.09, -0.12, 0.02)), "Neo_RightUpLeg": ("Neo_Hips", (-0.09, 0, 0.9)),
    "Neo_RightLeg": ("Neo_RightUpLeg", (-0.09, 0, 0.5)), "Neo_RightFoot": ("Neo_RightLeg", (-0.09, 0, 0.08)),
    "Neo_RightToeBase": ("Neo_RightFoot", (-0.09, -0.12, 0.02)), "Neo_Spine": ("Neo_Hips", (0, 0, 1.05)),
    "Neo_Spine1": ("Neo_Spine", (0, 0, 1.18)), "Neo_Spine2": ("Neo_Spine1", (0, 0, 1.3)),
    "Neo_Neck": ("Neo_Spine2", (0, 0, 1.5)), "Neo_Head": ("Neo_Neck", (0, 0, 1.6)),
    "Neo_LeftShoulder": ("Neo_Spine2", (0.05, 0, 1.45)), "Neo_LeftArm": ("Neo_LeftShoulder", (0.18, 0, 1.45)),
    "Neo_LeftForeArm": ("Neo_LeftArm", (0.45, 0, 1.45)), "Neo_LeftHand": ("Neo_LeftForeArm", (0.7, 0, 1.45)),
    "Neo_RightShoulder": ("Neo_Spine2", (-0.05, 0, 1.45)), "Neo_RightArm": ("Neo_RightShoulder", (-0.18, 0, 1.45)),
    "Neo_RightForeArm": ("Neo_RightArm", (-0.45, 0, 1.45)), "Neo_RightHand": ("Neo_RightForeArm", (-0.7, 0, 1.45)),
}

MAKE_FBX = '''
import sys, bpy, math
bones = {bones!r}
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.context.scene.render.fps = 30
arm = bpy.data.armatures.new("Neo")
obj = bpy.data.objects.new("Neo", arm)
bpy.context.scene.collection.objects.link(obj)
bpy.context.view_layer.objects.active = obj
bpy.ops.object.mode_set(mode="EDIT")
children = {{}}
for name, (parent, head) in bones.items():
    children.setdefault(parent, []).append(name)
for name, (parent, head) in bones.items():
    bone = arm.edit_bones.new(name)
    bone.head = head
    kids = children.get(name)
    tail = bones[kids[0]][1] if kids else (head[0] * 1.15, head[1] - (0.05 if "Toe" in name else 0), head[2] + (0.1 if "Head" in name else 0))
    bone.tail = tail if tail != head else (head[0], head[1], head[2] + 0.1)
for name, (parent, head) in bones.items():
    if parent:
        arm.edit_bones[name].parent = arm.edit_bones[parent]
bpy.ops.object.mode_set(mode="POSE")
arm_bone = obj.pose.bones["Neo_LeftArm"]
arm_bone.rotation_mode = "XYZ"
for frame in range(1, 41):
    # still for 10 frames, then the left arm swings and the hips travel
    phase = max(0, frame - 10) / 30.0
    arm_bone.rotation_euler = (0.0, 0.0, 0.8 * math.sin(2 * math.pi * phase))
    arm_bone.keyframe_insert("rotation_euler", frame=frame)
    obj.pose.bones["Neo_Hips"].location = (0.0, 0.0, 0.3 * phase)
    obj.pose.bones["Neo_Hips"].keyframe_insert("location", frame=frame)
bpy.ops.object.mode_set(mode="OBJECT")
bpy.context.scene.frame_start, bpy.context.scene.frame_end = 1, 40
bpy.ops.export_scene.fbx(filepath=sys.argv[-1], object_types={{"ARMATURE"}}, add_leaf_bones=False,
                         bake_anim=True, bake_anim_use_all_actions=False, bake_anim_use_nla_strips=False,
                         bake_anim_force_startend_keying=True, bake_anim_simplify_factor=0.0)
'''


def test_every_motion_source_has_its_true_rate_and_the_salsa_is_read_at_60():
    rates = {s.name: s.fps for s in prepare_bundled.MOTION_SOURCES}
    assert rates == {"cmu_salsa": 60.0, "cmu_modern": 60.0, "cmu_breakdance": 30.0, "aistpp": 30.0}
    assert all(s.why for s in prepare_bundled.MOTION_SOURCES)
    salsa = next(s for s in prepare_bundled.MOTION_SOURCES if s.name == "cmu_salsa")
    clip = DATA / "cmu_salsa_60_01_clip.bvh"
    stated = load_motion_file(clip)                       # the file's own Frame Time says 120 fps
    true = prepare_bundled._read_clip(salsa, clip)
    assert stated.fps == 120.0 and true.fps == 60.0 and true.num_frames == stated.num_frames
    assert true.duration == pytest.approx(2 * stated.duration, rel=1e-3)


def test_iclone_rig_is_retargeted_from_joint_positions():
    from e3d2_core.io.bvh import bvh_forward_kinematics, read_bvh
    from e3d2_core.retarget.to_smpl import _plain
    path = DATA / "cmu_modern_05_03_clip.bvh"
    motion = load_motion_file(path, fps=60)
    assert motion.meta["bvh_skeleton"] == "iClone CC_Base" and motion.num_frames == 120
    joints = motion.joints()
    # the file's own joints, mapped to SMPL, give the bone directions the retarget must follow
    bvh = read_bvh(path)
    positions, _, ends = bvh_forward_kinematics(bvh)
    names = {_plain(j.name): i for i, j in enumerate(bvh.joints)}
    tracks = {j.name: positions[:, i] for j, i in zip(bvh.joints, range(len(bvh.joints)))}
    tracks |= {f"{bvh.joints[i].name}/end": e for i, e in ends.items()}
    targets = smpl_targets(ICLONE, tracks)
    assert len(names) == 100
    for parent, child in ((1, 4), (4, 7), (2, 5), (5, 8), (16, 18), (18, 20), (17, 19), (19, 21), (0, 12)):
        want = targets[:, child] - targets[:, parent]
        got = joints[:, child] - joints[:, parent]
        cos = np.sum(want * got, -1) / np.linalg.norm(want, axis=-1) / np.linalg.norm(got, axis=-1)
        assert cos.mean() > 0.97, (parent, child, cos.mean())
    standing = joints[:, (7, 8), 1].min(axis=1)           # the lower ankle (a dancer raises the other leg)
    assert (joints[:, 15, 1] > joints[:, 0, 1] + 0.3).all() and (joints[:, 0, 1] > standing + 0.5).all()
    assert joints[..., 1].min() > -0.02                  # on the floor, not below it


def test_neo_map_refuses_a_rig_without_its_bones():
    tracks = {name: np.zeros((3, 3)) for name in NEO_BONES if "Left" not in name}
    with pytest.raises(E3D2Error, match="missing joints.*Neo_LeftArm"):
        smpl_targets(NEO, tracks)


def test_fbx_clip_is_read_by_blenders_importer(tmp_path):
    pytest.importorskip("bpy")
    fbx = tmp_path / "neo.fbx"
    script = tmp_path / "make_fbx.py"
    script.write_text(MAKE_FBX.format(bones=NEO_BONES))
    done = subprocess.run([sys.executable, str(script), str(fbx)], capture_output=True, text=True)
    assert done.returncode == 0 and fbx.is_file(), done.stderr[-2000:]
    motion = prepare_bundled.load_fbx_motion(fbx, fps=30.0)
    assert motion.fps == 30.0 and motion.meta["format"] == "fbx"
    assert 28 <= motion.num_frames <= 32                  # the 10 held frames are dropped, the 30 moving kept
    joints = motion.joints()
    assert joints[..., 1].min() == pytest.approx(floor_point(joints), abs=1e-6)
    wrist_path = np.linalg.norm(np.diff(joints[:, 20], axis=0), axis=-1).sum()
    assert wrist_path > 0.5 > np.linalg.norm(np.diff(joints[:, 21], axis=0), axis=-1).sum()   # left arm swings
    assert np.linalg.norm(joints[-1, 0] - joints[0, 0]) > 0.2      # the hips travel
    assert joints[0, 16, 0] > joints[0, 17, 0]           # left stays left


def floor_point(joints):
    from e3d2_core.io.floor import floor_height
    return float(joints[..., 1].min() - floor_height(joints))


def test_recipe_names_missing_and_altered_data_files(tmp_path, capsys):
    source = Path(os.environ.get("E3D2_DATA", "data/real"))
    if not (source / "music").is_dir():
        pytest.skip("no real data folder here")
    copy = tmp_path / "data"
    for path in source.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            target = copy / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(path, target)
    altered = copy / "loops" / "loop_amen.flac"
    altered.unlink()
    shutil.copy(source / "loops" / "loop_amen.flac", altered)
    with open(altered, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01")
    (copy / "mocap" / "cmu_salsa" / "60_01_scaled.bvh").unlink()
    out = tmp_path / "out"
    with pytest.raises(E3D2Error, match="2 data file"):
        prepare_bundled.prepare(out, shared=copy, progress=False)
    err = capsys.readouterr().err
    assert "loops/loop_amen.flac" in err and "mocap/cmu_salsa/60_01_scaled.bvh" in err
    assert not out.exists()
