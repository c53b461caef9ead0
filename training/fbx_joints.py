"""Read an FBX mocap clip with Blender's own importer and write its bones' world tracks (for the data recipe).

    python training/fbx_joints.py 85_12.fbx -o 85_12.joints.npz      (needs the bpy module)

The recipe runs this in a child process (bpy and torch stay in separate processes) and maps the tracks onto
SMPL with :func:`e3d2_core.io.retarget.smpl_targets`. Written: ``names`` (B,), ``heads`` and ``tails`` (F, B, 3)
in metres, Y up (Blender's Z up turned as ``(x, y, z) -> (x, z, -y)``), ``fps``, and ``first``/``last``: the
keyed span in scene frames. Only the keyed span is sampled: before a clip's first key a player holds the first
pose, and those static seconds are not dance.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def keyed_span(action) -> tuple[int, int]:
    """(first, last) frame over the F-Curves that hold more than one key (a single key is a constant)."""
    firsts, lasts = [], []
    for curve in _fcurves(action):
        points = curve.keyframe_points
        if len(points) > 1:
            firsts.append(points[0].co[0])
            lasts.append(points[-1].co[0])
    if not firsts:
        start, end = action.frame_range
        return int(round(start)), int(round(end))
    return int(np.floor(min(firsts))), int(np.ceil(max(lasts)))


def _fcurves(action):
    """Every F-Curve of ``action``: legacy actions (Blender 4.2) and layered ones (4.4+)."""
    if getattr(action, "layers", None):
        for layer in action.layers:
            for strip in layer.strips:
                for channelbag in getattr(strip, "channelbags", []):
                    yield from channelbag.fcurves
        return
    yield from action.fcurves


def read_fbx_tracks(path: Path) -> dict:
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=str(path))
    armatures = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    if len(armatures) != 1:
        raise SystemExit(f"fbx_joints: error: {path}: expected one armature, found {len(armatures)}")
    armature = armatures[0]
    action = armature.animation_data.action if armature.animation_data else None
    if action is None:
        raise SystemExit(f"fbx_joints: error: {path}: the armature has no animation")
    scene = bpy.context.scene
    first, last = keyed_span(action)
    names = [bone.name for bone in armature.pose.bones]
    heads = np.zeros((last - first + 1, len(names), 3))
    tails = np.zeros_like(heads)
    for i, frame in enumerate(range(first, last + 1)):
        scene.frame_set(frame)
        world = np.array(armature.matrix_world)
        for b, bone in enumerate(armature.pose.bones):
            heads[i, b] = (world @ np.append(np.array(bone.head), 1.0))[:3]
            tails[i, b] = (world @ np.append(np.array(bone.tail), 1.0))[:3]
    z_up_to_y_up = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    fps = scene.render.fps / scene.render.fps_base
    return {"names": np.array(names), "heads": heads @ z_up_to_y_up.T, "tails": tails @ z_up_to_y_up.T,
            "fps": float(fps), "first": first, "last": last}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fbx", type=Path)
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if not args.fbx.is_file():
        print(f"fbx_joints: error: {args.fbx}: no such file", file=sys.stderr)
        return 2
    tracks = read_fbx_tracks(args.fbx)
    tmp = args.out.with_name(args.out.name + ".tmp.npz")
    np.savez(tmp, **tracks)
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
