"""e3d2 for Blender: a dance for the music in the sequencer, on an SMPL armature (sidebar tab "Dance").

Nothing is installed or imported from torch when the add-on loads; the model runs in Blender's Python when torch
imports there, otherwise in a backend process (see the add-on preferences and docs/blender-addon.md).
"""
from __future__ import annotations

import bpy

from . import character, operators, panel, properties

_CLASSES = properties.CLASSES + character.CLASSES + operators.CLASSES + panel.CLASSES


def register():
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    properties.register_properties()
    character.register_properties()


def unregister():
    character.unregister_properties()
    properties.unregister_properties()
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
