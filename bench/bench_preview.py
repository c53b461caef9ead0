"""Preview video speed: frames per second of ``render_preview`` writing an mp4 with the song (JSON).

    python bench/bench_preview.py [--seconds 60] [--fps 30] [--repeats 1]

A procedural 60-fps dance (every joint swinging, the root travelling) as long as ``--seconds``, previewed at the
default size with the bundled song muxed and its beats marked: what ``e3d2 preview dance.npz --audio SONG -o
dance.mp4`` does. ``fps`` = video frames / wall seconds of the whole call (figure set-up, drawing, encoding);
``frame_fps`` leaves out the set-up (the first frame's cost is measured on a one-frame preview and
subtracted); ``cpu_ms_per_frame`` counts this process's and ffmpeg's CPU time, which a busy machine does not
distort the way it distorts wall time. The song's beats are tracked and cached before timing (as after a first
preview of the song). Goal: at least 3x the frame rate of the previous renderer (960x540, per-bone segments, RGB
copies), measured with this same script on a busy 2-core machine: 50-53 frames/s (19-20 ms of CPU per frame)
before, 210-280 (4.8-5.9 ms) now.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SONG = ROOT / "assets" / "music" / "Kevin_MacLeod_-_Vibe_Ace.hq.ogg"


def procedural_motion(seconds: float, fps: float = 60.0):
    """A deterministic dance-like Motion: sinusoids on every joint, a root that travels and bobs."""
    from e3d2_core.motion import Motion

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * fps))[:, None, None] / fps
    poses = 0.4 * np.sin(2 * np.pi * rng.uniform(0.3, 2.0, (1, 24, 3)) * t + rng.uniform(0, 6, (1, 24, 3)))
    trans = np.stack([0.8 * np.sin(0.2 * t[:, 0, 0]), 0.92 + 0.04 * np.sin(4 * np.pi * t[:, 0, 0]),
                      0.5 * np.cos(0.15 * t[:, 0, 0])], -1)
    return Motion(poses, trans, fps)


def _cpu_seconds() -> float:
    """CPU seconds used so far by this process and its finished children (ffmpeg), all cores together."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="dance length (the song is 61 s)")
    parser.add_argument("--fps", type=float, default=30.0, help="preview frame rate")
    parser.add_argument("--repeats", type=int, default=1, help="best of N runs")
    args = parser.parse_args(argv)

    from e3d2_core import audio
    from e3d2_core.preview import render_preview

    with tempfile.TemporaryDirectory() as folder:
        os.environ.setdefault("E3D2_CACHE", str(Path(folder) / "cache"))
        audio.tracked_beats(SONG, fps=60.0)           # beats cached, as on any second preview of a song
        motion = procedural_motion(args.seconds)
        out = Path(folder) / "preview.mp4"
        started = time.perf_counter()
        render_preview(motion.trim(0, 1), Path(folder) / "one.mp4", audio=SONG, fps=args.fps)
        setup = time.perf_counter() - started
        walls, cpus = [], []
        for _ in range(args.repeats):
            started, cpu = time.perf_counter(), _cpu_seconds()
            render_preview(motion, out, audio=SONG, fps=args.fps)
            walls.append(time.perf_counter() - started)
            cpus.append(_cpu_seconds() - cpu)
        size = out.stat().st_size
    frames = int(np.floor((motion.num_frames - 1) / motion.fps * args.fps + 1e-6)) + 1
    wall = min(walls)
    print(json.dumps({"bench": "preview_mp4", "seconds": args.seconds, "preview_fps": args.fps, "frames": frames,
                      "wall_s": round(wall, 2), "fps": round(frames / wall, 1),
                      "setup_s": round(setup, 2), "frame_fps": round((frames - 1) / max(wall - setup, 1e-9), 1),
                      "realtime_factor": round(args.seconds / wall, 2),
                      "cpu_ms_per_frame": round(1000 * min(cpus) / frames, 2), "mp4_bytes": size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
