"""The Character section: dance on the user's own armature (Mixamo, Rigify, UE4/UE5 mannequin, VRM, any humanoid).

A thin bpy shell over :mod:`e3d2_core.retarget` (numpy only, so it runs in Blender's own Python):

* the armature's rest bones become a :class:`~e3d2_core.retarget.rig.Rig` (full Copy Transforms constraints
  recorded, so Rigify's controls bake exactly);
* the bone map lives in ``scene.e3d2_character.slots`` (one row per SMPL joint), filled by a preset or by
  detection, editable, saved to and loaded from JSON;
* every dance is baked in bulk into a NEW action on the character (each bone keyed in its own rotation mode,
  the hips' location, the preset's constant switches such as Rigify's IK/FK); the character's bones, pose
  and existing actions are never edited (a previous action that had no other user gets a fake user so saving
  keeps it);
* reading a character's take back as SMPL evaluates the mapped (read) bones frame by frame, so any animation
  on any rig, constraints included, can be scored, looped and mirrored.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, \
    StringProperty

from e3d2_core import rotations
from e3d2_core.errors import E3D2Error
from e3d2_core.retarget import bonemap, footlock, loop, names, rig as rigmod, transfer
from e3d2_core.retarget import kinematics as kin

from . import armature, compat, keyframes

RIG_ITEMS = [("auto", "Automatic", "Detect the rig from its bone names (a preset, else the name matcher)"),
             ("mixamo", "Mixamo", "mixamorig:Hips ... (any numbered prefix)"),
             ("rigify", "Rigify", "A generated Rigify rig: keys its FK controls, reads its DEF bones"),
             ("rigify_def", "Rigify deform bones", "DEF-* bones only (a Rigify rig without controls)"),
             ("ue5", "UE5 Mannequin", "Unreal Engine 5 Manny/Quinn: pelvis, spine_01-05, thigh_l ..."),
             ("ue4", "UE4 Mannequin", "Unreal Engine 4: pelvis, spine_01-03, thigh_l ..."),
             ("vrm", "VRM humanoid", "VRM / VRoid avatars: hips, leftUpperLeg ... or J_Bip_C_Hips ..."),
             ("smpl", "SMPL", "SMPL joint names (this add-on's armature, the SMPL add-on, SMPL FBX)"),
             ("smplx", "SMPL-X", "The SMPL-X add-on's body"),
             ("generic", "Match by name", "Propose a map from the bone names and hierarchy")]
TAKE_SUFFIXES = {"loop": "_loop", "mirror": "_mirror", "character": ""}


# ---------------------------------------------------------------------------------------------- rig and map
def rig_of(obj) -> rigmod.Rig:
    """The armature's rest bones as a :class:`Rig` (armature space, its own units), with the bones that a full
    Copy Transforms constraint makes follow another bone of the same armature."""
    bones = obj.data.bones
    count = len(bones)
    flat = np.empty(count * 16, dtype=np.float32)
    bones.foreach_get("matrix_local", flat)
    rest = np.swapaxes(flat.reshape(count, 4, 4), -1, -2).astype(np.float64)   # stored column by column
    tails = np.empty(count * 3, dtype=np.float32)
    bones.foreach_get("tail_local", tails)
    index = {b.name: i for i, b in enumerate(bones)}
    parents = [index[b.parent.name] if b.parent else -1 for b in bones]
    follows = {}
    for pose_bone in obj.pose.bones:
        for c in pose_bone.constraints:
            if c.type == "COPY_TRANSFORMS" and not c.mute and c.influence >= 1.0 and c.target == obj \
                    and c.subtarget in index and c.owner_space == "WORLD" and c.target_space == "WORLD" \
                    and getattr(c, "mix_mode", "REPLACE") == "REPLACE":
                follows[pose_bone.name] = c.subtarget
    return rigmod.Rig([b.name for b in bones], parents, rest, tails.reshape(count, 3).astype(np.float64), follows,
                      name=f"'{obj.name}'")


def _armature_poll(self, obj):
    return obj.type == "ARMATURE"


def _on_target(self, context):
    if self.target is not None:
        try:
            detect(self, self.target)
        except E3D2Error as err:
            self.detected = str(err)


def _on_rig(self, context):
    _on_target(self, context)


class E3D2BoneSlot(bpy.types.PropertyGroup):
    joint: StringProperty(name="Joint", description="SMPL joint")
    bone: StringProperty(name="Bone", description="The character's bone that carries this joint (empty: none)")
    preset_bone: StringProperty(options={"HIDDEN"})
    read_bone: StringProperty(options={"HIDDEN"})


class E3D2CharacterSettings(bpy.types.PropertyGroup):
    target: PointerProperty(name="Character", type=bpy.types.Object, poll=_armature_poll, update=_on_target,
                            description="Your character's armature: dances are keyed onto it as new actions")
    rig: EnumProperty(name="Rig", items=RIG_ITEMS, default="auto", update=_on_rig,
                      description="Which bone-map preset to use")
    slots: CollectionProperty(type=E3D2BoneSlot)
    active_slot: IntProperty(default=0)
    detected: StringProperty(name="Detected", default="")
    map_rig: StringProperty(default="")
    properties_json: StringProperty(default="{}", options={"HIDDEN"})
    dance_on_character: BoolProperty(name="Generate onto the character", default=True,
                                     description="Generate keys the character directly (no SMPL armature needed)")
    foot_lock: BoolProperty(name="Foot lock", default=True,
                            description="Pin each foot while it stands (two-bone leg IK), never below the floor")
    nla_strips: BoolProperty(name="Takes as NLA strips", default=False,
                             description="Also put each new take on its own NLA track, to lay takes out and "
                                         "blend them in the NLA editor (the take stays the active action)")
    source: PointerProperty(name="Take from", type=bpy.types.Object, poll=lambda self, o: o.type == "ARMATURE"
                            and not armature.missing_smpl_bones(o),
                            description="The SMPL armature whose current action Apply to Character bakes")
    motion_path: StringProperty(name="Motion file", subtype="FILE_PATH",
                                description="Or bake this saved Motion (.npz from e3d2 generate)")
    loop_beats: FloatProperty(name="Blend beats", default=2.0, min=0.25, max=16.0,
                              description="Make Loop: how many beats the end takes to blend into the start")


def bone_map_of(settings) -> bonemap.BoneMap:
    """The bone map in the panel's list (what the user sees and edited)."""
    bones, read = {}, {}
    for slot in settings.slots:
        bones[slot.joint] = slot.bone or None
        # a joint still on its preset's bone reads back from the preset's read bone (Rigify: DEF-*)
        read[slot.joint] = (slot.read_bone or None) if slot.bone == slot.preset_bone else (slot.bone or None)
    try:
        properties = json.loads(settings.properties_json or "{}")
    except json.JSONDecodeError:
        properties = {}
    return bonemap.BoneMap(bones, settings.map_rig or "custom", read, properties)


