"""R_θ features and model, T-REX training on ranked procedural dances, robustness on real AIST++ motion."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from e3d2_core.errors import E3D2Error
from e3d2_core.models.reward import RewardModel, step_features
from e3d2_core.motion import from_z_up, resample_positions_interp
from e3d2_core.training import corrupt
from e3d2_core.training.trex import (RankedGroup, Trajectory, pair_key, pairwise_accuracy, return_per_minute,
                                     snippet_returns, train_trex)
from procedural_dance import dance, music_features

DATA = Path(__file__).parent / "data"
EPS = [0.02, 0.25, 0.5, 0.75, 1.0]
MUSIC_DIM = 8
REAL_TRAIN = ("true_gBR_sBM_cAll_d04_mBR0_ch02_slice0.csv", "true_gLH_sBM_cAll_d18_mLH4_ch02_slice1.csv")
REAL_HELD_OUT = ("true_gJS_sBM_cAll_d01_mJS3_ch02_slice7.csv", "true_gKR_sBM_cAll_d30_mKR2_ch02_slice6.csv")


def real_aist_joints(name: str) -> np.ndarray:
    """A real AIST++ slice (30 fps, Z up, floor offset) as (T, 24, 3) Y-up joints at 60 fps, feet on y = 0."""
    joints = from_z_up(np.loadtxt(DATA / "aistpp" / name, delimiter=",").reshape(-1, 24, 3))
    joints[..., 1] -= joints[..., 1].min()
    return resample_positions_interp(joints, 30.0, 60.0)


def features(joints) -> torch.Tensor:
    return step_features(torch.as_tensor(np.asarray(joints, np.float32))[None], 60.0)[0]


def make_group(rng, steps=64, takes=2, name=""):
    period = rng.uniform(3, 6)
    music = torch.from_numpy(music_features(steps, period, MUSIC_DIM, rng))
    trajs = [Trajectory(features(dance(steps, period, eps, rng).joints()), eps)
             for eps in EPS for _ in range(takes)]
    return RankedGroup(music, trajs, name)


def corruption_group(rng, steps=64, clean=None, kinds=("noise", "shuffle", "slow")):
    """A clean dance (rank 0: beat-locked procedural, or ``clean`` joints) against its corrupted copies (rank 1).
    No loops: a ping-pong of a periodic procedural swing can be that swing."""
    period = rng.uniform(3, 6)
    clean = dance(steps, period, 0.0, rng).joints() if clean is None else clean
    music = torch.from_numpy(music_features(len(clean) // 8, period, MUSIC_DIM, rng))
    trajs = [Trajectory(features(clean), 0.0)]
    trajs += [Trajectory(features(corrupt.corrupt(clean, kind, rng)), 1.0) for kind in kinds]
    return RankedGroup(music, trajs)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small models train faster on one thread, and the test machine's cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    train = [make_group(rng, name=f"train{i}") for i in range(4)]
    held_out = [make_group(rng, name=f"held{i}") for i in range(2)]
    # as in the pipeline, real training dances are corrupted too (slices other than the held-out ones below)
    extra = [corruption_group(rng) for _ in range(4)] + [corruption_group(rng, clean=real_aist_joints(name))
                                                         for name in REAL_TRAIN]
    model = RewardModel({"music_dim": MUSIC_DIM, "hidden": 32, "layers": 3, "ensemble": 2})
    model.fit_normalisation(torch.cat([t.features for g in train for t in g.trajectories]),
                            torch.cat([g.music for g in train]))
    state = train_trex(model, train, held_out, steps=150, batch=24, eval_every=75, extra_train=extra, seed=0,
                       eval_len=24)
    return model, train, held_out, state


def test_features_ignore_position_and_facing():
    rng = np.random.default_rng(1)
    joints = dance(8, 4.0, 0.3, rng).joints()
    angle = 1.1
    rot = np.array([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]])
    moved = joints @ rot.T.astype(np.float32) + np.array([2.0, 0.0, -3.0], np.float32)
    a, b = features(joints), features(moved)
    assert a.shape == (8, 203)
    torch.testing.assert_close(a, b, atol=2e-3, rtol=1e-3)


def test_reward_is_causal_and_snippets_match_the_whole_song():
    torch.manual_seed(0)
    model = RewardModel({"music_dim": MUSIC_DIM, "hidden": 16, "layers": 2, "dropout": 0.0}).eval()
    rng = np.random.default_rng(2)
    feats = features(dance(30, 4.0, 0.3, rng).joints())
    music = torch.from_numpy(music_features(30, 4.0, MUSIC_DIM, rng))
    full = model(feats[None], music[None])[0]
    changed = feats.clone()
    changed[20:] += 5.0
    torch.testing.assert_close(model(changed[None], music[None])[0][:20], full[:20])
    assert not torch.allclose(model(changed[None], music[None])[0][20:], full[20:])
    # a snippet scored with its left context returns exactly the whole song's per-step sum
    group = RankedGroup(music, [Trajectory(feats, 0.0)])
    from e3d2_core.training.trex import _window
    window = _window(group, group.trajectories[0], 12, 10, model.context_steps)
    torch.testing.assert_close(snippet_returns(model, [window], 10)[0], full[12:22].sum())


def test_accuracy_intervals_resample_takes(trained):
    model, _, held_out, _ = trained
    plain = pairwise_accuracy(model, held_out, 24, max_pairs_per_key=None)
    with_intervals = pairwise_accuracy(model, held_out, 24, max_pairs_per_key=None, intervals=200)
    assert set(plain) == set(with_intervals)
    for key, value in with_intervals.items():
        assert value["accuracy"] == plain[key]
        assert 0.0 <= value["low"] <= value["accuracy"] <= value["high"] <= 1.0
    # ε = 0.02 against ε = 1.0 is separated on every take: no resample can lower it
    assert with_intervals["0.02|1.0"] == {"accuracy": 1.0, "low": 1.0, "high": 1.0}
    # with few takes, some pair is uncertain: its interval has width
    assert any(v["high"] - v["low"] > 0.05 for v in with_intervals.values())


def test_held_out_accuracy_per_eps_pair(trained):
    model, _, held_out, state = trained
    accuracy = pairwise_accuracy(model, held_out, 24)
    assert set(accuracy) == {pair_key(a, b) for i, a in enumerate(EPS) for b in EPS[i + 1:]}
    assert "0.02|0.25" in accuracy and "0.5|1.0" in accuracy
    for key, value in accuracy.items():
        lo, hi = map(float, key.split("|"))
        if hi - lo >= 0.25 - 1e-9:
            assert value >= 0.9, (key, value, accuracy)
    # the Figure 3 curve: accuracy per pair was logged for train and held-out at every evaluation
    assert len(state["history"]) >= 2
    assert set(state["history"][-1]["held_out_accuracy"]) == set(accuracy)
    assert state["history"][-1]["train_accuracy"]


def test_return_per_minute_falls_with_eps(trained):
    model, _, held_out, _ = trained
    u_bar = return_per_minute(model, held_out)
    assert list(u_bar) == ["0.02", "0.25", "0.5", "0.75", "1.0"]
    values = list(u_bar.values())
    assert all(a > b for a, b in zip(values, values[1:])), u_bar


def test_real_held_out_motion_beats_its_corruptions(trained):
    """Real AIST++ dance (never seen in training) ranks above the same dance jittered or time-shuffled."""
    model, _, _, _ = trained
    rng = np.random.default_rng(5)
    wins = total = 0
    for name in REAL_HELD_OUT:
        joints = real_aist_joints(name)
        clean = features(joints)
        music = torch.from_numpy(music_features(len(clean), 4.0, MUSIC_DIM, rng))
        for kind in ("noise", "shuffle"):
            for _ in range(10):
                bad = features(corrupt.corrupt(joints, kind, rng))
                with torch.no_grad():
                    r = model(torch.stack([clean, bad]), music.expand(2, -1, -1)).sum(-1)
                wins += int(r[0] > r[1])
                total += 1
    assert wins / total >= 0.9, (wins, total)


def test_held_out_dance_beats_its_slow_motion_copy(trained):
    """The RL exploit the slow-motion pairs exist for: a barely moving copy of a dance must score lower."""
    model, _, _, _ = trained
    rng = np.random.default_rng(5)
    wins = []
    for _ in range(6):
        period = rng.uniform(3, 6)
        joints = dance(64, period, 0.0, rng).joints()
        music = torch.from_numpy(music_features(64, period, MUSIC_DIM, rng))
        for _ in range(5):
            pair = torch.stack([features(joints), features(corrupt.corrupt(joints, "slow", rng))])
            with torch.no_grad():
                r = model(pair, music.expand(2, -1, -1)).sum(-1)
            wins.append(bool(r[0] > r[1]))
    assert np.mean(wins) >= 0.9, np.mean(wins)


def small_setup(seed: int):
    """One short training and one held-out group, and a small untrained R_θ."""
    torch.manual_seed(0)
    rng = np.random.default_rng(seed)
    train, held = [make_group(rng, steps=40)], [make_group(rng, steps=40)]
    return train, held, RewardModel({"music_dim": MUSIC_DIM, "hidden": 16, "layers": 2, "dropout": 0.0})


def test_training_resumes_from_its_state():
    train, held, model = small_setup(3)
    saved = []
    state = train_trex(model, train, held, steps=20, batch=8, eval_every=10, min_len=8, max_len=12,
                       checkpoint_fn=lambda s: saved.append({**s, "history": list(s["history"])}), patience=99)
    assert [h["step"] for h in state["history"]] == [10, 20]
    resumed = RewardModel(model.config)
    again = train_trex(resumed, train, held, steps=20, batch=8, eval_every=10, min_len=8, max_len=12,
                       state=saved[0], patience=99)
    assert again["step"] == 20 and [h["step"] for h in again["history"]] == [10, 20]


def test_slow_motion_and_loop_keep_poses_but_lose_the_dance():
    """The degenerate-dance corruptions: valid poses (bone lengths kept), slowed speed, a repeating cycle."""
    rng = np.random.default_rng(2)
    joints = real_aist_joints("true_gJS_sBM_cAll_d01_mJS3_ch02_slice7.csv")
    speed = lambda j: np.linalg.norm(np.diff(j, axis=0), axis=-1).mean()
    bone = lambda j: np.linalg.norm(j[:, 4] - j[:, 1], axis=-1)            # left hip -> left knee

    slow = corrupt.corrupt(joints, "slow", rng)
    assert slow.shape == joints.shape
    assert speed(slow) < 0.4 * speed(joints)
    assert np.abs(bone(slow) - bone(joints).mean()).max() < 0.01            # interpolation barely shortens bones

    loop = corrupt.corrupt(joints, "loop", rng)
    assert loop.shape == joints.shape
    assert 0.5 * speed(joints) < speed(loop) < 2.0 * speed(joints)
    # ping-pong of an n-frame segment repeats every 2n - 2 frames
    period = next(p for p in range(2, len(loop)) if np.allclose(loop[p:], loop[:-p]))
    assert 0.3 * 60 * 2 - 2 <= period <= 0.8 * 60 * 2
    with pytest.raises(E3D2Error, match="choose from"):
        corrupt.corrupt(joints, "melt", rng)


def test_noise_probe_learns_which_steps_were_random():
    """With per-step noise masks, the training-only probe learns to name the random steps from R_θ's features
    (about half the steps are noisy, so chance is 0.5), and its weights travel with the resumable state."""
    torch.manual_seed(0)
    rng = np.random.default_rng(5)

    def group():
        period = rng.uniform(3, 6)
        music = torch.from_numpy(music_features(48, period, MUSIC_DIM, rng))
        trajs = []
        for eps in EPS:
            motion, noisy = dance(48, period, eps, rng, return_noise=True)
            trajs.append(Trajectory(features(motion.joints()), eps, noise=torch.from_numpy(noisy).float()))
        return RankedGroup(music, trajs)

    train, held = [group() for _ in range(4)], [group()]
    model = RewardModel({"music_dim": MUSIC_DIM, "hidden": 32, "layers": 2, "ensemble": 2})
    model.fit_normalisation(torch.cat([t.features for g in train for t in g.trajectories]),
                            torch.cat([g.music for g in train]))
    state = train_trex(model, train, held, steps=150, batch=16, eval_every=50, min_len=8, max_len=16,
                       noise_weight=1.0, patience=99, lr=1e-3)
    accuracies = [h["noise_probe_accuracy"] for h in state["history"]]
    assert accuracies[-1] >= 0.75, accuracies
    assert set(state["probe"]) == {"heads.0.weight", "heads.0.bias", "heads.1.weight", "heads.1.bias"}
    # the probe is training-only: R_θ's own parameters are unchanged in kind
    assert not any("probe" in name for name in model.state_dict())


def test_weight_averaging_is_what_gets_judged_and_resumed():
    train, held, model = small_setup(4)
    saved = []
    state = train_trex(model, train, held, steps=20, batch=8, eval_every=10, min_len=8, max_len=12, ema=0.9,
                       patience=99, checkpoint_fn=lambda s: saved.append(copy.deepcopy(s)))
    live, averaged = saved[-1]["model"], saved[-1]["averaged"]
    name = "members.0.head.weight"
    assert not torch.equal(live[name], averaged[name])          # the average lags the live weights
    best = max(saved, key=lambda s: s["history"][-1]["held_out_mean"])
    torch.testing.assert_close(model.state_dict()[name], best["averaged"][name])   # what was judged is returned
    # resuming restores the average: one more step moves it from the saved average toward the new live weights
    again = train_trex(RewardModel(model.config), train, held, steps=11, batch=8, eval_every=1, min_len=8,
                       max_len=12, ema=0.9, patience=99, state=copy.deepcopy(saved[0]))
    decay = min(0.9, 12 / 21)
    expected = decay * saved[0]["averaged"][name] + (1 - decay) * again["model"][name]
    torch.testing.assert_close(again["averaged"][name], expected)


def test_frame_velocities_extend_the_step_features_unpooled():
    """With ``frame_velocities`` each step also carries its 8 frames' joint velocities in the heading frame: the
    pooled part is unchanged, the new part averages back to the pooled velocity, and the model reads it."""
    rng = np.random.default_rng(6)
    joints = torch.as_tensor(dance(6, 4.0, 0.5, rng).joints())[None]
    plain = step_features(joints, 60.0)
    detailed = step_features(joints, 60.0, frame_velocities=True)
    assert detailed.shape == (1, 6, 203 + 8 * 72)
    torch.testing.assert_close(detailed[..., :203], plain)
    frames = detailed[..., 203:].reshape(1, 6, 8, 72)
    torch.testing.assert_close(frames.mean(2), plain[..., 72:144])   # the step-mean velocities, in the same frame
    model = RewardModel({"music_dim": MUSIC_DIM, "hidden": 16, "layers": 2, "frame_velocities": True})
    assert model.features(joints).shape == detailed.shape
    assert model.reward_joints(joints, torch.zeros(1, 6, MUSIC_DIM)).shape == (1, 6)


def test_frame_encoder_reads_each_steps_frames_causally_and_needs_frame_velocities():
    """``frame_encoder`` adds a per-frame encoder over each step's frame velocities: a jolt in one frame of step 3
    changes the reward from step 3 on, never before it; without frame velocities there is nothing to encode."""
    with pytest.raises(E3D2Error, match="frame_encoder needs frame_velocities"):
        RewardModel({"music_dim": MUSIC_DIM, "hidden": 16, "frame_encoder": 8})
    torch.manual_seed(0)
    model = RewardModel({"music_dim": MUSIC_DIM, "hidden": 16, "layers": 2, "frame_velocities": True,
                         "frame_encoder": 8}).eval()
    rng = np.random.default_rng(7)
    feats = step_features(torch.as_tensor(dance(6, 4.0, 0.5, rng).joints())[None], 60.0, frame_velocities=True)
    music = torch.zeros(1, 6, MUSIC_DIM)
    jolted = feats.clone()
    jolted[0, 3, 203 + 5 * 72:203 + 6 * 72] += 3.0          # frame 5 of step 3: every joint jumps
    with torch.no_grad():
        before, after = model(feats, music), model(jolted, music)
        encoded = model.members[0].frame_encoder(feats[..., 203:])
    assert encoded.shape == (1, 6, 16)
    seam = feats.clone()
    seam[0, 2, 203 + 7 * 72:203 + 8 * 72] += 3.0            # the last frame of step 2: step 3 sees the jump into it
    with torch.no_grad():
        across = model.members[0].frame_encoder(seam[..., 203:])
    torch.testing.assert_close(across[:, :2], encoded[:, :2])
    assert not torch.allclose(across[:, 3], encoded[:, 3]) and not torch.allclose(across[:, 2], encoded[:, 2])
    torch.testing.assert_close(across[:, 4:], encoded[:, 4:])
    torch.testing.assert_close(after[:, :3], before[:, :3])
    assert not torch.allclose(after[:, 3], before[:, 3])
    # checkpoints from before the option (no key in their config) still build the plain model
    plain = RewardModel({k: v for k, v in model.config.items() if k != "frame_encoder"})
    assert plain.members[0].frame_encoder is None and plain.config["frame_encoder"] == 0
