"""The add-on's operators: a thin bpy shell over keyframes / armature / backend.

Every user mistake (no strip, missing or packed file, muted strip, a non-SMPL armature, a backend without
torch, a backend that dies) ends in one ``self.report({"ERROR"}, ...)`` line with the scene untouched: the scene
is only changed after the backend has delivered everything.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, StringProperty

from e3d2_core import serve  # torch-free at import: the generate request's JSON form
from e3d2_core.api import DanceRequest
from e3d2_core.errors import E3D2Error

from . import armature, backend, character, compat, keyframes, progress
from .motion_files import load_motion_arrays, save_motion_arrays
from .properties import preferences

SCORE_PROPERTY = "e3d2_reward"


class UserError(Exception):
    """Bad input from the scene or the user: reported as one line, nothing changed."""


# ---------------------------------------------------------------------------------------------- music
@dataclass
class Song:
    path: str
    name: str
    timing: keyframes.StripTiming
    seconds: float | None  # None: the whole file (no strip to bound it)
    strip_name: str = ""


def sound_strip(context):
    """The active sound strip, else the first selected one, else None."""
    scene = compat.sequencer_scene(context)
    editor = scene.sequence_editor
    if editor is None:
        return None
    active = editor.active_strip
    if active is not None and active.type == "SOUND":
        return active
    selected = [s for s in compat.strips(editor) if s.type == "SOUND" and s.select]
    return selected[0] if selected else None


def find_song(context) -> Song:
    """The music to dance to: the active/selected sound strip, else the panel's file; UserError if unusable."""
    scene = compat.sequencer_scene(context)
    settings = context.scene.e3d2
    fps = keyframes.scene_fps(scene.render.fps, scene.render.fps_base)
    strip = sound_strip(context)
    if strip is not None:
        if strip.mute:
            raise UserError(f"The sound strip '{strip.name}' is muted: unmute it or select another strip")
        sound = strip.sound
        if sound is None:
            raise UserError(f"The sound strip '{strip.name}' has no sound")
        if sound.packed_file is not None:
            raise UserError(f"The sound of '{strip.name}' is packed into the .blend: unpack it "
                            f"(File > External Data > Unpack Resources) so the generator can read it")
        path = bpy.path.abspath(sound.filepath, library=sound.library)
        if not os.path.isfile(path):
            raise UserError(f"The sound file of '{strip.name}' is missing: {path}")
        timing = keyframes.strip_timing(strip.frame_start, strip.frame_final_start, strip.frame_final_end, fps,
                                        getattr(strip, "sound_offset", 0.0))
        seconds = timing.seconds if settings.length <= 0 else min(settings.length, timing.seconds)
        return Song(path, Path(path).stem, timing, seconds, strip.name)
    if not settings.audio_path:
        raise UserError("No music: add a sound strip in the Video Sequencer (and select it) or choose a song file")
    path = bpy.path.abspath(settings.audio_path)
    if not os.path.isfile(path):
        raise UserError(f"The song file is missing: {path}")
    seconds = settings.length if settings.length > 0 else None
    return Song(path, Path(path).stem, keyframes.StripTiming(scene.frame_start, 0.0, seconds or 0.0, fps), seconds)


def smpl_armature(context):
    """The armature to animate (the active object); UserError unless it has the 24 SMPL bones."""
    obj = context.active_object
    if obj is None or obj.type != "ARMATURE":
        raise UserError("Select an SMPL armature or create one (Dance > Character)")
    missing = armature.missing_smpl_bones(obj)
    if missing:
        raise UserError(f"'{obj.name}' is not an SMPL armature: no bone named {', '.join(missing[:4])}"
                        + (f" and {len(missing) - 4} more" if len(missing) > 4 else ""))
    return obj


def dance_armature(context):
    """The armature a dance is read from or exported: the active SMPL armature, else the picked character
    (when it is active, or nothing else is); UserError otherwise."""
    obj = context.active_object
    if obj is not None and obj.type == "ARMATURE" and not armature.missing_smpl_bones(obj):
        return obj
    target = context.scene.e3d2_character.target
    if target is not None and (obj is None or obj == target or obj.type != "ARMATURE"):
        return target
    return smpl_armature(context)


