"""End to end on real bundled data: the bundled recipe on a few clips, `e3d2 train all` with micro.yaml, the
bundle it writes, and a real kill (SIGKILL of the training process) followed by --resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from e3d2_core.cli import main as cli_main
from e3d2_core.training.data import load_shard
from training import prepare_bundled

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "training" / "configs" / "micro.yaml"
CLIPS = {"cmu_60_03", "cmu_61_03", "aist_gBR_sBM_cAll_d04_mBR0_ch02_slice0", "cmu_60_13", "cmu_60_14"}


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    if not (prepare_bundled.SHARED / "mocap").is_dir():
        pytest.skip("the shared data folder is not present")
    out = tmp_path_factory.mktemp("bundled")
    old = os.environ.get("E3D2_CACHE")
    os.environ["E3D2_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:   # short loops keep the feature extraction quick; the default recipe holds out Vibe Ace
        report = prepare_bundled.prepare(out, held_out="loop_breakbeat", songs={"loop_industrial", "loop_compus"}, clips=CLIPS,
                                         max_clip_seconds=20, min_song=15, songs_per_clip=1, progress=False)
    finally:
        if old is None:
            os.environ.pop("E3D2_CACHE")
        else:
            os.environ["E3D2_CACHE"] = old
    return out, report


def test_bundled_recipe_splits_by_trial_and_aligns_beats(bundled):
    out, report = bundled
    train, val, test = (load_shard(out / f"{s}.npz") for s in ("train", "val", "test"))
    clip = lambda seq: seq.name.split("@")[0].removesuffix("_mirror")   # noqa: E731
    assert {clip(s) for s in train.sequences} <= {"cmu_60_03", "cmu_61_03", "aist_gBR_sBM_cAll_d04_mBR0_ch02_slice0"}
    assert {clip(s) for s in val.sequences} == {"cmu_60_13"} and {clip(s) for s in test.sequences} == {"cmu_60_14"}
    assert {s.music_id for s in test.sequences} == {"loop_breakbeat"}           # the held-out music, test only
    assert "loop_breakbeat" not in {s.music_id for s in train.sequences + val.sequences}
    assert any("_mirror@" in s.name for s in train.sequences)
    assert train.fps == 60 and train.music_fps == 7.5 and train.music_kind == "compact" and train.music_dim == 37
    for split in ("train", "val", "test"):
        info = report["splits"][split]
        assert info["minutes"] > 0.1
        assert info["median_beat_error_ms_after"] < info["median_beat_error_ms_before"]
    assert report["splits"]["train"]["median_beat_error_ms_after"] <= 34      # within two frames at 60 fps
    assert all(0.7 <= p["rate_min"] <= p["rate_max"] <= 1.4 for p in report["pairs"])
    assert json.loads((out / "report.json").read_text())["held_out_song"] == "loop_breakbeat"


def test_train_all_micro_writes_a_loadable_bundle(bundled, tmp_path):
    from e3d2_core.checkpoint import build_generator_models, load_bundle
    data, _ = bundled
    run = tmp_path / "run"
    args = ["train", "all", "--config", str(CONFIG), "--run", str(run), "--data", str(data), "--no-progress"]
    assert cli_main(args) == 0
    bundle = load_bundle(run / "model.pt")
    vqvae, policy = build_generator_models(bundle, run / "model.pt")
    assert policy.config["vocab"] == vqvae.config["codebook_size"] == 32
    assert bundle["music"]["kind"] == "compact" and bundle["music"]["fps"] == 7.5
    assert "CMU Graphics Lab" in bundle["data_note"]
    # the trained bundle drives generation (data -> stages -> bundle -> dance)
    from e3d2_core.api import generate
    song = prepare_bundled.SHARED / "loops" / "loop_amen_full.flac"
    dance = generate(song, seconds=2.0, checkpoint=run / "model.pt", device="cpu")
    assert dance.fps == 60 and dance.num_frames >= 96
    for stage in ("vqvae", "bc"):
        lines = (run / stage / "metrics.jsonl").read_text().splitlines()
        assert json.loads(lines[-1])["step"] == 40 and "val" in json.loads((run / stage / "summary.json").read_text())
    # a second `all` has nothing left to do
    assert cli_main(args) == 0
    # a real kill: SIGKILL the vqvae stage once its first checkpoint exists, then resume to the same weights
    killed = tmp_path / "killed"
    config = yaml.safe_load(CONFIG.read_text())
    config["vqvae"]["train"]["checkpoint_every"] = 5        # checkpointing does not change the weights
    (tmp_path / "micro5.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "e3d2_core.cli", "train", "vqvae", "--config", str(tmp_path / "micro5.yaml"),
           "--run", str(killed), "--data", str(data), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((killed / "vqvae" / "checkpoints").glob("step_*.pt")) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "vqvae.pt").exists()                # it really was killed mid-run
    assert cli_main(cmd[3:] + ["--resume"]) == 0
    straight = torch.load(run / "vqvae.pt", weights_only=True)["vqvae"]["state_dict"]
    resumed = torch.load(killed / "vqvae.pt", weights_only=True)["vqvae"]["state_dict"]
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_train_command_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("just a string")
    assert cli_main(["train", "vqvae", "--config", str(bad), "--run", str(tmp_path / "r")]) == 2
    assert "a training config is a YAML mapping" in capsys.readouterr().err
    assert cli_main(["train", "bc", "--config", str(CONFIG), "--run", str(tmp_path / "r")]) == 2
    assert "needs stage 'vqvae' first" in capsys.readouterr().err
    assert cli_main(["train", "dance", "--config", str(CONFIG), "--run", str(tmp_path / "r")]) == 2
    assert "unknown training stage 'dance'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
