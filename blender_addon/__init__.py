"""e3d2 for Blender: a dance for the music in the sequencer, on an SMPL armature (sidebar tab "Dance").

Nothing is installed or imported from torch when the add-on loads; the model runs in Blender's Python when torch
imports there, otherwise in a backend process (see the add-on preferences and docs/blender-addon.md).
"""
from __future__ import annotations

import bpy

from . import character, edit_panel, editing, operators, panel, properties, takes

_CLASSES = (properties.CLASSES + character.CLASSES + takes.CLASSES + operators.CLASSES + editing.CLASSES
            + panel.CLASSES + edit_panel.CLASSES)


def register():
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    properties.register_properties()
    takes.register_properties()
    editing.register_properties()
    character.register_properties()


def unregister():
    character.unregister_properties()
    editing.unregister_properties()
    takes.unregister_properties()
    properties.unregister_properties()
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