def generate_target(context):
    """Where Generate keys the dance: the picked character (Generate onto the character), else the SMPL armature."""
    settings = context.scene.e3d2_character
    if settings.target is not None and settings.dance_on_character:
        return settings.target
    return smpl_armature(context)


def _poll_animated_armature(cls, context, why_not: str) -> bool:
    """An SMPL armature or the character, with an action; otherwise the disabled button says ``why_not``."""
    if not _poll_armature(cls, context, dance_armature):
        return False
    anim = dance_armature(context).animation_data
    if anim is None or anim.action is None:
        cls.poll_message_set(why_not)
        return False
    return True


def _poll_armature(cls, context, find=None) -> bool:
    try:
        (find or smpl_armature)(context)
    except UserError as err:
        cls.poll_message_set(str(err))
        return False
    return True


def _backend(context):
    prefs = preferences(context)
    return backend.choose_backend(prefs.backend_mode, bpy.path.abspath(prefs.python_path) if prefs.python_path else "")


# ---------------------------------------------------------------------------------------------- motion -> action
def apply_motion(obj, motion: dict, song: Song, seed: int, take: int, extra: dict | None = None, *,
                 name: str | None = None, tolerance: tuple[float, float] | None = None):
    """Key ``motion`` (already at the scene's fps) onto ``obj`` from the song's first frame: a new action.

    ``name``: the action's (default: the take's name); ``tolerance``: (degrees, cm) to keep only the keys
    needed within that error of the dense keys (:func:`keyframes.reduce_keys`), else every frame is keyed.
    """
    names = armature.load_skeleton_data()["names"]
    rest_rotations, rest_heads = armature.rest_pose(obj, names)
    frame = keyframes.armature_frame(rest_heads, names, armature.reference_heads())
    quats, location = keyframes.motion_to_bone_channels(motion["poses"], motion["trans"], rest_rotations,
                                                        rest_heads[0], frame)
    frames = keyframes.key_frames(song.timing.first_frame, len(quats))
    name = name or keyframes.action_name(song.name, seed, take, existing=bpy.data.actions.keys())
    props = {"e3d2_song": song.name, "e3d2_audio": song.path, "e3d2_seed": int(seed), "e3d2_take": int(take),
             "e3d2_fps": float(motion["fps"]), "e3d2_frame_start": int(frames[0]),
             "e3d2_frame_end": int(frames[-1]), "e3d2_audio_offset": float(song.timing.audio_offset),
             "e3d2_strip": song.strip_name, "e3d2_meta": json.dumps(motion.get("meta", {}))[:4000]}
    reduction = None
    if tolerance is not None:
        reduction = keyframes.reduce_keys(quats, location, *tolerance)
        props.update({"e3d2_keys": reduction.count, "e3d2_keys_dense": len(frames) * (4 * len(names) + 3),
                      "e3d2_key_error_deg": reduction.max_degrees, "e3d2_key_error_cm": reduction.max_cm})
    props.update(extra or {})
    return keyframes.write_dance_action(obj, name, names, frames, quats, location, props, reduction)


def show_song(context, song: Song, first: int, last: int) -> None:
    """After dancing to a song file: a sound strip of it at the dance's first frame (unless the sequencer
    already plays that file there) and the scene's frame range set to the dance."""
    scene = compat.sequencer_scene(context)
    strips = [s for s in compat.strips(scene.sequence_editor) if s.type == "SOUND"]
    here = [s for s in strips if s.sound is not None and int(s.frame_start) == first
            and os.path.realpath(bpy.path.abspath(s.sound.filepath, library=s.sound.library)) ==
            os.path.realpath(song.path)]
    if not here:
        try:
            strip = compat.new_sound_strip(scene, song.name[:60], song.path, max((s.channel for s in strips),
                                                                                  default=0) + 1, first)
            strip.select = False  # the panel keeps following the song file the user chose
        except (RuntimeError, AttributeError):  # a bpy build without audio: no strip, the dance is still keyed
            pass
    context.scene.frame_start, context.scene.frame_end = first, last


