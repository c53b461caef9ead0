"""The "Edit" and "Takes" panels of the Dance tab: regenerate a range, continue, and pick among scored takes."""
from __future__ import annotations

import bpy

from . import compat
from .panel import _DancePanel


class E3D2_PT_edit(_DancePanel, bpy.types.Panel):
    bl_label = "Edit Dance"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        settings, scene = context.scene.e3d2_edit, context.scene
        layout.prop(settings, "range_source", expand=True)
        if settings.range_source == "PREVIEW":
            if scene.use_preview_range:
                layout.label(text=f"Frames {scene.frame_preview_start}-{scene.frame_preview_end}")
            else:
                layout.label(text="Set a preview range on the timeline (Ctrl+P)", icon="INFO")
        else:
            row = layout.row(align=True)
            row.prop(settings, "frame_from")
            row.prop(settings, "frame_to")
        layout.prop(settings, "blend")
        box = layout.box()
        box.label(text="Keep where they were:")
        row = box.row(align=True)
        row.prop(settings, "keep_feet", toggle=True)
        row.prop(settings, "keep_root", toggle=True)
        row.prop(settings, "keep_hands", toggle=True)
        box.prop(settings, "keep_joints")
        layout.label(text="Seed, takes and temperature: as for Generate")
        wm = context.window_manager
        if wm.e3d2_running:
            compat.layout_progress(layout, wm.e3d2_progress, f"{100 * wm.e3d2_progress:.0f}% {wm.e3d2_status}")
            layout.operator("e3d2.cancel_generation", icon="CANCEL")
        else:
            layout.operator("e3d2.regenerate_range", icon="FILE_REFRESH")
            layout.operator("e3d2.continue_dance", icon="FORWARD")


class E3D2_PT_takes(_DancePanel, bpy.types.Panel):
    bl_label = "Takes"

    @classmethod
    def poll(cls, context):
        return len(context.scene.e3d2_takes) > 0

    def draw(self, context):
        layout = self.layout
        layout.label(text="Best R_theta first: play to preview, tick to use")
        layout.template_list("E3D2_UL_takes", "", context.scene, "e3d2_takes", context.scene, "e3d2_take_index",
                             rows=min(max(len(context.scene.e3d2_takes), 2), 8))


CLASSES = (E3D2_PT_edit, E3D2_PT_takes)
