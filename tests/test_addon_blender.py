"""The add-on in Blender (the bpy module): every operator on factory settings with a real song in a real strip.

Generation uses a procedural generator with api.generate's signature through the in-process backend (the
subprocess path is covered in test_addon_serve.py); everything after the generator is the real code.
"""
import _thread
import shutil
import signal
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from addon_support import SONG, procedural_generate  # noqa: E402
from e3d2_core import serve  # noqa: E402
from e3d2_core.motion import Motion, to_z_up  # noqa: E402
from e3d2_core.skeleton import default_skeleton  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import blender_addon  # noqa: E402
from blender_addon import backend, compat  # noqa: E402

HAS_AUDIO = bpy.app.version >= (4, 4, 0)  # PyPI's 4.2 bpy has no audio: sound strips are tested on 5.x only
needs_audio = pytest.mark.skipif(not HAS_AUDIO, reason="this bpy build has no audio (sound strips)")


@pytest.fixture(scope="module", autouse=True)
def addon():
    blender_addon.register()
    backend.use_backend(backend.InProcessBackend(generate_fn=procedural_generate, score_fn=speed_score))
    yield blender_addon
    backend.use_backend(None)
    blender_addon.unregister()


class FakeScore:
    def __init__(self, total, per_minute, times, values):
        self.total, self.per_minute, self.times, self.values = total, per_minute, times, values