def dance_request(context, song: Song, takes: int | None = None) -> DanceRequest:
    """The dance the panel asks for (checked here, before any job: a bad setting is an E3D2Error)."""
    settings, prefs = context.scene.e3d2, preferences(context)
    return DanceRequest(song.path, seconds=song.seconds, offset=song.timing.audio_offset, fps=song.timing.fps,
                        seed=settings.seed, takes=settings.takes if takes is None else takes,
                        temperature=settings.temperature, beat_lock=settings.beat_lock,
                        beat_guide=settings.beat_guide, in_place=settings.in_place,
                        facing=math.degrees(settings.facing), bpm=settings.bpm if settings.use_bpm else None,
                        beat_offset=settings.beat_offset if settings.use_bpm else None,
                        checkpoint=bpy.path.abspath(prefs.checkpoint) if prefs.checkpoint else None)


def generate_request(context, song: Song, motion: str | None = None) -> dict:
    """The backend's generate request; with ``motion`` (a saved Motion .npz) it keys that instead of generating."""
    dance = dance_request(context, song, takes=1 if motion else None)
    extra = {"motion": motion} if motion else {}
    return {"id": "generate", "op": "generate", **serve.request_json(dance), "score": not motion, **extra}


# ---------------------------------------------------------------------------------------------- modal jobs
class _JobOperator:
    """Runs a backend job: synchronously in background mode, else modally with a timer, progress and Esc."""

    _timer = None
    _job = None

    def start_job(self, context, job):
        self._job = job
        if bpy.app.background or not context.window:
            printer = progress.ProgressPrinter()
            try:
                result = job.wait(on_progress=printer)
            except backend.BackendError as err:
                self.report({"ERROR"}, f"{self.bl_label}: {err}")
                return {"CANCELLED"}
            except KeyboardInterrupt:  # Ctrl-C in a headless run: stop the job, change nothing
                job.cancel()
                self.report({"WARNING"}, f"{self.bl_label} cancelled; nothing was changed")
                return {"CANCELLED"}
            finally:
                printer.close()
            return self.job_finished(context, result)
        wm = context.window_manager
        wm.e3d2_running, wm.e3d2_cancel, wm.e3d2_progress, wm.e3d2_status = True, False, 0.0, "starting"
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        wm = context.window_manager
        if event.type == "ESC" or wm.e3d2_cancel:
            self._job.cancel()
            self._end(context)
            self.report({"WARNING"}, f"{self.bl_label} cancelled; nothing was changed")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        self._job.poll()
        wm.e3d2_progress, wm.e3d2_status = self._job.fraction, self._job.message
        for area in context.screen.areas if context.screen else []:
            if area.type in {"VIEW_3D", "PREFERENCES"}:
                area.tag_redraw()
        if self._job.final is None:
            return {"RUNNING_MODAL"}
        self._end(context)
        try:
            result = backend.result_of(self._job.final)
        except backend.BackendError as err:
            self.report({"ERROR"}, f"{self.bl_label}: {err}")
            return {"CANCELLED"}
        return self.job_finished(context, result)

    def _end(self, context):
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.e3d2_running, wm.e3d2_cancel, wm.e3d2_progress, wm.e3d2_status = False, False, 0.0, ""

    def job_finished(self, context, result: dict):
        """Apply a finished job's result to the scene (abstract: each operator subclass knows what it made)."""
        raise NotImplementedError(f"{type(self).__name__} must implement job_finished()")