def fill_slots(settings, bone_map: bonemap.BoneMap, rig_id: str) -> None:
    """Show ``bone_map`` in the panel's list."""
    settings.slots.clear()
    for joint in bonemap.joint_names():
        slot = settings.slots.add()
        slot.joint, slot.bone = joint, bone_map.bones[joint] or ""
        slot.preset_bone, slot.read_bone = slot.bone, bone_map.read[joint] or ""
    settings.map_rig = rig_id
    settings.properties_json = json.dumps(bone_map.properties)


def detect(settings, obj) -> names.Detection:
    """Fill the list for ``obj`` from the chosen preset (or detection); raises E3D2Error for a non-humanoid."""
    bone_names = [b.name for b in obj.data.bones]
    parents = [bone_names.index(b.parent.name) if b.parent else -1 for b in obj.data.bones]
    if settings.rig == "generic":
        bone_map = names.propose_map(bone_names, parents)
        found = names.Detection("generic", bone_map, tuple(bone_map.unmapped))
    else:
        found = names.detect_rig(bone_names, parents, settings.rig)
    fill_slots(settings, found.bone_map, found.rig)
    label = dict((k, n) for k, n, _ in RIG_ITEMS).get(found.rig, found.rig)
    missing = found.bone_map.missing_required()
    settings.detected = (f"{label}: {24 - len(found.unmapped)} of 24 joints mapped"
                         + (f"; not a humanoid: no bone for {', '.join(missing)}" if missing else ""))
    return found


