"""`e3d2 preview MOTION [--audio A] -o OUT.(mp4|gif|png) [--start S] [--end E]`: look at a Motion without Blender."""
from __future__ import annotations

HELP = "render a stick-figure preview of a Motion (.mp4 with the song, .gif, or a .png contact sheet)"
DESCRIPTION = """Render a stick-figure preview of MOTION (a Motion .npz): front and side views that follow the
body over a floor, the top view with the path, and a timeline with the music beats, the body's joint speed and
a cursor. With --audio, the song's beats flash on screen and the song is the mp4's sound track. --start/--end
(seconds on the song's clock) preview one section. OUT.png is a contact sheet of 8 frames; gifs are limited
to 60 s."""


def _size(text: str) -> tuple[int, int]:
    import argparse

    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 960x540, got {text!r}") from None
    return width, height


def add_arguments(parser):
    parser.add_argument("motion", metavar="MOTION", help="Motion .npz (e3d2 import / generate output)")
    parser.add_argument("--audio", metavar="A", default=None, help="song to mark beats from and to mux (mp4)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="OUT.mp4, OUT.gif or OUT.png")
    parser.add_argument("--fps", type=float, default=30.0, help="preview frame rate (default 30)")
    parser.add_argument("--start", type=float, default=None, metavar="S", help="begin at S seconds (default 0)")
    parser.add_argument("--end", type=float, default=None, metavar="E", help="stop at E seconds (default: the end)")
    parser.add_argument("--seconds", type=float, default=None, metavar="S",
                        help="only S seconds (from --start), instead of --end")
    parser.add_argument("--size", type=_size, default=None, metavar="WxH",
                        help="frame size in pixels (default 640x360)")


def run(args) -> int:
    from e3d2_core.preview import render_preview

    path = render_preview(args.motion, args.output, audio=args.audio, fps=args.fps, seconds=args.seconds,
                          start=args.start, end=args.end, size=args.size)
    print(f"{path}: preview written")
    return 0