class E3D2_OT_generate_dance(_JobOperator, bpy.types.Operator):
    """Generate a dance for the music onto the selected SMPL armature (a new action per take)"""

    bl_idname = "e3d2.generate_dance"
    bl_label = "Generate Dance"
    bl_options = {"REGISTER", "UNDO"}

    motion: StringProperty(name="Motion", subtype="FILE_PATH", options={"HIDDEN", "SKIP_SAVE"},
                           description="Key this saved Motion (.npz from e3d2 generate) instead of generating")

    @classmethod
    def poll(cls, context):
        if context.window_manager.e3d2_running:
            cls.poll_message_set("A dance is being generated")
            return False
        return _poll_armature(cls, context, generate_target)

    def execute(self, context):
        return self.invoke(context, None)

    def invoke(self, context, event):
        try:
            self._armature = generate_target(context)
            if character.is_character(context, self._armature):
                character.character_map(context)       # a bad map is refused before generating
            self._song = find_song(context)
            self._seed = context.scene.e3d2.seed
            motion = bpy.path.abspath(self.motion) if self.motion else None
            if motion and not os.path.isfile(motion):
                raise UserError(f"The motion file is missing: {motion}")
            job = _backend(context).start(generate_request(context, self._song, motion))
        except (UserError, backend.BackendError, E3D2Error) as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        return self.start_job(context, job)

    def job_finished(self, context, result):
        paths = result.get("motions") or []
        obj = self._armature
        try:
            motions = [load_motion_arrays(p) for p in paths]
        except E3D2Error as err:
            self.report({"ERROR"}, f"Generate Dance: the backend's motion could not be read ({err})")
            return {"CANCELLED"}
        finally:
            for folder in {str(Path(p).parent) for p in paths}:
                shutil.rmtree(folder, ignore_errors=True)
        if not motions:
            self.report({"ERROR"}, "Generate Dance: the backend returned no motion")
            return {"CANCELLED"}
        settings = context.scene.e3d2
        names = keyframes.take_names(self._song.name, self._seed, len(motions), existing=bpy.data.actions.keys())
        tolerance = (settings.key_error_degrees, settings.key_error_cm) if settings.reduce_keys else None
        extra = {"e3d2_backend": type(self._job).__name__}
        if character.is_character(context, obj):
            try:
                actions = character.key_takes(context, obj, motions, self._song, self._seed, names, extra)
            except E3D2Error as err:
                self.report({"ERROR"}, f"Generate Dance: {err}")
                return {"CANCELLED"}
        else:
            if context.scene.e3d2_character.foot_lock:
                motions = [character.lock_smpl_feet(m) for m in motions]
            actions = [apply_motion(obj, m, self._song, self._seed, take, extra, name=names[take],
                                    tolerance=tolerance) for take, m in enumerate(motions)]
        compat.assign_action(obj, actions[0])
        if context.scene.e3d2_character.nla_strips:
            for action in actions:
                compat.push_to_nla(obj, action, action["e3d2_frame_start"])
        first, last = actions[0]["e3d2_frame_start"], actions[0]["e3d2_frame_end"]
        if not self._song.strip_name:
            show_song(context, self._song, first, last)
        from . import takes  # the list of takes, best R_theta first (scores: None without a reward model)
        scores = [s and s["per_minute"] for s in (result.get("scores") or [None] * len(actions))]
        takes.fill(context.scene, obj, actions, scores, [(first, last)] * len(actions))
        keys = ""
        if tolerance is not None and "e3d2_keys" in actions[0]:
            keys = (f"; {actions[0]['e3d2_keys']} of {actions[0]['e3d2_keys_dense']} keys, within "
                    f"{actions[0]['e3d2_key_error_deg']:.2f} deg / {actions[0]['e3d2_key_error_cm']:.2f} cm")
        self.report({"INFO"}, f"{len(actions)} dance(s): {', '.join(a.name for a in actions)} "
                              f"(frames {first}-{last}{keys})")
        return {"FINISHED"}


class E3D2_OT_cancel_generation(bpy.types.Operator):
    """Stop the running generation (nothing is changed)"""

    bl_idname = "e3d2.cancel_generation"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return context.window_manager.e3d2_running

    def execute(self, context):
        context.window_manager.e3d2_cancel = True
        return {"FINISHED"}