def character_map(context, obj=None) -> bonemap.BoneMap:
    """The map for the character (the panel's), checked: a humanoid, every bone present; E3D2Error otherwise."""
    settings = context.scene.e3d2_character
    obj = obj or settings.target
    if obj is None or obj.type != "ARMATURE":
        raise E3D2Error("Pick your character's armature in Dance > Character")
    if not settings.slots or obj != settings.target:
        detect(settings, obj)
    bone_map = bone_map_of(settings)
    names.require_humanoid(bone_map, f"'{obj.name}'")
    lacking = sorted({b for b in list(bone_map.bones.values()) + list(bone_map.read.values())
                      if b and b not in obj.data.bones})
    if lacking:
        raise E3D2Error(f"'{obj.name}' has no bone {', '.join(repr(b) for b in lacking)}: fix the bone map")
    return bone_map


def is_character(context, obj) -> bool:
    """Whether ``obj`` is the character picked in the Character section."""
    return obj is not None and obj == context.scene.e3d2_character.target


def _unmapped_note(bone_map) -> str:
    missing = [j for j in bone_map.unmapped if j not in bone_map.notes]
    return f"; not mapped: {', '.join(missing)}" if missing else ""


# ---------------------------------------------------------------------------------------------- baking
def bake_onto(obj, bone_map, poses, trans, fps, first_frame: int, name: str, properties: dict, *,
              in_place=False, facing=0.0, foot_lock=False):
    """Retarget SMPL ``poses`` (T, 24, 3) / ``trans`` (T, 3) at the scene's ``fps`` onto ``obj``: a new action
    named ``name`` keyed from ``first_frame``; returns it (its custom properties: ``properties`` plus the map)."""
    fit = rigmod.fit_rig(rig_of(obj), bone_map)
    channels = transfer.retarget_motion(poses, trans, fps, fit, in_place=in_place, facing=facing, foot_lock=foot_lock)
    frames = keyframes.key_frames(first_frame, len(poses))
    props = dict(properties)
    props.update({"e3d2_character": obj.name, "e3d2_rig": bone_map.rig,
                  "e3d2_bone_map": json.dumps(bone_map.to_dict()), "e3d2_leg_scale": float(fit.scale),
                  "e3d2_unmapped": ", ".join(channels.unmapped), "e3d2_foot_lock": bool(foot_lock),
                  "e3d2_frame_start": int(frames[0]), "e3d2_frame_end": int(frames[-1])})
    return write_character_action(obj, name, channels, frames, props)


