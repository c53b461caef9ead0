"""Pair dance recorded without music with a song: kinematic beats, a bounded time warp, resampling.

Dancers' steps are events, not a steady pulse (the CMU salsa clips wander between 87 and 147 bpm inside a
clip), so one global tempo cannot pair them with a song. Instead:

1. :func:`kinematic_beats` -- the motion's beats are the local minima of its smoothed mean joint speed (the
   moments a step lands or a move stops: the definition BAS uses, docs/metrics.md), kept when the dip is deep enough.
2. :func:`align_events` -- a dynamic-programming alignment chains (motion beat, music beat) pairs, both strictly
   increasing, each link advancing one or two beats on either side (a dancer pausing on a beat, or a spurious
   minimum), with the local speed change (music interval / motion interval) bounded to ``[min_rate,
   max_rate]`` (default 0.7-1.4x). Each matched pair earns 1; links pay ``log(rate)^2`` (prefer small speed
   changes) and a skip penalty. The best-scoring chain anywhere in the two sequences wins.
3. :func:`warp_motion` -- the matched pairs define a piecewise-linear map from song time to motion time; the
   motion is resampled along it (slerp for rotations, linear for the root), on the song's clock.

We warp the motion, not the music: the song then keeps its sound and its features are computed once per song,
and a warp bounded to 0.7-1.4x keeps the dance plausible (a stretched step is still a step).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from e3d2_core.errors import E3D2Error
from e3d2_core.motion import Motion


def kinematic_beats(joints: np.ndarray, fps: float, *, sigma_seconds: float = 1 / 30, min_gap: float = 0.2,
                    prominence: float = 0.1) -> np.ndarray:
    """Frames of the motion's kinematic beats: minima of the mean joint speed.

    Args:
        joints: (T, 24, 3) joint positions, metres.
        fps: frames per second.
        sigma_seconds: Gaussian smoothing of the speed curve (BAS uses 5 frames at 60 fps; we keep less so
            the quick-quick steps of salsa stay apart).
        min_gap: minimum seconds between two beats.
        prominence: a minimum must dip by this fraction of the clip's median speed.
    Returns:
        (K,) int64 frame indices.
    """
    speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean(-1) * fps    # (T-1,) m/s
    if len(speed) < 3:
        return np.zeros(0, np.int64)
    smooth = gaussian_filter1d(speed, sigma_seconds * fps)
    minima, _ = find_peaks(-smooth, distance=max(1, int(round(min_gap * fps))),
                           prominence=prominence * float(np.median(smooth)))
    return minima.astype(np.int64)


@dataclass
class Alignment:
    """Matched (motion time, music time) pairs in seconds, both strictly increasing."""

    motion_times: np.ndarray
    music_times: np.ndarray
    score: float

    def __len__(self) -> int:
        return len(self.motion_times)

    @property
    def rates(self) -> np.ndarray:
        """Local speed change per link: music interval / motion interval (> 1 slows the dance down)."""
        return np.diff(self.music_times) / np.diff(self.motion_times)


def align_events(events: np.ndarray, beats: np.ndarray, *, min_rate: float = 0.7, max_rate: float = 1.4,
                 max_step: int = 2, skip_penalty: float = 0.3, rate_weight: float = 4.0,
                 max_shift: float | None = None) -> Alignment:
    """Chain motion beats (seconds) onto music beats (seconds) by dynamic programming (see module doc).

    ``max_shift``: only pair a motion beat with music beats at most this many seconds away (a local alignment,
    for motion already on the song's clock); None: anywhere.
    Returns the best chain; fewer than 2 pairs raises an :class:`E3D2Error` (nothing to warp).
    """
    events, beats = np.asarray(events, float), np.asarray(beats, float)
    m, k = len(events), len(beats)
    if m < 2 or k < 2:
        raise E3D2Error(f"cannot align {m} motion beats with {k} music beats")
    allowed = np.ones((m, k), bool) if max_shift is None else np.abs(events[:, None] - beats[None]) <= max_shift
    best = np.where(allowed, 1.0, -np.inf)   # best score of a chain ending in pair (i, j); a lone pair scores 1
    back = np.full((m, k, 2), -1, np.int64)
    for i in range(1, m):
        for di in range(1, min(max_step, i) + 1):
            de = events[i] - events[i - di]
            for dj in range(1, max_step + 1):
                # candidate link (i-di, j-dj) -> (i, j) for every j >= dj at once
                rate = (beats[dj:] - beats[:-dj]) / de
                ok = (rate >= min_rate) & (rate <= max_rate)
                gain = best[i - di, :-dj] + 1.0 - rate_weight * np.log(np.where(ok, rate, 1.0)) ** 2 \
                    - skip_penalty * (di - 1 + dj - 1)
                gain = np.where(ok & allowed[i, dj:], gain, -np.inf)
                better = gain > best[i, dj:]
                best[i, dj:] = np.where(better, gain, best[i, dj:])
                back[i, dj:][better] = (i - di, -1)
                back[i, dj:, 1][better] = np.nonzero(better)[0]          # j - dj for those j
    i, j = np.unravel_index(int(np.argmax(best)), best.shape)
    score = float(best[i, j])
    pairs = []
    while i >= 0:
        pairs.append((i, j))
        i, j = back[i, j]
    pairs.reverse()
    if len(pairs) < 2:
        raise E3D2Error("no two motion beats fit the music within the allowed speed change")
    idx = np.array(pairs)
    return Alignment(events[idx[:, 0]], beats[idx[:, 1]], score)


def warp_motion(motion: Motion, alignment: Alignment, *, fps: float, start: float, frames: int) -> Motion:
    """The motion replayed on the song's clock: frame n at song time ``start + n / fps`` shows the motion at
    the time the alignment maps it to (linear between matched pairs; outside them, the end rates continue)."""
    tau = start + np.arange(frames) / fps
    mu, mo = alignment.music_times, alignment.motion_times
    source = np.interp(tau, mu, mo)
    # extrapolate past the first/last pair with the end links' rates rather than freezing the motion
    before, after = tau < mu[0], tau > mu[-1]
    source[before] = mo[0] + (tau[before] - mu[0]) / alignment.rates[0]
    source[after] = mo[-1] + (tau[after] - mu[-1]) / alignment.rates[-1]
    poses, trans = motion.sample(source)
    return Motion(poses, trans, fps, {**motion.meta, "warped": True})


def nearest_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each time in ``a``, the distance to the nearest time in ``b`` (both seconds, ``b`` sorted)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(b) == 0:
        return np.full(len(a), np.inf)
    k = np.clip(np.searchsorted(b, a), 1, len(b) - 1) if len(b) > 1 else np.zeros(len(a), np.int64)
    return np.minimum(np.abs(a - b[k - 1 if len(b) > 1 else 0]), np.abs(a - b[k]))
