"""The add-on's editing in Blender (the bpy module, factory settings): Regenerate Range, Continue, the takes list.

The dance to edit comes from the procedural generator (as in test_addon_blender.py); the edits themselves run the
real api.regenerate / api.extend with the bundled model through the in-process backend, on 10 s of the bundled
song in a real sound strip.
"""
import _thread
import math
import signal
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from addon_support import procedural_generate  # noqa: E402
from test_addon_blender import fresh_scene, speed_score  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import blender_addon  # noqa: E402
from blender_addon import backend, compat  # noqa: E402

pytestmark = pytest.mark.skipif(bpy.app.version < (4, 4, 0), reason="this bpy build has no audio (sound strips)")


@pytest.fixture(scope="module", autouse=True)
def addon():
    blender_addon.register()
    backend.use_backend(backend.InProcessBackend(generate_fn=procedural_generate, score_fn=speed_score))
    yield blender_addon
    backend.use_backend(None)
    blender_addon.unregister()


def dance_scene(song_clip, *, fps=25, length=0.0):
    """A strip of the song from frame 10 (3.5 s), an SMPL armature, and a generated dance on it."""
    scene = fresh_scene(fps=fps)
    strip = compat.new_sound_strip(scene, "song", str(song_clip), 1, 10)
    strip.frame_final_duration = round(3.5 * fps)
    scene.sequence_editor.active_strip = strip
    bpy.ops.e3d2.create_armature()
    scene.e3d2.length = length
    assert bpy.ops.e3d2.generate_dance() == {"FINISHED"}
    return scene, strip, bpy.context.active_object


def curves_of(obj, action):
    return {(fc.data_path, fc.array_index): np.array([tuple(k.co) for k in fc.keyframe_points])
            for fc in compat.action_fcurves(obj, action)}


def test_regenerate_range_makes_new_actions_and_keeps_every_other_key(song_clip):
    scene, strip, obj = dance_scene(song_clip)
    old = obj.animation_data.action
    old_keys = curves_of(obj, old)
    names_before = set(bpy.data.actions.keys())
    scene.use_preview_range = True
    scene.frame_preview_start, scene.frame_preview_end = 30, 55
    scene.e3d2.seed, scene.e3d2.takes = 3, 2
    assert bpy.ops.e3d2.regenerate_range() == {"FINISHED"}
    new = sorted(set(bpy.data.actions.keys()) - names_before)
    assert new == [f"{old.name}_r3", f"{old.name}_r3_t2"]
    old_after = curves_of(obj, old)                                            # the old action untouched
    assert set(old_after) == set(old_keys) and all(np.array_equal(old_after[k], v) for k, v in old_keys.items())
    blend_end = 55 + 1 + math.ceil(0.5 * 25)              # the kept dance is back from here (frame 69)
    for name in new:
        action = bpy.data.actions[name]
        assert action["e3d2_edit_of"] == old.name and list(action["e3d2_edit_frames"]) == [30, blend_end - 1]
        keys = curves_of(obj, action)
        assert set(keys) >= set(old_keys)
        moved = 0
        for key, before in old_keys.items():
            after = keys[key]
            outside = (before[:, 0] < 30) | (before[:, 0] >= blend_end)
            kept = after[(after[:, 0] < 30) | (after[:, 0] >= blend_end)]
            assert np.array_equal(kept, before[outside]), key               # bit for bit
            inside = (after[:, 0] >= 30) & (after[:, 0] < blend_end)
            assert np.array_equal(after[inside, 0], np.arange(30, blend_end))
            moved += not np.allclose(after[inside, 1], before[~outside, 1], atol=1e-3)
        assert moved > len(old_keys) // 2                                     # the range really is new
        assert action["e3d2_score_per_minute"] > 0 and "e3d2_range_score_per_minute" in action
    # the takes: listed best first, the best one assigned
    takes = scene.e3d2_takes
    assert [t.action for t in takes] and {t.action for t in takes} == set(new)
    scores = [t.score for t in takes]
    assert scores == sorted(scores, reverse=True) and all(t.has_score for t in takes)
    assert obj.animation_data.action.name == takes[0].action
    assert (takes[0].frame_start, takes[0].frame_end) == (30, blend_end - 1)
    assert bpy.ops.e3d2.preview_take(index=1) == {"FINISHED"}
    assert obj.animation_data.action.name == takes[1].action
    assert (scene.frame_preview_start, scene.frame_preview_end, scene.frame_current) == (30, blend_end - 1, 30)
    assert bpy.ops.e3d2.use_take(index=0) == {"FINISHED"}
    assert obj.animation_data.action.name == takes[0].action and scene.e3d2_take_index == 0