def write_character_action(obj, name: str, channels: transfer.Channels, frames, properties: dict):
    """A new action on ``obj`` with ``channels`` keyed in bulk; each bone in its own rotation mode (the bones'
    settings are left as they are); the previous action is kept (fake user) and unassigned."""
    anim = obj.animation_data
    previous = anim.action if anim is not None else None
    if previous is not None and not previous.use_fake_user and previous.users <= 1:
        previous.use_fake_user = True              # unassigning it must not lose the user's animation
    action, curves = compat.new_action_for(obj, name)
    frames = np.asarray(frames, dtype=np.float32)
    matrices = rotations.quaternion_to_matrix(channels.quats)
    for k, bone in enumerate(channels.bones):
        mode = obj.pose.bones[bone].rotation_mode
        if mode == "QUATERNION":
            path, values = "rotation_quaternion", channels.quats[:, k]
        elif mode == "AXIS_ANGLE":
            path, values = "rotation_axis_angle", _axis_angle_channels(channels.quats[:, k])
        else:
            path, values = "rotation_euler", kin.continuous_euler(kin.matrix_to_euler(matrices[:, k], mode))
        for c in range(values.shape[1]):
            keyframes.write_curve(curves.new(f'pose.bones["{bone}"].{path}', index=c, group_name=bone), frames,
                                  values[:, c])
    root = channels.root_bone
    for c in range(3):
        keyframes.write_curve(curves.new(f'pose.bones["{root}"].location', index=c, group_name=root), frames,
                              channels.location[:, c])
    ends = np.array([frames[0], frames[-1]], dtype=np.float32)
    # Bones the keys do not turn hold their rest pose in this action (two constant keys), whatever pose an
    # earlier action left them in: the keyed bones' own location and scale, and every bone above them.
    keyed = set(channels.bones)
    above = set()
    for bone in keyed:
        parent = obj.data.bones[bone].parent
        while parent is not None and parent.name not in above:
            if parent.name not in keyed:
                above.add(parent.name)
            parent = parent.parent
    for bone in sorted(keyed | above):
        paths = [("scale", (1.0, 1.0, 1.0))] + ([] if bone == root else [("location", (0.0, 0.0, 0.0))])
        if bone in above:
            mode = obj.pose.bones[bone].rotation_mode
            paths.append({"QUATERNION": ("rotation_quaternion", (1.0, 0.0, 0.0, 0.0)),
                          "AXIS_ANGLE": ("rotation_axis_angle", (0.0, 0.0, 1.0, 0.0))}.get(
                mode, ("rotation_euler", (0.0, 0.0, 0.0))))
        for path, values in paths:
            for c, value in enumerate(values):
                keyframes.write_curve(curves.new(f'pose.bones["{bone}"].{path}', index=c, group_name=bone), ends,
                                      np.full(2, value, dtype=np.float32))
    for bone, values in channels.properties.items():
        pose_bone = obj.pose.bones.get(bone)
        for prop, value in values.items():
            if pose_bone is not None and prop in pose_bone.keys():
                keyframes.write_curve(curves.new(f'pose.bones["{bone}"]["{prop}"]', group_name=bone), ends,
                                      np.full(2, float(value)))
    for key, value in properties.items():
        action[key] = value
    action.use_fake_user = True
    return action


def key_takes(context, obj, motions, song, seed: int, action_names, extra: dict):
    """Generate's takes (``load_motion_arrays`` dicts at the scene's rate) baked onto the character, one new
    action each, with the same provenance properties as an SMPL armature's takes."""
    settings = context.scene.e3d2_character
    bone_map = character_map(context, obj)
    actions = []
    for take, motion in enumerate(motions):
        props = {"e3d2_song": song.name, "e3d2_audio": song.path, "e3d2_seed": int(seed), "e3d2_take": int(take),
                 "e3d2_fps": float(motion["fps"]), "e3d2_audio_offset": float(song.timing.audio_offset),
                 "e3d2_strip": song.strip_name, "e3d2_meta": json.dumps(motion.get("meta", {}))[:4000], **extra}
        actions.append(bake_onto(obj, bone_map, motion["poses"], motion["trans"], motion["fps"],
                                 song.timing.first_frame, action_names[take], props, foot_lock=settings.foot_lock))
    return actions


def _axis_angle_channels(quats: np.ndarray) -> np.ndarray:
    """(T, 4) quaternions -> (T, 4) Blender axis-angle (angle, x, y, z)."""
    sin_half = np.linalg.norm(quats[:, 1:], axis=-1)
    angle = 2.0 * np.arctan2(sin_half, quats[:, 0])
    axis = np.where(sin_half[:, None] > 1e-9, quats[:, 1:] / np.maximum(sin_half[:, None], 1e-12), [0.0, 1.0, 0.0])
    return np.concatenate([angle[:, None], axis], axis=-1)


