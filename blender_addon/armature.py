"""The SMPL armature: 24 bones named as smplx names the joints, in metres, Y-up inside, Z-up by its transform.

The pure part (layout, capsule body) is numpy; ``create_armature`` and friends are the bpy shell. The skeleton
is the core's bundled one (:mod:`e3d2_core.skeleton`, torch-free: Blender's Python may lack torch) or a body that
the backend computed from a licensed SMPL model file (``smplx``).
"""
from __future__ import annotations

import json
import math

import numpy as np

from e3d2_core.skeleton import default_skeleton, offsets_from_joints, rest_positions

# The child a bone points at when a joint has several (pelvis -> spine1, spine3 -> neck).
MAIN_CHILD = {"pelvis": "spine1", "spine3": "neck"}
# Capsule radii (m) of the body segment ending at each joint (segment parent -> joint).
SEGMENT_RADIUS = {
    "left_hip": 0.07, "right_hip": 0.07, "spine1": 0.11, "left_knee": 0.065, "right_knee": 0.065,
    "spine2": 0.12, "left_ankle": 0.05, "right_ankle": 0.05, "spine3": 0.13, "left_foot": 0.04,
    "right_foot": 0.04, "neck": 0.06, "left_collar": 0.05, "right_collar": 0.05, "head": 0.05,
    "left_shoulder": 0.05, "right_shoulder": 0.05, "left_elbow": 0.045, "right_elbow": 0.045,
    "left_wrist": 0.04, "right_wrist": 0.04, "left_hand": 0.035, "right_hand": 0.035,
}
HEAD_RADIUS = 0.1


# ---------------------------------------------------------------------------------------------- data
def load_skeleton_data() -> dict:
    """The bundled skeleton: {"names": [24], "parents": [24] (-1 root), "offsets": (24, 3) m, Y up}."""
    bundled = default_skeleton()
    return {"names": list(bundled.names), "parents": list(bundled.parents), "offsets": bundled.offsets.copy()}


def reference_heads() -> np.ndarray:
    """(24, 3) the bundled SMPL rest pose (Y up): the reference for recognising an armature's orientation."""
    return default_skeleton().rest_joints()


def skeleton_from_joints(joints: np.ndarray, names, parents) -> dict:
    """Skeleton data from (24, 3) rest joint positions (e.g. an SMPL body's), pelvis offset set to 0."""
    return {"names": list(names), "parents": list(parents), "offsets": offsets_from_joints(joints, parents)}


def bone_tails(heads: np.ndarray, names, parents, min_length: float = 0.03) -> np.ndarray:
    """(24, 3) tail of each bone: at its (main) child; leaves continue their parent's direction.

    The head bone points up (+Y), the feet forward (+Z): readable in the viewport and exported to FBX.
    """
    children = {j: [c for c, p in enumerate(parents) if p == j] for j in range(len(names))}
    index = {n: i for i, n in enumerate(names)}
    tails = np.zeros_like(heads)
    for j, name in enumerate(names):
        kids = children[j]
        if name in MAIN_CHILD:
            tails[j] = heads[index[MAIN_CHILD[name]]]
        elif len(kids) == 1:
            tails[j] = heads[kids[0]]
        elif name == "head":
            tails[j] = heads[j] + [0.0, 0.2, 0.0]
        elif name.endswith("_foot"):
            tails[j] = heads[j] + [0.0, 0.0, 0.08]
        else:  # hands: keep going the way the forearm goes
            direction = heads[j] - heads[parents[j]]
            tails[j] = heads[j] + 0.6 * direction
        if np.linalg.norm(tails[j] - heads[j]) < min_length:
            tails[j] = heads[j] + [0.0, min_length, 0.0]
    return tails


