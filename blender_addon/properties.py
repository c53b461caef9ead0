"""The add-on's settings: per scene (``scene.e3d2``), the running job (window manager), and preferences."""
from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from e3d2_core.api import BEAT_GUIDE_DEFAULT, BEAT_LOCK_DEFAULT, DanceRequest  # torch-free: the defaults of every generate request

EXPORT_PRESETS = [
    ("BLENDER", "Blender", "Blender's axes (-Z forward, Y up), units as in the scene"),
    ("UNITY", "Unity", "-Z forward, Y up, scale applied as FBX units, space transform baked"),
    ("UNREAL", "Unreal", "X forward, Z up, no unit scaling (Unreal's centimetres via FBX units)"),
]


class E3D2SceneSettings(bpy.types.PropertyGroup):
    audio_path: StringProperty(name="Song file", subtype="FILE_PATH",
                               description="Used when the sequencer has no sound strip to follow")
    seed: IntProperty(name="Seed", default=DanceRequest.seed, min=0,
                      description="Same seed, same song: the same dance")
    takes: IntProperty(name="Takes", default=DanceRequest.takes, min=1, max=8,
                       description="Dances to make at once (one action each)")
    length: FloatProperty(name="Length", default=0.0, min=0.0, unit="TIME_ABSOLUTE",
                          description="Seconds to dance; 0 = the whole strip (or song)")
    temperature: FloatProperty(name="Temperature", default=DanceRequest.temperature, min=0.0, max=2.0,
                               description="How freely the model picks moves: higher = more varied, "
                                           "0 = always the most likely move (tends to stand still)")
    beat_lock: FloatProperty(name="Beat Lock", default=BEAT_LOCK_DEFAULT, min=0.0, max=1.0, subtype="FACTOR",
                             description="How far the dance's steps are moved onto the music's beats by a smooth "
                                         "time warp: 1 = on the beat, 0 = the model's own timing")
    beat_guide: FloatProperty(name="Beat Guide", default=BEAT_GUIDE_DEFAULT, min=0.0, max=10.0,
                              description="How strongly the model picks moves that are slow on the beat and quick "
                                          "between beats: 0 = the model's own choices")
    in_place: BoolProperty(name="Dance in place", default=DanceRequest.in_place, description="No travel on the floor")
    facing: FloatProperty(name="Facing", default=0.0, subtype="ANGLE",
                          description="Turn the whole dance about the vertical axis")
    use_bpm: BoolProperty(name="Override tempo", default=False,
                          description="Give the generator the tempo instead of letting it detect the beat")
    bpm: FloatProperty(name="BPM", default=120.0, min=30.0, max=300.0)
    beat_offset: FloatProperty(name="Beat offset", default=0.0, min=0.0, max=10.0, unit="TIME_ABSOLUTE",
                               description="Seconds from the song's start to its first beat")
    reduce_keys: BoolProperty(name="Reduce keys", default=False,
                              description="Keep only the keys needed to stay within the errors below "
                                          "(otherwise every frame is keyed)")
    key_error_degrees: FloatProperty(name="Max °", default=0.5, min=0.01, max=20.0, precision=2,
                                     description="Largest rotation error of any bone, degrees")
    key_error_cm: FloatProperty(name="Max cm", default=0.5, min=0.01, max=20.0, precision=2,
                                description="Largest error of the root's position, centimetres")
    export_preset: EnumProperty(name="Preset", items=EXPORT_PRESETS, default="BLENDER")
    export_path: StringProperty(name="FBX file", subtype="FILE_PATH", default="//dance.fbx")


def default_venv_dir() -> str:
    return str(Path.home() / ".e3d2" / "backend-venv")


class E3D2Preferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    backend_mode: EnumProperty(name="Backend", default="AUTO", items=[
        ("AUTO", "Automatic", "In Blender's Python when torch imports there, else the interpreter below"),
        ("IN_PROCESS", "In Blender", "Run the model inside Blender (needs torch in Blender's Python)"),
        ("SUBPROCESS", "Separate Python", "Run the model in the interpreter below (python -m e3d2_core.serve)"),
    ])
    python_path: StringProperty(name="Backend Python", subtype="FILE_PATH",
                                description="A Python with torch and e3d2's requirements")
    checkpoint: StringProperty(name="Checkpoint", subtype="FILE_PATH",
                               description="Model bundle (.pt); empty = the bundled default")
    smpl_model: StringProperty(name="SMPL model file", subtype="FILE_PATH",
                               description="Your licensed SMPL .pkl/.npz: a skinned SMPL body instead of capsules")
    venv_dir: StringProperty(name="Environment folder", subtype="DIR_PATH", default=default_venv_dir(),
                             description="Where 'Set up backend' creates its private Python environment")
    wheels_dir: StringProperty(name="Wheel folder", subtype="DIR_PATH",
                               description="Install from this folder of wheels instead of the internet")
    status: StringProperty(name="Status", default="")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "backend_mode")
        layout.prop(self, "python_path")
        row = layout.row()
        row.operator("e3d2.check_backend", icon="CHECKMARK")
        if self.status:
            layout.label(text=self.status)
        box = layout.box()
        box.label(text="Set up backend: a private Python with torch, outside Blender")
        box.prop(self, "venv_dir")
        box.prop(self, "wheels_dir")
        box.operator("e3d2.setup_backend", icon="IMPORT")
        layout.prop(self, "checkpoint")
        layout.prop(self, "smpl_model")


class _Defaults:
    """Preference defaults when the add-on is registered without addon_utils (scripts, tests)."""

    backend_mode, python_path, checkpoint, smpl_model, wheels_dir, status = "AUTO", "", "", "", "", ""
    venv_dir = default_venv_dir()


_fallback = _Defaults()


def preferences(context=None):
    """The add-on's preferences (its defaults when it was registered by a script rather than enabled)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None and addon.preferences is not None else _fallback


CLASSES = (E3D2SceneSettings, E3D2Preferences)


def register_properties():
    bpy.types.Scene.e3d2 = PointerProperty(type=E3D2SceneSettings)
    wm = bpy.types.WindowManager
    wm.e3d2_running = BoolProperty(default=False)
    wm.e3d2_progress = FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    wm.e3d2_status = StringProperty(default="")
    wm.e3d2_cancel = BoolProperty(default=False)


def unregister_properties():
    del bpy.types.Scene.e3d2
    for name in ("e3d2_running", "e3d2_progress", "e3d2_status", "e3d2_cancel"):
        delattr(bpy.types.WindowManager, name)
