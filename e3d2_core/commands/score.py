"""`e3d2 score MOTION --audio A`: R_θ's total and per-step reward for any dance."""
from __future__ import annotations

HELP = "score a dance with the learned reward model R_θ (total, per minute, per-step curve)"
DESCRIPTION = """Score a dance with R_θ, the reward model E3D2 learns from ranked demonstrations.

MOTION is a Motion .npz (ours, imported, or read back from Blender) or joint positions .npy ((T,72) or (T,24,3),
metres, Y up; give --fps). It is resampled to the reward model's frame rate. When motion and music differ in
length, their overlap is scored and a note says so (stderr; "note" in --json).
--json prints {"total", "per_minute", "times", "values", "seconds"}: times are step centres in seconds, one value
per code step."""


def add_arguments(parser):
    parser.add_argument("motion", help="Motion .npz, or joint positions .npy with --fps")
    parser.add_argument("--audio", required=True, help="the music the dance goes with")
    parser.add_argument("--checkpoint", default=None, help="bundle or reward file (default: the bundled model)")
    parser.add_argument("--fps", type=float, default=None, help="frame rate of a .npy joint array")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    import json
    import sys
    from pathlib import Path

    import numpy as np

    from e3d2_core import api
    from e3d2_core.errors import E3D2Error

    path = Path(args.motion)
    motion = path
    if path.suffix == ".npy":
        if not path.is_file():
            raise E3D2Error("no such motion file", path=path)
        try:
            motion = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise E3D2Error(f"unreadable joint array ({err})", path=path) from None
    elif path.suffix != ".npz":
        raise E3D2Error("expected a Motion .npz or a joint-position .npy", path=path)
    result = api.score(motion, args.audio, checkpoint=args.checkpoint, motion_fps=args.fps)
    if result.note:
        print(f"e3d2 score: note: {result.note}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"total {result.total:.3f}  per minute {result.per_minute:.3f}  over {result.seconds:.2f} s "
              f"({len(result.values)} steps)")
    return 0