def test_regenerated_keys_follow_the_backend_motion(song_clip):
    """The keys of a regenerated take pose the armature as the edited Motion says (forward kinematics)."""
    from blender_addon import editing
    from e3d2_core import api
    from e3d2_core.motion import Motion, to_z_up
    from e3d2_core.skeleton import default_skeleton

    scene, strip, obj = dance_scene(song_clip, fps=30)
    first, last = (int(v) for v in (obj.animation_data.action["e3d2_frame_start"],
                                    obj.animation_data.action["e3d2_frame_end"]))
    folder = Path(bpy.app.tempdir or "/tmp")
    path, _, _ = editing.read_action_motion(obj, obj.animation_data.action, 30.0, folder)
    dance = Motion.load(path)
    scene.e3d2_edit.range_source = "FRAMES"
    scene.e3d2_edit.frame_from, scene.e3d2_edit.frame_to = 40, 60
    scene.e3d2.seed, scene.e3d2.takes = 5, 1
    assert bpy.ops.e3d2.regenerate_range() == {"FINISHED"}
    expected = api.regenerate(dance, str(song_clip), start=(40 - first) / 30, end=(61 - first) / 30, seed=5)
    names = default_skeleton().names
    worst = 0.0
    for frame in (first, 39, 40, 50, 60, 70, last):
        scene.frame_set(frame)
        mw = np.array(obj.matrix_world)
        heads = np.array([list(obj.pose.bones[n].head) for n in names]) @ mw[:3, :3].T + mw[:3, 3]
        worst = max(worst, np.abs(heads - to_z_up(expected.joints()[frame - first])).max())
    assert worst <= 2e-3, worst


def test_continue_to_the_end_of_the_strip(song_clip):
    scene, strip, obj = dance_scene(song_clip, length=2.0)
    old = obj.animation_data.action
    assert (old["e3d2_frame_start"], old["e3d2_frame_end"]) == (10, 59)
    old_keys = curves_of(obj, old)
    assert bpy.ops.e3d2.continue_dance() == {"FINISHED"}
    action = obj.animation_data.action
    last = strip.frame_final_end - 1                         # the strip's last sounding frame
    assert action.name == f"{old.name}_c0" and action["e3d2_frame_end"] == last
    keys = curves_of(obj, action)
    for key, before in old_keys.items():
        assert np.array_equal(keys[key][: len(before)], before)
        assert np.array_equal(keys[key][len(before):, 0], np.arange(60, last + 1))
    with pytest.raises(RuntimeError, match="already reaches the end of the sound strip"):
        bpy.ops.e3d2.continue_dance()


def test_bad_ranges_are_reported_and_change_nothing(song_clip):
    scene, strip, obj = dance_scene(song_clip)
    snapshot = (set(bpy.data.actions.keys()), obj.animation_data.action.name)
    scene.use_preview_range = False
    with pytest.raises(RuntimeError, match="No preview range"):
        bpy.ops.e3d2.regenerate_range()
    scene.e3d2_edit.range_source = "FRAMES"
    for lo, hi, message in ((5, 40, "outside the dance"), (40, 200, "outside the dance"),
                            (50, 40, "is empty"), (40, 41, "shorter than one code step")):
        scene.e3d2_edit.frame_from, scene.e3d2_edit.frame_to = lo, hi
        with pytest.raises(RuntimeError, match=message):
            bpy.ops.e3d2.regenerate_range()
    scene.e3d2_edit.frame_from, scene.e3d2_edit.frame_to = 30, 50
    scene.e3d2_edit.keep_joints = "tail"
    with pytest.raises(RuntimeError, match="unknown joint to keep"):
        bpy.ops.e3d2.regenerate_range()
    assert (set(bpy.data.actions.keys()), obj.animation_data.action.name) == snapshot


