"""The beat guide: its weights, its code tables, its tilt of the draws, and what it does to a real dance."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from e3d2_core import api, checkpoint as ckpt
from e3d2_core.beat_guide import (BeatGuide, BeatGuideWarning, beat_weights, candidates, code_speed_profiles,
                                  guide_entry)
from e3d2_core.errors import E3D2Error
from e3d2_core.metrics.music_follow import phase_gain
from e3d2_core.skeleton import LOWER_JOINTS, NUM_JOINTS, UPPER_JOINTS


def test_weights_peak_on_beats_and_average_zero():
    w = beat_weights(np.array([30.0, 60.0, 90.0]), 120, 6.0)
    assert abs(w.mean()) < 1e-12
    assert np.argmax(w) in (30, 60, 90) and w[30] == pytest.approx(w.max())
    assert w[45] < 0 and w[75] < 0                           # between beats: move here
    assert not beat_weights(np.array([30.0]), 120, 6.0).any()   # one beat: no tempo, no guide


def test_code_tables_measure_each_codes_frames():
    """Two codes of 8 frames: code 1's upper joints move only in its first half, code 0 never moves."""
    frames, n = 64, 8
    joints = np.zeros((1, frames, NUM_JOINTS, 3))
    up = np.array([[0, 1] * (n // 2)])
    down = np.zeros((1, n), np.int64)
    x = 0.0
    for t in range(frames):
        code, f = divmod(t, 8)
        if up[0, code] == 1 and f < 4:
            x += 0.01                                          # 0.6 m/s at 60 fps
        joints[0, t, list(UPPER_JOINTS), 0] = x
    tables = code_speed_profiles(joints, up, down, fps=60.0, downsample=8, codebook_size=3)
    share = len(UPPER_JOINTS) / NUM_JOINTS
    np.testing.assert_allclose(tables["up"][1, 1:4], 0.6 * share, atol=1e-9)
    np.testing.assert_allclose(tables["up"][1, 5:], 0.0, atol=1e-9)
    assert tables["counts_up"].tolist() == [4, 4, 0]
    np.testing.assert_allclose(tables["up"][2], tables["up"][:2].mean(0), atol=1e-9)   # unseen: mean profile
    assert not tables["down"].any() and len(LOWER_JOINTS) + len(UPPER_JOINTS) == NUM_JOINTS


def test_guide_prefers_the_code_that_is_slow_on_the_beat():
    slow_on_beat = [1.0, 1.0, 1.0, 0.1, 1.0, 1.0, 1.0, 1.0]        # dips at frame 3 of the code
    flat = [0.8] * 8
    entry = {"up": torch.tensor([slow_on_beat, flat]), "down": torch.tensor([flat, flat]), "speed_scale": 0.8}
    beats = np.arange(11, 400, 30, dtype=np.float64)             # a beat on frame 3 of code 1, every 30 frames
    picked = []
    guide = BeatGuide(entry, beats, 400, strength=2.0, choose=lambda logits: picked.append(logits) or
                      logits.argmax(-1))
    bias_up, bias_down = guide.bias(1)
    assert bias_up[0] > bias_up[1] and torch.allclose(bias_down, bias_down[0])
    even = torch.zeros(1, 2)
    up, _ = guide(even, even)                                    # the first call places code 1
    assert up.item() == 0
    none = BeatGuide(entry, beats, 400, strength=0.0, choose=lambda logits: logits.argmax(-1))
    assert not none.bias(1)[0].any()
    with pytest.raises(E3D2Error, match="strength"):
        BeatGuide(entry, beats, 400, strength=-1.0, choose=None)


def test_softened_contrast_prefers_a_step_to_a_tremble():
    """On a pure log scale a code trembling in place (0.02 -> 0.1 m/s) out-contrasts a real step (0.5 -> 1.5
    m/s); softened by the mean speed, the step wins -- what kept a lively memory's guided dance from freezing."""
    beats = np.arange(8, 400, 16, dtype=np.float64)              # code 1 (frames 8-15) starts on a beat
    near = beat_weights(beats, 400, 6.0)[8:16] > 0               # its frames near the beat
    tremble, step = np.where(near, 0.02, 0.1), np.where(near, 0.5, 1.5)
    bias = {}
    for softening in (0.0, 1.0):
        entry = {"up": torch.tensor(np.stack([tremble, step]), dtype=torch.float32), "down": torch.ones(2, 8),
                 "speed_scale": 0.8, "softening": softening}
        bias[softening] = BeatGuide(entry, beats, 400, strength=2.0, choose=None).bias(1)[0]
    assert bias[0.0][0] > bias[0.0][1]             # the old contrast: the tremble wins
    assert bias[1.0][1] > bias[1.0][0]             # softened: the step wins


def test_the_guide_only_reorders_the_policys_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.05, 0.15, 0.3, 0.5]]))
    kept = torch.isfinite(candidates(logits, 0.9))
    assert kept.tolist() == [[True, True, True, False], [False, True, True, True]]
    assert torch.isfinite(candidates(logits, 0.4)).sum(-1).tolist() == [1, 1]    # the likeliest code always stays
    assert torch.equal(candidates(logits, 1.0), logits)
    # a code the policy finds unlikely is never drawn, however well it sits on the beat
    slow_on_beat = [1.0, 1.0, 1.0, 0.1, 1.0, 1.0, 1.0, 1.0]
    flat = [0.8] * 8
    entry = {"up": torch.tensor([slow_on_beat, flat]), "down": torch.tensor([flat, flat]), "speed_scale": 0.8,
             "candidate_mass": 0.9}
    beats = np.arange(11, 400, 30, dtype=np.float64)
    guide = BeatGuide(entry, beats, 400, strength=50.0, choose=lambda logits: logits.argmax(-1))
    unlikely = torch.log(torch.tensor([[0.02, 0.98]]))
    up, _ = guide(unlikely, unlikely)
    assert up.item() == 1
    old = BeatGuide({**entry, "candidate_mass": 1.0}, beats, 400, strength=50.0, choose=lambda l: l.argmax(-1))
    assert old(unlikely, unlikely)[0].item() == 0            # without the nucleus the guide overrides the policy


