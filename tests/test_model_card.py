"""training/model_card.py on a micro run whose shards carry exact music beats; the report's beat protocol."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch

from e3d2_core.training import data as shards
from procedural_dance import micro_run
from training import model_card

NUMBER = r"-?\d+(\.\d+)?(e[+-]\d+)?"          # a finite number as the card prints it (never "—", nan, inf)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield micro_run(tmp_path_factory.mktemp("card"), exact_beats=True, name="micro-card",
                    test_items=[("t", "m9", 9), ("u", "m9", 10)],
                    reward={"steps": 20, "eval_every": 10},
                    rl={"iterations": 2, "eval_every": 2, "snapshot_steps": []})
    torch.set_num_threads(threads)


def test_report_uses_exact_beats(run):
    _, run_dir = run
    report = json.loads((run_dir / "report.json").read_text())
    assert report["protocol"]["music_beats"].startswith("exact")
    assert report["protocol"]["table4_music_beats"].startswith("exact")     # demos' music matched to its shard
    assert report["notes"] == []
    assert 0 < report["table1"]["gt"]["bas"] <= 1


def test_old_shards_fall_back_to_the_beat_column_with_a_note(run, tmp_path, capsys):
    from e3d2_core.training.report import evaluation
    config, run_dir = run
    old = tmp_path / "old"
    old.mkdir()
    for split in ("train", "test"):
        shard = shards.load_shard(f"{config['data']['dir']}/{split}.npz")
        for seq in shard.sequences:
            seq.beat_frames = None
        shards.write_shard(old / f"{split}.npz", shard.sequences, fps=shard.fps, music_fps=shard.music_fps,
                           music_kind=shard.music_kind, split=split)
    ev = evaluation({**config, "data": {"dir": str(old)}}, run_dir)
    assert not ev.exact_beats and "code-rate beat column" in ev.notes[0]
    assert "--add-beats" in capsys.readouterr().err
    exact = evaluation(config, run_dir, quiet=True)
    # the fallback puts beats at each step's first frame; the exact ones lie 3 frames later
    assert all(np.array_equal(a + 3, b) for a, b in zip(ev.test_beats, exact.test_beats))


def test_model_card_has_every_table_with_finite_numbers(run, tmp_path):
    _, run_dir = run
    card, out_json = tmp_path / "MODEL_CARD.md", tmp_path / "card.json"
    assert model_card.main([str(run_dir), "-o", str(card), "--json", str(out_json)]) == 0
    text = card.read_text()
    result = json.loads(out_json.read_text())
    rows = result["numbers"]["rows"]
    assert set(rows) == {"gt", "beat", "rl", "bc", "random", "train_motion"}     # the micro run has π_beat
    for key, row in rows.items():
        for metric in ("bas", "fid_k", "fid_g", "div_k", "div_g", "pfc"):
            assert np.isfinite(row[metric]), (key, metric)
            lo, hi = row["ci"][metric]
            assert lo <= hi
    assert rows["gt"]["fid_k"] < rows["random"]["fid_k"]         # the reference itself is closest to itself
    assert "exact music beats" in result["numbers"]["protocol"]["music_beats"]
    sizes = result["sizes"]
    assert sizes["parameters_total"] == sum(sizes["parameters"].values()) > 0
    for heading in ("## The default model on the held-out song", "### Table 1", "### Table 3", "### Table 4",
                    "accuracy per ε pair", "## Limitations", "## Recipe", "## Data", "## Sizes"):
        assert heading in text, heading
    distilled = result["numbers"]["distilled"]
    assert f"guide at {distilled['guide_strength']:g}" in text and "`e3d2 generate` dances π_beat" in text
    repeat = result["numbers"]["repeat"]                  # the micro run's guide stage measured its repeat limit
    assert f"more than {repeat['free_repeats']} times in the last {repeat['window']} steps" in text
    for label in ("π_beat (the default policy", "π_RL", "π_BC", "random-code policy", "training motion itself",
                  "ground truth"):
        section = text.split("## The default model on the held-out song")[1].split("## The E3D2 report")[0]
        line = next(line for line in section.splitlines() if line.startswith(f"| {label}"))
        cells = line.split("|")[2:8]
        assert all(re.fullmatch(rf" {NUMBER} \[{NUMBER}, {NUMBER}\] ", c) for c in cells), line
    table1 = text.split("### Table 1")[1].split("###")[0]
    assert sum(bool(re.search(r"\| (gt|bc|rl) \| -?\d", line)) for line in table1.splitlines()) == 3
    assert "m9" in text and "procedural train data" in text
    accuracy_row = next(line for line in text.splitlines() if line.startswith("| 0.02 vs 0.5 |"))
    assert re.fullmatch(rf"\| 0.02 vs 0.5 \| {NUMBER} \| \[{NUMBER}, {NUMBER}\] \|", accuracy_row), accuracy_row


def test_model_card_refuses_an_unfinished_run(run, tmp_path, capsys):
    _, run_dir = run
    partial = tmp_path / "partial"
    shutil.copytree(run_dir, partial)
    (partial / "report.json").unlink()
    assert model_card.main([str(partial), "-o", str(tmp_path / "card.md")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "report.json" in err
    assert not (tmp_path / "card.md").exists()


def test_music_follow_section_is_rewritten_alone(tmp_path):
    card = tmp_path / "CARD.md"
    card.write_text("# Card\n\nintro\n\n## Following the music (`bench/bench_music_follow.py`)\n\nold table\n\n"
                    "## The E3D2 report (`e3d2 report`)\n\nkept\n")
    cell = {"mean": 0.5, "ci95": [0.4, 0.6], "n": 3}
    row = {k: cell for k in ("tempo_match", "bas", "phase_gain", "speed", "spin_fraction", "pelvis_accel",
                             "foot_slide")}
    row.update(lowest_foot_min=0.01, tempo_correlation_folded={"r": 0.9, "ci95": [0.8, 0.95], "n": 3})
    follow = tmp_path / "follow.json"
    follow.write_text(json.dumps({"songs": ["steady_70"], "takes_per_song": 3, "seconds": 20.0,
                                  "rows": {"product": row, "rl_guided": row}}))
    assert model_card.main(["--music-follow", str(follow), "-o", str(card)]) == 0
    text = card.read_text()
    assert "old table" not in text and text.startswith("# Card\n\nintro\n") and text.endswith("kept\n")
    assert "| π_RL + beat guide | 0.50 [0.40, 0.60] |" in text
    assert "| product default (π_beat + beat guide + beat lock) |" in text
    follow.write_text(json.dumps({"songs": ["steady_70"], "takes_per_song": 3, "seconds": 20.0,
                                  "default_policy": "rl", "rows": {"product": row}}))
    assert model_card.main(["--music-follow", str(follow), "-o", str(card)]) == 0
    assert "| product default (π_RL + beat guide + beat lock) |" in card.read_text()
    assert model_card.main(["--music-follow", str(tmp_path / "missing.json"), "-o", str(card)]) == 2
    assert "kept" in card.read_text()


def test_card_names_the_policy_generate_dances():
    distilled = {"teacher": "bc", "guide_strength": 4.0, "songs": 10, "takes": 8, "steps": 600}
    text = model_card.beat_policy_text(distilled, "rl")
    assert "π_beat (π_BC fine-tuned" in text and "`e3d2 generate` dances π_RL" in text
    assert "`--policy beat|bc`" in text
    assert "`e3d2 generate` dances π_RL" in model_card.beat_policy_text(None)
    assert "`--policy bc`" in model_card.beat_policy_text(None)


def test_distill_stage_puts_a_beat_policy_in_the_bundle(run):
    from e3d2_core import checkpoint as ckpt
    from e3d2_core.errors import E3D2Error
    _, run_dir = run
    bundle = torch.load(run_dir / "model.pt", weights_only=True)
    assert bundle["policy_beat"]["distilled"]["steps"] == 3 and bundle["policy_beat"]["distilled"]["takes"] >= 1
    changed = [not torch.equal(bundle["policy_beat"]["state_dict"][k], bundle["policy_rl"]["state_dict"][k])
               for k in bundle["policy_rl"]["state_dict"]]
    assert any(changed)                                      # fine-tuned from π_RL, not a copy
    assert ckpt.policy_part(bundle, "auto") == "policy_beat" and ckpt.policy_part(bundle, "rl") == "policy_rl"
    del bundle["policy_beat"]
    assert ckpt.policy_part(bundle, "auto") == "policy_rl"
    with pytest.raises(E3D2Error, match="no beat-distilled policy"):
        ckpt.policy_part(bundle, "beat")


def test_distill_can_take_pi_bc_as_its_teacher(run, tmp_path):
    from e3d2_core.errors import E3D2Error
    from e3d2_core.training import stages
    config, run_dir = run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "distill.pt").unlink()
    options = stages.StageOptions(progress=False, device="cpu")
    config = {**config, "distill": {**config["distill"], "teacher": "bc"}}
    stages.run_stage("distill", config, copy, options)
    entry = torch.load(copy / "distill.pt", weights_only=True)["policy_beat"]
    assert entry["distilled"]["teacher"] == "bc"
    bc = torch.load(copy / "bc.pt", weights_only=True)["policy"]["state_dict"]
    assert any(not torch.equal(entry["state_dict"][k], bc[k]) for k in bc)          # fine-tuned from π_BC
    with pytest.raises(E3D2Error, match="distill.teacher"):
        stages.run_stage("distill", {**config, "distill": {**config["distill"], "teacher": "hand"}}, copy, options)


def test_bundle_default_policy_is_what_auto_runs(run, tmp_path):
    from e3d2_core import checkpoint as ckpt
    from e3d2_core.errors import E3D2Error
    from e3d2_core.training import stages
    config, run_dir = run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    options = stages.StageOptions(progress=False, device="cpu")
    stages.run_stage("bundle", {**config, "bundle": {"default_policy": "rl"}}, copy, options)
    bundle = ckpt.load_bundle(copy / "model.pt")
    assert bundle["default_policy"] == "rl" and "policy_beat" in bundle
    assert ckpt.policy_part(bundle, "auto") == "policy_rl"              # not the π_beat it also holds
    assert ckpt.policy_part(bundle, "beat") == "policy_beat"
    with pytest.raises(E3D2Error, match="default_policy must be one of"):
        stages.run_stage("bundle", {**config, "bundle": {"default_policy": "best"}}, copy, options)
    (copy / "distill.pt").unlink()
    with pytest.raises(E3D2Error, match="no policy_beat"):
        stages.run_stage("bundle", {**config, "bundle": {"default_policy": "beat"}}, copy, options)
    assert ckpt.load_bundle(copy / "model.pt")["default_policy"] == "rl"   # the refused bundle left it as it was
    raw = torch.load(copy / "model.pt", weights_only=True)
    del raw["policy_rl"]
    torch.save(raw, copy / "broken.pt")
    with pytest.raises(E3D2Error, match="default policy 'rl' is not one of the policies it holds"):
        ckpt.load_bundle(copy / "broken.pt")
