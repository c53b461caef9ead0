"""Shared pieces of the add-on tests: a procedural generator with api.generate's signature, the demo song."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np


from e3d2_core.motion import Motion

SONG = Path(__file__).resolve().parent.parent / "assets" / "music" / "Kevin_MacLeod_-_Vibe_Ace.hq.ogg"


def procedural_generate(audio, *, seconds=None, seed=0, takes=1, progress=None, cancel=None, in_place=False,
                        fps=30.0, delay=0.0, **_):
    """A deterministic sinusoidal 'dance' as long as the song (or ``seconds``): stands in for api.generate."""
    import soundfile  # reads the song's header, as a real generator reads the song (broken files fail here)

    duration = soundfile.info(str(audio)).duration
    length = duration if seconds is None else seconds
    frames = int(length * fps)
    t = np.arange(frames)[:, None, None] / fps
    out = []
    for take in range(takes):
        rng = np.random.default_rng(seed * 100 + take)
        amp, freq, phase = rng.uniform(0.05, 0.5, (1, 24, 3)), rng.uniform(0.3, 2.0, (1, 24, 3)), rng.uniform(0, 6, (1, 24, 3))
        poses = amp * np.sin(2 * np.pi * freq * t + phase)
        trans = np.stack([0.3 * np.sin(t[:, 0, 0]), 0.9 + 0.05 * np.sin(3 * t[:, 0, 0]), 0.2 * t[:, 0, 0]], -1)
        motion = Motion(poses, trans, fps, {"model": "procedural", "seed": seed})
        out.append(motion.in_place() if in_place else motion)
        steps = max(5, int(delay * 10))  # a slow run still looks at cancel every 0.1 s
        for step in range(steps):
            if cancel and cancel():
                raise RuntimeError("procedural generator saw cancel")
            if progress and step % max(1, steps // 5) == 0:
                progress((take + (step + 1) / steps) / takes, f"take {take + 1}")
            time.sleep(delay / steps)
    return out


def slow_generate(audio, **kwargs):
    """The procedural generator taking about 20 s: for cancel tests."""
    return procedural_generate(audio, delay=20.0, **kwargs)