# ---------------------------------------------------------------------------------------------- body
def capsule(p0, p1, radius: float, segments: int = 12, cap_rings: int = 4):
    """A closed capsule mesh around segment p0-p1: (V, 3) vertices and a list of quads/triangles."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    axis = p1 - p0
    length = float(np.linalg.norm(axis))
    z = axis / length if length > 1e-9 else np.array([0.0, 1.0, 0.0])
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(z, helper)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    # ring profile from p0's pole to p1's pole (poles themselves added separately)
    lat = np.linspace(0, math.pi / 2, cap_rings + 1)[1:]
    heights = np.concatenate([-radius * np.cos(lat), length + radius * np.cos(lat[::-1])])
    radii = np.concatenate([radius * np.sin(lat), radius * np.sin(lat[::-1])])
    angles = np.linspace(0, 2 * math.pi, segments, endpoint=False)
    ring = np.cos(angles)[:, None] * x + np.sin(angles)[:, None] * y               # (S, 3)
    verts = [p0 + heights[k] * z + radii[k] * ring for k in range(len(heights))]
    verts = np.concatenate(verts + [[p0 - radius * z], [p1 + radius * z]])
    n_rings, bottom, top = len(heights), len(heights) * segments, len(heights) * segments + 1
    faces = []
    for k in range(n_rings - 1):
        for s in range(segments):
            a, b = k * segments + s, k * segments + (s + 1) % segments
            faces.append((a, b, b + segments, a + segments))
    for s in range(segments):
        faces.append((bottom, (s + 1) % segments, s))
        last = (n_rings - 1) * segments
        faces.append((last + s, last + (s + 1) % segments, top))
    return verts, faces


def capsule_body(heads: np.ndarray, names, parents):
    """A simple body: one capsule per segment, rigidly bound to the bone that carries it.

    Returns vertices (V, 3), faces (list of tuples), and bone index (V,) each vertex is weighted to.
    """
    all_verts, all_faces, owner, base = [], [], [], 0
    pieces = [(heads[p], heads[j], SEGMENT_RADIUS[names[j]], p) for j, p in enumerate(parents) if p >= 0]
    head = names.index("head")
    pieces.append((heads[head], heads[head] + [0.0, 0.12, 0.02], HEAD_RADIUS, head))
    for p0, p1, radius, bone in pieces:
        verts, faces = capsule(p0, p1, radius)
        all_verts.append(verts)
        all_faces.extend(tuple(i + base for i in f) for f in faces)
        owner.append(np.full(len(verts), bone))
        base += len(verts)
    return np.concatenate(all_verts), all_faces, np.concatenate(owner)


# ---------------------------------------------------------------------------------------------- bpy
def missing_smpl_bones(obj) -> list[str]:
    """Names of the 24 SMPL joints that ``obj`` (an armature object) has no bone for."""
    names = load_skeleton_data()["names"]
    if obj is None or obj.type != "ARMATURE":
        return names
    return [n for n in names if n not in obj.data.bones]


def rest_pose(obj, names):
    """(24, 3, 3) rest rotations and (24, 3) rest heads of the named bones, in armature space."""
    bones = [obj.data.bones[n] for n in names]
    rotations = np.array([[list(row)[:3] for row in list(b.matrix_local)[:3]] for b in bones])
    heads = np.array([list(b.head_local) for b in bones])
    return rotations, heads


def create_armature(context, skeleton: dict | None = None, *, name: str = "SMPL", body: dict | None = None,
                    with_body: bool = True):
    """Add an SMPL armature (and its skinned body) to the active collection; returns the armature object.

    ``skeleton``: data as from :func:`load_skeleton_data` (bundled one when None). ``body``: an SMPL body from
    the backend ({"vertices" (V,3), "faces" (F,3), "weights" (V,24)}, Y up, metres) to skin instead of capsules.
    The object is rotated +90 deg about X: the armature's inside stays Y-up like the data, the world sees Z-up.
    """
    import bpy

    skeleton = skeleton or load_skeleton_data()
    names, parents = skeleton["names"], skeleton["parents"]
    heads = rest_positions(skeleton["offsets"], parents)
    tails = bone_tails(heads, names, parents)

    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    obj.rotation_mode = "XYZ"
    obj.rotation_euler = (math.pi / 2, 0.0, 0.0)
    obj["e3d2_skeleton"] = json.dumps({"names": names, "parents": parents,
                                       "offsets": np.asarray(skeleton["offsets"]).tolist()})
    context.collection.objects.link(obj)
    previous_mode = context.object.mode if context.object else "OBJECT"
    if previous_mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    edit_bones = []
    for j, bone_name in enumerate(names):
        bone = data.edit_bones.new(bone_name)
        bone.head, bone.tail, bone.roll = heads[j], tails[j], 0.0
        if parents[j] >= 0:
            bone.parent = edit_bones[parents[j]]
        edit_bones.append(bone)
    bpy.ops.object.mode_set(mode="OBJECT")
    for bone in obj.pose.bones:
        bone.rotation_mode = "QUATERNION"
    if with_body:
        _add_body(context, obj, heads, names, parents, body)
    for other in context.selected_objects:
        other.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj
    return obj


def _add_body(context, armature_obj, heads, names, parents, body):
    """A mesh child of the armature with one vertex group per bone and an Armature modifier."""
    import bpy

    if body is None:
        verts, faces, owner = capsule_body(heads, names, parents)
        weights = np.zeros((len(verts), len(names)))
        weights[np.arange(len(verts)), owner] = 1.0
        mesh_name = f"{armature_obj.name}_body"
    else:
        verts, faces, weights = body["vertices"], body["faces"].tolist(), body["weights"]
        mesh_name = f"{armature_obj.name}_smpl"
    mesh = bpy.data.meshes.new(mesh_name)
    mesh.from_pydata(np.asarray(verts).tolist(), [], [tuple(f) for f in faces])
    mesh.validate()
    for polygon in mesh.polygons:
        polygon.use_smooth = True
    obj = bpy.data.objects.new(mesh_name, mesh)
    context.collection.objects.link(obj)
    obj.parent = armature_obj  # same space as the armature's inside (Y-up), so the data needs no change
    for j, bone_name in enumerate(names):
        group = obj.vertex_groups.new(name=bone_name)
        column = weights[:, j]
        for weight in np.unique(column[column > 1e-4]):
            group.add(np.flatnonzero(column == weight).tolist(), float(weight), "REPLACE")
    modifier = obj.modifiers.new("Armature", "ARMATURE")
    modifier.object = armature_obj
    return obj