def speed_score(motion, audio, checkpoint=None):
    """Stands in for api.score: mean joint speed per 8-frame step (a real function of the motion)."""
    joints = motion.joints()
    speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean(-1) * motion.fps
    steps = speed[: len(speed) // 8 * 8].reshape(-1, 8).mean(-1)
    times = (np.arange(len(steps)) * 8 + 4) / motion.fps
    return FakeScore(float(steps.sum()), float(steps.sum() / motion.duration * 60), times, steps)


def fresh_scene(fps=25, fps_base=1.0):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = fps, fps_base
    scene.e3d2_character.foot_lock = False   # these tests compare the raw keys (foot lock: test_addon_character.py)
    return scene


def add_song_strip(scene, path=SONG, start=10, trim_seconds=2.0, seconds=3.0):
    """A sound strip starting at ``start`` whose first ``trim_seconds`` are trimmed off; ``seconds`` long."""
    fps = scene.render.fps / scene.render.fps_base
    strip = compat.new_sound_strip(scene, "song", str(path), 1, start)
    strip.frame_offset_start = round(trim_seconds * fps)
    strip.frame_final_duration = round(seconds * fps)
    scene.sequence_editor.active_strip = strip
    return strip


def expected_motion(strip, scene, seed=0, take=0):
    fps = scene.render.fps / scene.render.fps_base
    request = {"audio": str(SONG), "offset": (strip.frame_final_start - strip.frame_start) / fps,
               "seconds": strip.frame_final_duration / fps, "fps": fps, "seed": seed, "takes": take + 1}
    paths = serve.generate_motions(request, lambda *a: None, lambda: False, procedural_generate)
    return Motion.load(paths[take])


def world_joints(obj, names):
    mw = np.array(obj.matrix_world)
    heads = np.array([list(obj.pose.bones[n].head) for n in names])
    return heads @ mw[:3, :3].T + mw[:3, 3]


def test_register_unregister_twice(addon):
    for _ in range(2):
        blender_addon.unregister()
        assert not hasattr(bpy.types.Scene, "e3d2")
        blender_addon.register()
        assert hasattr(bpy.ops.e3d2, "generate_dance") and hasattr(bpy.types.Scene, "e3d2")


def test_create_armature_layout():
    fresh_scene()
    assert bpy.ops.e3d2.create_armature() == {"FINISHED"}
    obj = bpy.context.active_object
    names = default_skeleton().names
    assert sorted(b.name for b in obj.data.bones) == sorted(names)
    assert obj.data.bones["left_knee"].parent.name == "left_hip"
    assert tuple(round(v, 6) for v in obj.rotation_euler) == (round(np.pi / 2, 6), 0.0, 0.0)
    body = [c for c in obj.children if c.type == "MESH"]
    assert len(body) == 1 and len(body[0].vertex_groups) == 24
    assert body[0].modifiers["Armature"].object == obj
    bpy.context.view_layer.update()
    # rest pose in the world: Z up, the head about 0.5 m above the pelvis, the body facing -Y
    joints = world_joints(obj, names)
    assert joints[15, 2] - joints[0, 2] > 0.4 and abs(joints[15, 1] - joints[0, 1]) < 0.1


def test_create_armature_with_an_smpl_model_file(tmp_path):
    from test_skeleton import write_synthetic_smpl_model

    from blender_addon.properties import preferences
    from e3d2_core.skeleton import skeleton_from_smpl_model

    fresh_scene()
    write_synthetic_smpl_model(tmp_path / "SMPL_NEUTRAL.pkl")
    prefs = preferences()
    prefs.smpl_model = str(tmp_path / "SMPL_NEUTRAL.pkl")
    try:
        assert bpy.ops.e3d2.create_armature() == {"FINISHED"}
    finally:
        prefs.smpl_model = ""
    obj = bpy.context.active_object
    mesh = next(c for c in obj.children if c.type == "MESH")
    assert mesh.name.endswith("_smpl") and len(mesh.data.vertices) == 48 and len(mesh.vertex_groups) == 24
    skeleton = skeleton_from_smpl_model(tmp_path / "SMPL_NEUTRAL.pkl")
    heads = np.array([list(obj.data.bones[n].head_local) for n in skeleton.names])
    np.testing.assert_allclose(heads, skeleton.rest_joints(), atol=1e-5)


@needs_audio
def test_generate_keys_follow_fk_and_keep_existing_actions():
    scene = fresh_scene(fps=25)
    strip = add_song_strip(scene)
    bpy.ops.e3d2.create_armature()
    obj = bpy.context.active_object
    # the user's own animation: it must survive untouched
    own = bpy.data.actions.new("my_take")
    obj.animation_data_create()
    own["mine"] = 1
    actions_before = set(bpy.data.actions.keys())
    scene.e3d2.seed, scene.e3d2.takes = 4, 2
    assert bpy.ops.e3d2.generate_dance() == {"FINISHED"}
    new = sorted(set(bpy.data.actions.keys()) - actions_before)
    assert new == ["dance_Kevin_MacLeod_Vibe_Ace_hq_4", "dance_Kevin_MacLeod_Vibe_Ace_hq_4_t2"]
    action = obj.animation_data.action
    assert action.name == new[0] and bpy.data.actions["my_take"]["mine"] == 1
    assert action["e3d2_seed"] == 4 and action["e3d2_frame_start"] == strip.frame_final_start == 60
    assert action["e3d2_audio_offset"] == pytest.approx(2.0) and action["e3d2_fps"] == 25.0
    motion = expected_motion(strip, scene, seed=4)
    assert motion.num_frames == 75 and action["e3d2_frame_end"] == 60 + 74
    names = default_skeleton().names
    expected = to_z_up(motion.joints())
    worst = 0.0
    for k in (0, 1, 37, 74):
        scene.frame_set(60 + k)
        worst = max(worst, np.abs(world_joints(obj, names) - expected[k]).max())
    assert worst <= 1e-3, worst


@needs_audio
def test_score_stores_total_and_curve_on_the_action():
    scene = fresh_scene(fps=30)
    strip = add_song_strip(scene, trim_seconds=0.0)
    bpy.ops.e3d2.create_armature()
    bpy.ops.e3d2.generate_dance()
    obj = bpy.context.active_object
    action = obj.animation_data.action
    assert bpy.ops.e3d2.score_animation() == {"FINISHED"}
    reference = speed_score(expected_motion(strip, scene), None)
    assert action["e3d2_score_total"] == pytest.approx(reference.total, rel=1e-3)
    curve = next(fc for fc in compat.action_fcurves(obj) if fc.data_path == '["e3d2_reward"]')
    frame = strip.frame_final_start + reference.times[2] * 30
    assert curve.evaluate(frame) == pytest.approx(reference.values[2], rel=1e-3)
    assert bpy.ops.e3d2.score_animation() == {"FINISHED"}  # re-scoring replaces the curve
    assert sum(fc.data_path == '["e3d2_reward"]' for fc in compat.action_fcurves(obj)) == 1


@needs_audio
def test_fbx_export_reimports_with_24_bones_range_and_joints(tmp_path):
    scene = fresh_scene(fps=24)
    strip = add_song_strip(scene)
    bpy.ops.e3d2.create_armature()
    bpy.ops.e3d2.generate_dance()
    motion = expected_motion(strip, scene)
    first = strip.frame_final_start
    path = tmp_path / "dance.fbx"
    assert bpy.ops.e3d2.export_fbx(filepath=str(path), preset="BLENDER") == {"FINISHED"}
    assert (scene.frame_start, scene.frame_end) == (1, 250)  # restored
    check_fbx(path, motion, first)
    for preset in ("UNITY", "UNREAL"):
        assert bpy.ops.e3d2.export_fbx(filepath=str(tmp_path / f"{preset}.fbx"), preset=preset) == {"FINISHED"}
        assert (tmp_path / f"{preset}.fbx").stat().st_size > 10_000


def check_fbx(path, motion, first, fps=24, fps_base=1.0):
    fresh_scene(fps=fps, fps_base=fps_base)
    bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0)  # the importer shifts by +1 frame by default
    arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    names = [b.name for b in arm.data.bones]
    assert len(names) == 24 and set(names) >= {"pelvis", "left_wrist", "head"}
    start, end = arm.animation_data.action.frame_range
    assert (round(start), round(end)) == (first, first + motion.num_frames - 1)
    expected = to_z_up(motion.joints())
    smpl_order = default_skeleton().names
    for k in (0, motion.num_frames // 2, motion.num_frames - 1):
        bpy.context.scene.frame_set(first + k)
        got = world_joints(arm, smpl_order)
        assert np.abs(got - expected[k]).max() <= 0.01


def test_song_file_without_strip_fk_and_fbx_round_trip(tmp_path):
    """The path 4.2's audio-less bpy can run too: a song file instead of a strip, keys from the scene start."""
    scene = fresh_scene(fps=30, fps_base=1.001)
    scene.frame_start = 5
    scene.e3d2.audio_path, scene.e3d2.length, scene.e3d2.seed = str(SONG), 2.0, 9
    bpy.ops.e3d2.create_armature()
    obj = bpy.context.active_object
    assert bpy.ops.e3d2.generate_dance() == {"FINISHED"}
    fps = 30 / 1.001
    request = {"audio": str(SONG), "seconds": 2.0, "fps": fps, "seed": 9}
    motion = Motion.load(serve.generate_motions(request, lambda *a: None, lambda: False, procedural_generate)[0])
    action = obj.animation_data.action
    assert action.name == "dance_Kevin_MacLeod_Vibe_Ace_hq_9" and action["e3d2_frame_start"] == 5
    assert action["e3d2_frame_end"] == 5 + motion.num_frames - 1 and motion.fps == pytest.approx(fps)
    expected = to_z_up(motion.joints())
    for k in (0, 17, motion.num_frames - 1):
        scene.frame_set(5 + k)
        assert np.abs(world_joints(obj, default_skeleton().names) - expected[k]).max() <= 1e-3
    path = tmp_path / "file_song.fbx"
    assert bpy.ops.e3d2.export_fbx(filepath=str(path)) == {"FINISHED"}
    check_fbx(path, motion, 5, fps=30, fps_base=1.001)


def _actions_snapshot(obj):
    return set(bpy.data.actions.keys()), (obj.animation_data.action.name if obj.animation_data and obj.animation_data.action else None)


@needs_audio
def test_bad_input_is_reported_and_changes_nothing(tmp_path):
    scene = fresh_scene()
    bpy.ops.e3d2.create_armature()
    obj = bpy.context.active_object
    before = _actions_snapshot(obj)
    with pytest.raises(RuntimeError, match="No music"):
        bpy.ops.e3d2.generate_dance()
    copy = tmp_path / "song.ogg"
    shutil.copy(SONG, copy)
    strip = add_song_strip(scene, path=copy)
    strip.mute = True
    with pytest.raises(RuntimeError, match="muted"):
        bpy.ops.e3d2.generate_dance()
    strip.mute = False
    strip.sound.pack()
    with pytest.raises(RuntimeError, match="packed"):
        bpy.ops.e3d2.generate_dance()
    strip.sound.unpack(method="USE_ORIGINAL")
    copy.unlink()
    with pytest.raises(RuntimeError, match="missing"):
        bpy.ops.e3d2.generate_dance()
    assert _actions_snapshot(obj) == before
    # an armature that is not SMPL-like: the button is disabled and says why
    data = bpy.data.armatures.new("rig")
    rig = bpy.data.objects.new("rig", data)
    scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    with pytest.raises(RuntimeError, match="not an SMPL armature"):
        bpy.ops.e3d2.generate_dance()


@needs_audio
def test_backend_failures_and_cancel_leave_the_scene_alone(tmp_path):
    scene = fresh_scene()
    add_song_strip(scene)
    bpy.ops.e3d2.create_armature()
    obj = bpy.context.active_object
    bpy.ops.e3d2.generate_dance()
    before = _actions_snapshot(obj)
    keys_before = [tuple(fc.keyframe_points[3].co) for fc in compat.action_fcurves(obj)]
    try:
        # a backend interpreter without torch
        bare = tmp_path / "bare"
        import venv
        venv.EnvBuilder(with_pip=False).create(bare)
        backend.use_backend(backend.SubprocessBackend(str(bare / "bin" / "python")))
        with pytest.raises(RuntimeError, match="torch is not installed"):
            bpy.ops.e3d2.generate_dance()
        # a backend that dies mid-run
        dying = tmp_path / "dying.py"
        dying.write_text('import json, sys\nprint(json.dumps({"event": "hello", "protocol": 1}), flush=True)\n'
                         'sys.stdin.readline()\nprint(json.dumps({"id": "generate", "event": "progress", '
                         '"fraction": 0.3, "message": "x"}), flush=True)\n'
                         'sys.stderr.write("Segmentation fault\\n")\nsys.exit(139)\n')
        backend.use_backend(backend.SubprocessBackend(sys.executable, command=[sys.executable, str(dying)]))
        with pytest.raises(RuntimeError, match=r"stopped unexpectedly \(exit code 139\): Segmentation fault"):
            bpy.ops.e3d2.generate_dance()
        # cancel (Ctrl-C in background mode) half-way through a slow generation

        def slow(*args, **kwargs):
            threading.Timer(0.3, _thread.interrupt_main).start()
            return procedural_generate(*args, delay=3.0, **kwargs)

        # a suite started in the background inherits SIGINT ignored, and interrupt_main then does nothing
        sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
        backend.use_backend(backend.InProcessBackend(generate_fn=slow))
        try:
            assert bpy.ops.e3d2.generate_dance() == {"CANCELLED"}
        finally:
            signal.signal(signal.SIGINT, sigint)
    finally:
        backend.use_backend(backend.InProcessBackend(generate_fn=procedural_generate, score_fn=speed_score))
    assert _actions_snapshot(obj) == before
    assert [tuple(fc.keyframe_points[3].co) for fc in compat.action_fcurves(obj)] == keys_before


def test_check_and_setup_backend_operators(tmp_path):
    fresh_scene()
    from blender_addon.properties import preferences

    prefs = preferences()
    prefs.python_path = sys.executable
    assert bpy.ops.e3d2.check_backend() == {"FINISHED"}
    import torch
    assert f"torch {torch.__version__}" in prefs.status
    # set up from a local folder of wheels: a fresh environment gets the package installed
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "e3d2_probe_pkg", "0.1")
    prefs.venv_dir, prefs.wheels_dir = str(tmp_path / "venv"), str(wheels)
    assert bpy.ops.e3d2.setup_backend(requirements="e3d2_probe_pkg==0.1") == {"FINISHED"}
    python = Path(prefs.python_path)
    assert python.is_file() and python.parent.parent == tmp_path / "venv"
    import subprocess
    out = subprocess.run([str(python), "-c", "import e3d2_probe_pkg; print(e3d2_probe_pkg.VALUE)"],
                         capture_output=True, text=True)
    assert out.stdout.strip() == "42"
    assert "backend check failed" in prefs.status and "torch is not installed" in prefs.status
    with pytest.raises(RuntimeError, match="failed"):
        bpy.ops.e3d2.setup_backend(requirements="e3d2_absent_pkg==1.0")
    prefs.python_path, prefs.venv_dir, prefs.wheels_dir, prefs.status = "", "", "", ""


def make_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel (so the test needs no network and no build backend)."""
    import base64
    import hashlib
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": "VALUE = 42\n",
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: e3d2-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for arcname, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arcname},sha256={digest},{len(data)}")
            zf.writestr(arcname, data)
        zf.writestr(f"{dist}/RECORD", "\n".join(record + [f"{dist}/RECORD,,"]) + "\n")
    return path
