"""prepare_aistpp on small files in AIST++'s exact format, made here."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import soundfile as sf

from e3d2_core.errors import E3D2Error
from e3d2_core.training.data import load_shard
from training import prepare_aistpp

NAMES = {"train": ["gBR_sBM_cAll_d04_mBR0_ch01", "gPO_sFM_cAll_d10_mPO1_ch03"],
         "val": ["gBR_sBM_cAll_d05_mBR0_ch01"], "test": ["gPO_sBM_cAll_d11_mPO1_ch02"]}
IGNORED = "gBR_sFM_cAll_d06_mBR0_ch04"


def _aistpp(root, frames=150):
    """AIST++ annotation layout: motions/*.pkl (smpl_loss, smpl_poses (N,72), smpl_scaling (1,), smpl_trans),
    splits/crossmodal_*.txt, ignore_list.txt; and AIST Dance DB style music wavs (click tracks here)."""
    rng = np.random.default_rng(0)
    (root / "motions").mkdir(parents=True)
    (root / "splits").mkdir()
    for i, name in enumerate(sum(NAMES.values(), []) + [IGNORED]):
        n = frames + 30 * i
        t = np.arange(n)[:, None] / 60.0
        poses = 0.2 * np.sin(2 * np.pi * rng.uniform(0.5, 2, 72) * t)
        scaling = np.array([93.5])
        trans = np.stack([10 * np.sin(t[:, 0]), np.full(n, 170.0), 5 * t[:, 0]], -1)   # cm-ish, x scaling
        with open(root / "motions" / f"{name}.pkl", "wb") as f:
            pickle.dump({"smpl_loss": 1.5, "smpl_poses": poses.astype(np.float64),
                         "smpl_scaling": scaling, "smpl_trans": trans}, f)
    for split, names in NAMES.items():
        (root / "splits" / f"crossmodal_{split}.txt").write_text("\n".join(names + [IGNORED] * (split == "train")))
    (root / "ignore_list.txt").write_text(IGNORED + "\n")
    music = root / "music"
    music.mkdir()
    sr = 22050
    for mid, bpm in (("mBR0", 120), ("mPO1", 100)):
        y = np.zeros(sr * 4, np.float32)
        for beat in np.arange(0, 4, 60 / bpm):
            k = int(beat * sr)
            y[k:k + 400] = np.sin(np.arange(400) * 0.3) * np.exp(-np.arange(400) / 80)
        sf.write(music / f"{mid}.wav", y, sr)
    return root, music


def test_prepare_aistpp_writes_paired_shards(tmp_path):
    root, music = _aistpp(tmp_path / "aist")
    report = prepare_aistpp.prepare(root, music, tmp_path / "out", kind="compact", mirror=True, progress=False)
    assert report["train"]["sequences"] == 4 and report["val"]["sequences"] == 1
    train = load_shard(tmp_path / "out" / "train.npz")
    assert [s.name for s in train.sequences] == [
        "gBR_sBM_cAll_d04_mBR0_ch01", "gBR_sBM_cAll_d04_mBR0_ch01_mirror",
        "gPO_sFM_cAll_d10_mPO1_ch03", "gPO_sFM_cAll_d10_mPO1_ch03_mirror"]
    assert [s.music_id for s in train.sequences] == ["mBR0", "mBR0", "mPO1", "mPO1"]
    assert train.fps == 60 and train.music_fps == 7.5 and train.music_kind == "compact" and "CC BY 4.0" in train.note
    first = train.sequences[0]
    # 150 frames -> 18 whole code steps (music of 4 s has 30 rows at 7.5 Hz): cut to the shorter
    assert first.num_frames == 144 and first.music.shape[0] == 18
    # AIST++ trans / scaling is metres: pelvis height about 170 / 93.5 = 1.8 m before the floor shift
    expected = pickle.load(open(root / "motions" / f"{first.name}.pkl", "rb"))
    assert np.allclose(first.poses.reshape(-1, 72), expected["smpl_poses"][:144], atol=1e-5)
    step = np.diff(first.trans[:, 2])
    assert np.allclose(step, np.diff(expected["smpl_trans"][:144, 2]) / 93.5, atol=1e-5)
    mirrored = train.sequences[1]
    assert np.allclose(mirrored.trans[:, 0] - mirrored.trans[0, 0], -(first.trans[:, 0] - first.trans[0, 0]),
                       atol=1e-5)
    test = load_shard(tmp_path / "out" / "test.npz")
    assert test.split == "test" and [s.name for s in test.sequences] == NAMES["test"]


def test_prepare_aistpp_resamples_to_another_fps(tmp_path):
    root, music = _aistpp(tmp_path / "aist", frames=240)
    prepare_aistpp.prepare(root, music, tmp_path / "out", fps=40, kind="compact", progress=False)
    train = load_shard(tmp_path / "out" / "train.npz")
    assert train.fps == 40 and train.music_fps == 5
    assert train.sequences[0].num_frames == 160 and len(train.sequences[0].music) == 20   # 4 s at 40 fps


def test_prepare_aistpp_missing_music_writes_nothing(tmp_path):
    root, music = _aistpp(tmp_path / "aist")
    (music / "mPO1.wav").unlink()
    with pytest.raises(E3D2Error, match="missing music mPO1"):
        prepare_aistpp.prepare(root, music, tmp_path / "out", kind="compact", progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(E3D2Error, match="not an AIST\\+\\+ sequence name"):
        prepare_aistpp.music_id("walking")
