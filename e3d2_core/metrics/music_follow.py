"""Does a dance follow its music? Tempo, phase and plausibility measures of one 60-fps joint track.

* :func:`motion_period` -- the dance's own tempo: the lag (0.3-2.2 s) of the highest autocorrelation peak of its
  mean joint speed (the shortest of the peaks within 10 % of the highest, so a multiple of the period is not
  taken for it).
* :func:`tempo_matches` -- that period equals the beat period, half of it or twice it, within 6 %.
* :func:`folded_bpm` -- the motion tempo moved by octaves (x2, /2) into the music tempo's octave, so that a dance
  stepping twice per beat counts as following it (for the octave-folded tempo correlation).
* :func:`phase_gain` -- BAS against the true beats minus BAS against the same beats shifted by half a beat: a
  dance that moves *on* the beat scores positive; one that ignores the beat's phase scores about 0.
* :func:`plausibility` -- what a viewer sees besides timing: mean joint speed, the share of time the body spins
  faster than 360 deg/s, pelvis acceleration, the lowest foot point, and foot sliding during contact.

Every function takes positions (T, 24, 3) in metres, Y up, SMPL joint order, at 60 fps unless ``fps`` says
otherwise; beats are frame indices at the same rate.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from e3d2_core.metrics.beat_align import beat_align_score, motion_beats
from e3d2_core.skeleton import body_frame

MIN_PERIOD, MAX_PERIOD = 0.3, 2.2         # seconds: the lags searched for the motion's own period
TEMPO_TOLERANCE = 0.06
PEAK_MARGIN = 0.1
SPIN_LIMIT = 2 * np.pi                     # rad/s: faster than one turn a second counts as spinning
FEET = (7, 8, 10, 11)                      # ankles and toes
CONTACT_HEIGHT, CONTACT_SPEED = 0.05, 0.4  # a foot point in contact: within 5 cm of the floor, slower than 0.4 m/s
STEP_SMOOTHING = 4 / 60.0                  # s: this Gaussian keeps 70 % of 2-Hz motion, 1 % of 7.5-Hz tremor
STILL_WINDOW = 4.0                         # s: the stretch pose_spread_low looks for the stillest of


def joint_speed(joints: np.ndarray, fps: float = 60.0) -> np.ndarray:
    """(T-1,) mean joint speed, m/s."""
    return np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean(-1) * fps


def motion_period(joints: np.ndarray, fps: float = 60.0) -> float:
    """Seconds between the dance's repeats: the highest autocorrelation peak of the (lightly smoothed, mean-
    removed) joint-speed curve at lags 0.3-2.2 s; NaN when the dance is too short or has no peak there."""
    speed = gaussian_filter1d(joint_speed(joints, fps), 2.0)
    speed = speed - speed.mean()
    lo, hi = int(MIN_PERIOD * fps), int(MAX_PERIOD * fps)
    if len(speed) < 2 * hi or not np.any(speed):
        return float("nan")
    full = np.correlate(speed, speed, mode="full")[len(speed) - 1:]
    overlap = len(speed) - np.arange(len(speed))
    auto = full / overlap / full[0] * len(speed)           # unbiased, lag 0 = 1
    peaks, _ = find_peaks(auto[: hi + 1])
    peaks = peaks[peaks >= lo]
    if len(peaks) == 0:
        return float("nan")
    # a periodic dance peaks at every multiple of its period, nearly equally: take the first peak that is
    # within 10 % of the highest, not a multiple that float noise happens to favour
    strong = peaks[auto[peaks] >= auto[peaks].max() - PEAK_MARGIN * abs(auto[peaks].max())]
    return float(strong[0] / fps)


def beat_period(beats: np.ndarray, fps: float = 60.0) -> float:
    """Median seconds between music beats (frame indices at ``fps``); NaN with fewer than two."""
    beats = np.asarray(beats, np.float64)
    return float(np.median(np.diff(beats)) / fps) if len(beats) > 1 else float("nan")


def tempo_matches(period: float, beat: float, tolerance: float = TEMPO_TOLERANCE) -> bool:
    """True when ``period`` is the beat period, half of it or twice it, within ``tolerance`` (relative)."""
    if not (np.isfinite(period) and np.isfinite(beat)):
        return False
    return any(abs(period - beat * k) <= tolerance * beat * k for k in (0.5, 1.0, 2.0))


def folded_bpm(period: float, music_bpm: float) -> float:
    """The motion tempo (60 / period) moved by factors of two into [music / sqrt 2, music * sqrt 2)."""
    if not (np.isfinite(period) and period > 0):
        return float("nan")
    bpm = 60.0 / period
    while bpm < music_bpm / np.sqrt(2):
        bpm *= 2
    while bpm >= music_bpm * np.sqrt(2):
        bpm /= 2
    return float(bpm)


def bas(joints: np.ndarray, beats: np.ndarray) -> float:
    """BAS (Bailando's definition) of a 60-fps track; NaN without music or motion beats."""
    beats = np.asarray(beats, np.int64)
    beats = beats[beats < len(joints) - 1]
    dance = motion_beats(joints)
    if len(beats) == 0 or len(dance) == 0:
        return float("nan")
    return beat_align_score(beats, dance)


def half_beat_shifted(beats: np.ndarray) -> np.ndarray:
    """Beats moved by half of each beat interval (the off-beats); the last interval repeats at the end."""
    beats = np.asarray(beats, np.float64)
    if len(beats) < 2:
        return beats.astype(np.int64)
    gaps = np.diff(beats)
    return np.round(beats + np.append(gaps, gaps[-1]) / 2).astype(np.int64)


def phase_gain(joints: np.ndarray, beats: np.ndarray) -> float:
    """BAS on the beats minus BAS on the off-beats (60 fps)."""
    return bas(joints, beats) - bas(joints, half_beat_shifted(beats))


def pose_spread(local: np.ndarray) -> float:
    """(T, 24, 3) pelvis-relative, turning-removed joints -> the RMS distance (m) of each joint from its mean
    place, averaged over the joints."""
    return float(np.sqrt(((local - local.mean(0)) ** 2).sum(-1).mean(0)).mean())


def plausibility(joints: np.ndarray, fps: float = 60.0) -> dict:
    """What looks right or wrong besides timing (see the module docstring). Keys: ``speed`` (m/s),
    ``spin_fraction`` (share of frames turning faster than 360 deg/s), ``pelvis_accel`` (mean |a|, m/s^2,
    after 50-ms smoothing), ``lowest_foot`` (m, the lowest ankle/toe point; < 0 is below the floor),
    ``foot_slide`` (m/s, mean horizontal foot speed in contact), ``pose_spread`` (m: the RMS distance of the
    joints from their mean place relative to the pelvis, turning removed, averaged over joints),
    ``pose_spread_low`` (m: the pose spread of the stillest ``STILL_WINDOW`` seconds, windows a second apart; the
    whole take's when it is shorter), ``jitter_share`` (1 - the joint speed after ``STEP_SMOOTHING`` over the raw
    joint speed)."""
    joints = np.asarray(joints, np.float64)
    across = joints[:, 1] - joints[:, 2]                          # left hip - right hip: the body's side axis
    heading = np.unwrap(np.arctan2(across[:, 0], across[:, 2]))
    turn = np.abs(np.diff(gaussian_filter1d(heading, 0.05 * fps))) * fps
    pelvis = gaussian_filter1d(joints[:, 0], 0.05 * fps, axis=0)
    accel = np.linalg.norm(np.diff(pelvis, 2, axis=0), axis=-1) * fps * fps
    feet = joints[:, FEET]
    foot_speed = np.linalg.norm(np.diff(feet[..., [0, 2]], axis=0), axis=-1) * fps   # (T-1, 4) horizontal
    height = feet[1:, :, 1]
    vertical = np.abs(np.diff(feet[..., 1], axis=0)) * fps
    contact = (height < CONTACT_HEIGHT + max(0.0, float(np.percentile(feet[..., 1], 5)))) & (vertical < CONTACT_SPEED)
    local = body_frame(joints) - joints[:, :1]
    window = max(1, int(round(STILL_WINDOW * fps)))
    starts = range(0, max(1, len(local) - window + 1), max(1, int(round(fps))))
    lowest = min(pose_spread(local[a:a + window]) for a in starts)
    speed = float(joint_speed(joints, fps).mean())
    smooth = float(joint_speed(gaussian_filter1d(joints, STEP_SMOOTHING * fps, axis=0), fps).mean())
    return {"speed": speed, "pose_spread": pose_spread(local), "pose_spread_low": lowest, "jitter_share": 1.0 - smooth / speed if speed > 0 else 0.0,
            "spin_fraction": float(np.mean(turn > SPIN_LIMIT)),
            "pelvis_accel": float(accel.mean()), "lowest_foot": float(feet[..., 1].min()),
            "foot_slide": float(foot_speed[contact].mean()) if contact.any() else 0.0}


def follow_measures(joints: np.ndarray, beats: np.ndarray, fps: float = 60.0) -> dict:
    """Every measure of one take: ``period``, ``beat_period``, ``tempo_match``, ``music_bpm``, ``folded_bpm``,
    ``bas``, ``bas_offbeat``, ``phase_gain`` and the :func:`plausibility` keys."""
    period, beat = motion_period(joints, fps), beat_period(beats, fps)
    music_bpm = 60.0 / beat if np.isfinite(beat) else float("nan")
    on, off = bas(joints, beats), bas(joints, half_beat_shifted(beats))
    return {"period": period, "beat_period": beat, "tempo_match": tempo_matches(period, beat),
            "music_bpm": music_bpm, "folded_bpm": folded_bpm(period, music_bpm), "bas": on, "bas_offbeat": off,
            "phase_gain": on - off, **plausibility(joints, fps)}
