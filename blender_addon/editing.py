"""Editing the armature's dance: Regenerate Range and Continue (operators over the backend's edit requests).

Both read the armature's current action back into a Motion at the scene's rate, send it with the music to the
backend (``regenerate`` / ``extend``, see ``e3d2_core.serve_editing``), and make one **new** action per take: a
copy of the old action whose keys are replaced only on the frames the edit changed (every other key is the old
one, untouched) -- the old action is never edited. The best take (R_theta) is assigned and all of them are
listed in the Takes panel. Progress and Esc/Cancel work as for Generate; until the backend has delivered
everything the scene is not changed.
"""
from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from e3d2_core.errors import E3D2Error

from . import armature, backend, compat, keyframes, takes
from .motion_files import load_motion_arrays, save_motion_arrays
from .operators import (SCORE_PROPERTY, UserError, _backend, _JobOperator, _poll_animated_armature, action_frame_range,
                        find_song, smpl_armature)
from .properties import preferences

BONE_ROTATION = 'pose.bones["{}"].rotation_quaternion'
BONE_LOCATION = 'pose.bones["{}"].location'


class E3D2EditSettings(bpy.types.PropertyGroup):
    range_source: EnumProperty(name="Range", default="PREVIEW", items=[
        ("PREVIEW", "Preview Range", "The timeline's preview range (its first to its last frame)"),
        ("FRAMES", "Frames", "The From and To frames below"),
    ])
    frame_from: IntProperty(name="From", default=1, description="First frame to regenerate")
    frame_to: IntProperty(name="To", default=100, description="Last frame to regenerate")
    blend: FloatProperty(name="Blend", default=0.5, min=0.0, max=5.0, unit="TIME_ABSOLUTE",
                         description="Seconds after the range over which the new dance hands back to the old one")
    keep_feet: BoolProperty(name="Feet", default=False, description="Keep both feet where they were")
    keep_root: BoolProperty(name="Root path", default=False, description="Keep the pelvis's path where it was")
    keep_hands: BoolProperty(name="Hands", default=False, description="Keep both hands where they were")
    keep_joints: StringProperty(name="Joints", default="",
                                description="More joints to keep where they were (SMPL names, comma-separated)")


def keep_list(settings) -> list[str]:
    names = [n.strip() for n in settings.keep_joints.split(",") if n.strip()]
    return (["feet"] if settings.keep_feet else []) + (["root"] if settings.keep_root else []) \
        + (["hands"] if settings.keep_hands else []) + names


# ---------------------------------------------------------------------------------------------- motion <-> action
def read_action_motion(obj, action, fps: float, folder: Path) -> tuple[Path, int, int]:
    """The action sampled at every frame of its range as a Motion .npz in ``folder``; (path, first, last)."""
    names = armature.load_skeleton_data()["names"]
    first, last = action_frame_range(action)
    frames = np.arange(first, last + 1, dtype=np.float64)
    quats, location = keyframes.read_dance_channels(obj, names, frames)
    rest_rotations, rest_heads = armature.rest_pose(obj, names)
    frame = keyframes.armature_frame(rest_heads, names, armature.reference_heads())
    poses, trans = keyframes.bone_channels_to_motion(quats, location, rest_rotations, rest_heads[0], frame)
    return save_motion_arrays(folder / "dance.npz", poses, trans, fps, {"action": action.name}), first, last


def unique_action_name(base: str) -> str:
    """``base`` cut to Blender's 63 bytes, with a ``.001``-style suffix if an action has that name."""
    for n in range(1000):
        suffix = "" if n == 0 else f".{n:03d}"
        room = keyframes.MAX_ID_NAME_BYTES - len(suffix.encode())
        name = keyframes._utf8_truncate(base, room) + suffix
        if name not in bpy.data.actions:
            return name
    raise UserError("no free action name")


def replace_keys(fcurve, frames: np.ndarray, values: np.ndarray, lo: float, hi: float) -> None:
    """Put keys (``frames``, ``values``) on ``fcurve`` instead of its keys in [lo, hi); keys outside stay as they
    are (frame, value, interpolation, handles and their types). New keys interpolate linearly."""
    points = fcurve.keyframe_points
    n = len(points)
    saved = {}
    for attr, width, kind in (("co", 2, np.float32), ("handle_left", 2, np.float32),
                              ("handle_right", 2, np.float32), ("interpolation", 1, np.int32),
                              ("handle_left_type", 1, np.int32), ("handle_right_type", 1, np.int32),
                              ("easing", 1, np.int32), ("type", 1, np.int32)):
        buffer = np.empty(n * width, dtype=kind)
        if n:
            points.foreach_get(attr, buffer)
        saved[attr] = (buffer.reshape(n, width), width, kind)
    old_frames = saved["co"][0][:, 0]
    before, after = old_frames < lo, old_frames >= hi
    total = int(before.sum()) + len(frames) + int(after.sum())
    if hasattr(points, "clear"):
        points.clear()
    else:                                   # very old API: remove one by one, last first
        for k in range(len(points) - 1, -1, -1):
            points.remove(points[k], fast=True)
    points.add(total)
    for attr, (old, width, kind) in saved.items():
        fresh = np.empty(total * width, dtype=kind)
        points.foreach_get(attr, fresh)     # the defaults add() gave every key
        fresh = fresh.reshape(total, width)
        nb = int(before.sum())
        fresh[:nb] = old[before]
        fresh[nb + len(frames):] = old[after]
        if attr in ("co", "handle_left", "handle_right"):
            fresh[nb:nb + len(frames), 0] = frames
            fresh[nb:nb + len(frames), 1] = values
        elif attr == "interpolation":
            fresh[nb:nb + len(frames), 0] = 1   # LINEAR: exact at every frame, as the add-on's own keys
        points.foreach_set(attr, fresh.ravel())
    fcurve.update()


