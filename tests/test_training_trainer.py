"""The generic trainer: determinism, kill-and-resume equality, metrics log, DDP on gloo, bad configs."""
from __future__ import annotations

import json
import socket

import pytest
import torch

from e3d2_core.errors import E3D2Error
from e3d2_core.training.trainer import TrainConfig, Trainer, list_checkpoints, lr_factor
from training_fixtures import one_thread, MotionWindows, TinyMotionAutoencoder, ddp_worker, flat_params  # noqa: F401 (one_thread: autouse)

CONFIG = {"batch_size": 4, "epochs": 3, "optimizer": {"kind": "adam", "lr": 3e-3, "betas": [0.5, 0.999]},
          "schedule": {"kind": "multistep", "milestones": [2], "gamma": 0.1}, "seed": 7,
          "checkpoint_every": 4, "log_every": 2}


class Killed(Exception):
    pass


def _train(work_dir, *, resume=False, kill_at=None, config=CONFIG, dropout=0.2):
    torch.manual_seed(0)
    model = TinyMotionAutoencoder(dropout=dropout)

    def on_step(step):
        if step == kill_at:
            raise Killed()
    trainer = Trainer(model, MotionWindows(), TrainConfig.from_dict(config), work_dir, device="cpu",
                      progress=False, on_step=on_step)
    try:
        trainer.fit(resume=resume)
    except Killed:
        return None, trainer
    return model, trainer


def test_training_reduces_loss_and_writes_log(tmp_path):
    model, trainer = _train(tmp_path / "run")
    assert trainer.total_steps == 18  # 24 windows / batch 4 = 6 steps per epoch, 3 epochs
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(2, 19, 2))
    assert lines[-1]["loss"] < lines[0]["loss"]
    # MultiStep at epoch 2 = step 12: lr drops by gamma there
    assert lines[0]["lr"] == pytest.approx(3e-3) and lines[-1]["lr"] == pytest.approx(3e-4)
    assert {"mse", "seconds", "epoch"} <= set(lines[-1])
    # keeps the newest two checkpoints, and the final one is complete and loads weights-only
    kept = list_checkpoints(tmp_path / "run" / "checkpoints")
    assert [p.name for p in kept] == ["step_00000016.pt", "step_00000018.pt"]
    state = torch.load(kept[-1], weights_only=True)
    assert state["step"] == 18


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    a, _ = _train(tmp_path / "a")
    b, _ = _train(tmp_path / "b")
    c, _ = _train(tmp_path / "c", config={**CONFIG, "seed": 8})
    assert torch.equal(flat_params(a), flat_params(b))
    assert not torch.equal(flat_params(a), flat_params(c))


@pytest.mark.parametrize("kill_at", [5, 8, 13])
def test_kill_and_resume_gives_identical_weights(tmp_path, kill_at):
    straight, _ = _train(tmp_path / "straight")
    killed, _ = _train(tmp_path / "resumed", kill_at=kill_at)
    assert killed is None
    resumed, trainer = _train(tmp_path / "resumed", resume=True)
    assert trainer.step == 18
    assert torch.equal(flat_params(straight), flat_params(resumed))
    # the log has no duplicates and matches the uninterrupted one except for wall-clock seconds
    def records(run):
        rows = [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert records("resumed") == records("straight")


def test_resume_of_finished_run_is_a_no_op_and_fresh_run_refuses_old_folder(tmp_path):
    first, _ = _train(tmp_path / "run")
    again, trainer = _train(tmp_path / "run", resume=True)
    assert trainer.step == 18 and torch.equal(flat_params(first), flat_params(again))
    with pytest.raises(E3D2Error, match="already holds a training run"):
        _train(tmp_path / "run")


def test_resume_with_other_length_is_refused(tmp_path):
    _train(tmp_path / "run", kill_at=5)
    with pytest.raises(E3D2Error, match="18-step run"):
        _train(tmp_path / "run", resume=True, config={**CONFIG, "epochs": 5})


def test_damaged_newest_checkpoint_falls_back_to_previous(tmp_path):
    straight, _ = _train(tmp_path / "straight")
    _train(tmp_path / "run", kill_at=9)            # checkpoints at 4 and 8
    newest = list_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    newest.write_bytes(newest.read_bytes()[:100])  # e.g. a foreign, truncated copy
    resumed, _ = _train(tmp_path / "run", resume=True)
    assert torch.equal(flat_params(straight), flat_params(resumed))


@pytest.mark.parametrize("bad, message", [
    ({"batch_size": 0, "steps": 3}, "batch_size"),
    ({"batch_size": 2}, "exactly one of epochs or steps"),
    ({"batch_size": 2, "steps": 3, "epochs": 1}, "exactly one"),
    ({"batch_size": 2, "steps": 3, "lr": 0.1}, "unknown key"),
    ({"batch_size": 2, "steps": 3, "precision": "fp8"}, "precision"),
    ({"batch_size": 2, "steps": 3, "schedule": {"kind": "exp"}}, "schedule kind"),
])
def test_bad_training_config(bad, message):
    with pytest.raises(E3D2Error, match=message):
        TrainConfig.from_dict(bad)


def test_half_precision_on_cpu_is_refused(tmp_path):
    with pytest.raises(E3D2Error, match="needs a CUDA device"):
        _train(tmp_path / "run", config={**CONFIG, "precision": "bf16"})


def test_cosine_schedule_warms_up_then_decays():
    f = lr_factor({"kind": "cosine", "warmup_steps": 4, "min_factor": 0.1}, 1, 20)
    assert [round(f(s), 3) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(20) == pytest.approx(0.1) and f(12) < f(8)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_gloo_processes_match_one_process(tmp_path):
    """Two ranks, each on half of every global batch, reach the single-process weights (float tolerance):
    DDP averages the per-rank mean gradients, which equals the global-batch mean gradient."""
    config = {**CONFIG, "epochs": 2}
    single, _ = _train(tmp_path / "single", config=config, dropout=0.0)
    out = tmp_path / "ddp_params"
    torch.multiprocessing.spawn(ddp_worker, args=(2, _free_port(), str(tmp_path / "ddp"), config, str(out)),
                                nprocs=2, join=True)
    rank0 = torch.load(f"{out}.0", weights_only=True)
    rank1 = torch.load(f"{out}.1", weights_only=True)
    assert rank0["world"] == 2
    assert torch.equal(rank0["params"], rank1["params"])          # ranks stay synchronised
    assert torch.allclose(rank0["params"], flat_params(single), atol=1e-5, rtol=1e-4)
    # and training did move the weights away from the shared initialisation
    torch.manual_seed(0)
    assert not torch.allclose(rank0["params"], flat_params(TinyMotionAutoencoder()), atol=1e-3)
    assert len(list_checkpoints(tmp_path / "ddp" / "checkpoints")) == 2   # rank 0 alone wrote them
