"""Following the music: code-rate beat columns, the beat lock, the music-follow measures, the offbeat corruption."""
from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from e3d2_core.audio import BEAT_COLUMN, beat_phase, extract_features
from e3d2_core.beat_lock import BeatLockWarning, beat_lock
from e3d2_core.errors import E3D2Error
from e3d2_core.metrics import music_follow as mf
from e3d2_core.motion import Motion
from e3d2_core.training.beat_align import kinematic_beats, nearest_distance
from e3d2_core.training.corrupt import corrupt, offbeat_shift

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
FPS = 60.0


def swinging_dance(seconds: float, period: float, offset: float) -> Motion:
    """Arms and legs swing back and forth; the body stops (a kinematic beat) at ``offset + k * period``."""
    t = np.arange(int(seconds * FPS)) / FPS
    swing = np.cos(np.pi * (t - offset) / period)          # extremes (speed 0) at offset + k * period
    poses = np.zeros((len(t), 24, 3))
    for joint, sign in ((16, 1), (17, -1), (1, 0.4), (2, -0.4)):   # shoulders, hips
        poses[:, joint, 0] = 0.8 * sign * swing
    trans = np.zeros((len(t), 3))
    trans[:, 1] = 0.95
    return Motion(poses, trans, FPS)


# ------------------------------------------------------------------------------------------- code-rate beats
def test_compact_code_rate_beat_columns_come_from_the_motion_rate_beats():
    song = DATA / "loop_amen.flac"
    low, high = extract_features(song, fps=7.5, kind="compact"), extract_features(song, fps=60, kind="compact")
    assert len(high.beat_frames) >= 3
    positions = high.beat_frames / 8.0                     # the 60-fps beats on the 7.5-Hz clock
    assert np.array_equal(low.beat_frames, np.unique(np.round(positions).astype(np.int64)))
    assert np.flatnonzero(low.features[:, BEAT_COLUMN["compact"]]).tolist() == low.beat_frames.tolist()
    phase = beat_phase(positions, len(low.features))
    np.testing.assert_allclose(low.features[:, 34], np.sin(2 * np.pi * phase), atol=1e-5)
    np.testing.assert_allclose(low.features[:, 35], np.cos(2 * np.pi * phase), atol=1e-5)
    assert low.tempo == pytest.approx(high.tempo)


def test_known_beat_times_replace_the_tracked_beats():
    song = DATA / "loop_amen.flac"
    beats = np.array([0.4, 0.8, 1.2])                      # rows 3, 6, 9 at 7.5 Hz
    result = extract_features(song, fps=7.5, kind="compact", beat_times=beats)
    assert result.beat_frames.tolist() == [3, 6, 9] and result.tempo == pytest.approx(150.0)
    assert result.features[3, 35] == pytest.approx(1.0, abs=1e-6)       # phase 0 exactly on a beat
    assert result.features[4, 34] == pytest.approx(np.sin(2 * np.pi / 3), abs=1e-5)
    with pytest.raises(E3D2Error, match="increasing"):
        extract_features(song, fps=7.5, kind="compact", beat_times=[1.0, 0.5])
    with pytest.raises(E3D2Error, match="not both"):
        extract_features(song, fps=7.5, kind="compact", beat_times=beats, bpm=120)


# ------------------------------------------------------------------------------------------------ beat lock
def test_beat_lock_moves_the_kinematic_beats_onto_the_music_beats():
    period = 0.6
    dance = swinging_dance(12.0, period, offset=0.304)     # stops half a beat off the music (between frames)
    music = np.arange(0.0, 12.0, period)
    before = kinematic_beats(dance.joints(), FPS) / FPS
    assert np.median(nearest_distance(before, music)) > 0.25
    locked = beat_lock(dance, music, strength=1.0)
    after = kinematic_beats(locked.joints(), FPS) / FPS
    assert np.median(nearest_distance(after, music)) < 0.04
    half = beat_lock(dance, music, strength=0.5)
    middle = kinematic_beats(half.joints(), FPS) / FPS
    assert 0.08 < np.median(nearest_distance(middle, music)) < 0.22
    # same length and rate, only the dance's own poses (replayed, not extrapolated), and the phase measure sees it
    assert locked.num_frames == dance.num_frames and locked.fps == dance.fps
    assert np.abs(locked.poses).max() <= np.abs(dance.poses).max() + 1e-5
    beats = np.round(music * FPS).astype(np.int64)
    assert mf.phase_gain(locked.joints(), beats) > 0.2 > -0.2 > mf.phase_gain(dance.joints(), beats)
    info = locked.meta["beat_lock"]
    assert info["strength"] == 1.0 and info["matched"] >= 15 and 0.75 <= info["rate_min"] <= info["rate_max"] <= 1.34


