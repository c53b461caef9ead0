"""Shards, window datasets and the vqvae/bc stages (with small real models that have the real ones' interface)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from e3d2_core.errors import E3D2Error
from e3d2_core.training import data as shards
from e3d2_core.training import stages
from training_fixtures import one_thread  # noqa: F401 (an autouse fixture: single-threaded torch)

FPS, MUSIC_FPS = 60.0, 7.5


def _sequence(name, frames, seed, music_dim=5):
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / FPS
    poses = (0.3 * np.sin(2 * np.pi * rng.uniform(0.5, 2, 72) * t + rng.uniform(0, 6, 72))).reshape(frames, 24, 3)
    trans = np.stack([0.2 * np.sin(t[:, 0]), 0.9 + 0.02 * np.sin(4 * t[:, 0]), 0.1 * t[:, 0]], -1)
    music = rng.normal(size=(frames // 8, music_dim)).astype(np.float32)
    return shards.Sequence(name, f"m{seed}", poses.astype(np.float32), trans.astype(np.float32), music)


@pytest.fixture()
def data_dir(tmp_path):
    root = tmp_path / "data"
    for split, count, frames in (("train", 3, 720), ("val", 1, 480)):
        seqs = [_sequence(f"{split}{i}", frames + 8 * i, i + (10 if split == "val" else 0)) for i in range(count)]
        shards.write_shard(root / f"{split}.npz", seqs, fps=FPS, music_fps=MUSIC_FPS, music_kind="compact",
                           split=split, note="synthetic test data")
    return root


@pytest.fixture()
def contract_models(monkeypatch):
    monkeypatch.setitem(stages.MODEL_CLASSES, "vqvae", "training_fixtures:TinyVQ")
    monkeypatch.setitem(stages.MODEL_CLASSES, "policy", "training_fixtures:TinyPolicy")


def _config(data_dir):
    train = {"optimizer": {"kind": "adam", "lr": 1e-3, "betas": [0.5, 0.999]}, "checkpoint_every": 3,
             "log_every": 2, "precision": "fp32"}
    return {"name": "test", "seed": 3, "device": "cpu", "fps": FPS, "data": {"dir": str(data_dir)},
            "music": {"kind": "compact", "fps": MUSIC_FPS, "normalize": True},
            "vqvae": {"model": {"codebook_size": 8, "width": 8}, "data": {"window": 240, "stride": 40},
                      "train": {**train, "batch_size": 4, "epochs": 2}},
            "bc": {"model": {"n_embd": 8}, "data": {"length": 20, "stride": 2},
                   "train": {**train, "batch_size": 4, "steps": 8}}}


def test_shard_round_trip(tmp_path):
    seqs = [_sequence("a", 100, 0), _sequence("b", 64, 1)]
    path = shards.write_shard(tmp_path / "s.npz", seqs, fps=FPS, music_fps=MUSIC_FPS, music_kind="compact",
                              split="train", note="n")
    back = shards.load_shard(path)
    assert [s.name for s in back.sequences] == ["a", "b"] and back.ratio == 8 and back.music_dim == 5
    for a, b in zip(seqs, back.sequences):
        assert np.array_equal(a.poses, b.poses) and np.array_equal(a.music, b.music) and a.music_id == b.music_id
    assert back.minutes() == pytest.approx(164 / 60 / 60)


def test_shard_refuses_bad_shapes_and_files(tmp_path):
    bad = _sequence("a", 100, 0)
    bad.music = bad.music[:-1]
    with pytest.raises(E3D2Error, match="music rows"):
        shards.write_shard(tmp_path / "s.npz", [bad], fps=FPS, music_fps=MUSIC_FPS, music_kind="compact",
                           split="train")
    assert not (tmp_path / "s.npz").exists()
    with pytest.raises(E3D2Error, match="whole multiple"):
        shards.code_ratio(60, 7)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(E3D2Error, match="unreadable training shard"):
        shards.load_shard(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(E3D2Error, match="not an e3d2 training shard"):
        shards.load_shard(tmp_path / "other.npz")
    with pytest.raises(E3D2Error, match="no such training shard"):
        shards.load_shard(tmp_path / "missing.npz")


def test_motion_windows_cover_every_stride():
    seq = _sequence("a", 400, 0)
    ds = shards.MotionWindows([seq], window=240, stride=40)
    assert len(ds) == 5 and ds[4]["poses"].shape == (240, 24, 3)
    assert np.array_equal(ds[4]["trans"], seq.trans[160:400])


def test_code_windows_start_over_the_whole_sequence():
    """The fix of Bailando's window-start quirk: starts run over all code steps, not the first eighth."""
    n = 100
    up, down = np.arange(n), np.arange(n) + 1000
    music = np.arange(n, dtype=np.float32)[:, None]
    ds = shards.CodeWindows([up], [down], [music], length=30, stride=1)
    assert len(ds) == n - 30 + 1
    last = ds[len(ds) - 1]
    assert last["up"][-1] == n - 1 and last["down"][0] == 1000 + n - 30 and last["music"][0, 0] == n - 30
    with pytest.raises(E3D2Error, match="differ"):
        shards.CodeWindows([up], [down[:-1]], [music], length=30)


