"""Kinematic beats, the bounded DP alignment and the time warp, on motions with known step times."""
from __future__ import annotations

import numpy as np
import pytest

from e3d2_core.errors import E3D2Error
from e3d2_core.motion import Motion
from e3d2_core.training.beat_align import align_events, kinematic_beats, nearest_distance, warp_motion

FPS = 60.0


def _stepping_motion(step_times, duration):
    """A body whose joints swing between steps and stop at each step time (speed minima at the steps)."""
    t = np.arange(int(duration * FPS)) / FPS
    edges = np.concatenate([[0.0], step_times, [duration]])
    k = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(edges) - 2)
    phase = (t - edges[k]) / (edges[k + 1] - edges[k])                    # 0..1 inside each step
    swing = 0.5 * (1 - np.cos(np.pi * phase)) + k                          # eases in and out: still at steps
    poses = np.zeros((len(t), 24, 3), np.float32)
    poses[:, 1, 0] = 0.4 * np.cos(np.pi * swing)                          # legs and arms swing
    poses[:, 2, 0] = -0.4 * np.cos(np.pi * swing)
    poses[:, 16, 2] = 0.5 * np.cos(np.pi * swing)
    trans = np.stack([0.1 * swing, np.full_like(t, 0.9), np.zeros_like(t)], -1)
    return Motion(poses, trans, FPS)


def test_kinematic_beats_find_the_steps():
    steps = np.cumsum(np.full(12, 0.55))
    motion = _stepping_motion(steps[:-1], steps[-1])
    found = kinematic_beats(motion.joints(), FPS) / FPS
    assert len(found) >= 9
    assert np.median(nearest_distance(found, steps[:-1])) < 1.5 / FPS


def test_alignment_respects_speed_bounds_and_matches_a_warped_copy():
    beats = np.arange(0, 30, 0.5)
    rng = np.random.default_rng(0)
    true_rate = rng.uniform(0.8, 1.25, size=len(beats) - 1)                # the motion's own wandering tempo
    events = np.concatenate([[1.0], 1.0 + np.cumsum(np.diff(beats) / true_rate)])
    events = np.delete(events, [7, 19])                                      # two pauses (skipped beats)
    a = align_events(events, beats)
    assert len(a) >= len(events) - 2
    assert a.rates.min() >= 0.7 and a.rates.max() <= 1.4
    assert np.all(np.diff(a.motion_times) > 0) and np.all(np.diff(a.music_times) > 0)
    warped = np.interp(events[(events >= a.motion_times[0]) & (events <= a.motion_times[-1])],
                       a.motion_times, a.music_times)
    assert np.median(nearest_distance(warped, beats)) < 1e-9


def test_alignment_refuses_what_cannot_fit():
    with pytest.raises(E3D2Error, match="cannot align"):
        align_events([1.0], [0.5, 1.0])
    with pytest.raises(E3D2Error, match="no two motion beats"):                # 3x faster than any allowed rate
        align_events(np.arange(0, 5, 0.1), np.arange(0, 50, 3.0))


def test_warp_puts_kinematic_beats_on_music_beats():
    rng = np.random.default_rng(1)
    steps = np.cumsum(rng.uniform(0.42, 0.7, size=30))                      # 86-143 "bpm", wandering
    motion = _stepping_motion(steps[:-1], steps[-1])
    events = kinematic_beats(motion.joints(), FPS) / FPS
    beats = np.arange(0.25, 40, 0.5)
    a = align_events(events, beats)
    start = np.ceil(a.music_times[0] * 7.5) / 7.5
    frames = int((a.music_times[-1] - start) * FPS) // 8 * 8
    warped = warp_motion(motion, a, fps=FPS, start=start, frames=frames)
    assert warped.num_frames == frames and warped.fps == FPS
    after = start + kinematic_beats(warped.joints(), FPS) / FPS
    before = events - a.motion_times[0] + a.music_times[0]
    assert np.median(nearest_distance(after, beats)) <= 2 / FPS
    assert np.median(nearest_distance(after, beats)) < 0.5 * np.median(nearest_distance(before, beats))


def test_sample_motion_at_frame_times_is_identity():
    motion = _stepping_motion(np.array([0.5, 1.0]), 1.5)
    poses, trans = motion.sample(np.arange(motion.num_frames) / FPS)
    assert np.allclose(poses, motion.poses, atol=1e-5) and np.allclose(trans, motion.trans, atol=1e-6)