def edited_action(obj, old, name: str, motion: dict, frames: tuple[int, int], first_frame: int, props: dict):
    """A copy of ``old`` with the keys of ``motion``'s frames [i0, i1) (at scene frames from ``first_frame``)."""
    names = armature.load_skeleton_data()["names"]
    i0, i1 = frames
    rest_rotations, rest_heads = armature.rest_pose(obj, names)
    frame = keyframes.armature_frame(rest_heads, names, armature.reference_heads())
    quats, location = keyframes.motion_to_bone_channels(motion["poses"][i0:i1], motion["trans"][i0:i1],
                                                        rest_rotations, rest_heads[0], frame)
    new = old.copy()
    new.name = name
    anim = obj.animation_data
    previous = anim.action
    compat.assign_action(obj, new)
    curves = {(fc.data_path, fc.array_index): fc for fc in compat.action_fcurves(obj, new)}
    adder = compat.fcurve_adder_for(obj, new)
    key_frames = first_frame + np.arange(i0, i1, dtype=np.float64)
    lo, hi = float(first_frame + i0), float(first_frame + i1) if i1 < len(motion["poses"]) else math.inf
    neighbour = first_frame + i0 - 1 if i0 > 0 else (first_frame + i1 if math.isfinite(hi) else None)
    for b, bone in enumerate(names):
        obj.pose.bones[bone].rotation_mode = "QUATERNION"
        path = BONE_ROTATION.format(bone)
        section = quats[:, b]
        if neighbour is not None:           # the same hemisphere as the kept key next to the new ones
            old_q = [curves[(path, c)].evaluate(neighbour) if (path, c) in curves else float(c == 0) for c in range(4)]
            probe = section[0] if i0 > 0 else section[-1]
            if float(np.dot(old_q, probe)) < 0:
                section = -section
        for c in range(4):
            curve = curves.get((path, c)) or adder.new(path, index=c, group_name=bone)
            replace_keys(curve, key_frames, section[:, c], lo, hi)
    path = BONE_LOCATION.format(names[0])
    for c in range(3):
        curve = curves.get((path, c)) or adder.new(path, index=c, group_name=names[0])
        replace_keys(curve, key_frames, location[:, c], lo, hi)
    stale = curves.get((f'["{SCORE_PROPERTY}"]', 0))
    if stale is not None:                   # the old score curve does not describe the new dance
        adder.collection.remove(stale)
    for key in ("e3d2_score_total", "e3d2_score_per_minute"):
        if key in new:
            del new[key]
    for key, value in props.items():
        new[key] = value
    new.use_fake_user = True
    compat.assign_action(obj, previous)
    return new