# ---------------------------------------------------------------------------------------------- reading back
def read_character_motion(context, obj, action, frames, bone_map=None):
    """SMPL (poses (T, 24, 3), trans (T, 3)) of ``obj`` playing ``action`` at ``frames``, read through the map's
    read bones (the action's own map when it has one). The scene's frame and the object's action are restored."""
    if bone_map is None:
        stored = action.get("e3d2_bone_map") if action is not None else None
        bone_map = _stored_map(stored) if stored else character_map(context, obj)
    read_map = bonemap.BoneMap(bone_map.read, bone_map.rig)
    fit = rigmod.fit_rig(rig_of(obj), read_map)
    scene = context.scene
    saved_frame, saved_action = scene.frame_current, obj.animation_data.action if obj.animation_data else None
    if action is not None and action != saved_action:
        compat.assign_action(obj, action)
    count = len(obj.pose.bones)
    flat = np.empty(count * 16, dtype=np.float32)
    index = [obj.pose.bones.find(bone_map.read[j]) if bone_map.read[j] else 0 for j in bonemap.joint_names()]
    matrices = np.empty((len(frames), 24, 4, 4))
    try:
        for t, frame in enumerate(frames):
            scene.frame_set(int(frame))
            obj.pose.bones.foreach_get("matrix", flat)
            matrices[t] = np.swapaxes(flat.reshape(count, 4, 4), -1, -2)[index]
    finally:
        if action is not None and action != saved_action:
            compat.assign_action(obj, saved_action)
        scene.frame_set(saved_frame)
    return transfer.motion_from_pose(matrices, fit)


def _stored_map(text: str) -> bonemap.BoneMap:
    data = json.loads(text)
    return bonemap.BoneMap(data["bones"], data.get("rig", "custom"), data.get("read"), data.get("properties", {}))


def smpl_take(context, obj, action=None):
    """(poses, trans, fps, first frame) of an SMPL armature's take (its current action by default)."""
    action = action or (obj.animation_data.action if obj.animation_data else None)
    if action is None:
        raise E3D2Error(f"'{obj.name}' has no take (action) to use")
    names_ = armature.load_skeleton_data()["names"]
    first, last = _frame_range(action)
    frames = np.arange(first, last + 1, dtype=np.float64)
    saved = obj.animation_data.action
    compat.assign_action(obj, action)
    try:
        quats, location = keyframes.read_dance_channels(obj, names_, frames)
    finally:
        compat.assign_action(obj, saved)
    rest_rotations, rest_heads = armature.rest_pose(obj, names_)
    frame = keyframes.armature_frame(rest_heads, names_, armature.reference_heads())
    poses, trans = keyframes.bone_channels_to_motion(quats, location, rest_rotations, rest_heads[0], frame)
    scene = context.scene
    return poses, trans, scene.render.fps / scene.render.fps_base, first


def _frame_range(action) -> tuple[int, int]:
    if "e3d2_frame_start" in action and "e3d2_frame_end" in action:
        return int(action["e3d2_frame_start"]), int(action["e3d2_frame_end"])
    start, end = action.frame_range
    return int(math.floor(start)), int(math.ceil(end))


def take_of(context, obj):
    """(poses, trans, fps, first frame, action) of the current take of ``obj``: an SMPL armature or the character."""
    action = obj.animation_data.action if obj.animation_data else None
    if action is None:
        raise E3D2Error(f"'{obj.name}' has no take (action)")
    if not armature.missing_smpl_bones(obj):
        poses, trans, fps, first = smpl_take(context, obj, action)
        return poses, trans, fps, first, action
    first, last = _frame_range(action)
    frames = np.arange(first, last + 1)
    poses, trans = read_character_motion(context, obj, action, frames)
    scene = context.scene
    return poses, trans, scene.render.fps / scene.render.fps_base, first, action


def key_smpl_take(obj, poses, trans, fps, first_frame, name, properties):
    """A new action on an SMPL armature from SMPL arrays (the add-on's own writer)."""
    names_ = armature.load_skeleton_data()["names"]
    rest_rotations, rest_heads = armature.rest_pose(obj, names_)
    frame = keyframes.armature_frame(rest_heads, names_, armature.reference_heads())
    quats, location = keyframes.motion_to_bone_channels(poses, trans, rest_rotations, rest_heads[0], frame)
    frames = keyframes.key_frames(first_frame, len(quats))
    props = dict(properties, e3d2_frame_start=int(frames[0]), e3d2_frame_end=int(frames[-1]))
    return keyframes.write_dance_action(obj, name, names_, frames, quats, location, props)


