"""Keyframing a 3-minute, 60-fps dance onto the 24 SMPL bones: bulk (keyframe_points.add + foreach_set, what the
add-on does) against per-frame ``keyframe_insert``, in the same run. Prints JSON. Goal: bulk <= 0.5 s.

Per-frame insertion is timed on a shorter span (``--insert-frames``) and extrapolated linearly: its cost per key
is constant (appending at the end of an F-curve).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--fps", type=float, default=60.0)
    parser.add_argument("--insert-frames", type=int, default=300)
    args = parser.parse_args(argv)

    import bpy

    import blender_addon
    from blender_addon import armature, keyframes

    blender_addon.register()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    frames_total = int(args.seconds * args.fps)
    rng = np.random.default_rng(0)
    t = np.arange(frames_total)[:, None, None] / args.fps
    poses = 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 2, (1, 24, 3)) * t + rng.uniform(0, 6, (1, 24, 3)))
    trans = np.stack([np.sin(t[:, 0, 0]), 0.9 + 0.0 * t[:, 0, 0], np.cos(t[:, 0, 0])], -1)

    bpy.ops.e3d2.create_armature(with_body=False)
    obj = bpy.context.active_object
    names = armature.load_skeleton_data()["names"]

    started = time.perf_counter()
    rest_rotations, rest_heads = armature.rest_pose(obj, names)
    frame = keyframes.armature_frame(rest_heads, names, armature.reference_heads())
    quats, location = keyframes.motion_to_bone_channels(poses, trans, rest_rotations, rest_heads[0], frame)
    convert = time.perf_counter() - started
    keyframes.write_dance_action(obj, "bench_bulk", names, keyframes.key_frames(1, frames_total), quats, location)
    bulk = time.perf_counter() - started

    obj.animation_data.action = bpy.data.actions.new("bench_insert")
    n = min(args.insert_frames, frames_total)
    bones = [obj.pose.bones[name] for name in names]
    started = time.perf_counter()
    for f in range(n):
        for b, bone in enumerate(bones):
            bone.rotation_quaternion = quats[f, b]
            bone.keyframe_insert("rotation_quaternion", frame=f + 1)
        bones[0].location = location[f]
        bones[0].keyframe_insert("location", frame=f + 1)
    insert_span = time.perf_counter() - started
    insert_total = insert_span * frames_total / n
    print(json.dumps({
        "bench": "keyframes", "blender": bpy.app.version_string, "frames": frames_total, "bones": len(names),
        "keys": frames_total * (len(names) * 4 + 3), "bulk_seconds": round(bulk, 4),
        "bulk_convert_seconds": round(convert, 4), "insert_frames_timed": n, "insert_seconds_timed": round(insert_span, 4),
        "insert_seconds_extrapolated": round(insert_total, 2), "speedup": round(insert_total / bulk, 1),
        "goal_seconds": 0.5, "goal_met": bulk <= 0.5,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