def test_beat_lock_strength_zero_is_the_raw_dance_and_bad_strength_is_refused():
    dance = swinging_dance(4.0, 0.5, offset=0.25)
    same = beat_lock(dance, np.arange(0, 4, 0.5), strength=0.0)
    assert np.array_equal(same.poses, dance.poses) and np.array_equal(same.trans, dance.trans)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(E3D2Error, match="between 0 and 1"):
            beat_lock(dance, np.arange(0, 4, 0.5), strength=bad)


def test_beat_lock_without_beats_warns_once_and_keeps_the_dance():
    dance = swinging_dance(4.0, 0.5, offset=0.25)
    for beats in (np.zeros(0), np.array([1.0])):
        with pytest.warns(BeatLockWarning, match="no beats"):
            out = beat_lock(dance, beats)
        assert np.array_equal(out.poses, dance.poses)
        assert "skipped" in out.meta["beat_lock"]
    still = Motion(np.zeros((240, 24, 3)), np.tile([0.0, 0.95, 0.0], (240, 1)), FPS)
    with pytest.warns(BeatLockWarning, match="kinematic beats"):
        beat_lock(still, np.arange(0, 4, 0.5))


def test_cli_beat_lock_on_beatless_audio_gives_the_raw_dance_with_one_warning(tmp_path):
    drone = tmp_path / "drone.wav"
    t = np.arange(int(4.0 * 22050)) / 22050
    sf.write(drone, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 22050)
    out = tmp_path / "dance.npz"
    done = subprocess.run([sys.executable, "-m", "e3d2_core.cli", "generate", str(drone), "-o", str(out),
                           "--seconds", "3", "--quiet", "--beat-lock", "1"], capture_output=True, text=True,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr
    warning_lines = [line for line in done.stderr.splitlines() if "beat lock" in line]
    assert warning_lines == [line for line in warning_lines if line.startswith("e3d2: warning: beat lock skipped")]
    assert len(warning_lines) == 1 and "Traceback" not in done.stderr
    assert "skipped" in Motion.load(out).meta["beat_lock"]
    bad = subprocess.run([sys.executable, "-m", "e3d2_core.cli", "generate", str(drone), "-o", str(out),
                          "--beat-lock", "2"], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "beat_lock must be a number from 0 to 1" in bad.stderr


# ----------------------------------------------------------------------------------------- follow measures
def test_motion_period_tempo_match_and_octave_folding():
    for period in (0.45, 0.6, 0.8):
        joints = swinging_dance(20.0, period, offset=0.1).joints()
        assert mf.motion_period(joints) == pytest.approx(period, rel=0.03)
    assert mf.tempo_matches(1.2, 0.6) and mf.tempo_matches(0.3, 0.6) and mf.tempo_matches(0.62, 0.6)
    assert not mf.tempo_matches(0.9, 0.6) and not mf.tempo_matches(float("nan"), 0.6)
    assert mf.folded_bpm(0.3, 100.0) == pytest.approx(100.0)        # 200 bpm folded down an octave
    assert mf.folded_bpm(1.2, 100.0) == pytest.approx(100.0)        # 50 bpm folded up
    assert mf.folded_bpm(0.5, 100.0) == pytest.approx(120.0)


def test_follow_measures_on_real_dance():
    from e3d2_core.io import load_motion_file
    salsa = load_motion_file(DATA / "cmu_salsa_60_01_clip.bvh", fps=60)
    measures = mf.plausibility(salsa.joints())
    assert 0.2 < measures["speed"] < 1.5                   # real speed, not the double-speed reading
    assert measures["lowest_foot"] > -0.02 and measures["pelvis_accel"] < 20
    assert 0.0 <= measures["spin_fraction"] < 0.2
    fast = load_motion_file(DATA / "cmu_salsa_60_01_clip.bvh")     # the file's own (wrong) 120 fps
    assert mf.plausibility(fast.joints(), fast.fps)["speed"] == pytest.approx(2 * measures["speed"], rel=0.02)


def test_a_trembling_held_pose_is_told_from_a_dance():
    """The frozen dance a too-strong beat guide made: one pose held, trembling at the 7.5-Hz code rate. It can
    be as fast as a dance, but its poses do not range and most of its speed is tremor."""
    dance = swinging_dance(10.0, 0.5, offset=0.1)
    t = np.arange(len(dance.poses)) / FPS
    tremble = np.zeros_like(dance.poses)
    tremble[:, [16, 17, 1, 2], 0] = 0.15 * np.sin(2 * np.pi * 7.5 * t)[:, None]     # the dance's own joints
    held = Motion(dance.poses[:1] + tremble, dance.trans, FPS)
    moving, frozen = mf.plausibility(dance.joints()), mf.plausibility(held.joints())
    assert frozen["speed"] > moving["speed"]                      # speed alone would call it the livelier
    assert frozen["pose_spread"] < 0.5 * moving["pose_spread"]
    assert frozen["jitter_share"] > 0.8 > 0.3 > moving["jitter_share"]
    from e3d2_core.io import load_motion_file
    salsa = mf.plausibility(load_motion_file(DATA / "cmu_salsa_60_01_clip.bvh", fps=60).joints())
    assert salsa["pose_spread"] > 0.05 and salsa["jitter_share"] < 0.3


def test_a_dance_that_stops_for_a_while_shows_in_its_stillest_stretch():
    """A pose held for 5 s of a 12-s dance barely moves the whole take's spread, but its stillest 4 s are still."""
    dance = swinging_dance(12.0, 0.5, offset=0.1)
    poses = dance.poses.copy()
    poses[240:540] = poses[240]                                     # 4-9 s: one pose held
    stopping = Motion(poses, dance.trans, FPS)
    moving, stopped = mf.plausibility(dance.joints()), mf.plausibility(stopping.joints())
    assert stopped["pose_spread"] > 0.7 * moving["pose_spread"]
    assert stopped["pose_spread_low"] < 0.05 * moving["pose_spread_low"]
    assert moving["pose_spread_low"] > 0.7 * moving["pose_spread"]       # a steady dance is as wide throughout
    short = mf.plausibility(dance.joints()[:120])                         # 2 s: the whole take is its stretch
    assert short["pose_spread_low"] == pytest.approx(short["pose_spread"])


# ---------------------------------------------------------------------------------------------- corruption
def test_offbeat_corruption_shifts_the_dance_by_about_half_a_beat():
    rng = np.random.default_rng(0)
    ramp = np.arange(300, dtype=np.float64)[:, None, None] * np.ones((1, 24, 3))
    shifts = []
    for _ in range(20):
        moved = offbeat_shift(ramp, rng, beat_period=36.0)
        shifts.append(float(np.median(moved[60:240, 0, 0] - ramp[60:240, 0, 0])))
    assert all(0.35 * 36 - 1e-6 <= abs(s) <= 0.65 * 36 + 1e-6 for s in shifts)
    assert min(shifts) < 0 < max(shifts)
    with pytest.raises(ValueError, match="beat period"):
        corrupt(ramp, "offbeat", rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert corrupt(ramp, "offbeat", rng, beat_period=20.0).shape == ramp.shape


def test_the_add_on_request_carries_the_beat_lock_to_the_generator():
    from e3d2_core import serve
    seen = {}

    def recording_generate(audio, **kwargs):
        seen.update(kwargs)
        dance = swinging_dance(2.0, 0.5, offset=0.1)
        return [dance.copy(meta={})]

    request = {"op": "generate", "audio": str(DATA / "loop_amen.flac"), "fps": 30, "beat_lock": 0.25}
    paths = serve.generate_motions(request, lambda f, m: None, lambda: False, recording_generate)
    assert seen["beat_lock"] == 0.25 and len(paths) == 1
    serve.generate_motions({**request, "beat_lock": None}, lambda f, m: None, lambda: False, recording_generate)
    assert seen["beat_lock"] is None                       # absent: the product default (api.BEAT_LOCK_DEFAULT)
