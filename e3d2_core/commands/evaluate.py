"""``e3d2 evaluate``: FID_k, FID_g, Div_k, Div_g, BAS and PFC of a folder of dances against a GT pool."""
from __future__ import annotations

HELP = "standard dance metrics (FID_k/g, Div_k/g, BAS, PFC) of predicted dances against a ground-truth pool"
DESCRIPTION = """\
Standard AIST++ dance metrics, computed exactly as Bailando's evaluation code does (quirks kept), plus EDGE's
physical foot contact score (PFC, converted from EDGE's Z-up 30 fps to our Y-up 60 fps tracks).

FID and diversity compare sets: they need at least two predictions and a --gt pool. One dance (--pred
dance.npz --music song.ogg) gets BAS and PFC. Folders hold Motion .npz files or joint tracks .npy ((T, 72) or (T, 24, 3), metres, Y up, SMPL joint order).
Everything is resampled to 60 fps; predictions are cropped to --crop frames for FID/Div; BAS and PFC use the
full length. --music holds per dance an audio file or a .npy of music-beat frame indices at 60 fps (same stem,
else the AIST++ music id such as mBR0). See docs/metrics.md.
"""


def add_arguments(parser) -> None:
    parser.add_argument("--pred", required=True, help="folder of predicted dances, or one dance file")
    parser.add_argument("--gt", help="folder of ground-truth dances (the pool, e.g. 1363 AIST++); needed for "
                                     "FID and diversity")
    parser.add_argument("--music", help="folder of music (audio or .npy beat frame indices at 60 fps) for BAS, "
                                        "or one song for every dance")
    parser.add_argument("--fps", type=float, default=None,
                        help="frame rate of joint tracks that carry none (default: 60, reported when assumed)")
    parser.add_argument("--crop", type=int, default=1200,
                        help="predictions: first N frames at 60 fps for FID/Div (default 1200 = 20 s; 0 = all)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--gt-cache", help="cache file (.npz) for the GT pool's features, reused while unchanged")
    parser.add_argument("--format", choices=("bailando", "edge"), dest="fmt",
                        help="also read Bailando's pickled .npy ({'pred_position'}) or EDGE's .pkl (full_pose)")
    parser.add_argument("--fixed", action="store_true",
                        help="corrected feature variants (kinetic precedence bug, 1/120 s); not comparable "
                             "with published numbers")


def _format(value, digits=4):
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(result: dict) -> str:
    rows = [
        ("FID_k", _format(result["fid_k"], 2)), ("FID_g", _format(result["fid_g"], 2)),
        ("Div_k", _format(result["div_k"], 2)), ("Div_g", _format(result["div_g"], 2)),
        ("BAS", _format(result["bas"])), ("PFC", _format(result["pfc"])),
        ("Div_k (GT pool)", _format(result["div_k_gt"], 2)), ("Div_g (GT pool)", _format(result["div_g_gt"], 2)),
    ]
    lines = [f"{name:<16} {value:>10}" for name, value in rows]
    if result["fid_k"] is None:
        lines.append(f"{result['n_pred']} prediction(s), no FID/Div (see the note); BAS over {result['n_bas']}")
    else:
        lines.append(f"{result['n_pred']} predictions (first {result['crop'] or 'all'} frames at 60 fps) vs "
                     f"{result['n_gt']} ground-truth dances; BAS over {result['n_bas']}")
    lines.append(f"variant: {result['variant']}")
    lines.append("PFC: EDGE's definition (Z up, 30 fps, x10^4) on our Y-up tracks sampled at 30 fps")
    return "\n".join(lines)


def run(args) -> int:
    import json
    import sys

    from e3d2_core.api import evaluate

    result = evaluate(args.pred, args.gt, music=args.music, fps=args.fps, crop=args.crop,
                      gt_cache=args.gt_cache, fmt=args.fmt, fixed=args.fixed)
    for note in result["notes"]:
        print(f"e3d2 evaluate: {note}", file=sys.stderr)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0
