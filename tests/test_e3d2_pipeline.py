"""The E3D2 stages end to end on a micro run: vqvae -> bc -> demos -> reward -> rl (+ rl_hand), real models."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from e3d2_core.errors import E3D2Error
from e3d2_core.scoring import load_reward, score_arrays
from e3d2_core.training import stages
from e3d2_core.training.demos import load_demos, noisy_rollout
from e3d2_core.training.e3d2_stages import split_takes
from e3d2_core.training.trex import RankedGroup, Trajectory
from procedural_dance import micro_run

FPS, MUSIC_FPS, DIM = 60.0, 7.5, 37


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield micro_run(tmp_path_factory.mktemp("e3d2"), exact_beats=False, name="micro-test",
                    test_items=[("t", "m9", 9)], reward={"steps": 40, "eval_every": 20},
                    rl={"iterations": 3, "eval_every": 3, "snapshot_steps": [40]})
    torch.set_num_threads(threads)


def test_demos_are_ranked_batched_rollouts(run):
    _, run_dir = run
    demos = load_demos(run_dir)
    assert {d["split"] for d in demos} == {"train", "held_out"}
    held = [d for d in demos if d["split"] == "held_out"]
    assert [d["music_id"] for d in held] == ["m9"]
    for d in demos:
        takes = 3 if d["split"] == "held_out" else 2       # held-out music gets more takes (held_out_takes)
        assert list(d["eps"]) == [e for e in (0.02, 0.5, 1.0) for _ in range(takes)]
        n = len(d["music"])
        assert d["up"].shape == (3 * takes, n) and d["poses"].shape == (3 * takes, 8 * n, 24, 3)
        assert d["noisy"].shape == (3 * takes, n) and not d["noisy"][:, 0].any()
    # the extra held-out take gets a seed drawn after the training ones, which stay as they were
    train = next(d for d in demos if d["split"] == "train")
    assert list(held[0]["up"][:2, 0]) == list(train["up"][:2, 0])
    assert list(held[0]["take"]) == [0, 1, 2] * 3



class SuccessorPolicy:
    """A stand-in policy that is sure of its next code: (previous + 1) mod V, for both halves."""

    config = {"vocab": 16}
    stream = SimpleNamespace(device=torch.device("cpu"))

    def start(self, batch_size, device=None):
        return None

    def step(self, state, music_t, up_t, down_t):
        v = self.config["vocab"]
        return 30.0 * F.one_hot((up_t + 1) % v, v).float(), 30.0 * F.one_hot((down_t + 1) % v, v).float()


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_noise_replaces_the_policys_own_action_with_probability_eps(temperature):
    """ε-greedy around π_BC's own action (argmax, or a sample at the temperature): a row follows the policy at
    1 − ε·(V−1)/V of its steps (a uniform random code matches the policy's by chance 1/V of the time)."""
    eps = torch.tensor([0.0, 0.25, 0.5, 1.0]).repeat_interleave(8)
    music = torch.zeros(400, 4)
    first = torch.zeros(len(eps), dtype=torch.long)
    up, down, noisy = noisy_rollout(SuccessorPolicy(), music, first, first, eps, torch.Generator().manual_seed(0),
                             temperature)
    follows = ((up[:, 1:] == (up[:, :-1] + 1) % 16) & (down[:, 1:] == (down[:, :-1] + 1) % 16)).float()
    rate = follows.reshape(4, -1).mean(1)
    # both halves follow unless the step was noisy (or the noise picked the policy's codes, 1/256)
    expected = 1 - eps.reshape(4, 8)[:, 0] * (1 - 1 / 256)
    assert torch.allclose(rate, expected, atol=0.03), (rate, expected)
    # the noise mask names exactly the steps that left the policy (bar the 1/256 chance of a matching draw)
    assert not noisy[:, 0].any()
    assert not (~follows.bool() & ~noisy[:, 1:]).any()
    assert torch.allclose(noisy[:, 1:].float().reshape(4, -1).mean(1), eps.reshape(4, 8)[:, 0], atol=0.03)


def test_reward_stage_outputs(run):
    _, run_dir = run
    summary = json.loads((run_dir / "reward" / "summary.json").read_text())
    assert set(summary["reward_accuracy"]) == {"0.02|0.5", "0.02|1.0", "0.5|1.0"}
    for key, (low, high) in summary["reward_accuracy_interval"].items():
        assert 0.0 <= low <= summary["reward_accuracy"][key] <= high <= 1.0
    # 3 held-out takes per ε are too few to split into selection and test halves
    assert summary["held_out_takes"] == {"select": 9, "test": 9, "split": False}
    assert list(summary["u_bar_held_out"]) == ["0.02", "0.5", "1.0"]
    assert (run_dir / "reward" / "accuracy.png").stat().st_size > 1000
    history = json.loads((run_dir / "reward" / "history.json").read_text())
    assert history and "held_out_accuracy" in history[0] and "train_accuracy" in history[0]
    # every corruption kind is checked on the held-out real dance, and real dance was ranked over π_BC's
    robust = summary["robustness_held_out_real"]
    assert set(robust) == {"noise", "shuffle", "slow", "loop", "offbeat"}
    assert robust["offbeat"] is not None and 0.0 <= robust["offbeat"] <= 1.0   # the held-out loop has beats
    assert summary["corruption_pairs"]["real_over_policy_songs"] > 0
    assert 0.0 <= summary["real_over_policy_held_out"] <= 1.0


def test_rl_logs_interaction_steps_and_bundle_has_everything(run):
    _, run_dir = run
    lines = [json.loads(x) for x in (run_dir / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert [x["interaction_steps"] for x in lines] == [45, 90, 135]     # 3 takes x 15 generated steps
    assert (run_dir / "rl" / "snapshots" / "steps_40.pt").is_file()
    summary = json.loads((run_dir / "rl_hand" / "summary.json").read_text())
    assert summary["reward"] == "hand" and "held_out_learned" in summary["after"]
    bundle = torch.load(run_dir / "model.pt", weights_only=True)
    assert {"reward", "policy_rl", "policy", "vqvae", "beat_guide"} <= set(bundle)
    codes = bundle["vqvae"]["config"]["codebook_size"]
    assert bundle["beat_guide"]["up"].shape == bundle["beat_guide"]["down"].shape == (codes, 8)
    assert bundle["beat_guide"]["takes"] == 4          # 2 takes each of π_BC and π_RL
    # how often the real training dances repeat a code, measured on them, with the config's cost
    assert bundle["repeat"]["cost"] == 1.5 and bundle["repeat"]["window"] == 16
    assert isinstance(bundle["repeat"]["free_repeats"], int) and 0 <= bundle["repeat"]["free_repeats"] <= 16
    model, _ = load_reward(run_dir / "model.pt")
    joints = np.zeros((64, 24, 3), np.float32)
    result = score_arrays(model, joints, np.zeros((4, DIM), np.float32))
    assert len(result.values) == 4 and "overlap" in result.note


def test_reward_from_another_policy_is_refused(run):
    _, run_dir = run
    bundle = torch.load(run_dir / "model.pt", weights_only=True)
    bundle["policy"]["state_dict"] = {k: v + 1 for k, v in bundle["policy"]["state_dict"].items()}
    with pytest.raises(E3D2Error, match="another policy"):
        load_reward(bundle)


def test_rl_resumes_after_a_kill(run):
    config, run_dir = run
    state = torch.load(run_dir / "rl" / "state.pt", weights_only=True)
    assert state["iteration"] == 3
    (run_dir / "rl.pt").unlink()
    stages.run_stage("rl", config, run_dir, stages.StageOptions(resume=True, progress=False, device="cpu"))
    lines = (run_dir / "rl" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3              # nothing redone: the finished iterations were restored


def test_report_json_has_the_issue_keys(run, capsys):
    import argparse

    from e3d2_core.commands import report as command

    _, run_dir = run
    assert command.run(argparse.Namespace(run=str(run_dir), json=True)) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["table1"]) == {"gt", "bc", "rl"}
    for row in report["table1"].values():
        assert {"fid_k", "fid_g", "div_k", "div_g", "bas"} <= set(row)
        assert row["ci"]["fid_k"][0] <= row["ci"]["fid_k"][1]
    assert {(r["reward"], r["steps"]) for r in report["table3"]} >= {("learned", 0), ("hand", 0), ("learned", 40), ("learned", 135)}
    assert list(report["table4"]) == ["0.02", "0.5", "1.0"] and "u_bar" in report["table4"]["0.02"]
    assert set(report["reward_accuracy"]) == {"0.02|0.5", "0.02|1.0", "0.5|1.0"}
    assert command.run(argparse.Namespace(run=str(run_dir), json=False)) == 0
    assert "Table 3" in capsys.readouterr().out


def test_generate_uses_rl_policy_and_picks_the_best_take(run):
    from pathlib import Path

    from e3d2_core import api

    _, run_dir = run
    song = Path(__file__).parent / "data" / "loop_amen.flac"
    bundle = run_dir / "model.pt"
    rl = api.generate(song, checkpoint=bundle, seed=1, device="cpu", precision="fp32")
    bc = api.generate(song, checkpoint=bundle, seed=1, device="cpu", precision="fp32", policy="bc")
    assert rl.meta["policy"] == "rl" and bc.meta["policy"] == "bc"
    takes = api.generate(song, checkpoint=bundle, seed=1, takes=3, device="cpu", precision="fp32")
    best = api.generate(song, checkpoint=bundle, seed=1, takes=3, device="cpu", precision="fp32", pick="best")
    totals = [api.score(take, song, checkpoint=bundle).total for take in takes]
    assert best.meta["reward_totals"] == pytest.approx(totals, rel=1e-5)
    assert best.meta["reward_total"] == pytest.approx(max(totals), rel=1e-5)
    np.testing.assert_array_equal(best.poses, takes[int(np.argmax(totals))].poses)
    with pytest.raises(E3D2Error, match="pick must be"):
        api.generate(song, checkpoint=bundle, pick="worst")


def test_held_out_takes_split_into_selection_and_test_halves():
    music = torch.zeros(10, 4)
    trajectories = [Trajectory(torch.zeros(10, 3), eps, f"{eps}/{k}") for eps in (0.02, 0.5) for k in range(4)]
    select, test = split_takes([RankedGroup(music, trajectories, "song")])
    names = lambda groups: {t.name for t in groups[0].trajectories}
    assert names(select) == {"0.02/0", "0.02/2", "0.5/0", "0.5/2"}
    assert names(test) == {"0.02/1", "0.02/3", "0.5/1", "0.5/3"}
    few = RankedGroup(music, trajectories[:3] + trajectories[4:], "short")   # 3 takes of ε = 0.02
    assert split_takes([few]) == ([few], [few])
