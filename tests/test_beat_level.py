"""The metrical level a dance steps on: a slow song the tracker doubled is danced on its beats."""
import numpy as np
import pytest
import soundfile as sf

from e3d2_core import audio, beat_level

SR = 22050


def drum_track(bpm: float, seconds: float = 20.0, hat: float = 0.12):
    """Kick + clap on every beat, a quieter hat half-way: (samples, beat times s)."""
    rng = np.random.default_rng(0)
    y = np.zeros(int(seconds * SR))
    t = np.arange(int(0.12 * SR)) / SR
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-t * 30)) * t) * np.exp(-t * 18)
    clap = rng.standard_normal(int(0.08 * SR)) * np.exp(-np.arange(int(0.08 * SR)) / SR * 40) * 0.7
    noise = rng.standard_normal(int(0.03 * SR)) * np.exp(-np.arange(int(0.03 * SR)) / SR * 120) * hat
    period = 60.0 / bpm
    beats = np.arange(0.25, seconds - 0.2, period)
    for k, beat in enumerate(beats):
        i = int(beat * SR)
        y[i:i + len(kick)] += kick[: len(y) - i]
        y[i:i + len(clap)] += clap[: len(y) - i] * (1.0 if k % 2 else 0.6)
        j = int((beat + period / 2) * SR)
        y[j:j + len(noise)] += noise[: max(0, len(y) - j)]
    return (0.5 * y / np.abs(y).max()).astype(np.float32), beats


def on_beat_share(estimate, truth, tolerance=0.07):
    return float(np.mean([np.min(np.abs(truth - e)) <= tolerance for e in estimate]))


def test_a_doubled_slow_groove_is_danced_on_its_beats(tmp_path):
    y, truth = drum_track(70.0)
    path = tmp_path / "slow.wav"
    sf.write(path, y, SR)
    tracked = audio.tracked_beats(path) / 60.0
    # the premise: the tracker runs at twice the tempo, half of its beats on the hats
    assert abs(np.median(np.diff(tracked)) - 60 / 140) < 0.03
    assert on_beat_share(tracked, truth) < 0.7
    danced = beat_level.dance_beats(y, SR, tracked)
    assert abs(np.median(np.diff(danced)) - 60 / 70) < 0.03
    assert on_beat_share(danced, truth) > 0.9


def test_a_song_tracked_at_its_tempo_keeps_its_beats(tmp_path):
    y, truth = drum_track(115.0)
    path = tmp_path / "steady.wav"
    sf.write(path, y, SR)
    tracked = audio.tracked_beats(path) / 60.0
    assert on_beat_share(tracked, truth) > 0.9
    np.testing.assert_array_equal(beat_level.dance_beats(y, SR, tracked), tracked)


FPS = SR / beat_level.HOP


def grid(start: float, period: float, seconds: float = 30.0) -> np.ndarray:
    return np.round(np.arange(start, seconds - 0.5, period) * FPS).astype(np.int64)


def envelope(frames, strength, onset=None):
    onset = np.zeros(int(30 * FPS)) if onset is None else onset
    onset[frames] = np.maximum(onset[frames], strength)
    return onset


def tracker(start: float, tempos):
    """A stand-in for beat_track: the grid of the song's tempo level nearest the asked bpm."""
    return lambda bpm: grid(start, 60.0 / min(tempos, key=lambda t: abs(np.log(t / bpm))))


def test_levels_are_chosen_by_onset_strength():
    # 70 bpm, loud beats and soft off-beats, tracked at 140: the half-tempo grid is the loud one
    beats = grid(0.5, 60 / 70)
    onset = envelope(beats, 10.0, envelope(grid(0.5 + 30 / 70, 60 / 70), 4.0))
    ratio, chosen = beat_level.choose_level(onset, tracker(0.5, (70, 140, 210)), grid(0.5, 30 / 70))
    assert ratio == 0.5 and onset[chosen].mean() > 9.0
    # 140 bpm with every beat equally loud: kept
    even = grid(0.5, 60 / 140)
    assert beat_level.choose_level(envelope(even, 10.0), tracker(0.5, (70, 140, 210)), even)[0] == 1.0
    # 150 bpm tracked at two thirds of it (100 bpm): half of those beats fall between notes; 1.5x is taken
    notes = envelope(grid(0.5, 0.4), 10.0)
    ratio, chosen = beat_level.choose_level(notes, tracker(0.5, (50, 100, 150)), grid(0.5, 0.6))
    assert ratio == 1.5 and notes[chosen].mean() > 9.0


def test_few_beats_come_back_unchanged():
    y = np.zeros(SR * 5, np.float32)
    beats = np.array([0.5, 1.0, 1.5])
    np.testing.assert_array_equal(beat_level.dance_beats(y, SR, beats), beats)


def test_a_songs_dance_beats_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("E3D2_CACHE", str(tmp_path / "cache"))
    y, truth = drum_track(70.0)
    path = tmp_path / "slow.wav"
    sf.write(path, y, SR)
    tracked = audio.tracked_beats(path)
    first = beat_level.song_dance_beats(path, tracked, 60.0, "songhash")
    assert on_beat_share(first / 60.0, truth) > 0.9

    def no_tracking(*args, **kwargs):
        raise AssertionError("re-tracked a cached song")
    monkeypatch.setattr(beat_level, "dance_beats", no_tracking)
    np.testing.assert_array_equal(beat_level.song_dance_beats(path, tracked, 60.0, "songhash"), first)
    with pytest.raises(AssertionError):      # other tracked beats (another song under that hash) are not served
        beat_level.song_dance_beats(path, tracked[1:], 60.0, "songhash")
