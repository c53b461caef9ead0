"""`e3d2 features AUDIO -o OUT.npz`: music features and beats at the motion frame rate."""
from __future__ import annotations

import sys

HELP = "compute music features and beats of a song (Bailando 438-d or compact) into an .npz"
DESCRIPTION = """Compute per-frame music features and music beats of AUDIO (wav, flac, ogg, mp3, ...).

Writes OUT.npz with: features (T, D) float32 (T = ceil(duration * fps); frame k is time k / fps),
beat_frames (K,) int64, tempo (bpm), fps, kind, duration (s), audio_hash (sha256 of the file).
--kind bailando: the 438-d set of Bailando (column 53 = beat one-hot); --kind compact: 37 dims
(MFCC, chroma, onset, beat one-hot = column 33, beat phase sin/cos, RMS dB).
Results are cached per audio content in $E3D2_CACHE (default ~/.cache/e3d2).
Silent/beatless audio gives features with no beats (a note is printed); --bpm/--beat-offset impose a beat grid."""


def add_arguments(parser):
    parser.add_argument("audio", metavar="AUDIO", help="song file (wav, flac, ogg, mp3, ...)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.npz", help="output .npz")
    parser.add_argument("--fps", type=float, default=60.0, help="feature frames per second (default 60)")
    parser.add_argument("--kind", choices=("bailando", "compact"), default="bailando",
                        help="feature set (default bailando, 438 dims)")
    parser.add_argument("--bpm", type=float, default=None, help="override the tracked beats: tempo in bpm")
    parser.add_argument("--beat-offset", type=float, default=None, metavar="S",
                        help="with --bpm: time of one beat in seconds (default 0); beats at S + k*60/bpm")
    parser.add_argument("--max-seconds", type=float, default=None, metavar="S",
                        help="refuse songs longer than S seconds (default 1200 = 20 min)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the feature cache")


def run(args) -> int:
    from pathlib import Path

    import numpy as np

    from e3d2_core import audio
    from e3d2_core.errors import E3D2Error
    from e3d2_core.fileio import atomic_open

    out = Path(args.output)
    if out.suffix != ".npz":
        raise E3D2Error("output must end in .npz", path=out)
    result = audio.extract_features(args.audio, fps=args.fps, kind=args.kind, bpm=args.bpm,
                                    beat_offset=args.beat_offset, cache=not args.no_cache,
                                    max_seconds=audio.MAX_SECONDS if args.max_seconds is None else args.max_seconds)
    with atomic_open(out) as handle:
        np.savez(handle, features=result.features, beat_frames=result.beat_frames,
                 tempo=np.float64(result.tempo), fps=np.float64(result.fps), kind=np.array(result.kind),
                 duration=np.float64(result.duration), audio_hash=np.array(result.audio_hash))
    T, D = result.features.shape
    print(f"{out}: {T} frames x {D} dims at {result.fps:g} fps, {len(result.beat_frames)} beats, "
          f"tempo {result.tempo:.1f} bpm, {result.duration:.2f} s")
    if len(result.beat_frames) == 0:
        print(f"note: no beats found in {args.audio} (silent or beatless audio); use --bpm/--beat-offset "
              f"to impose a beat grid", file=sys.stderr)
    return 0