def test_vqvae_then_bc_stages(tmp_path, data_dir, contract_models):
    config, run = _config(data_dir), tmp_path / "run"
    options = stages.StageOptions(progress=False)
    with pytest.raises(E3D2Error, match="needs stage 'vqvae' first"):
        stages.run_stage("bc", config, run, options)
    out = stages.run_stage("vqvae", config, run, options)
    vq = torch.load(out, weights_only=True)
    assert vq["vqvae"]["config"] == {"codebook_size": 8, "width": 8, "fps": 60.0}
    assert vq["data_note"] == "synthetic test data"
    assert (run / "vqvae" / "metrics.jsonl").is_file() and (run / "vqvae" / "config.yaml").is_file()
    out = stages.run_stage("bc", config, run, options)
    bc = torch.load(out, weights_only=True)
    assert bc["policy"]["config"] == {"n_embd": 8, "music_dim": 5, "vocab": 8}
    assert bc["music"]["kind"] == "compact" and bc["music"]["fps"] == MUSIC_FPS
    assert bc["music"]["mean"].shape == (5,) and (bc["music"]["std"] > 0).all()
    summary = __import__("json").loads((run / "bc" / "summary.json").read_text())
    assert summary["window_codes"] == 20 and "val" in summary and summary["codes_used_up"] >= 1


def test_bc_stage_kill_and_resume_matches_straight_run(tmp_path, data_dir, contract_models):
    config = _config(data_dir)
    for run in ("a", "b"):
        stages.run_stage("vqvae", config, tmp_path / run, stages.StageOptions(progress=False))
    stages.run_stage("bc", config, tmp_path / "a", stages.StageOptions(progress=False))

    def kill(step):
        if step == 5:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        stages.run_stage("bc", config, tmp_path / "b", stages.StageOptions(progress=False, on_step=kill))
    assert not (tmp_path / "b" / "bc.pt").exists()
    stages.run_stage("bc", config, tmp_path / "b", stages.StageOptions(resume=True, progress=False))
    a = torch.load(tmp_path / "a" / "bc.pt", weights_only=True)["policy"]["state_dict"]
    b = torch.load(tmp_path / "b" / "bc.pt", weights_only=True)["policy"]["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_stage_config_errors(tmp_path, data_dir, contract_models):
    config = _config(data_dir)
    config["vqvae"]["data"]["window"] = 5000
    with pytest.raises(E3D2Error, match="lower vqvae.data.window"):
        stages.run_stage("vqvae", config, tmp_path / "r", stages.StageOptions(progress=False))
    config = _config(tmp_path / "nowhere")
    with pytest.raises(E3D2Error, match="no such training shard"):
        stages.run_stage("vqvae", config, tmp_path / "r", stages.StageOptions(progress=False))
    config = _config(data_dir)
    config["fps"] = 30
    with pytest.raises(E3D2Error, match="--fps 30"):
        stages.run_stage("vqvae", config, tmp_path / "r", stages.StageOptions(progress=False))
    with pytest.raises(E3D2Error, match="unknown training stage"):
        stages.run_stage("nope", config, tmp_path / "r", stages.StageOptions(progress=False))
