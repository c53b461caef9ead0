"""Key reduction on bake: keys kept and the error left, against the dense keys, on real dances (JSON).

    python bench/bench_key_reduction.py [--motion dance.npz ...] [--fps 30]

Dances: the CMU salsa clip of the test data (motion capture, through the BVH importer) and any ``--motion``
(e.g. ``out/demo_dance.npz`` from ``make demo``: the bundled model's dance). Each is resampled to the scene rate
``--fps`` and reduced by ``blender_addon.keyframes.reduce_keys`` at several tolerances. Reported per tolerance:
keys kept (of the dense count) and the largest errors at any frame: bone rotation (degrees) and root position
(cm), which the tolerances bound, and joint position (cm, forward kinematics), which collects the rotation
errors along each limb. The key choice does not depend on the armature's rest orientation (a rest rotation
conjugates every quaternion, which changes neither angles nor linear blends), so SMPL's own frames are used.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TOLERANCES = ((0.25, 0.25), (0.5, 0.5), (1.0, 1.0), (2.0, 2.0))


def _keyframes():
    """blender_addon/keyframes.py without the package (whose __init__ needs bpy)."""
    spec = importlib.util.spec_from_file_location("_bench_keyframes", ROOT / "blender_addon" / "keyframes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def measure(name: str, motion, kf, fps: float) -> list[dict]:
    from e3d2_core import rotations
    from e3d2_core.skeleton import forward_kinematics

    motion = motion.resample(fps)
    quats = rotations.continuous_quaternions(rotations.axis_angle_to_quaternion(motion.poses))
    location = motion.trans.astype(np.float64)
    dense_joints = forward_kinematics(motion.poses.astype(np.float64), location)
    frames = np.arange(motion.num_frames, dtype=np.float64)
    rows = []
    for degrees, cm in TOLERANCES:
        started = time.perf_counter()
        reduced = kf.reduce_keys(quats, location, degrees, cm)
        seconds = time.perf_counter() - started
        approx = np.stack([kf.interpolate_keys(frames, keys, quats[:, b])
                           for b, keys in enumerate(reduced.bone_keys)], axis=1)
        approx /= np.linalg.norm(approx, axis=-1, keepdims=True)
        root = kf.interpolate_keys(frames, reduced.location_keys, location)
        joints = forward_kinematics(rotations.quaternion_to_axis_angle(approx), root)
        dense = motion.num_frames * (4 * quats.shape[1] + 3)
        rows.append({"dance": name, "frames": motion.num_frames, "fps": fps, "tolerance_deg": degrees,
                     "tolerance_cm": cm, "keys": reduced.count, "keys_dense": dense,
                     "kept_percent": round(100 * reduced.count / dense, 1),
                     "max_rotation_error_deg": round(reduced.max_degrees, 4),
                     "max_root_error_cm": round(reduced.max_cm, 4),
                     "max_joint_error_cm": round(float(100 * np.linalg.norm(joints - dense_joints, axis=-1).max()), 3),
                     "seconds": round(seconds, 3)})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--motion", action="append", default=[], help="a Motion .npz to measure too")
    parser.add_argument("--fps", type=float, default=30.0, help="scene frame rate the keys are baked at")
    args = parser.parse_args(argv)

    from e3d2_core.io import load_motion_file
    from e3d2_core.motion import Motion

    kf = _keyframes()
    dances = [("cmu_salsa_60_01_clip.bvh", load_motion_file(ROOT / "tests" / "data" / "cmu_salsa_60_01_clip.bvh"))]
    dances += [(Path(path).name, Motion.load(path)) for path in args.motion]
    for name, motion in dances:
        for row in measure(name, motion, kf, args.fps):
            print(json.dumps({"bench": "key_reduction", **row}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
