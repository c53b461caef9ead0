"""The "Dance" tab in the 3D viewport's sidebar: Music -> Character -> Generate -> Score -> Export."""
from __future__ import annotations

import bpy

from . import character, compat
from .operators import UserError, find_song, smpl_armature, sound_strip


class _DancePanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Dance"


class E3D2_PT_dance(_DancePanel, bpy.types.Panel):
    bl_label = "Dance"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.e3d2

        box = layout.box()
        box.label(text="Music", icon="SOUND")
        strip = sound_strip(context)
        if strip is None:
            box.label(text="No sound strip selected: using a file")
            box.prop(settings, "audio_path", text="")
        else:
            box.label(text=f"Strip: {strip.name}")
        try:
            song = find_song(context)
            fps = song.timing.fps
            length = f"{song.seconds:.1f} s" if song.seconds else "whole song"
            box.label(text=f"{length} from frame {song.timing.first_frame} at {fps:.3g} fps")
        except UserError as err:
            box.label(text=str(err), icon="ERROR")

        box = layout.box()
        box.label(text="Character", icon="ARMATURE_DATA")
        try:
            obj = smpl_armature(context)
            box.label(text=f"Dancer: {obj.name}")
        except UserError:
            box.label(text="Select an SMPL armature, or:")
        box.operator("e3d2.create_armature", icon="ADD")
        character.draw_character(box, context)

        box = layout.box()
        box.label(text="Generate", icon="PLAY")
        row = box.row(align=True)
        row.prop(settings, "seed")
        row.prop(settings, "takes")
        box.prop(settings, "length")
        box.prop(settings, "temperature")
        box.prop(settings, "beat_guide")
        box.prop(settings, "beat_lock", slider=True)
        box.prop(settings, "in_place")
        box.prop(settings, "facing")
        box.prop(context.scene.e3d2_character, "foot_lock")
        box.prop(settings, "use_bpm")
        if settings.use_bpm:
            row = box.row(align=True)
            row.prop(settings, "bpm")
            row.prop(settings, "beat_offset")
        box.prop(settings, "reduce_keys")
        if settings.reduce_keys:
            row = box.row(align=True)
            row.prop(settings, "key_error_degrees")
            row.prop(settings, "key_error_cm")
        wm = context.window_manager
        if wm.e3d2_running:
            compat.layout_progress(box, wm.e3d2_progress, f"{100 * wm.e3d2_progress:.0f}% {wm.e3d2_status}")
            box.operator("e3d2.cancel_generation", icon="CANCEL")
        else:
            box.operator("e3d2.generate_dance", icon="PLAY")

        box = layout.box()
        box.label(text="Score", icon="SORTSIZE")
        obj = context.active_object
        action = obj.animation_data.action if obj is not None and obj.animation_data else None
        if action is not None and "e3d2_score_total" in action:
            box.label(text=f"R_theta: {action['e3d2_score_total']:.3f} "
                           f"({action.get('e3d2_score_per_minute', 0.0):.3f}/min)")
        box.operator("e3d2.score_animation", icon="SORTSIZE")

        box = layout.box()
        box.label(text="Export", icon="EXPORT")
        box.prop(settings, "export_preset")
        box.prop(settings, "export_path", text="")
        op = box.operator("e3d2.export_fbx", icon="EXPORT")
        op.filepath = settings.export_path
        op.preset = settings.export_preset


CLASSES = (E3D2_PT_dance,)
