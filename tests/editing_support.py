"""Shared pieces of the editing tests: a short real song, the bundled real dances and their frame-to-frame
statistics (the reference a seam is judged against)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"
SONG = Path(__file__).resolve().parent.parent / "assets" / "music" / "Kevin_MacLeod_-_Vibe_Ace.hq.ogg"
CMU_CLIP = DATA / "cmu_salsa_60_01_clip.bvh"
AIST_SLICES = sorted((DATA / "aistpp").glob("*.csv"))
CMU_FPS = 60.0          # the CMU salsa files say 120 fps; the capture is 60 (read them at 60)
AIST_FPS = 30.0


def write_song_clip(path, seconds: float = 12.0) -> Path:
    """The first ``seconds`` of the bundled song "Vibe Ace" as a 16-bit WAV (the same bytes every time, so the
    feature cache recognises it)."""
    import soundfile

    rate = soundfile.info(str(SONG)).samplerate
    data, rate = soundfile.read(str(SONG), frames=int(seconds * rate), always_2d=True)
    soundfile.write(str(path), data, rate, subtype="PCM_16")
    return Path(path)


@lru_cache(maxsize=None)
def cmu_dance():
    """The bundled CMU salsa clip as a Motion at 60 fps (8 s)."""
    from e3d2_core.io import load_motion_file

    return load_motion_file(CMU_CLIP, fps=CMU_FPS)


@lru_cache(maxsize=None)
def aist_dance(index: int = 0):
    """An AIST++ slice (joint positions, Z up) as a Motion at 30 fps by the importer's IK (5 s)."""
    from e3d2_core.io import load_motion_file

    return load_motion_file(AIST_SLICES[index], fps=AIST_FPS, up="z")


@lru_cache(maxsize=None)
def real_percentiles(q: float = 99.0) -> dict:
    """Joint speed (m/s) and acceleration (m/s²) percentiles of all bundled real dance, each at its own rate:
    the CMU clip at 60 fps and the five AIST++ slices (joint positions as captured) at 30 fps."""
    from e3d2_core.io import load_joint_track
    from e3d2_core.metrics import smoothness

    tracks = [(cmu_dance().joints(), CMU_FPS)]
    tracks += [(load_joint_track(path, fps=AIST_FPS, up="z")[0], AIST_FPS) for path in AIST_SLICES]
    return smoothness.percentiles(tracks, q)


def assert_seamless(motion, frame: int, reference: dict, *, sides: bool = False, width: float = 0.2,
                    source=None, source_frame: int | None = None, slack: float = 1.05) -> dict:
    """The seam between ``frame - 1`` and ``frame`` of ``motion`` within the reference percentiles.

    With ``sides``, a seam may also be as rough as the motion on either side of it is on its own (the largest
    speed and acceleration within ``width`` seconds before the seam, and after it, not crossing it): a dance
    that moves faster than real dance's 99th percentile there has no seam when the join is no rougher than
    the dance itself.

    With ``source`` (the dance before the edit), a seam may also be as rough as the source is across the same
    frames (``source_frame``, default ``frame``; for an extension, the source's last frame), within ``slack``:
    an edit adds no seam where the dance was already that rough itself. The root's step is always held to
    real dance's 99th percentile speed.
    """
    from e3d2_core.metrics import smoothness

    joints = motion.joints()
    seam = smoothness.seam(joints, motion.fps, frame)
    bound = dict(reference)
    if sides:
        n = max(3, int(round(width * motion.fps)))
        for part in (joints[max(frame - n, 0):frame], joints[frame:frame + n]):
            bound["speed"] = max(bound["speed"], smoothness.joint_speeds(part, motion.fps).max())
            bound["acceleration"] = max(bound["acceleration"], smoothness.joint_accelerations(part, motion.fps).max())
    if source is not None:
        own = smoothness.seam(source.joints(), source.fps, frame if source_frame is None else source_frame)
        for key in ("speed", "acceleration"):
            bound[key] = max(bound[key], slack * own[key])
    assert seam["speed"] <= bound["speed"], (frame, seam, bound)
    assert seam["acceleration"] <= bound["acceleration"], (frame, seam, bound)
    assert seam["root_step"] <= reference["speed"] / motion.fps, (frame, seam, reference)
    return seam


def assert_smooth_transition(motion, frames: tuple[int, int], reference: dict, *, near, factor: float = 2.0) -> float:
    """Inside a transition (``frames`` = [lo, hi) of ``motion``: the start's ease, the end's blend), no joint
    accelerates more than ``factor`` × what the joined motions do on their own nearby (``near``: joint tracks
    (T, J, 3) at ``motion.fps``, e.g. the new part beyond the transition and the dance before the edit there)
    or than real dance's 99th percentile. A blend that flips a joint or spins to catch up is many times
    rougher; blending two motions honestly is not. Returns the ratio to the bound."""
    from e3d2_core.metrics import smoothness

    lo, hi = max(frames[0], 1), min(frames[1], motion.num_frames - 1)
    inside = smoothness.joint_accelerations(motion.joints()[lo - 1:hi + 1], motion.fps).max()
    bound = max([reference["acceleration"]] + [smoothness.joint_accelerations(j, motion.fps).max()
                                               for j in near if len(j) > 2])
    assert inside <= factor * bound, (frames, inside, bound)
    return float(inside / bound)
