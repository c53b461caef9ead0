"""Beat lock: a smooth monotone time warp that moves a dance's kinematic beats onto the music's beats.

The policy decides *what* to dance; the beat lock nudges *when*. It finds the dance's kinematic beats (local minima
of mean joint speed: the moments BAS reads), chains them onto the music beats by the bounded dynamic programming
of :func:`e3d2_core.training.beat_align.align_events` (each link may change the local speed by 0.75-1.33x), and
replays the dance along a monotone cubic (PCHIP) interpolation of the matched pairs, so joint velocities stay
continuous. ``strength`` s in [0, 1] blends the warp with the identity, ``t -> (1 - s) t + s w(t)``: still monotone,
0 is the raw dance, 1 puts every matched kinematic beat exactly on its music beat.

The dance keeps its length (and its first and last frames where the first and last matched beats allow it: the
lead-in and lead-out may change speed by at most 2x); only timing changes. Without music beats
(silence, a drone) or without kinematic beats the dance comes back unchanged with a warning that says why.
Metrics of the raw model (the paper's tables) never use it; the product's generation does, and records what it
did in ``meta["beat_lock"]``.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.interpolate import PchipInterpolator

from e3d2_core.errors import E3D2Error
from e3d2_core.motion import Motion

MIN_RATE, MAX_RATE = 0.75, 1 / 0.75     # local speed change a link may make
MAX_SHIFT = 0.75                        # a kinematic beat moves by at most this many beat periods
END_RATE_LIMIT = (0.5, 2.0)             # lead-in / lead-out speed change allowed when pinning the clip's ends


class BeatLockWarning(UserWarning):
    """The beat lock could not act (no beats to lock to); the dance is returned unchanged."""


def beat_lock(motion: Motion, beat_times, *, strength: float = 1.0, start_time: float = 0.0) -> Motion:
    """The dance ``motion`` with its kinematic beats moved onto ``beat_times``.

    Args:
        motion: the dance, frame ``n`` at song time ``start_time + n / motion.fps``.
        beat_times: (K,) music beats in seconds of song time.
        strength: 0 (unchanged) to 1 (matched kinematic beats exactly on the music's beats).
        start_time: song time of the dance's first frame, seconds.
    Returns:
        A new Motion of the same length and fps; ``meta["beat_lock"]`` = {strength, matched (pairs), rate_min,
        rate_max, shift_ms (median move of a matched kinematic beat)} or {strength, skipped: reason}.
    """
    from e3d2_core.training.beat_align import align_events, kinematic_beats

    if not (isinstance(strength, (int, float)) and np.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise E3D2Error(f"beat lock strength must be between 0 and 1, got {strength!r}")
    duration = (motion.num_frames - 1) / motion.fps
    beats = np.asarray(beat_times, np.float64).reshape(-1) - start_time
    beats = np.unique(beats[(beats >= 0) & (beats <= duration)])
    if strength == 0.0:
        return _unchanged(motion, strength, "strength 0")
    if len(beats) < 2:
        return _unchanged(motion, strength, "the music has no beats here (silent or beatless)")
    events = kinematic_beats(motion.joints(), motion.fps) / motion.fps
    try:
        alignment = align_events(events, beats, min_rate=MIN_RATE, max_rate=MAX_RATE,
                                 max_shift=MAX_SHIFT * float(np.median(np.diff(beats))))
    except E3D2Error:
        return _unchanged(motion, strength, "no kinematic beats of the dance fit the music's beats")
    song, dance = _pin_ends(alignment.music_times, alignment.motion_times, duration)
    warp = PchipInterpolator(song, dance, extrapolate=True)
    times = np.arange(motion.num_frames) / motion.fps
    source = np.clip((1.0 - strength) * times + strength * warp(times), 0.0, duration)
    source = np.maximum.accumulate(source)                     # PCHIP of increasing knots is monotone; be exact
    poses, trans = motion.sample(source)
    moved = np.abs(alignment.music_times - alignment.motion_times)
    meta = {**motion.meta, "beat_lock": {
        "strength": float(strength), "matched": int(len(alignment)),
        "rate_min": round(float(alignment.rates.min()), 3), "rate_max": round(float(alignment.rates.max()), 3),
        "shift_ms": round(1000.0 * strength * float(np.median(moved)), 1)}}
    return Motion(poses, trans, motion.fps, meta)


def _pin_ends(song: np.ndarray, dance: np.ndarray, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """Add (0, 0) and (end, end) to the matched pairs when the lead-in/out speed change stays modest, so the
    dance keeps its first and last frames; otherwise the end links' rates continue (clipped to the dance)."""
    song, dance = list(song), list(dance)
    low, high = END_RATE_LIMIT
    if song[0] > 1e-6 and dance[0] > 1e-6 and low <= song[0] / dance[0] <= high:
        song.insert(0, 0.0)
        dance.insert(0, 0.0)
    tail_song, tail_dance = duration - song[-1], duration - dance[-1]
    if tail_song > 1e-6 and tail_dance > 1e-6 and low <= tail_song / tail_dance <= high:
        song.append(duration)
        dance.append(duration)
    return np.asarray(song), np.asarray(dance)


def _unchanged(motion: Motion, strength: float, reason: str) -> Motion:
    if strength > 0.0:
        warnings.warn(f"beat lock skipped: {reason}; the dance is the raw model's", BeatLockWarning, stacklevel=3)
    return motion.copy(meta={**motion.meta, "beat_lock": {"strength": float(strength), "skipped": reason}})