# ---------------------------------------------------------------------------------------------- character
class E3D2_OT_create_armature(bpy.types.Operator):
    """Add an SMPL armature (24 bones, metres) with a simple skinned body, or an SMPL mesh if a model is set"""

    bl_idname = "e3d2.create_armature"
    bl_label = "Create SMPL Armature"
    bl_options = {"REGISTER", "UNDO"}

    with_body: BoolProperty(name="Body", default=True, description="Add a skinned body mesh")

    def execute(self, context):
        prefs = preferences(context)
        skeleton, body = armature.load_skeleton_data(), None
        if self.with_body and prefs.smpl_model:
            try:
                job = _backend(context).start({"id": "body", "op": "body", "model": bpy.path.abspath(prefs.smpl_model)})
                path = job.wait(timeout=600)["body"]
                with np.load(path) as data:
                    body = {k: np.asarray(data[k]) for k in ("vertices", "faces", "weights", "joints")}
                shutil.rmtree(Path(path).parent, ignore_errors=True)
            except backend.BackendError as err:
                self.report({"ERROR"}, f"SMPL body: {err}")
                return {"CANCELLED"}
            skeleton = armature.skeleton_from_joints(body["joints"], skeleton["names"], skeleton["parents"])
        if context.object is not None and context.object.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        obj = armature.create_armature(context, skeleton, body=body, with_body=self.with_body)
        self.report({"INFO"}, f"Created '{obj.name}'" + (" with an SMPL body" if body is not None else ""))
        return {"FINISHED"}


# ---------------------------------------------------------------------------------------------- score
def action_frame_range(action) -> tuple[int, int]:
    if "e3d2_frame_start" in action and "e3d2_frame_end" in action:
        return int(action["e3d2_frame_start"]), int(action["e3d2_frame_end"])
    start, end = action.frame_range
    return int(math.floor(start)), int(math.ceil(end))


class E3D2_OT_score_animation(bpy.types.Operator):
    """Rate the armature's current animation against the music with the reward model (R_theta)"""

    bl_idname = "e3d2.score_animation"
    bl_label = "Score Animation"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return _poll_animated_armature(cls, context, "The armature has no animation to score")

    def execute(self, context):
        try:
            obj, song = dance_armature(context), find_song(context)
            action = obj.animation_data.action
            names = armature.load_skeleton_data()["names"]
            first, last = action_frame_range(action)
            frames = np.arange(first, last + 1, dtype=np.float64)
            if armature.missing_smpl_bones(obj):    # the character: read back as SMPL through its bone map
                poses, trans = character.read_character_motion(context, obj, action, frames)
            else:
                quats, location = keyframes.read_dance_channels(obj, names, frames)
                rest_rotations, rest_heads = armature.rest_pose(obj, names)
                poses, trans = keyframes.bone_channels_to_motion(quats, location, rest_rotations, rest_heads[0],
                                                                 keyframes.armature_frame(rest_heads, names, armature.reference_heads()))
            folder = Path(tempfile.mkdtemp(prefix="e3d2_"))
            motion_path = folder / "scored.npz"
            save_motion_arrays(motion_path, poses, trans, song.timing.fps, {"action": action.name})
            offset = song.timing.audio_offset + (first - song.timing.first_frame) / song.timing.fps
            if offset < 0:
                raise UserError("The animation starts before the music: move it or the strip")
            prefs = preferences(context)
            request = {"id": "score", "op": "score", "motion": str(motion_path), "audio": song.path,
                       "offset": offset, "checkpoint": bpy.path.abspath(prefs.checkpoint) if prefs.checkpoint else None}
            score = _backend(context).start(request).wait(timeout=1800)["score"]
        except (UserError, backend.BackendError, E3D2Error) as err:
            self.report({"ERROR"}, f"Score Animation: {err}")
            return {"CANCELLED"}
        finally:
            if "folder" in locals():
                shutil.rmtree(folder, ignore_errors=True)
        store_score(obj, action, score, first, song.timing.fps)
        self.report({"INFO"}, f"R_theta total {score['total']:.3f} ({score['per_minute']:.3f} per minute)")
        return {"FINISHED"}


