"""Blender API differences between 4.2 LTS, 4.5 LTS and 5.x, in one place.

* Sequencer: ``SequenceEditor.strips`` / ``strips_all`` (4.4+; ``sequences`` removed in 5.0) versus
  ``sequences`` / ``sequences_all`` (4.2).
* ``context.sequencer_scene`` (5.0): the scene the sequencer edits may differ from the active scene.
* Actions: layered actions with slots and channelbags (4.4+; ``Action.fcurves`` removed in 5.0) versus legacy
  actions whose F-curves live on ``Action.fcurves`` (4.2).
"""
from __future__ import annotations

import bpy

VERSION = bpy.app.version
LAYERED_ACTIONS = VERSION >= (4, 4, 0)


# ---------------------------------------------------------------------------------------------- sequencer
def sequencer_scene(context):
    """The scene whose sequencer holds the music (5.0's ``context.sequencer_scene``, else the active scene)."""
    scene = getattr(context, "sequencer_scene", None)
    return scene if scene is not None else context.scene


def strips(sequence_editor, *, all_levels: bool = True):
    """The strips of a sequence editor (meta-strip contents included when ``all_levels``)."""
    if sequence_editor is None:
        return []
    if hasattr(sequence_editor, "strips_all"):
        return sequence_editor.strips_all if all_levels else sequence_editor.strips
    return sequence_editor.sequences_all if all_levels else sequence_editor.sequences


def new_sound_strip(scene, name: str, filepath: str, channel: int, frame_start: int):
    """Add a sound strip to ``scene``'s sequencer (created when missing)."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    collection = editor.strips if hasattr(editor, "strips") else editor.sequences
    return collection.new_sound(name, filepath, channel, frame_start)


# ---------------------------------------------------------------------------------------------- actions
def new_action_for(obj, name: str):
    """A new, empty action assigned to ``obj``, and a handle to add F-curves to it.

    Returns ``(action, fcurves)`` where ``fcurves.new(data_path, index=.., group_name=..)`` adds a curve for
    ``obj`` (a channelbag's collection on 4.4+, ``Action.fcurves`` on 4.2). The object's previous action is
    left as it was, only unassigned.
    """
    action = bpy.data.actions.new(name)
    if obj.animation_data is None:
        obj.animation_data_create()
    if LAYERED_ACTIONS:
        from bpy_extras import anim_utils

        slot = action.slots.new(id_type="OBJECT", name=obj.name)
        obj.animation_data.action = action
        obj.animation_data.action_slot = slot
        bag = anim_utils.action_ensure_channelbag_for_slot(action, slot)
        return action, _FCurveAdder(bag.fcurves, slot_aware=True)
    obj.animation_data.action = action
    return action, _FCurveAdder(action.fcurves, slot_aware=False)


class _FCurveAdder:
    """Uniform ``new(data_path, index, group_name)`` over a channelbag's or a legacy action's F-curves."""

    def __init__(self, collection, slot_aware: bool):
        self.collection = collection
        self.slot_aware = slot_aware

    def new(self, data_path: str, index: int = 0, group_name: str = ""):
        if self.slot_aware:
            return self.collection.new(data_path, index=index, group_name=group_name)
        return self.collection.new(data_path, index=index, action_group=group_name)

    def find(self, data_path: str, index: int = 0):
        return self.collection.find(data_path, index=index)


def action_fcurves(obj, action=None):
    """The F-curves that animate ``obj`` in ``action`` (its assigned action by default); empty if none."""
    anim = obj.animation_data
    action = action or (anim.action if anim else None)
    if action is None:
        return []
    if LAYERED_ACTIONS:
        from bpy_extras import anim_utils

        slot = anim.action_slot if (anim and anim.action == action) else None
        if slot is None and len(action.slots):
            slot = action.slots[0]
        bag = anim_utils.action_get_channelbag_for_slot(action, slot) if slot is not None else None
        return list(bag.fcurves) if bag is not None else []
    return list(action.fcurves)


def fcurve_adder_for(obj, action):
    """A ``new/find`` handle for adding curves for ``obj`` to an existing ``action`` (e.g. a score curve)."""
    if LAYERED_ACTIONS:
        from bpy_extras import anim_utils

        anim = obj.animation_data
        slot = anim.action_slot if (anim and anim.action == action and anim.action_slot) else action.slots[0]
        return _FCurveAdder(anim_utils.action_ensure_channelbag_for_slot(action, slot).fcurves, slot_aware=True)
    return _FCurveAdder(action.fcurves, slot_aware=False)


def assign_action(obj, action):
    """Put ``action`` back on ``obj`` (None unassigns), restoring its slot on 4.4+."""
    if action is None:
        if obj.animation_data is not None:
            obj.animation_data.action = None
        return
    if obj.animation_data is None:
        obj.animation_data_create()
    obj.animation_data.action = action
    if LAYERED_ACTIONS and obj.animation_data.action_slot is None and len(action.slots):
        obj.animation_data.action_slot = action.slots[0]


def push_to_nla(obj, action, frame_start: int):
    """Put ``action`` on a new NLA track of ``obj`` (named after it) as one strip from ``frame_start``; the
    object's active action is left as it is. Returns the strip."""
    if obj.animation_data is None:
        obj.animation_data_create()
    track = obj.animation_data.nla_tracks.new()
    track.name = action.name
    strip = track.strips.new(action.name, int(frame_start), action)
    if LAYERED_ACTIONS and getattr(strip, "action_slot", None) is None and len(action.slots):
        strip.action_slot = action.slots[0]
    return strip


def layout_progress(layout, factor: float, text: str):
    """A progress bar (``UILayout.progress``, 4.0+)."""
    layout.progress(factor=factor, type="BAR", text=text)
