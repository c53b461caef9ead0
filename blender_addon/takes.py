"""The takes of the last generation or edit: listed with their R_theta scores, best first; preview or use each.

The list lives on the scene (``scene.e3d2_takes``) and names actions; the actions themselves are ordinary
(fake-user) actions, so the list can be cleared or rebuilt without losing any take.
"""
from __future__ import annotations

import bpy
from bpy.props import BoolProperty, CollectionProperty, FloatProperty, IntProperty, StringProperty

from . import compat


class E3D2TakeItem(bpy.types.PropertyGroup):
    action: StringProperty(name="Action", description="The action holding this take")
    armature: StringProperty(name="Armature", description="The armature the take was made for")
    score: FloatProperty(name="R_theta per minute", description="The reward model's score of the take")
    has_score: BoolProperty(default=False)
    frame_start: IntProperty(name="From", description="First frame this take changed")
    frame_end: IntProperty(name="To", description="Last frame this take changed")


def fill(scene, obj, actions, scores, ranges) -> None:
    """Replace the list by ``actions`` with their ``scores`` (per minute, or None) and changed frame ``ranges``
    ((first, last) each), best first; unscored takes keep their order after the scored ones."""
    rows = list(zip(actions, scores, ranges))
    order = sorted(range(len(rows)), key=lambda k: (rows[k][1] is None, -(rows[k][1] or 0.0), k))
    scene.e3d2_takes.clear()
    for k in order:
        action, score, (first, last) = rows[k]
        item = scene.e3d2_takes.add()
        item.name = action.name
        item.action, item.armature = action.name, obj.name
        item.has_score, item.score = score is not None, float(score or 0.0)
        item.frame_start, item.frame_end = int(first), int(last)
    scene.e3d2_take_index = 0


def _take(context, index: int):
    takes = context.scene.e3d2_takes
    if not 0 <= index < len(takes):
        return None, None, "No such take"
    item = takes[index]
    obj = bpy.data.objects.get(item.armature)
    action = bpy.data.actions.get(item.action)
    if obj is None or action is None:
        return None, None, f"The take '{item.action}' or its armature '{item.armature}' no longer exists"
    return item, (obj, action), ""


class E3D2_OT_preview_take(bpy.types.Operator):
    """Play this take: put it on its armature and loop the frames it changed"""

    bl_idname = "e3d2.preview_take"
    bl_label = "Preview Take"

    index: IntProperty(default=0, options={"SKIP_SAVE"})

    def execute(self, context):
        item, found, why = _take(context, self.index)
        if item is None:
            self.report({"ERROR"}, f"Preview Take: {why}")
            return {"CANCELLED"}
        obj, action = found
        compat.assign_action(obj, action)
        scene = context.scene
        scene.use_preview_range = True
        scene.frame_preview_start, scene.frame_preview_end = item.frame_start, max(item.frame_end, item.frame_start)
        scene.frame_set(item.frame_start)
        context.scene.e3d2_take_index = self.index
        screen = getattr(context, "screen", None)
        if screen is not None and not screen.is_animation_playing:
            bpy.ops.screen.animation_play()
        self.report({"INFO"}, f"Previewing '{action.name}' (frames {item.frame_start}-{item.frame_end})")
        return {"FINISHED"}


class E3D2_OT_use_take(bpy.types.Operator):
    """Use this take: put it on its armature (the other takes stay in the file)"""

    bl_idname = "e3d2.use_take"
    bl_label = "Use Take"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(default=0, options={"SKIP_SAVE"})

    def execute(self, context):
        item, found, why = _take(context, self.index)
        if item is None:
            self.report({"ERROR"}, f"Use Take: {why}")
            return {"CANCELLED"}
        obj, action = found
        screen = getattr(context, "screen", None)
        if screen is not None and screen.is_animation_playing:
            bpy.ops.screen.animation_cancel(restore_frame=False)
        compat.assign_action(obj, action)
        context.scene.e3d2_take_index = self.index
        self.report({"INFO"}, f"'{obj.name}' now dances '{action.name}'")
        return {"FINISHED"}


class E3D2_UL_takes(bpy.types.UIList):
    """One row per take: name, R_theta per minute, preview and use buttons."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_property, index=0, flt_flag=0):
        row = layout.row(align=True)
        row.label(text=item.action, icon="ACTION")
        row.label(text=f"{item.score:.1f}/min" if item.has_score else "no score")
        row.operator("e3d2.preview_take", text="", icon="PLAY").index = index
        row.operator("e3d2.use_take", text="", icon="CHECKMARK").index = index


CLASSES = (E3D2TakeItem, E3D2_OT_preview_take, E3D2_OT_use_take, E3D2_UL_takes)


def register_properties():
    bpy.types.Scene.e3d2_takes = CollectionProperty(type=E3D2TakeItem)
    bpy.types.Scene.e3d2_take_index = IntProperty(default=0)


def unregister_properties():
    del bpy.types.Scene.e3d2_takes
    del bpy.types.Scene.e3d2_take_index
