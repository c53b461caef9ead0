"""Scoring any motion with R_θ: resampling, overlap, refusals, reward files, the hand-designed reward."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from e3d2_core import api
from e3d2_core.errors import E3D2Error
from e3d2_core.models.reward import RewardModel
from e3d2_core.scoring import motion_joints, reward_entry, save_reward_file
from e3d2_core.training.hand_reward import hand_reward, orientation_reward
from procedural_dance import dance, music_features


@pytest.fixture()
def reward_file(tmp_path):
    torch.manual_seed(0)
    model = RewardModel({"music_dim": 8, "hidden": 16, "layers": 2}).eval()
    return save_reward_file(tmp_path / "reward.pt", reward_entry(model, policy_fingerprint=None,
                                                                 music_kind="compact"))


def features(steps, seconds=None):
    music = music_features(steps, 4.0, 8, np.random.default_rng(0))
    return SimpleNamespace(features=music, fps=7.5, duration=seconds or steps / 7.5)


def test_score_resamples_and_reports_per_step_values(reward_file, tmp_path):
    motion = dance(20, 4.0, 0.0, np.random.default_rng(1))          # 160 frames at 60 fps = 20 steps
    result = api.score(motion, features(20), checkpoint=reward_file)
    assert len(result.values) == len(result.times) == 20 and not result.note
    assert result.times[0] == pytest.approx(4 / 60, abs=1e-6) and result.total == pytest.approx(sum(result.values))
    assert result.per_minute == pytest.approx(result.total / (160 / 60 / 60))
    at30 = api.score(motion.resample(30.0), features(20), checkpoint=reward_file)   # resampled back to 60 fps
    assert len(at30.values) == 19                                   # the last half-frame is gone
    path = motion.save(tmp_path / "m.npz")
    assert api.score(path, features(20), checkpoint=reward_file).total == pytest.approx(result.total, rel=1e-5)


def test_score_uses_the_overlap_and_says_so(reward_file):
    motion = dance(20, 4.0, 0.0, np.random.default_rng(1))
    result = api.score(motion, features(12), checkpoint=reward_file)
    assert len(result.values) == 12 and "overlap" in result.note


def test_score_refuses_what_cannot_be_mapped(reward_file, tmp_path):
    with pytest.raises(E3D2Error, match="24 SMPL joints"):
        motion_joints(np.zeros((100, 31, 3)), 60.0, motion_fps=30.0)
    with pytest.raises(E3D2Error, match="frame rate"):
        motion_joints(np.zeros((100, 72)), 60.0)
    with pytest.raises(E3D2Error, match="coarser"):
        motion_joints(np.zeros((100, 24, 3)), 60.0, motion_fps=5.0)
    with pytest.raises(E3D2Error, match="too short"):
        api.score(np.zeros((4, 24, 3)), features(4), checkpoint=reward_file, motion_fps=60.0)
    with pytest.raises(E3D2Error, match="8-d"):
        api.score(dance(4, 4.0, 0.0, np.random.default_rng(0)),
                  SimpleNamespace(features=np.zeros((4, 37)), fps=7.5, duration=0.5), checkpoint=reward_file)
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(E3D2Error, match="unreadable checkpoint"):
        api.score(np.zeros((80, 24, 3)), features(10), checkpoint=tmp_path / "bad.pt", motion_fps=60.0)


def test_hand_reward_prefers_beat_locked_motion_and_consistent_facing():
    rng = np.random.default_rng(0)
    steps, period = 60, 4.0
    beats = np.zeros((1, steps), np.float32)
    beats[0, ::4] = 1.0
    locked = dance(steps, period, 0.0, rng).joints()[None]
    noisy = dance(steps, period, 1.0, rng).joints()[None]
    r_locked = hand_reward(locked, beats, 60.0, orientation_weight=0.0)
    assert set(np.unique(r_locked.numpy())) <= {-5.0, 5.0}
    assert r_locked.shape == (1, steps)
    # an upper body turned 180 degrees against the lower body is penalised by the orientation term
    twisted = locked.copy()
    upper = [3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23]
    pelvis = twisted[..., :1, :]
    rel = twisted[..., upper, :] - pelvis
    rel[..., [0, 2]] *= -1.0
    twisted[..., upper, :] = pelvis + rel
    assert orientation_reward(twisted).mean() < 0 < orientation_reward(locked).mean()
    assert hand_reward(noisy, beats, 60.0).shape == (1, steps)