def test_kept_feet_and_cancel(song_clip):
    from e3d2_core import api

    scene, strip, obj = dance_scene(song_clip)
    scene.e3d2_edit.range_source = "FRAMES"
    scene.e3d2_edit.frame_from, scene.e3d2_edit.frame_to = 30, 60
    scene.e3d2_edit.keep_feet = True
    assert bpy.ops.e3d2.regenerate_range() == {"FINISHED"}
    import json
    info = json.loads(obj.animation_data.action["e3d2_meta"])
    assert info["keep"] == ["left_ankle", "right_ankle", "left_foot", "right_foot"] and info["keep_error_cm"] < 1.0
    snapshot = (set(bpy.data.actions.keys()), obj.animation_data.action.name)

    def slow_regenerate(*args, **kwargs):     # the real edit, watched by a cancel that comes after 0.3 s
        threading.Timer(0.3, _thread.interrupt_main).start()
        deadline = time.monotonic() + 5.0
        cancel = kwargs["cancel"]
        while time.monotonic() < deadline and not cancel():
            time.sleep(0.02)
        return api.regenerate(*args, **kwargs)

    sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    backend.use_backend(backend.InProcessBackend(generate_fn=procedural_generate, score_fn=speed_score,
                                                 edit_fns={"regenerate": slow_regenerate}))
    try:
        assert bpy.ops.e3d2.regenerate_range() == {"CANCELLED"}
    finally:
        signal.signal(signal.SIGINT, sigint)
        backend.use_backend(backend.InProcessBackend(generate_fn=procedural_generate, score_fn=speed_score))
    assert (set(bpy.data.actions.keys()), obj.animation_data.action.name) == snapshot


def test_generate_lists_its_takes_best_first(song_clip):
    scene = fresh_scene(fps=25)
    strip = compat.new_sound_strip(scene, "song", str(song_clip), 1, 1)
    strip.frame_final_duration = 50
    scene.sequence_editor.active_strip = strip
    bpy.ops.e3d2.create_armature()
    scene.e3d2.takes = 3
    assert bpy.ops.e3d2.generate_dance() == {"FINISHED"}
    takes = scene.e3d2_takes
    assert len(takes) == 3 and all(t.has_score for t in takes)
    assert [t.score for t in takes] == sorted((t.score for t in takes), reverse=True)
    assert (takes[0].frame_start, takes[0].frame_end) == (1, 50)


class RecordingLayout:
    """Stands in for a panel's UILayout: checks every property and operator it is asked to draw exists."""

    def __init__(self, drawn):
        self.drawn = drawn

    def _child(self, *args, **kwargs):
        return RecordingLayout(self.drawn)

    row = column = box = _child

    def label(self, text="", icon="NONE"):
        self.drawn.append(("label", text))

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, name
        self.drawn.append(("prop", name))

    def operator(self, idname, **kwargs):
        module, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, module), name), idname
        self.drawn.append(("operator", idname))
        return type("Properties", (), {})()

    def template_list(self, list_type, list_id, data, name, active_data, active_name, **kwargs):
        assert list_type in dir(bpy.types) and name in data.bl_rna.properties and active_name in active_data.bl_rna.properties
        self.drawn.append(("list", name))

    def progress(self, **kwargs):
        self.drawn.append(("progress", kwargs.get("text", "")))


def test_edit_and_takes_panels_draw_what_exists(song_clip):
    from blender_addon import edit_panel

    scene, strip, obj = dance_scene(song_clip)
    scene.e3d2.takes = 2
    scene.use_preview_range = True
    for source in ("PREVIEW", "FRAMES"):
        scene.e3d2_edit.range_source = source
        drawn = []
        edit_panel.E3D2_PT_edit.draw(SimpleNamespace(layout=RecordingLayout(drawn)), bpy.context)
        assert ("operator", "e3d2.regenerate_range") in drawn and ("operator", "e3d2.continue_dance") in drawn
        assert (("prop", "frame_from") in drawn) == (source == "FRAMES")
    assert edit_panel.E3D2_PT_takes.poll(bpy.context)           # the generation's takes are listed
    drawn = []
    edit_panel.E3D2_PT_takes.draw(SimpleNamespace(layout=RecordingLayout(drawn)), bpy.context)
    assert ("list", "e3d2_takes") in drawn
    row = []
    from blender_addon.takes import E3D2_UL_takes
    E3D2_UL_takes.draw_item(None, bpy.context, RecordingLayout(row), scene, scene.e3d2_takes[0], 0, None, "", 0)
    assert ("operator", "e3d2.preview_take") in row and ("operator", "e3d2.use_take") in row