def store_score(obj, action, score: dict, first_frame: int, fps: float) -> None:
    """The total on the action; R_theta's per-step values as an animated custom property in the action."""
    action["e3d2_score_total"] = float(score["total"])
    action["e3d2_score_per_minute"] = float(score["per_minute"])
    times, values = np.asarray(score["times"], float), np.asarray(score["values"], float)
    if SCORE_PROPERTY not in obj:
        obj[SCORE_PROPERTY] = 0.0
    curves = compat.fcurve_adder_for(obj, action)
    data_path = f'["{SCORE_PROPERTY}"]'
    old = curves.find(data_path)
    if old is not None:  # a re-score replaces the previous curve, nothing else
        curves.collection.remove(old)
    if len(times):
        keyframes.write_curve(curves.new(data_path, group_name="e3d2"), first_frame + times * fps, values)


# ---------------------------------------------------------------------------------------------- export
FBX_PRESETS = {
    "BLENDER": {"axis_forward": "-Z", "axis_up": "Y", "apply_scale_options": "FBX_SCALE_NONE"},
    "UNITY": {"axis_forward": "-Z", "axis_up": "Y", "apply_scale_options": "FBX_SCALE_UNITS",
              "bake_space_transform": True},
    "UNREAL": {"axis_forward": "X", "axis_up": "Z", "apply_scale_options": "FBX_SCALE_NONE"},
}


def export_fbx(context, obj, filepath: str, preset: str = "BLENDER") -> tuple[int, int]:
    """Export ``obj`` (and its meshes) with its current action over the dance's frame range; atomic write.

    Scene frame range and selection are restored afterwards. Returns the exported frame range.
    """
    scene = context.scene
    action = obj.animation_data.action if obj.animation_data else None
    first, last = action_frame_range(action) if action else (scene.frame_start, scene.frame_end)
    saved_range, saved_frame, saved_name = (scene.frame_start, scene.frame_end), scene.frame_current, scene.name
    saved_selection = [o for o in context.view_layer.objects if o.select_get()]
    saved_active = context.view_layer.objects.active
    target = Path(filepath)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".fbx", dir=target.parent)
    os.close(fd)
    try:
        for o in saved_selection:
            o.select_set(False)
        for o in [obj] + [c for c in obj.children if c.type == "MESH"]:
            o.select_set(True)
        context.view_layer.objects.active = obj
        scene.frame_start, scene.frame_end = first, last
        if action is not None:  # the exporter names the animation (take) after the scene: make it the action's
            scene.name = action.name
        result = bpy.ops.export_scene.fbx(
            filepath=tmp, use_selection=True, object_types={"ARMATURE", "MESH"}, add_leaf_bones=False,
            bake_anim=True, bake_anim_use_all_actions=False, bake_anim_use_nla_strips=False,
            bake_anim_force_startend_keying=True, bake_anim_simplify_factor=0.0, primary_bone_axis="Y",
            secondary_bone_axis="X", **FBX_PRESETS[preset])
        if "FINISHED" not in result:
            raise UserError("the FBX exporter failed")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's private mode is not what a user expects of an export
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        scene.name = saved_name
        scene.frame_start, scene.frame_end = saved_range
        scene.frame_set(saved_frame)
        for o in context.view_layer.objects:
            o.select_set(o in saved_selection)
        context.view_layer.objects.active = saved_active
    return first, last