def lock_smpl_feet(motion: dict) -> dict:
    """The motion (``load_motion_arrays``' dict) with its feet locked."""
    poses, trans, _ = footlock.lock_feet(motion["poses"], motion["trans"], motion["fps"])
    return dict(motion, poses=poses, trans=trans)


# ---------------------------------------------------------------------------------------------- operators
def _unique_name(base: str) -> str:
    taken = set(bpy.data.actions.keys())
    base = base[: keyframes.MAX_ID_NAME_BYTES - 4]
    if base not in taken:
        return base
    return next(f"{base}.{n:03d}" for n in range(1, 1000) if f"{base}.{n:03d}" not in taken)


class E3D2_OT_detect_bone_map(bpy.types.Operator):
    """Fill the bone map from the chosen preset, or detect the rig (Automatic)"""

    bl_idname = "e3d2.detect_bone_map"
    bl_label = "Detect Bones"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = context.scene.e3d2_character
        if settings.target is None:
            self.report({"ERROR"}, "Detect Bones: pick your character's armature first")
            return {"CANCELLED"}
        found = detect(settings, settings.target)
        missing = found.bone_map.missing_required()
        if missing:
            self.report({"ERROR"}, f"'{settings.target.name}' is not a humanoid rig e3d2 can dance: no bone for "
                                   f"{', '.join(missing)} (map them by hand, or load a bone-map file)")
            return {"CANCELLED"}
        self.report({"INFO"}, settings.detected + _unmapped_note(found.bone_map))
        return {"FINISHED"}


class E3D2_OT_save_bone_map(bpy.types.Operator):
    """Save the bone map to a JSON file"""

    bl_idname = "e3d2.save_bone_map"
    bl_label = "Save Map"

    filepath: StringProperty(subtype="FILE_PATH", default="bone_map.json")
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        settings = context.scene.e3d2_character
        if not settings.slots:
            self.report({"ERROR"}, "Save Map: there is no bone map yet (pick a character)")
            return {"CANCELLED"}
        path = bpy.path.abspath(self.filepath)
        if not path.lower().endswith(".json"):
            path += ".json"
        try:
            bonemap.save_bone_map(bone_map_of(settings), path)
        except (OSError, E3D2Error) as err:
            self.report({"ERROR"}, f"Save Map: {err}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Saved the bone map to {path}")
        return {"FINISHED"}


class E3D2_OT_load_bone_map(bpy.types.Operator):
    """Load a bone map (JSON) for the character; a file naming bones it lacks is refused"""

    bl_idname = "e3d2.load_bone_map"
    bl_label = "Load Map"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        settings = context.scene.e3d2_character
        obj = settings.target
        if obj is None:
            self.report({"ERROR"}, "Load Map: pick your character's armature first")
            return {"CANCELLED"}
        try:
            loaded = bonemap.load_bone_map(bpy.path.abspath(self.filepath), [b.name for b in obj.data.bones],
                                           armature=f"'{obj.name}'")
        except E3D2Error as err:
            self.report({"ERROR"}, f"Load Map: {err}")
            return {"CANCELLED"}
        fill_slots(settings, loaded, loaded.rig)
        settings.detected = f"{os.path.basename(self.filepath)}: {len(loaded.mapped)} of 24 joints mapped"
        self.report({"INFO"}, settings.detected + _unmapped_note(loaded))
        return {"FINISHED"}


