"""The hold limit: drawing the code being danced again costs more the longer it has been held."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from e3d2_core import api, checkpoint as ckpt
from e3d2_core.errors import E3D2Error
from e3d2_core.generation import HoldLimit, generate_codes, hold_limit_of, run_lengths


class StickyPolicy:
    """A stand-in policy that always finds code 0 likeliest (by 3.5 logits), then code 1 (by 1)."""

    class stream:                       # generate_codes reads ``policy.stream.device``
        device = torch.device("cpu")

    def start(self, batch, device):
        return None

    def step(self, state, music, up, down):
        logits = torch.zeros(up.shape[0], 6)
        logits[:, 0], logits[:, 1] = 3.5, 1.0
        return logits, logits.clone()


def test_run_lengths_split_a_sequence_into_its_holds():
    assert run_lengths(np.array([4, 4, 4, 2, 2, 4, 7])).tolist() == [3, 2, 1, 1]
    assert run_lengths(np.array([], np.int64)).tolist() == []


def test_the_free_hold_is_the_run_that_most_steps_stay_within():
    # 90 steps in runs of 1-3, 10 steps in one run of 10: 90 % of the steps are held 3 steps or less
    held = np.repeat(np.arange(45), [3, 2, 1] * 15)
    sequences = [np.r_[held, np.full(10, 99)]]
    assert run_lengths(sequences[0]).sum() == 100
    assert hold_limit_of(sequences, share=0.9).free_steps == 3
    assert hold_limit_of(sequences, share=0.95).free_steps == 10
    with pytest.raises(E3D2Error, match="no encoded dance"):
        hold_limit_of([])


def test_only_the_held_code_pays_and_only_past_the_free_steps():
    hold = HoldLimit(free_steps=4, cost=1.0)
    logits = torch.zeros(3, 5)
    out = hold.apply(logits, torch.tensor([2, 2, 0]), torch.tensor([3, 5, 9]))
    assert out[0].abs().max() == 0                          # held 3 steps: a 4th is still free
    assert out[1, 2] == -2.0 and out[1].sum() == -2.0       # a 6th step is 2 past: 2 logits off code 2 alone
    assert out[2, 0] == -6.0


def test_a_policy_that_would_hold_one_code_forever_moves_on():
    music = torch.zeros(40, 3)
    first = torch.tensor([0])
    free_up, _ = generate_codes(StickyPolicy(), music, first, first)
    assert run_lengths(free_up[0].numpy()).tolist() == [40]           # holding is free: one code throughout
    up, down = generate_codes(StickyPolicy(), music, first, first, hold=HoldLimit(4, 1.0))
    # greedy: code 0 is drawn again while 3.5 - (run + 1 - 4) > 1, i.e. up to a run of 6, then code 1 once
    assert run_lengths(up[0].numpy()).tolist()[:6] == [6, 1, 6, 1, 6, 1]
    assert torch.equal(up, down)
    none, _ = generate_codes(StickyPolicy(), music, first, first, hold=HoldLimit(4, 0.0))
    assert torch.equal(none, free_up)


def test_bad_hold_settings_are_refused():
    with pytest.raises(E3D2Error, match="free_steps"):
        HoldLimit(0, 1.0)
    with pytest.raises(E3D2Error, match="cost"):
        HoldLimit(4, -1.0)
    with pytest.raises(E3D2Error, match="hold_cost"):
        api.DanceRequest("song.wav", hold_cost=float("nan"))


def test_the_bundles_hold_is_used_and_can_be_overridden(tmp_path, song_clip):
    shipped = ckpt.default_checkpoint()             # greedy, it settles into holding codes
    bundle = ckpt.load_bundle(shipped)
    bundle.pop("hold", None)
    plain = tmp_path / "plain.pt"
    ckpt.save_bundle(plain, bundle)
    bundle["hold"] = HoldLimit(1, 50.0).entry()
    held = tmp_path / "held.pt"
    ckpt.save_bundle(held, bundle)
    kw = dict(seconds=6.0, seed=1, temperature=0.0, beat_lock=0.0, beat_guide=0.0)
    free = api.generate(song_clip, checkpoint=plain, **kw)
    limited = api.generate(song_clip, checkpoint=held, **kw)
    off = api.generate(song_clip, checkpoint=held, hold_cost=0.0, **kw)
    assert free.meta["hold"] == {"free_steps": 0, "cost": 0.0}
    assert limited.meta["hold"] == {"free_steps": 1, "cost": 50.0}
    for half in ("codes_up", "codes_down"):
        assert run_lengths(np.array(free.meta[half])).max() > 1
        assert run_lengths(np.array(limited.meta[half])).max() == 1        # a second step pays 50 logits
    assert off.meta["codes_up"] == free.meta["codes_up"] and off.meta["hold"]["cost"] == 0.0
    # a checkpoint without a hold of its own gets the default free steps when a cost is asked for
    asked = api.generate(song_clip, checkpoint=plain, hold_cost=50.0, **kw)
    assert asked.meta["hold"]["free_steps"] > 1 and asked.meta["hold"]["cost"] == 50.0


def test_a_malformed_hold_is_refused(tmp_path, tiny_bundle_path):
    bundle = ckpt.load_bundle(tiny_bundle_path)
    bundle["hold"] = {"free_steps": 0, "cost": 1.0}
    bad = tmp_path / "bad.pt"
    ckpt.save_bundle(bad, bundle)
    with pytest.raises(E3D2Error, match="'hold'"):
        ckpt.load_bundle(bad)
