"""Exact music beats in the shard format: round trip, old shards, in-place upgrade, both recipes."""
from __future__ import annotations

import os

import numpy as np
import pytest

from e3d2_core.errors import E3D2Error
from e3d2_core.training import data as shards

FPS, MUSIC_FPS = 60.0, 7.5


def _seq(name, steps, beats=None, seed=0):
    rng = np.random.default_rng(seed)
    return shards.Sequence(name, "song", rng.normal(size=(8 * steps, 24, 3)).astype(np.float32),
                           rng.normal(size=(8 * steps, 3)).astype(np.float32),
                           rng.normal(size=(steps, 5)).astype(np.float32), beats)


def _write(path, seqs):
    return shards.write_shard(path, seqs, fps=FPS, music_fps=MUSIC_FPS, music_kind="compact", split="train",
                              note="n")


def test_beats_round_trip_and_old_shards_load(tmp_path):
    _write(tmp_path / "new.npz", [_seq("a", 10, np.array([3, 40, 77])), _seq("b", 5, np.zeros(0, int))])
    new = shards.load_shard(tmp_path / "new.npz")
    assert new.has_beats
    assert [list(s.beat_frames) for s in new.sequences] == [[3, 40, 77], []]
    _write(tmp_path / "old.npz", [_seq("a", 10), _seq("b", 5)])
    with np.load(tmp_path / "old.npz") as raw:
        assert "beat_frames" not in raw.files             # nothing written when no sequence has beats
    old = shards.load_shard(tmp_path / "old.npz")
    assert not old.has_beats and old.sequences[0].beat_frames is None


@pytest.mark.parametrize("beats, message", [([[3], None], "some sequences"), ([[80], []], "increasing"),
                                            ([[5, 5], []], "increasing"), ([[-1], []], "increasing")])
def test_bad_beats_are_refused_and_nothing_written(tmp_path, beats, message):
    seqs = [_seq("a", 10, None if beats[0] is None else np.array(beats[0])),
            _seq("b", 5, None if beats[1] is None else np.array(beats[1], int))]
    with pytest.raises(E3D2Error, match=message):
        _write(tmp_path / "x.npz", seqs)
    assert not (tmp_path / "x.npz").exists()


def test_add_beat_frames_upgrades_in_place(tmp_path):
    path = _write(tmp_path / "train.npz", [_seq("a", 10), _seq("b", 5, seed=1)])
    before = shards.load_shard(path)
    shards.add_beat_frames(path, [np.array([70, 3, 3, -4, 200]), np.array([7])])
    after = shards.load_shard(path)
    assert [list(s.beat_frames) for s in after.sequences] == [[3, 70], [7]]   # sorted, unique, inside
    for a, b in zip(before.sequences, after.sequences):
        assert a.name == b.name and np.array_equal(a.poses, b.poses) and np.array_equal(a.music, b.music)
    assert after.note == before.note and after.split == before.split
    with pytest.raises(E3D2Error, match="3 beat lists for 2"):
        shards.add_beat_frames(path, [[1], [2], [3]])


def test_find_segment_locates_music_rows():
    from training.prepare_bundled import find_segment
    rng = np.random.default_rng(0)
    song = rng.normal(size=(50, 4)).astype(np.float32)
    assert find_segment(song[17:30], song) == 17
    assert find_segment(song[17:30] + 1, song) == -1
    assert find_segment(np.concatenate([song, song[:10]]), song) == -1


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    from training import prepare_bundled
    if not (prepare_bundled.SHARED / "mocap").is_dir():
        pytest.skip("the shared data folder is not present")
    out = tmp_path_factory.mktemp("bundled")
    old = os.environ.get("E3D2_CACHE")
    os.environ["E3D2_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        prepare_bundled.prepare(out, held_out="loop_breakbeat", songs={"loop_industrial"},
                                clips={"cmu_60_03", "cmu_60_13", "cmu_60_14"}, max_clip_seconds=16, min_song=15,
                                songs_per_clip=1, progress=False)
        yield out
    finally:
        if old is None:
            os.environ.pop("E3D2_CACHE")
        else:
            os.environ["E3D2_CACHE"] = old