def test_new_guide_entries_carry_softening_and_nucleus():
    tables = {"up": np.ones((3, 8)), "down": np.ones((3, 8)), "turn": np.zeros(3), "speed_scale": 0.5}
    entry = guide_entry(tables)
    assert entry["softening"] > 0 and 0 < entry["candidate_mass"] < 1


def _steady(path, bpm=120.0, seconds=12.0, sr=22050):
    """A kick and a broadband clap on every beat (a kick alone is tracked ~0.1 s late); returns the beats in
    frames at 60 fps."""
    rng = np.random.default_rng(0)
    y = np.zeros(int(seconds * sr), np.float32)
    t = np.arange(int(0.1 * sr)) / sr
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-30 * t)) * t) * np.exp(-18 * t)
    clap = rng.standard_normal(int(0.08 * sr)) * np.exp(-np.arange(int(0.08 * sr)) / sr * 40) * 0.7
    beats = np.arange(0.25, seconds - 0.2, 60.0 / bpm)
    for b in beats:
        i = int(b * sr)
        y[i:i + len(kick)] += kick[: len(y) - i]
        y[i:i + len(clap)] += clap[: len(y) - i]
    sf.write(path, 0.5 * y / np.abs(y).max(), sr)
    return np.round(beats * 60).astype(np.int64)


def test_bundled_model_dances_more_on_the_beat_with_the_guide(tmp_path):
    song = tmp_path / "steady.wav"
    beats = _steady(song)
    gains = {}
    for strength in (0.0, None):
        takes = api.generate(song, seed=0, takes=3, beat_lock=0.0, beat_guide=strength)
        gains[strength] = np.mean([phase_gain(m.joints(), beats) for m in takes])
        assert takes[0].meta["beat_guide"]["strength"] == (0.0 if strength == 0 else api.BEAT_GUIDE_DEFAULT)
    assert gains[None] > gains[0.0] + 0.05, gains


def test_guide_strength_zero_is_the_policys_own_dance(tmp_path):
    song = tmp_path / "steady.wav"
    _steady(song, seconds=6.0)
    bundle = ckpt.load_bundle(ckpt.default_checkpoint())
    bundle.pop("beat_guide")
    plain = tmp_path / "plain.pt"
    ckpt.save_bundle(plain, bundle)
    with_tables = api.generate(song, seed=3, beat_lock=0.0, beat_guide=0.0)
    without = api.generate(song, seed=3, beat_lock=0.0, checkpoint=plain)
    assert np.array_equal(with_tables.poses, without.poses)
    assert without.meta["beat_guide"]["skipped"].startswith("no beat-guide tables")
    with pytest.warns(BeatGuideWarning, match="no beat-guide tables"):
        api.generate(song, seed=3, beat_lock=0.0, beat_guide=2.0, checkpoint=plain)


def test_beatless_music_leaves_the_draws_alone_with_one_warning(tmp_path):
    song = tmp_path / "drone.wav"
    t = np.arange(int(4.0 * 22050)) / 22050
    sf.write(song, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 22050)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        guided = api.generate(song, seed=0, beat_lock=0.0, beat_guide=2.0)
    assert guided.meta["beat_guide"] == {"strength": 2.0, "skipped": "the music has no beats"}
    assert len([w for w in caught if issubclass(w.category, BeatGuideWarning)]) == 1
    plain = api.generate(song, seed=0, beat_lock=0.0, beat_guide=0.0)
    assert np.array_equal(guided.poses, plain.poses)


def test_malformed_tables_are_refused(tmp_path):
    bundle = ckpt.load_bundle(ckpt.default_checkpoint())
    bundle["beat_guide"] = {**guide_entry({"up": np.ones((4, 8)), "down": np.ones((4, 8)), "turn": np.ones(4),
                                           "speed_scale": 1.0}),
                            "down": torch.full((4, 8), -1.0)}
    bad = tmp_path / "bad.pt"
    ckpt.save_bundle(bad, bundle)
    with pytest.raises(E3D2Error, match="beat_guide"):
        ckpt.load_bundle(bad)
