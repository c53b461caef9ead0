"""The repeat limit: a code the take drew often in its last steps costs logits, so the dance cannot loop."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from e3d2_core import api, checkpoint as ckpt
from e3d2_core.errors import E3D2Error
from e3d2_core.generation import generate_codes
from e3d2_core.repeat_limit import RepeatLimit, recent_repeats, repeat_limit_of


class LoopingPolicy:
    """A stand-in policy that always finds code 0 likeliest (by 3.5 logits), then code 1 (by 1)."""

    class stream:                       # generate_codes reads ``policy.stream.device``
        device = torch.device("cpu")

    def start(self, batch, device):
        return None

    def step(self, state, music, up, down):
        logits = torch.zeros(up.shape[0], 6)
        logits[:, 0], logits[:, 1] = 3.5, 1.0
        return logits, logits.clone()


def test_recent_repeats_count_each_code_in_the_steps_before_it():
    assert recent_repeats(np.array([4, 4, 4, 2, 4, 2]), window=3).tolist() == [1, 2, 0, 2, 1]
    assert recent_repeats(np.array([7]), window=3).tolist() == []


def test_the_free_repeats_are_what_most_real_steps_stay_within():
    rng = np.random.default_rng(0)
    varied = rng.permutation(np.arange(400)) % 200           # codes rarely come back within 16 steps
    looped = np.tile([5, 6], 50)                             # two codes alternating: 7-8 repeats in 16 steps
    assert repeat_limit_of([varied], share=0.9).free_repeats == 0
    assert repeat_limit_of([varied, looped], share=0.9).free_repeats == 8
    assert repeat_limit_of([looped], window=4).free_repeats == 2
    with pytest.raises(E3D2Error, match="no encoded dance"):
        repeat_limit_of([])


def test_each_code_pays_for_its_repeats_beyond_the_free_ones():
    limit = RepeatLimit(window=4, free_repeats=1, cost=1.5)
    recent = limit.counter(torch.tensor([2, 0]), vocab=5)
    for codes in ([2, 1], [2, 1], [3, 1]):
        recent.push(torch.tensor(codes))
    # take 0 drew 2, 2, 2, 3: code 2 three times (two past the free one); take 1 drew 0, 1, 1, 1
    out = recent.penalise(torch.zeros(2, 5))
    assert out[0].tolist() == [0.0, 0.0, -3.0, 0.0, 0.0]
    assert out[1].tolist() == [0.0, -3.0, 0.0, 0.0, 0.0]
    recent.push(torch.tensor([4, 4]))                      # the oldest draw (2 / 0) leaves the window
    assert recent.penalise(torch.zeros(2, 5))[0, 2] == -1.5


def test_a_policy_that_would_loop_forever_moves_on():
    music = torch.zeros(60, 3)
    first = torch.tensor([0])
    free, _ = generate_codes(LoopingPolicy(), music, first, first)
    assert set(free[0].tolist()) == {0}                                   # repeats are free: one code throughout
    up, down = generate_codes(LoopingPolicy(), music, first, first, repeat=RepeatLimit(8, 4, 1.0))
    # greedy: code 0 is drawn while 3.5 - (n - 4) beats code 1's 1 (n ≤ 6 of the last 8), then code 1 ...
    assert recent_repeats(up[0].numpy(), 8).max() <= 6 and 0 < (up[0] == 1).sum() < (up[0] == 0).sum()
    assert torch.equal(up, down)
    none, _ = generate_codes(LoopingPolicy(), music, first, first, repeat=RepeatLimit(8, 4, 0.0))
    assert torch.equal(none, free)


def test_bad_repeat_settings_are_refused():
    with pytest.raises(E3D2Error, match="window"):
        RepeatLimit(window=0)
    with pytest.raises(E3D2Error, match="free repeats"):
        RepeatLimit(window=4, free_repeats=5)
    with pytest.raises(E3D2Error, match="cost"):
        RepeatLimit(cost=-1.0)
    with pytest.raises(E3D2Error, match="repeat_cost"):
        api.DanceRequest("song.wav", repeat_cost=float("nan"))


def test_the_bundles_repeat_limit_is_used_and_can_be_overridden(tmp_path, song_clip):
    bundle = ckpt.load_bundle(ckpt.default_checkpoint())    # greedy, it loops on a few codes
    bundle.pop("repeat", None)
    plain = tmp_path / "plain.pt"
    ckpt.save_bundle(plain, bundle)
    bundle["repeat"] = RepeatLimit(window=8, free_repeats=0, cost=50.0).entry()
    limited_path = tmp_path / "limited.pt"
    ckpt.save_bundle(limited_path, bundle)
    kw = dict(seconds=6.0, seed=1, temperature=0.0, beat_lock=0.0, beat_guide=0.0)
    free = api.generate(song_clip, checkpoint=plain, **kw)
    limited = api.generate(song_clip, checkpoint=limited_path, **kw)
    off = api.generate(song_clip, checkpoint=limited_path, repeat_cost=0.0, **kw)
    assert free.meta["repeat"] == {"cost": 0.0}
    assert limited.meta["repeat"] == {"window": 8, "free_repeats": 0, "cost": 50.0}
    for half in ("codes_up", "codes_down"):
        assert recent_repeats(free.meta[half], 8).max() > 1
        assert recent_repeats(limited.meta[half], 8).max() == 0          # any repeat within 8 steps pays 50
    assert off.meta["codes_up"] == free.meta["codes_up"] and off.meta["repeat"] == {"cost": 0.0}
    # a checkpoint without a limit of its own gets the default window and free repeats when a cost is asked
    asked = api.generate(song_clip, checkpoint=plain, repeat_cost=2.0, **kw)
    assert asked.meta["repeat"] == RepeatLimit(cost=2.0).entry()


def test_a_malformed_repeat_limit_is_refused(tmp_path, tiny_bundle_path):
    bundle = ckpt.load_bundle(tiny_bundle_path)
    bundle["repeat"] = {"window": 4, "free_repeats": 9, "cost": 1.0}
    bad = tmp_path / "bad.pt"
    ckpt.save_bundle(bad, bundle)
    with pytest.raises(E3D2Error, match="'repeat'"):
        ckpt.load_bundle(bad)