class E3D2_OT_apply_to_character(bpy.types.Operator):
    """Bake a take (an SMPL armature's current action, or a saved Motion file) onto the character as a new action"""

    bl_idname = "e3d2.apply_to_character"
    bl_label = "Apply to Character"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        if context.scene.e3d2_character.target is None:
            cls.poll_message_set("Pick your character's armature first")
            return False
        return True

    def execute(self, context):
        settings = context.scene.e3d2_character
        obj = settings.target
        try:
            bone_map = character_map(context, obj)
            if settings.motion_path:
                path = bpy.path.abspath(settings.motion_path)
                if not os.path.isfile(path):
                    raise E3D2Error(f"The motion file is missing: {path}")
                motion = _motion_at_scene_rate(context, path)
                poses, trans, fps = motion["poses"], motion["trans"], motion["fps"]
                first, source_name = context.scene.frame_start, Path(path).stem
            else:
                source = settings.source or _an_smpl_armature(context)
                poses, trans, fps, first = smpl_take(context, source)[:4]
                source_name = source.animation_data.action.name
            name = _unique_name(f"{source_name}_{obj.name}")
            action = bake_onto(obj, bone_map, poses, trans, fps, first, name,
                               {"e3d2_source": source_name, "e3d2_fps": float(fps)},
                               in_place=context.scene.e3d2.in_place, facing=context.scene.e3d2.facing,
                               foot_lock=settings.foot_lock)
        except E3D2Error as err:
            self.report({"ERROR"}, f"Apply to Character: {err}")
            return {"CANCELLED"}
        compat.assign_action(obj, action)
        if settings.nla_strips:
            compat.push_to_nla(obj, action, action["e3d2_frame_start"])
        self.report({"INFO"}, f"'{action.name}' on '{obj.name}' (frames {action['e3d2_frame_start']}-"
                              f"{action['e3d2_frame_end']}){_unmapped_note(bone_map)}")
        return {"FINISHED"}


def _an_smpl_armature(context):
    active = context.active_object
    if active is not None and active.type == "ARMATURE" and not armature.missing_smpl_bones(active):
        return active
    for obj in context.scene.objects:
        if obj.type == "ARMATURE" and not armature.missing_smpl_bones(obj) and obj.animation_data \
                and obj.animation_data.action:
            return obj
    raise E3D2Error("no take to apply: choose an SMPL armature with a dance (Take from) or a Motion file")


def _motion_at_scene_rate(context, path) -> dict:
    """A saved Motion resampled to the scene's frame rate (``load_motion_arrays``' dict)."""
    from .motion_files import load_motion_arrays

    scene = context.scene
    return load_motion_arrays(path, fps=scene.render.fps / scene.render.fps_base)


class _TakeTool:
    """Reads the active armature's take (SMPL or the character) and keys the result as a new action."""

    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        if obj is None or obj.type != "ARMATURE" or not obj.animation_data or not obj.animation_data.action:
            cls.poll_message_set("Select an SMPL armature or your character with a take (action)")
            return False
        if armature.missing_smpl_bones(obj) and not is_character(context, obj):
            cls.poll_message_set("Select an SMPL armature or the character picked in Dance > Character")
            return False
        return True

    def execute(self, context):
        obj = context.active_object
        try:
            poses, trans, fps, first, action = take_of(context, obj)
            poses, trans, extra = self.transform(context, poses, trans, fps, action)
            name = _unique_name(action.name + self.suffix)
            props = {k: action[k] for k in action.keys() if k.startswith("e3d2_") and not k.startswith("e3d2_score")
                     and isinstance(action[k], (int, float, str))}
            props.update(extra, e3d2_made_from=action.name)
            if armature.missing_smpl_bones(obj):
                bone_map = _stored_map(action["e3d2_bone_map"]) if "e3d2_bone_map" in action \
                    else character_map(context, obj)
                new = bake_onto(obj, bone_map, poses, trans, fps, first, name, props)
            else:
                new = key_smpl_take(obj, poses, trans, fps, first, name, props)
        except E3D2Error as err:
            self.report({"ERROR"}, f"{self.bl_label}: {err}")
            return {"CANCELLED"}
        compat.assign_action(obj, new)
        self.report({"INFO"}, f"{self.bl_label}: '{new.name}' ({new['e3d2_frame_end'] - new['e3d2_frame_start'] + 1}"
                              f" frames)")
        return {"FINISHED"}


