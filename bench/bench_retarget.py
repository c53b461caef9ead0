"""Retargeting and baking a 3-minute, 60-fps dance onto a Rigify rig (generated from Rigify's human meta-rig in
the bpy module; generation is not timed). Prints JSON. Goal: retarget + bake <= 2 s.

The dance is the real CMU salsa clip (tests/data, 8 s at 60 fps) made into a loop and repeated to the length
asked for. Timed: reading the rig (``character.rig_of``), fitting the map, the world-space retargeting (with
and without foot lock) and writing the new action in bulk; each best of ``--repeat`` runs.
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


def long_dance(seconds: float, fps: float):
    """(poses, trans) of the salsa clip looped to ``seconds`` at ``fps`` (travel carried on across the seams)."""
    from e3d2_core.io import load_motion_file
    from e3d2_core.retarget import loop

    clip = load_motion_file(ROOT / "tests" / "data" / "cmu_salsa_60_01_clip.bvh", fps=60).resample(fps)
    blend = int(fps)
    poses, trans = loop.make_loop(clip.poses, clip.trans, blend)
    cycle = len(poses)
    repeats = int(np.ceil(seconds * fps / cycle))
    travel = trans[0] - clip.trans[cycle]
    travel[1] = 0.0
    all_poses = np.concatenate([poses] * repeats)[: int(seconds * fps)]
    all_trans = np.concatenate([trans - k * travel for k in range(repeats)])[: int(seconds * fps)]
    return all_poses, all_trans


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--fps", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    import bpy  # noqa: I001 (bpy first: it provides addon_utils)
    import addon_utils

    import blender_addon
    from blender_addon import character
    from e3d2_core.retarget import rig as rigmod
    from e3d2_core.retarget import transfer

    blender_addon.register()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("rigify", default_set=True, handle_error=None)
    bpy.ops.object.armature_human_metarig_add()
    bpy.ops.pose.rigify_generate()
    rig_obj = bpy.context.active_object
    scene = bpy.context.scene
    scene.render.fps = int(args.fps)
    scene.e3d2_character.target = rig_obj
    bone_map = character.character_map(bpy.context, rig_obj)
    poses, trans = long_dance(args.seconds, args.fps)
    frames = len(poses)

    def run(foot_lock: bool, name: str) -> dict:
        started = time.perf_counter()
        fit = rigmod.fit_rig(character.rig_of(rig_obj), bone_map)
        fitted = time.perf_counter()
        channels = transfer.retarget_motion(poses, trans, args.fps, fit, foot_lock=foot_lock)
        retargeted = time.perf_counter()
        character.write_character_action(rig_obj, name, channels, np.arange(1, frames + 1, dtype=np.float32), {})
        baked = time.perf_counter()
        return {"read_and_fit_s": fitted - started, "retarget_s": retargeted - fitted, "bake_s": baked - retargeted,
                "total_s": baked - started, "keyed_bones": len(channels.bones)}

    results = {}
    for foot_lock in (False, True):
        runs = [run(foot_lock, f"bench_{foot_lock}_{k}") for k in range(args.repeat)]
        results["foot_lock" if foot_lock else "plain"] = min(runs, key=lambda r: r["total_s"])
    action = rig_obj.animation_data.action
    curves = len(__import__("blender_addon.compat", fromlist=["action_fcurves"]).action_fcurves(rig_obj, action))
    report = {"benchmark": "retarget_rigify", "frames": frames, "fps": args.fps, "seconds": args.seconds,
              "rig_bones": len(rig_obj.data.bones), "fcurves": curves, "goal_s": 2.0,
              **{k: {kk: round(vv, 4) if isinstance(vv, float) else vv for kk, vv in v.items()}
                 for k, v in results.items()}}
    report["meets_goal"] = bool(max(r["total_s"] for r in results.values()) <= 2.0)
    print(json.dumps(report, indent=2))
    blender_addon.unregister()
    return 0


if __name__ == "__main__":
    sys.exit(main())
