"""Which beats a dance steps on: the tracker's beats, or the metrical level a listener would dance to.

librosa's tracker prefers tempos near 120 bpm. On a slow song it often returns twice the tempo, taking every
off-beat for a beat (a 70-bpm groove tracked at 140), and on some songs two thirds of it (every other tracked
beat then falls between two real ones). A dance locked to such a grid steps on the off-beats as often as on
the beats. :func:`dance_beats` re-tracks the song at the neighbouring levels and keeps the grid whose beats land
on the strongest onsets:

* half the tempo, when the tracked tempo is above ``HALF_ABOVE_BPM`` and the half-tempo grid's beats carry at
  least ``HALF_GAIN`` times the onset strength (its beats are the loud ones of every pair);
* one and a half times the tempo (up to ``MAX_BPM``), when that grid's beats are at least as strong
  (``FASTER_GAIN``): a two-thirds error puts half of its beats between notes, the right grid none.

Measured on 20 MIDI renders with exact beats and 8 steady drum tracks (docs/music-following.md). Used for the
beat guide and the beat lock; the music features keep the tracker's beats the models were trained on.
"""
from __future__ import annotations

import numpy as np

SR, HOP = 22050, 512
HALF_ABOVE_BPM, HALF_GAIN = 130.0, 1.15
FASTER_GAIN, MAX_BPM = 1.0, 200.0
TIGHTNESS = 400.0          # beat_track's tightness: hold the grid to the asked tempo


def bpm_of(frames: np.ndarray, fps: float) -> float:
    """Tempo of beat ``frames`` at ``fps``: 60 over the median beat interval (at least two beats)."""
    return 60.0 * fps / float(np.median(np.diff(np.asarray(frames, np.float64))))


def onset_at(onset: np.ndarray, frames: np.ndarray) -> float:
    """Mean onset strength at ``frames`` (each the maximum within one frame either side)."""
    frames = frames[(frames >= 0) & (frames < len(onset))]
    if len(frames) == 0:
        return 0.0
    return float(np.mean([onset[max(0, f - 1): f + 2].max() for f in frames]))


def choose_level(onset: np.ndarray, track, base: np.ndarray) -> tuple[float, np.ndarray]:
    """(tempo ratio to the tracker's: 1, 1.5 or 0.5; beat frames) of the metrical level to dance to.

    Args:
        onset: (N,) onset strength envelope.
        track: ``track(bpm) -> (K,) beat frames`` of ``onset`` held near ``bpm``.
        base: (K,) the tracker's beat frames on ``onset``'s clock.
    """
    if len(base) < 4:
        return 1.0, base
    bpm = bpm_of(base, SR / HOP)
    strength = onset_at(onset, base)
    if strength <= 0:
        return 1.0, base
    if bpm * 1.5 <= MAX_BPM:
        faster = track(bpm * 1.5)
        if len(faster) >= 4 and onset_at(onset, faster) >= FASTER_GAIN * strength:
            return 1.5, faster
    if bpm > HALF_ABOVE_BPM:
        half = track(bpm / 2)
        if len(half) >= 4 and onset_at(onset, half) >= HALF_GAIN * strength:
            return 0.5, half
    return 1.0, base


def dance_beats(y: np.ndarray, sr: float, beat_times: np.ndarray) -> np.ndarray:
    """(K,) seconds: the beats to dance to, given the audio ``y`` at ``sr`` and the tracker's ``beat_times``
    (seconds). Fewer than 4 tracked beats come back unchanged."""
    import librosa

    beat_times = np.asarray(beat_times, np.float64)
    if len(beat_times) < 4:
        return beat_times
    if sr != SR:
        y = librosa.resample(np.asarray(y, np.float32), orig_sr=sr, target_sr=SR)
    onset = librosa.onset.onset_strength(y=np.asarray(y, np.float32), sr=SR, hop_length=HOP)

    def track(bpm: float) -> np.ndarray:
        _, frames = librosa.beat.beat_track(onset_envelope=onset, sr=SR, hop_length=HOP, bpm=bpm,
                                            tightness=TIGHTNESS)
        return np.asarray(frames, np.int64)

    base = librosa.time_to_frames(beat_times, sr=SR, hop_length=HOP)
    level, frames = choose_level(onset, track, base)
    if level == 1.0:
        return beat_times
    return librosa.frames_to_time(frames, sr=SR, hop_length=HOP)


CACHE_VERSION = 1


def song_dance_beats(path, beat_frames: np.ndarray, fps: float, audio_hash: str) -> np.ndarray:
    """(K,) int64 frames at ``fps``: :func:`dance_beats` of the song at ``path`` (``beat_frames``: the tracker's,
    at ``fps``), kept in the feature cache under the song's ``audio_hash`` so that a second dance to the same
    song does not re-track it."""
    from e3d2_core.audio import load_audio
    from e3d2_core.fileio import atomic_path
    from e3d2_core.paths import cache_dir

    beat_frames = np.asarray(beat_frames, np.int64)
    try:
        cached = cache_dir() / "features" / f"{audio_hash}_dance_beats_{fps:g}fps_v{CACHE_VERSION}.npz"
    except OSError:
        cached = None
    if cached is not None and cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as data:
                if np.array_equal(data["tracked"], beat_frames):
                    return np.asarray(data["beats"], np.int64)
        except Exception:       # unreadable entry: recompute and overwrite it
            pass
    y, sr = load_audio(path, sr=SR)
    times = dance_beats(y, sr, beat_frames / float(fps))
    beats = np.unique(np.round(times * fps).astype(np.int64))
    if cached is not None:
        try:
            with atomic_path(cached) as tmp:
                np.savez(tmp, tracked=beat_frames, beats=beats)
        except OSError:
            pass
    return beats