# ---------------------------------------------------------------------------------------------- operators
class _EditOperator(_JobOperator):
    """Shared part of Regenerate Range and Continue: read the dance, run the backend job, make the takes."""

    op = ""

    @classmethod
    def poll(cls, context):
        if context.window_manager.e3d2_running:
            cls.poll_message_set("A dance is being generated")
            return False
        return _poll_animated_armature(cls, context, "The armature has no dance to edit: generate or import one")

    def execute(self, context):
        return self.invoke(context, None)

    def request(self, context, first: int, last: int, fps: float) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must say what it asks the backend")

    def invoke(self, context, event):
        folder = None
        try:
            self._armature = obj = smpl_armature(context)
            self._action = obj.animation_data.action
            self._song = song = find_song(context)
            fps = song.timing.fps
            first, last = action_frame_range(self._action)
            self._first = first
            offset = song.timing.audio_offset + (first - song.timing.first_frame) / fps
            if offset < -1e-9:
                raise UserError("The dance starts before the music: move it or the strip")
            specific = self.request(context, first, last, fps)
            folder = Path(tempfile.mkdtemp(prefix="e3d2_"))
            motion_path, _, _ = read_action_motion(obj, self._action, fps, folder)
            settings, prefs = context.scene.e3d2, preferences(context)
            self._seed = settings.seed
            request = {"id": self.op, "op": self.op, "motion": str(motion_path), "audio": song.path,
                       "offset": max(offset, 0.0), "seed": settings.seed, "takes": settings.takes,
                       "temperature": settings.temperature, "keep": keep_list(context.scene.e3d2_edit),
                       "checkpoint": bpy.path.abspath(prefs.checkpoint) if prefs.checkpoint else None,
                       "device": "auto", **specific}
            self._folder = folder
            job = _backend(context).start(request)
        except (UserError, backend.BackendError, E3D2Error) as err:
            self.report({"ERROR"}, f"{self.bl_label}: {err}")
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            return {"CANCELLED"}
        return self._tidy(self.start_job(context, job))

    def modal(self, context, event):
        return self._tidy(super().modal(context, event))

    def _tidy(self, result):
        """Remove the dance sent to the backend once the job has ended (finished or cancelled)."""
        if result & {"FINISHED", "CANCELLED"}:
            shutil.rmtree(self._folder, ignore_errors=True)
        return result

    def job_finished(self, context, result):
        paths, edits = result.get("motions") or [], result.get("edits") or []
        try:
            motions = [load_motion_arrays(p) for p in paths]
        except E3D2Error as err:
            self.report({"ERROR"}, f"{self.bl_label}: the backend's motion could not be read ({err})")
            return {"CANCELLED"}
        finally:
            for folder in {str(Path(p).parent) for p in paths}:
                shutil.rmtree(folder, ignore_errors=True)
        if not motions or len(edits) != len(motions):
            self.report({"ERROR"}, f"{self.bl_label}: the backend returned no edited motion")
            return {"CANCELLED"}
        obj, old = self._armature, self._action
        made, scores, ranges = [], [], []
        for take, (motion, info) in enumerate(zip(motions, edits)):
            i0, i1 = (int(v) for v in info["frames"])
            base = f"{old.name}_{self.suffix}{self._seed}" + (f"_t{take + 1}" if take else "")
            first, last = self._first + i0, self._first + i1 - 1
            props = {"e3d2_edit_of": old.name, "e3d2_edit_op": self.op, "e3d2_edit_frames": [first, last],
                     "e3d2_seed": int(self._seed), "e3d2_take": take,
                     "e3d2_frame_start": int(self._first),
                     "e3d2_frame_end": int(self._first + len(motion["poses"]) - 1),
                     "e3d2_meta": json.dumps(info)[:4000]}
            score = info.get("reward_range_per_minute")
            if "reward_total" in info:
                props.update(e3d2_score_total=float(info["reward_total"]),
                             e3d2_score_per_minute=float(info["reward_per_minute"]),
                             e3d2_range_score_per_minute=float(score))
            made.append(edited_action(obj, old, unique_action_name(base), motion, (i0, i1), self._first, props))
            scores.append(None if score is None or not math.isfinite(score) else float(score))
            ranges.append((first, last))
        takes.fill(context.scene, obj, made, scores, ranges)
        best = bpy.data.actions[context.scene.e3d2_takes[0].action]
        compat.assign_action(obj, best)
        self.report({"INFO"}, f"{len(made)} take(s) of frames {ranges[0][0]}-{ranges[0][1]}: "
                              f"{', '.join(a.name for a in made)}; '{best.name}' assigned")
        return {"FINISHED"}


class E3D2_OT_regenerate_range(_EditOperator, bpy.types.Operator):
    """Regenerate part of the armature's dance on the same music, into a new action (the old one is kept)"""

    bl_idname = "e3d2.regenerate_range"
    bl_label = "Regenerate Range"
    bl_options = {"REGISTER", "UNDO"}
    op, suffix = "regenerate", "r"

    def request(self, context, first, last, fps):
        scene, settings = context.scene, context.scene.e3d2_edit
        if settings.range_source == "PREVIEW":
            if not scene.use_preview_range:
                raise UserError("No preview range: set one on the timeline (Ctrl+P) or choose Frames")
            lo, hi = scene.frame_preview_start, scene.frame_preview_end
        else:
            lo, hi = settings.frame_from, settings.frame_to
        if hi < lo:
            raise UserError(f"The range {lo}-{hi} is empty: its last frame comes before its first")
        if lo < first or hi > last:
            raise UserError(f"Frames {lo}-{hi} are outside the dance (frames {first}-{last})")
        return {"start": (lo - first) / fps, "end": (hi + 1 - first) / fps, "blend": settings.blend}


class E3D2_OT_continue_dance(_EditOperator, bpy.types.Operator):
    """Continue the armature's dance to the end of the sound strip, into a new action (the old one is kept)"""

    bl_idname = "e3d2.continue_dance"
    bl_label = "Continue"
    bl_options = {"REGISTER", "UNDO"}
    op, suffix = "extend", "c"

    def request(self, context, first, last, fps):
        song = self._song
        if not song.strip_name:                # a song file, not a strip: to the end of the song
            return {"seconds": None}
        missing = song.timing.last_frame - last
        if missing < 1:
            raise UserError(f"The dance already reaches the end of the sound strip (frame {song.timing.last_frame})")
        return {"seconds": missing / fps}


CLASSES = (E3D2EditSettings, E3D2_OT_regenerate_range, E3D2_OT_continue_dance)


def register_properties():
    bpy.types.Scene.e3d2_edit = PointerProperty(type=E3D2EditSettings)


def unregister_properties():
    del bpy.types.Scene.e3d2_edit

