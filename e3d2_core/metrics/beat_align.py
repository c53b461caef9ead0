"""Beat-alignment score (BAS) as Bailando's ``utils/beat_align_score.py`` computes it.

Motion signal: per-frame mean over joints of ``|p_{t+1} - p_t|`` (length T-1), smoothed by
``scipy.ndimage.gaussian_filter`` with sigma = 5; motion beats are its strict local minima (``argrelextrema``,
order 1, so never the end points). Music beats are those of the first T-1 frames. Each *music* beat looks for its
nearest motion beat: ``BAS = mean_b exp(-min_m (m - b)^2 / (2 * 3^2))`` (sigma = 3 frames at 60 fps).
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

SMOOTHING_SIGMA = 5.0
BEAT_SIGMA_FRAMES = 3.0


def motion_signal(positions: np.ndarray) -> np.ndarray:
    """(T-1,) smoothed mean joint speed (metres per frame) of a (T, J, 3) track."""
    p = np.asarray(positions, dtype=np.float64)
    speed = np.sqrt(((p[1:] - p[:-1]) ** 2).sum(axis=2)).mean(axis=1)
    return gaussian_filter(speed, SMOOTHING_SIGMA)


def motion_beats(positions: np.ndarray) -> np.ndarray:
    """(M,) int64 frame indices of the motion beats (strict local minima of :func:`motion_signal`)."""
    signal = motion_signal(positions)
    inner = (signal[1:-1] < signal[:-2]) & (signal[1:-1] < signal[2:])
    return np.flatnonzero(inner).astype(np.int64) + 1


def beat_align_score(music: np.ndarray, motion: np.ndarray) -> float:
    """BAS of one sequence from music-beat and motion-beat frame indices (both non-empty)."""
    music = np.asarray(music, dtype=np.int64)
    motion = np.sort(np.asarray(motion, dtype=np.int64))
    # nearest motion beat of each music beat: the neighbours around its insertion point
    slot = np.searchsorted(motion, music)
    left = motion[np.clip(slot - 1, 0, len(motion) - 1)]
    right = motion[np.clip(slot, 0, len(motion) - 1)]
    nearest_sq = np.minimum((left - music) ** 2, (right - music) ** 2)
    return float(np.exp(-nearest_sq / 2 / BEAT_SIGMA_FRAMES ** 2).mean())
