"""`e3d2 import`: any supported motion file -> a Motion .npz (Y up, metres, floor at y = 0)."""
from __future__ import annotations

HELP = "import a motion (AIST++ .pkl, BVH, joint positions .csv/.npy, Bailando/EDGE output) as a Motion .npz"

DESCRIPTION = """\
Convert a motion file into e3d2's Motion format (.npz: SMPL rotations, root translation, fps).

Formats, guessed from the extension unless --format is given:
  .npz          a Motion (re-saved; --up z rotates it)
  .pkl          AIST++ motion (smpl_poses, smpl_trans, smpl_scaling), 60 fps, Y up
  .bvh          BVH mocap (CMU joint names, or SMPL names), retargeted onto the SMPL skeleton
  .csv / .npy   joint positions, (T, 72) or (T, 24, 3), metres, SMPL joint order; needs --fps
  --format bailando   Bailando output: pickled {'pred_position': (T, 72)} .npy, 60 fps, Y up
  --format edge       EDGE output .pkl (smpl_poses/smpl_trans or full_pose), 30 fps, Z up

Bailando and EDGE outputs are pickle files, and unpickling a file can run code. They are read ONLY when you
name their format with --format, and every pickle (AIST++ too) goes through a restricted reader that accepts
numpy arrays and plain containers and refuses anything else.

Joint positions become SMPL rotations by inverse kinematics; every import except .npz puts the feet's floor
contact at y = 0 (see docs/importers.md).
"""


def add_arguments(parser) -> None:
    parser.add_argument("source", metavar="SRC", help="the motion file to import")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.npz", help="Motion file to write")
    parser.add_argument("--fps", type=float, default=None,
                        help="the source's frame rate (required for .csv/.npy joint positions; overrides the "
                             "file's or the format's own)")
    parser.add_argument("--up", choices=("y", "z"), default=None,
                        help="the source's up axis (default: the format's own; EDGE: z, others: y). z converts "
                             "by the rotation (x, y, z) -> (x, z, -y), never by swapping axes")
    parser.add_argument("--format", dest="fmt", default=None,
                        choices=("motion", "aistpp", "bvh", "joints", "bailando", "edge"),
                        help="the source format (default: from the extension). bailando and edge files are "
                             "pickles: they are read only when named here, through a data-only reader")
    parser.add_argument("--smpl-model", default=None, metavar="PATH",
                        help="your SMPL model file (.pkl/.npz): retarget onto its exact skeleton (stored in "
                             "the Motion's meta)")
    parser.add_argument("--foot-lock", action="store_true",
                        help="pin each foot while it stands on the floor (two-bone leg IK); on a .npz Motion this "
                             "cleans an existing dance")


def run(args) -> int:
    from pathlib import Path

    from e3d2_core.errors import E3D2Error
    from e3d2_core.io import load_motion_file
    from e3d2_core.skeleton import skeleton_from_smpl_model

    output = Path(args.output)
    if output.suffix.lower() != ".npz":
        raise E3D2Error("the output must be a .npz Motion file", path=output)
    skeleton = skeleton_from_smpl_model(args.smpl_model) if args.smpl_model else None
    motion = load_motion_file(args.source, fmt=args.fmt, fps=args.fps, up=args.up, skeleton=skeleton)
    note = ""
    if args.foot_lock:
        from e3d2_core.retarget.footlock import lock_motion_feet
        motion = lock_motion_feet(motion)
        lock = motion.meta["foot_lock"]
        note = (f"; foot lock: sliding in contact {lock['slide_before']:.3f} -> {lock['slide_after']:.3f} m/s")
    motion.save(output)
    print(f"imported {motion.meta['source']} ({motion.meta['format']}): {motion.num_frames} frames at "
          f"{motion.fps:g} fps, {motion.duration:.2f} s -> {output}{note}")
    return 0