class E3D2_OT_export_fbx(bpy.types.Operator):
    """Export the armature and its dance to FBX (no leaf bones, the dance's frame range)"""

    bl_idname = "e3d2.export_fbx"
    bl_label = "Export FBX"

    filepath: StringProperty(name="File", subtype="FILE_PATH", default="")
    preset: EnumProperty(name="Preset", items=[(k, k.title(), "") for k in FBX_PRESETS], default="BLENDER")

    @classmethod
    def poll(cls, context):
        return _poll_animated_armature(cls, context, "Generate a dance first: the armature has no animation")

    def execute(self, context):
        settings = context.scene.e3d2
        path = bpy.path.abspath(self.filepath or settings.export_path)
        preset = self.preset if self.properties.is_property_set("preset") else settings.export_preset
        if not path.lower().endswith(".fbx"):
            path += ".fbx"
        if path.startswith("//") or not os.path.isabs(path):
            self.report({"ERROR"}, "Export FBX: save the .blend first or give an absolute file path")
            return {"CANCELLED"}
        try:
            first, last = export_fbx(context, dance_armature(context), path, preset)
        except (UserError, OSError) as err:
            self.report({"ERROR"}, f"Export FBX: {err}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Exported {path} (frames {first}-{last}, {preset.title()} preset)")
        return {"FINISHED"}


# ---------------------------------------------------------------------------------------------- backend prefs
class E3D2_OT_check_backend(bpy.types.Operator):
    """Start the backend and report its torch version and device"""

    bl_idname = "e3d2.check_backend"
    bl_label = "Check Backend"

    def execute(self, context):
        prefs = preferences(context)
        try:
            if prefs.python_path:
                info = backend.check_backend(bpy.path.abspath(prefs.python_path))
            else:
                info = _backend(context).start({"id": "check", "op": "check"}).wait(timeout=180)
        except backend.BackendError as err:
            prefs.status = f"Backend not usable: {err}"
            self.report({"ERROR"}, prefs.status)
            return {"CANCELLED"}
        prefs.status = (f"torch {info['torch']} on {info['device']}; generate "
                        f"{'available' if info.get('generate') else 'missing'}, score "
                        f"{'available' if info.get('score') else 'missing'}")
        self.report({"INFO"}, f"Backend OK: {prefs.status}")
        return {"FINISHED"}


class E3D2_OT_setup_backend(_JobOperator, bpy.types.Operator):
    """Create a private Python environment outside Blender and install e3d2's requirements into it"""

    bl_idname = "e3d2.setup_backend"
    bl_label = "Set Up Backend"

    requirements: StringProperty(name="Requirements", default=" ".join(backend.BACKEND_REQUIREMENTS),
                                 options={"HIDDEN", "SKIP_SAVE"})

    def execute(self, context):
        return self.invoke(context, None)

    def invoke(self, context, event):
        prefs = preferences(context)
        venv_dir = bpy.path.abspath(prefs.venv_dir)
        wheels = bpy.path.abspath(prefs.wheels_dir) if prefs.wheels_dir else None
        online = bool(getattr(bpy.app, "online_access", False))
        requirements = self.requirements.split()

        def handler(request, emit, cancelled):
            try:
                python = backend.setup_environment(
                    venv_dir, requirements, wheels_dir=wheels, online=online, cancelled=cancelled,
                    progress=lambda f, m: emit({"event": "progress", "fraction": f, "message": m}))
            except backend.BackendError as err:
                emit({"event": "cancelled"} if str(err) == "cancelled" else {"event": "error", "message": str(err)})
                return
            emit({"event": "result", "python": str(python)})

        return self.start_job(context, backend.ThreadJob({"op": "setup"}, handler))

    def job_finished(self, context, result):
        prefs = preferences(context)
        prefs.python_path = result["python"]
        if prefs.backend_mode == "IN_PROCESS":
            prefs.backend_mode = "AUTO"
        try:
            info = backend.check_backend(result["python"])
            prefs.status = f"Set up: torch {info['torch']} on {info['device']} ({result['python']})"
            self.report({"INFO"}, prefs.status)
        except backend.BackendError as err:
            prefs.status = f"Installed into {result['python']}, but the backend check failed: {err}"
            self.report({"WARNING"}, prefs.status)
        return {"FINISHED"}


CLASSES = (E3D2_OT_generate_dance, E3D2_OT_cancel_generation, E3D2_OT_create_armature, E3D2_OT_score_animation,
           E3D2_OT_export_fbx, E3D2_OT_check_backend, E3D2_OT_setup_backend)
