"""`e3d2 edit`: regenerate a range of a dance (or continue it past its end); writes Motion .npz file(s)."""
from __future__ import annotations

from e3d2_core.dance_options import DEFAULT_TEMPERATURE

HELP = "regenerate a range of a dance, or continue it (Motion .npz; several takes as OUT.take<k>.npz)"
DESCRIPTION = """Regenerate the part of DANCE between --from and --to seconds on the same song, or continue it
past its end with --extend.

The dance before --from is kept exactly; the model continues from it through the range on the song's music, and
the new part is blended back into the kept dance over --blend seconds after --to; everything after that is kept
exactly too. Any Motion works (generated, or imported with `e3d2 import`). --keep holds joints where they were
(feet, hands, root, or joint names, comma-separated); --pose-at T FILE makes the dance hit the first pose of the
Motion FILE (or its pose at S seconds: FILE@S) at T seconds. Several --takes are written as OUT.take1.npz, ...
with their R_θ scores (best first) when the model has a reward model. Nothing is written when anything fails
(exit code 2)."""


def add_arguments(parser) -> None:
    parser.add_argument("dance", help="the Motion .npz to edit")
    parser.add_argument("--audio", required=True, help="the song the dance goes with")
    parser.add_argument("-o", "--output", required=True, help="output Motion .npz (never the input file)")
    parser.add_argument("--from", dest="start", type=float, help="start of the range to regenerate (seconds)")
    parser.add_argument("--to", dest="end", type=float, help="end of the range to regenerate (seconds)")
    parser.add_argument("--extend", type=float, nargs="?", const=-1.0, metavar="S",
                        help="continue the dance past its end by S seconds (no S: to the end of the song)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--takes", type=int, default=1, help="number of alternatives, batched (default 1)")
    parser.add_argument("--blend", type=float, default=0.5,
                        help="seconds after --to over which the new part hands back (default 0.5)")
    parser.add_argument("--keep", default="", help="joints to hold during the range: feet, hands, root, names")
    parser.add_argument("--pose-at", nargs=2, action="append", default=[], metavar=("T", "FILE[@S]"),
                        help="hit the pose of the Motion FILE (its frame at S seconds, default its first) at T")
    parser.add_argument("--pose-position", action="store_true",
                        help="with --pose-at: also match the pose's position on the floor (default: where the "
                             "new dance is)")
    parser.add_argument("--audio-offset", type=float, default=0.0,
                        help="seconds into the song at the dance's first frame (default 0)")
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE,
                        help=f"sampling temperature (default {DEFAULT_TEMPERATURE:g})")
    parser.add_argument("--top-k", type=int, help="sample among the k most likely codes")
    parser.add_argument("--checkpoint", help="model bundle (default: the bundled assets/e3d2_default.pt)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "int8"])
    parser.add_argument("--policy", default="auto", choices=["auto", "rl", "bc"])
    parser.add_argument("--bpm", type=float, help="override the tracked tempo (beats per minute)")
    parser.add_argument("--beat-offset", type=float, help="override the first beat's time (seconds)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def pose_targets(pairs, with_position: bool):
    """``--pose-at T FILE[@S]`` pairs -> PoseTarget objects (one clear error for a malformed one)."""
    from e3d2_core.constraints import PoseTarget
    from e3d2_core.errors import E3D2Error

    out = []
    for time_text, spec in pairs:
        try:
            time = float(time_text)
        except ValueError:
            raise E3D2Error(f"--pose-at needs a time in seconds first, got {time_text!r}") from None
        path, _, at = spec.rpartition("@") if "@" in spec else (spec, "", "")
        try:
            at_seconds = float(at) if at else None
        except ValueError:
            raise E3D2Error(f"--pose-at {spec!r}: the time after @ must be seconds, got {at!r}") from None
        out.append(PoseTarget.from_motion(time, path, at_seconds, with_position=with_position))
    return out


def run(args) -> int:
    import contextlib
    import os
    from pathlib import Path

    from e3d2_core import api
    from e3d2_core.commands.generate import output_paths
    from e3d2_core.errors import E3D2Error
    from e3d2_core.motion import Motion

    output = Path(args.output)
    if output.suffix != ".npz":
        raise E3D2Error("the output must be a .npz Motion file", path=output)
    extending = args.extend is not None
    if extending == (args.start is not None or args.end is not None):
        raise E3D2Error("give either --from and --to (regenerate a range) or --extend (continue the dance)")
    if not extending and (args.start is None or args.end is None):
        raise E3D2Error("a range needs both --from and --to (seconds)")
    dance = Motion.load(args.dance)
    targets = output_paths(output, args.takes if isinstance(args.takes, int) and args.takes > 1 else 1)
    if any(t.resolve() == Path(args.dance).resolve() for t in targets):
        raise E3D2Error("the output would replace the dance being edited: choose another -o", path=output)
    keep = [name for name in args.keep.split(",") if name.strip()]
    poses = pose_targets(args.pose_at, args.pose_position)

    common = dict(seed=args.seed, takes=args.takes, keep=keep, temperature=args.temperature, top_k=args.top_k,
                  checkpoint=args.checkpoint, device=args.device, precision=args.precision, policy=args.policy,
                  audio_offset=args.audio_offset, bpm=args.bpm, beat_offset=args.beat_offset)
    if extending and poses:
        raise E3D2Error("--pose-at applies to a regenerated range (--from/--to), not to --extend")
    from e3d2_core.commands.progress import progress_bar
    with progress_bar(args.quiet) as progress:
        if extending:
            result = api.extend(dance, args.audio, seconds=None if args.extend < 0 else args.extend,
                                progress=progress, **common)
        else:
            result = api.regenerate(dance, args.audio, start=args.start, end=args.end, blend=args.blend,
                                    poses=poses, progress=progress, **common)
    motions = result if isinstance(result, list) else [result]
    targets = output_paths(output, len(motions))
    staged = [path.with_name(f".{path.stem}.partial{path.suffix}") for path in targets]
    try:       # all or nothing: write beside the targets, then move everything into place
        for motion, tmp in zip(motions, staged):
            motion.save(tmp)
        for tmp, path in zip(staged, targets):
            os.replace(tmp, path)
    finally:
        for tmp in staged:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    for line in summary(motions, targets):
        print(line)
    return 0


def summary(motions, paths) -> list[str]:
    """One line per written take, best R_θ first when the takes were scored."""
    rows = list(zip(motions, paths))
    scored = all("reward_range_per_minute" in m.meta.get("edit", {}) for m in motions)
    if scored:
        rows.sort(key=lambda row: -row[0].meta["edit"]["reward_range_per_minute"])
    lines = []
    for motion, path in rows:
        info = motion.meta["edit"]
        text = f"{path}  frames {info['frames'][0]}-{info['frames'][1] - 1} changed"
        if scored:
            text += (f"  R_θ {info['reward_range_per_minute']:.1f}/min in the range"
                     f" ({info['reward_per_minute']:.1f}/min overall)")
        if "keep_error_cm" in info:
            text += f"  kept joints within {info['keep_error_cm']:.2f} cm"
        if "pose_error_cm" in info:
            text += "  key poses met within " + ", ".join(f"{e:.2f}" for e in info["pose_error_cm"]) + " cm"
        lines.append(text)
    return lines
