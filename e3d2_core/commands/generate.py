"""`e3d2 generate`: dance to a song with a trained bundle; writes Motion .npz file(s)."""
from __future__ import annotations

from e3d2_core.api import BEAT_GUIDE_DEFAULT, BEAT_LOCK_DEFAULT, PICKS, DanceRequest
from e3d2_core.dance_options import DEFAULT_TEMPERATURE, POLICIES

HELP = "generate a dance for a song (Motion .npz; several takes as OUT.take<k>.npz)"
DESCRIPTION = f"""Generate a dance for AUDIO with the policy and choreographic memory of a checkpoint bundle.

By default the policy samples at temperature {DEFAULT_TEMPERATURE:g}, seeded by --seed, so the same seed gives the
same dance; --seed also picks the first pose (0: a neutral pose). --temperature 0 is the paper's greedy decoding,
which with the bundled model settles into near-still motion; --top-k limits the samples. Several --takes (each
from its own first pose) are generated in one batched pass and written as OUT.take1.npz, OUT.take2.npz, ...
Nothing is written when anything fails (exit code 2)."""


def add_arguments(parser) -> None:
    parser.add_argument("audio", help="song to dance to (wav, ogg, flac, mp3, ...)")
    parser.add_argument("-o", "--output", required=True, help="output Motion .npz")
    parser.add_argument("--seconds", type=float,
                        help="dance only the first S seconds (more than the song has: the whole song, with a note)")
    parser.add_argument("--seed", type=int, default=DanceRequest.seed, help="random seed (default %(default)s)")
    parser.add_argument("--takes", type=int, default=DanceRequest.takes,
                        help="number of dances, batched (default %(default)s)")
    parser.add_argument("--temperature", type=float, default=DanceRequest.temperature,
                        help="sampling temperature (default %(default)s); 0 = greedy, the paper's decoding")
    parser.add_argument("--top-k", type=int, help="sample among the k most likely codes")
    parser.add_argument("--checkpoint", help="model bundle (default: the bundled assets/e3d2_default.pt)")
    parser.add_argument("--device", default=DanceRequest.device, help="auto (default), cpu or cuda")
    parser.add_argument("--precision", default=DanceRequest.precision, choices=["auto", "fp32", "bf16", "int8"],
                        help="policy arithmetic (default auto: bf16 where native, else fp32)")
    parser.add_argument("--seed-motion", help="Motion .npz whose start gives the first pose")
    parser.add_argument("--in-place", action="store_true", help="no root travel on the floor")
    parser.add_argument("--bpm", type=float, help="override the tracked tempo (beats per minute)")
    parser.add_argument("--beat-offset", type=float, help="override the first beat's time (seconds)")
    parser.add_argument("--pick", default=DanceRequest.pick, choices=PICKS,
                        help="with --takes K: 'best' keeps only the take the reward model R_θ scores highest")
    parser.add_argument("--policy", default=DanceRequest.policy, choices=POLICIES,
                        help="auto (default): the beat-distilled policy when the checkpoint has one, else the "
                             "RL-fine-tuned one, else BC")
    parser.add_argument("--beat-lock", type=float, default=DanceRequest.beat_lock, metavar="S",
                        help="0-1: how far a smooth time warp moves the dance's steps onto the music's beats "
                             f"(default {BEAT_LOCK_DEFAULT:g}; 0 = the raw model's timing, as the paper measures it)")
    parser.add_argument("--beat-guide", type=float, default=DanceRequest.beat_guide, metavar="G",
                        help="≥ 0: how strongly sampling picks moves that are slow on the beat and quick between beats "
                             f"(default {BEAT_GUIDE_DEFAULT:g}; 0 = the policy's own draws, as the paper measures it)")
    parser.add_argument("--repeat-cost", type=float, default=DanceRequest.repeat_cost, metavar="C",
                        help="≥ 0: logits off a move per time it was danced in the last 2 s beyond what real dance "
                             "repeats (default: the checkpoint's own; 0 = the policy may loop freely)")
    parser.add_argument("--foot-lock", action="store_true",
                        help="pin each foot while it stands on the floor (two-bone leg IK, never below the floor)")
    parser.add_argument("--preview", help="also render a preview of the first take (.mp4 with the song, .gif, .png)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def output_paths(output, takes: int):
    """OUT.npz for one take; OUT.take1.npz ... OUT.take<K>.npz for several."""
    from pathlib import Path

    output = Path(output)
    if takes == 1:
        return [output]
    return [output.with_name(f"{output.stem}.take{k}{output.suffix}") for k in range(1, takes + 1)]


def dance_request(args) -> DanceRequest:
    """The dance the command line asks for (checked: a bad option is an E3D2Error)."""
    return DanceRequest(args.audio, seconds=args.seconds, seed=args.seed, takes=args.takes,
                        temperature=args.temperature, top_k=args.top_k, seed_motion=args.seed_motion,
                        checkpoint=args.checkpoint, device=args.device, in_place=args.in_place, bpm=args.bpm,
                        beat_offset=args.beat_offset, precision=args.precision, policy=args.policy, pick=args.pick,
                        beat_lock=args.beat_lock, beat_guide=args.beat_guide, repeat_cost=args.repeat_cost)


def _note_a_short_song(audio, seconds) -> None:
    """Say on stderr when --seconds asks for more than the song holds (the dance stops with the song)."""
    import sys

    from e3d2_core.errors import E3D2Error

    if seconds is None:
        return
    try:
        from e3d2_core.audio import audio_duration
        duration = audio_duration(audio)
    except (E3D2Error, ImportError):     # generation itself reports an unreadable song
        return
    if seconds > duration + 1e-6:
        print(f"e3d2 generate: note: {audio} is only {duration:.1f} s long: the dance lasts {duration:.1f} s, "
              f"not the {seconds:g} s asked for", file=sys.stderr)


def run(args) -> int:
    import contextlib
    import os
    from pathlib import Path

    from e3d2_core import api
    from e3d2_core.errors import E3D2Error

    output = Path(args.output)
    if output.suffix != ".npz":
        raise E3D2Error("the output must be a .npz Motion file", path=output)
    if args.preview is not None:
        if Path(args.preview).suffix.lower() not in (".mp4", ".gif", ".png"):
            raise E3D2Error("the preview must be an .mp4 (video), .gif or .png file", path=args.preview)
        try:
            from e3d2_core.preview import render_preview
        except ImportError:
            raise E3D2Error("--preview needs e3d2_core.preview, which is missing from this installation") from None

    request = dance_request(args)
    _note_a_short_song(args.audio, args.seconds)
    import warnings

    from e3d2_core.beat_guide import BeatGuideWarning
    from e3d2_core.beat_lock import BeatLockWarning
    from e3d2_core.commands.progress import progress_bar
    notes = (BeatLockWarning, BeatGuideWarning)
    with progress_bar(args.quiet) as progress, warnings.catch_warnings(record=True) as caught:
        for kind in notes:
            warnings.simplefilter("always", kind)
        motions = api.dance(request, progress=progress)
    import sys
    for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, notes)):
        print(f"e3d2: warning: {message}", file=sys.stderr)
    if args.foot_lock:
        from e3d2_core.retarget.footlock import lock_motion_feet
        motions = [lock_motion_feet(motion) for motion in motions]
    targets = output_paths(output, len(motions)) + ([Path(args.preview)] if args.preview is not None else [])
    staged = [path.with_name(f".{path.stem}.partial{path.suffix}") for path in targets]
    try:       # all or nothing: write beside the targets, then move everything into place
        for motion, tmp in zip(motions, staged):
            motion.save(tmp)
        if args.preview is not None:
            render_preview(motions[0], staged[-1], audio=args.audio)
        for tmp, path in zip(staged, targets):
            os.replace(tmp, path)
    finally:
        for tmp in staged:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    for path in targets:
        print(path)
    if "reward_totals" in motions[0].meta:
        totals = ", ".join(f"{t:.1f}" for t in motions[0].meta["reward_totals"])
        print(f"reward R_θ of the takes: {totals}; kept the best ({motions[0].meta['reward_total']:.1f})")
    return 0
