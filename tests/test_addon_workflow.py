"""The add-on as a new user meets it: a song file gets a strip and the scene's range, takes share a name prefix,
the FBX take is named after the action, keys can be reduced within a stated error, a saved Motion can be keyed
instead of generated, and headless.py writes a movable .blend with short progress output.

Same set-up as test_addon_blender.py (the bpy module on factory settings, the procedural generator in-process).
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from addon_support import SONG, procedural_generate  # noqa: E402
# addon: the module-scoped autouse fixture that registers the add-on with the procedural backend
from test_addon_blender import HAS_AUDIO, addon, fresh_scene, world_joints  # noqa: E402,F401
from e3d2_core import serve  # noqa: E402
from e3d2_core.motion import Motion, to_z_up  # noqa: E402
from e3d2_core.skeleton import default_skeleton  # noqa: E402

from blender_addon import armature, compat, keyframes  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
NAMES = default_skeleton().names


def dance_to_file(scene, path=SONG, seconds=2.0, seed=0, takes=1, **settings):
    scene.e3d2.audio_path, scene.e3d2.length, scene.e3d2.seed, scene.e3d2.takes = str(path), seconds, seed, takes
    for key, value in settings.items():
        setattr(scene.e3d2, key, value)
    if bpy.context.active_object is None:
        bpy.ops.e3d2.create_armature()
    assert bpy.ops.e3d2.generate_dance() == {"FINISHED"}
    return bpy.context.active_object


def file_motion(scene, seconds=2.0, seed=0, take=0):
    fps = scene.render.fps / scene.render.fps_base
    request = {"audio": str(SONG), "seconds": seconds, "fps": fps, "seed": seed, "takes": take + 1}
    return Motion.load(serve.generate_motions(request, lambda *a: None, lambda: False, procedural_generate)[take])


def test_a_song_file_gets_a_strip_at_the_start_and_the_dance_range():
    scene = fresh_scene(fps=30)
    scene.frame_start = 7
    obj = dance_to_file(scene)
    action = obj.animation_data.action
    assert (scene.frame_start, scene.frame_end) == (7, action["e3d2_frame_end"]) == (7, 7 + 60 - 1)
    if HAS_AUDIO:
        strips = [s for s in compat.strips(scene.sequence_editor) if s.type == "SOUND"]
        assert len(strips) == 1 and int(strips[0].frame_start) == 7 and strips[0].frame_final_start == 7
        assert strips[0].sound.filepath == str(SONG) and os.path.isabs(strips[0].sound.filepath)
        # the panel still follows the file (the new strip is not selected), and a second take adds no strip
        assert not strips[0].select and scene.sequence_editor.active_strip is None
        dance_to_file(scene, seed=1)
        assert len([s for s in compat.strips(scene.sequence_editor) if s.type == "SOUND"]) == 1


def test_takes_share_one_prefix_however_long_the_song_name(tmp_path):
    long_song = tmp_path / ("Kevin MacLeod - Plum Fantastic Extended Dance Mix for the Whole Afternoon" + ".ogg")
    long_song.write_bytes(SONG.read_bytes())
    scene = fresh_scene(fps=25)
    obj = dance_to_file(scene, path=long_song, seconds=1.0, seed=7, takes=3)
    names = sorted(a.name for a in bpy.data.actions if a.name.startswith("dance_"))
    prefix = names[0]
    assert prefix.endswith("_7") and names[1:] == [prefix + "_t2", prefix + "_t3"]
    assert all(len(n.encode()) <= 63 for n in names) and "Plum" in prefix
    assert obj.animation_data.action.name == prefix
    # the same generation again: every take gets the same suffix, the prefix stays
    dance_to_file(scene, path=long_song, seconds=1.0, seed=7, takes=3)
    again = sorted(a.name for a in bpy.data.actions if a.name.endswith(".001"))
    assert again == [prefix + ".001", prefix + "_t2.001", prefix + "_t3.001"]


def test_fbx_take_is_named_after_the_action(tmp_path):
    scene = fresh_scene(fps=24)
    obj = dance_to_file(scene, seconds=1.5, seed=3)
    action = obj.animation_data.action.name
    path = tmp_path / "dance.fbx"
    assert bpy.ops.e3d2.export_fbx(filepath=str(path)) == {"FINISHED"}
    assert scene.name == "Scene"                                               # restored
    fresh_scene(fps=24)
    bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0)
    arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    assert arm.animation_data.action.name == f"{arm.name}|{action}"           # was "SMPL|Scene"


@pytest.mark.parametrize("degrees, cm", [(1.0, 1.0), (0.25, 0.5)])
def test_reduced_keys_stay_within_the_tolerance_of_the_dense_keys(degrees, cm):
    scene = fresh_scene(fps=30)
    obj = dance_to_file(scene, seconds=3.0, seed=2, reduce_keys=True, key_error_degrees=degrees, key_error_cm=cm)
    action = obj.animation_data.action
    motion = file_motion(scene, seconds=3.0, seed=2)
    rest_rotations, rest_heads = armature.rest_pose(obj, NAMES)
    frame = keyframes.armature_frame(rest_heads, NAMES, armature.reference_heads())
    dense_q, dense_loc = keyframes.motion_to_bone_channels(motion.poses, motion.trans, rest_rotations,
                                                           rest_heads[0], frame)
    frames = np.arange(action["e3d2_frame_start"], action["e3d2_frame_end"] + 1, dtype=np.float64)
    assert len(frames) == motion.num_frames
    # Blender's own evaluation of the reduced F-curves, at every frame, against the dense keys
    got_q, got_loc = keyframes.read_dance_channels(obj, NAMES, frames)
    rotation = keyframes.rotation_error_degrees(got_q, dense_q).max()
    position = keyframes.position_error_cm(got_loc, dense_loc).max()
    assert rotation <= degrees + 1e-3 and position <= cm + 1e-3
    assert action["e3d2_key_error_deg"] == pytest.approx(rotation, abs=2e-3)
    assert action["e3d2_key_error_cm"] == pytest.approx(position, abs=2e-3)
    written = sum(len(fc.keyframe_points) for fc in compat.action_fcurves(obj))
    assert written == action["e3d2_keys"] < action["e3d2_keys_dense"] == len(frames) * (4 * 24 + 3)
    # what the viewer sees: joints within a few cm (rotation errors add up along the limbs)
    scene.frame_set(int(frames[len(frames) // 2]))
    expected = to_z_up(motion.joints())[len(frames) // 2]
    assert np.abs(world_joints(obj, NAMES) - expected).max() < 0.1


def test_a_saved_motion_is_keyed_instead_of_generated(tmp_path):
    rng = np.random.default_rng(5)
    t = np.arange(120)[:, None, None] / 60.0
    poses = 0.3 * np.sin(2 * np.pi * rng.uniform(0.5, 1.5, (1, 24, 3)) * t)
    trans = np.concatenate([0.2 * t[:, 0], 0.9 + 0 * t[:, 0], -0.1 * t[:, 0]], axis=-1)
    saved = Motion(poses, trans, 60.0, {"seed": 11}).save(tmp_path / "dance.npz")
    scene = fresh_scene(fps=30)
    scene.e3d2.audio_path, scene.e3d2.length = str(SONG), 0.0
    bpy.ops.e3d2.create_armature()
    assert bpy.ops.e3d2.generate_dance(motion=str(saved)) == {"FINISHED"}
    obj = bpy.context.active_object
    expected = to_z_up(Motion.load(saved).resample(30).joints())
    action = obj.animation_data.action
    assert action["e3d2_frame_end"] - action["e3d2_frame_start"] + 1 == len(expected) == 60
    for k in (0, 29, 59):
        scene.frame_set(scene.frame_start + k)
        assert np.abs(world_joints(obj, NAMES) - expected[k]).max() <= 1e-3
    with pytest.raises(RuntimeError, match="motion file is missing"):
        bpy.ops.e3d2.generate_dance(motion=str(tmp_path / "none.npz"))


def run_headless(*args, cwd=ROOT):
    env = {**os.environ, "E3D2_SERVE_GENERATOR": "addon_support:procedural_generate", "PYTHONPATH": str(TESTS)}
    return subprocess.run([sys.executable, str(ROOT / "blender_addon" / "headless.py"), "--", *args],
                          capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def test_headless_keys_a_saved_motion_into_a_movable_blend(tmp_path):
    saved = file_motion(fresh_scene(fps=60), seconds=2.5, seed=4)
    saved.meta["seed"] = 4
    saved.save(tmp_path / "dance.npz")
    out = run_headless("--audio", str(SONG), "--motion", str(tmp_path / "dance.npz"), "--out",
                       str(tmp_path / "d.fbx"), "--blend", str(tmp_path / "blend" / "d.blend"), "--fps", "30",
                       "--reduce-keys", *(["--pack-audio"] if HAS_AUDIO else []))
    assert out.returncode == 0, out.stderr
    assert "dance_Kevin_MacLeod_Vibe_Ace_hq_4, frames 1-75, " in out.stdout and " keys -> " in out.stdout
    progress = [line for line in out.stdout.splitlines() if line.startswith("e3d2: ")]
    assert 1 <= len(progress) <= 5                                        # a pipe gets a line per quarter
    moved = tmp_path / "elsewhere" / "d.blend"
    moved.parent.mkdir()
    (tmp_path / "blend" / "d.blend").rename(moved)
    bpy.ops.wm.open_mainfile(filepath=str(moved))
    action = bpy.data.actions["dance_Kevin_MacLeod_Vibe_Ace_hq_4"]
    assert action["e3d2_keys"] < action["e3d2_keys_dense"]
    if HAS_AUDIO:
        sound = bpy.data.sounds[0]
        assert sound.packed_file is not None                                 # --pack-audio
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if HAS_AUDIO:   # without --pack-audio the strip keeps the song's absolute path
        out = run_headless("--audio", str(SONG), "--motion", str(tmp_path / "dance.npz"), "--out",
                           str(tmp_path / "e.fbx"), "--blend", str(tmp_path / "blend" / "e.blend"))
        assert out.returncode == 0, out.stderr
        bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "blend" / "e.blend"))
        assert [s.filepath for s in bpy.data.sounds] == [str(SONG)]
        bpy.ops.wm.read_factory_settings(use_empty=True)
    bad = run_headless("--audio", str(SONG), "--motion", str(tmp_path / "none.npz"), "--out", str(tmp_path / "x.fbx"))
    assert bad.returncode == 2 and bad.stderr.strip().endswith("none.npz: no such motion file")


def test_the_panel_defaults_are_the_cores():
    from e3d2_core.api import BEAT_LOCK_DEFAULT, DanceRequest

    scene = fresh_scene()
    properties = scene.e3d2.bl_rna.properties
    assert properties["temperature"].default == pytest.approx(DanceRequest.temperature, abs=1e-6)
    assert properties["beat_lock"].default == BEAT_LOCK_DEFAULT
    assert (properties["seed"].default, properties["takes"].default) == (DanceRequest.seed, DanceRequest.takes)
    assert properties["in_place"].default is DanceRequest.in_place


def test_the_panel_asks_for_the_dance_the_command_line_makes(song_clip, tiny_bundle_path, tmp_path, monkeypatch):
    for module in ("librosa", "soxr"):      # the music features (the bpy 4.2 test environment has neither)
        pytest.importorskip(module)
    from blender_addon import operators
    from blender_addon.properties import preferences
    from e3d2_core import cli

    scene = fresh_scene(fps=60)
    scene.e3d2.audio_path, scene.e3d2.length, scene.e3d2.seed, scene.e3d2.takes = str(song_clip), 2.0, 3, 2
    scene.e3d2.temperature, scene.e3d2.beat_lock, scene.e3d2.in_place = 0.9, 0.5, True
    prefs = preferences()
    prefs.checkpoint = str(tiny_bundle_path)
    try:
        request = operators.generate_request(bpy.context, operators.find_song(bpy.context))
    finally:
        prefs.checkpoint = ""
    served = serve.generate_motions({**request, "out_dir": str(tmp_path / "serve")}, lambda *a: None, lambda: False)
    monkeypatch.setattr(cli, "COMMANDS", {"generate": "e3d2_core.commands.generate"})
    out = tmp_path / "dance.npz"
    assert cli.main(["generate", str(song_clip), "-o", str(out), "--checkpoint", str(tiny_bundle_path), "--seconds",
                     "2", "--seed", "3", "--takes", "2", "--temperature", "0.9", "--beat-lock", "0.5", "--in-place",
                     "--quiet"]) == 0
    for take, path in enumerate(served):
        panel, command_line = Motion.load(path), Motion.load(tmp_path / f"dance.take{take + 1}.npz")
        assert panel.fps == command_line.fps == 60.0
        np.testing.assert_array_equal(panel.poses, command_line.poses)
        np.testing.assert_array_equal(panel.trans, command_line.trans)