def test_bundled_recipe_stores_the_songs_60fps_beats(bundled):
    from e3d2_core.audio import music_beats
    from e3d2_core.paths import cache_dir
    from training.prepare_bundled import find_segment
    test = shards.load_shard(bundled / "test.npz")
    assert test.has_beats
    (song,) = (cache_dir() / "tiled_audio").glob("loop_breakbeat_x*.wav")   # the held-out loop, tiled to 15 s
    from e3d2_core.audio import extract_features
    features = extract_features(song, fps=7.5, kind="compact").features
    beats = music_beats(song, fps=60)
    for seq in test.sequences:
        row = find_segment(seq.music, features)
        assert row >= 0
        inside = beats[(beats >= 8 * row) & (beats < 8 * row + seq.num_frames)] - 8 * row
        assert len(seq.beat_frames) >= 4 and np.array_equal(seq.beat_frames, inside)


def test_add_beats_restores_them_on_old_shards(bundled, tmp_path, capsys):
    from training import prepare_bundled
    expected = {}
    for split in ("train", "val", "test"):
        shard = shards.load_shard(bundled / f"{split}.npz")
        expected[split] = [s.beat_frames for s in shard.sequences]
        for seq in shard.sequences:
            seq.beat_frames = None                                     # a shard from before beat_frames
        shards.write_shard(tmp_path / f"{split}.npz", shard.sequences, fps=shard.fps, music_fps=shard.music_fps,
                           music_kind=shard.music_kind, split=split, note=shard.note)
    assert prepare_bundled.main(["--add-beats", str(tmp_path), "--min-song", "15"]) == 0
    assert "music_beats_added" in capsys.readouterr().out
    for split in ("train", "val", "test"):
        got = [s.beat_frames for s in shards.load_shard(tmp_path / f"{split}.npz").sequences]
        assert all(np.array_equal(a, b) for a, b in zip(got, expected[split])) and len(got) == len(expected[split])
    # a shard whose music is not a segment of its song: one-line error, nothing rewritten
    shard = shards.load_shard(tmp_path / "val.npz")
    for seq in shard.sequences:
        seq.music = seq.music + 1.0
        seq.beat_frames = None
    shards.write_shard(tmp_path / "val.npz", shard.sequences, fps=shard.fps, music_fps=shard.music_fps,
                       music_kind=shard.music_kind, split="val", note=shard.note)
    mtime = (tmp_path / "train.npz").stat().st_mtime_ns
    assert prepare_bundled.main(["--add-beats", str(tmp_path), "--min-song", "15"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]          # after the progress bar: one error line
    assert last.startswith("prepare_bundled: error:") and "not a segment" in last
    assert (tmp_path / "train.npz").stat().st_mtime_ns == mtime
    assert not shards.load_shard(tmp_path / "val.npz").has_beats


def test_aistpp_recipe_and_upgrade_store_the_songs_beats(tmp_path, capsys):
    from e3d2_core.audio import music_beats
    from test_training_prepare_aistpp import _aistpp
    from training import prepare_aistpp
    root, music = _aistpp(tmp_path / "aist")
    out = tmp_path / "out"
    prepare_aistpp.prepare(root, music, out, kind="compact", progress=False)
    expected = {}
    for split in ("train", "val", "test"):
        shard = shards.load_shard(out / f"{split}.npz")
        assert shard.has_beats
        for seq in shard.sequences:
            beats = music_beats(music / f"{seq.music_id}.wav", fps=60)
            assert len(seq.beat_frames) >= 2
            assert np.array_equal(seq.beat_frames, beats[beats < seq.num_frames])
        expected[split] = [s.beat_frames for s in shard.sequences]
        for seq in shard.sequences:
            seq.beat_frames = None
        shards.write_shard(out / f"{split}.npz", shard.sequences, fps=shard.fps, music_fps=shard.music_fps,
                           music_kind=shard.music_kind, split=split, note=shard.note)
        assert not shards.load_shard(out / f"{split}.npz").has_beats
    assert prepare_aistpp.main(["--add-beats", str(out), "--music", str(music)]) == 0
    assert "music beats added" in capsys.readouterr().out
    for split, beat_lists in expected.items():
        got = [s.beat_frames for s in shards.load_shard(out / f"{split}.npz").sequences]
        assert len(got) == len(beat_lists) and all(np.array_equal(a, b) for a, b in zip(got, beat_lists))
    assert prepare_aistpp.main(["--add-beats", str(out), "--music", str(tmp_path / "nowhere")]) == 2
    assert "missing music" in capsys.readouterr().err