class E3D2_OT_make_loop(_TakeTool, bpy.types.Operator):
    """Make the take loop: its end blends into its start over a few beats (a new action, whole beats long)"""

    bl_idname = "e3d2.make_loop"
    bl_label = "Make Loop"
    suffix = "_loop"

    def transform(self, context, poses, trans, fps, action):
        settings = context.scene.e3d2
        tempo = None
        try:
            meta = json.loads(action.get("e3d2_meta", "{}"))    # the tempo danced to, else the features' tempo
            tempo = float(meta.get("dance_tempo") or meta.get("tempo") or 0) or None
        except (ValueError, TypeError, AttributeError):
            tempo = None
        if settings.use_bpm:
            tempo = settings.bpm
        bpm = tempo or 120.0
        blend = max(int(round(context.scene.e3d2_character.loop_beats * 60.0 * fps / bpm)), 1)
        length = loop.loop_length(len(poses), blend, fps, bpm)
        poses, trans = loop.make_loop(poses, trans, blend, length)
        return poses, trans, {"e3d2_loop_bpm": float(bpm), "e3d2_loop_blend_frames": int(blend)}


class E3D2_OT_mirror_take(_TakeTool, bpy.types.Operator):
    """Mirror the take left to right (a new action)"""

    bl_idname = "e3d2.mirror_take"
    bl_label = "Mirror"
    suffix = "_mirror"

    def transform(self, context, poses, trans, fps, action):
        poses, trans = loop.mirror(poses, trans)
        return poses, trans, {"e3d2_mirrored": True}


# ---------------------------------------------------------------------------------------------- UI
class E3D2_UL_bone_map(bpy.types.UIList):
    """One row per SMPL joint: the character's bone (red when none)."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        target = context.scene.e3d2_character.target
        row = layout.row(align=True)
        row.alert = not item.bone or (target is not None and item.bone not in target.data.bones)
        row.label(text=item.joint)
        if target is not None:
            row.prop_search(item, "bone", target.data, "bones", text="")
        else:
            row.prop(item, "bone", text="")


def draw_character(layout, context) -> None:
    """The Character section's own rows (below the SMPL armature's)."""
    settings = context.scene.e3d2_character
    layout.prop(settings, "target")
    if settings.target is None:
        return
    row = layout.row(align=True)
    row.prop(settings, "rig", text="")
    row.operator("e3d2.detect_bone_map", text="", icon="VIEWZOOM")
    if settings.detected:
        layout.label(text=settings.detected)
    unmapped = [s.joint for s in settings.slots if not s.bone]
    if unmapped:
        layout.label(text=f"Unmapped: {', '.join(unmapped[:6])}" + ("…" if len(unmapped) > 6 else ""), icon="ERROR")
    layout.template_list("E3D2_UL_bone_map", "", settings, "slots", settings, "active_slot", rows=6)
    row = layout.row(align=True)
    row.operator("e3d2.save_bone_map", icon="EXPORT")
    row.operator("e3d2.load_bone_map", icon="IMPORT")
    layout.prop(settings, "dance_on_character")
    layout.prop(settings, "nla_strips")
    layout.prop(settings, "source")
    layout.prop(settings, "motion_path")
    layout.operator("e3d2.apply_to_character", icon="ARMATURE_DATA")
    row = layout.row(align=True)
    row.prop(settings, "loop_beats")
    row.operator("e3d2.make_loop", icon="FILE_REFRESH")
    row.operator("e3d2.mirror_take", icon="MOD_MIRROR")


CLASSES = (E3D2BoneSlot, E3D2CharacterSettings, E3D2_OT_detect_bone_map, E3D2_OT_save_bone_map,
           E3D2_OT_load_bone_map, E3D2_OT_apply_to_character, E3D2_OT_make_loop, E3D2_OT_mirror_take,
           E3D2_UL_bone_map)


def register_properties():
    bpy.types.Scene.e3d2_character = PointerProperty(type=E3D2CharacterSettings)


def unregister_properties():
    del bpy.types.Scene.e3d2_character
