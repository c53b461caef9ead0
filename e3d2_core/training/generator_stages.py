"""The generator's two stages: ``vqvae`` (the choreographic memory) and ``bc`` (the policy π_BC by behaviour cloning).

``vqvae`` trains :class:`e3d2_core.models.vqvae.ChoreographicMemory` on motion windows and writes ``RUN/vqvae.pt``
(``{"vqvae": {config, state_dict}, "skeleton", "data_note", "motion_fps"}``); ``bc`` encodes every motion once to
codes, trains :class:`e3d2_core.models.policy.DancePolicy` on (music, up, down) code windows and writes
``RUN/bc.pt`` (``{"policy": {config, state_dict}, "music": {kind, fps, mean, std}}``). Both train with the
resumable :class:`~e3d2_core.training.trainer.Trainer` in ``RUN/<stage>/`` (checkpoints/, metrics.jsonl,
config.yaml, summary.json). Models and losses: ``docs/models.md``; the stages: ``docs/training.md``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from e3d2_core.errors import E3D2Error
from e3d2_core.fileio import atomic_open
from e3d2_core.skeleton import default_skeleton
from e3d2_core.training import data as shards
from e3d2_core.training.stage_common import (OUTPUTS, StageOptions, apply_threads, config_section, cpu_state,
                                             load_split, load_vqvae, model_class, save_stage_output, stage_device,
                                             write_json)
from e3d2_core.training.trainer import TrainConfig, Trainer, default_collate, seed_everything

# The ``data`` sections' keys and defaults: vqvae windows in frames (4 s every 40 frames at 60 fps); bc windows in
# code steps (2 x band + 1 at the default band 28, one starting at every step).
VQVAE_DATA_DEFAULTS = {"window": 240, "stride": 40}
BC_DATA_DEFAULTS = {"length": 57, "stride": 1}


def _write_config(work_dir: Path, config: dict) -> None:
    """The config the stage ran with, as ``work_dir/config.yaml`` (``e3d2 report`` and the model card read it)."""
    import yaml
    work_dir.mkdir(parents=True, exist_ok=True)
    with atomic_open(work_dir / "config.yaml", "w") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)


@torch.no_grad()
def _mean_eval_loss(model, dataset, batch_size: int, device) -> dict:
    """Model logs averaged over ``dataset`` in eval mode (no dropout, no codebook updates)."""
    model.eval()
    sums, count = {}, 0
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        batch = {k: v.to(device) for k, v in default_collate(items).items()}
        loss, logs = model(batch)
        n = len(items)
        for key, value in {"loss": float(loss), **(logs or {})}.items():
            sums[key] = sums.get(key, 0.0) + float(value) * n
        count += n
    model.train()
    return {k: v / max(count, 1) for k, v in sums.items()}


def _train_model(model, dataset, config: dict, section: str, work_dir: Path, options: StageOptions) -> Trainer:
    """Fit ``model`` on ``dataset`` with the config's ``<section>.train`` settings, checkpointing in ``work_dir``."""
    train_cfg = dict(config_section(config, section, "train"))
    train_cfg.setdefault("seed", int(config.get("seed", 0)))
    trainer = Trainer(model, dataset, TrainConfig.from_dict(train_cfg, where=f"config {section}.train"), work_dir,
                      device=options.device if options.device != "auto" else config.get("device", "auto"),
                      progress=options.progress, desc=section, on_step=options.on_step)
    trainer.fit(resume=options.resume)
    return trainer


# ---------------------------------------------------------------------------------------------- vqvae
def run_vqvae(config: dict, run_dir: Path, options: StageOptions) -> Path:
    """Train the choreographic memory on motion windows (docs/models.md) and write ``vqvae.pt``."""
    run_dir = Path(run_dir)
    work = run_dir / "vqvae"
    apply_threads(config)
    seed_everything(int(config.get("seed", 0)))
    train = load_split(config, "train")
    window_cfg = {**VQVAE_DATA_DEFAULTS, **config_section(config, "vqvae", "data")}
    window, stride = int(window_cfg["window"]), int(window_cfg["stride"])
    dataset = shards.MotionWindows(train.sequences, window, stride)
    if len(dataset) == 0:
        raise E3D2Error(f"no training sequence is {window} frames long; lower vqvae.data.window")
    model_cfg = dict(config_section(config, "vqvae", "model"))
    if model_cfg.setdefault("fps", float(train.fps)) != float(train.fps):
        raise E3D2Error(f"config vqvae.model.fps {model_cfg['fps']} differs from the data's {train.fps:g} fps")
    model = model_class("vqvae")(model_cfg)
    _write_config(work, config)
    trainer = _train_model(model, dataset, config, "vqvae", work, options)
    summary = {"train_windows": len(dataset), "train_minutes": round(train.minutes(), 3),
               "steps": trainer.total_steps}
    val = load_split(config, "val", required=False)
    if val is not None:
        val_set = shards.MotionWindows(val.sequences, window, stride)
        if len(val_set):
            summary["val"] = _mean_eval_loss(model, val_set, trainer.config.batch_size, trainer.device)
    output = run_dir / OUTPUTS["vqvae"]
    if trainer.dist.is_main:
        write_json(work / "summary.json", summary)
        save_stage_output(output, {"vqvae": {"config": model_cfg, "state_dict": cpu_state(model)},
                                   "skeleton": default_skeleton().to_dict(), "data_note": train.note,
                                   "motion_fps": float(train.fps)})
    return output


@torch.no_grad()
def encode_sequences(vqvae, sequences: list[shards.Sequence], ratio: int, device,
                     chunk_codes: int = 512) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Up and down codes of every sequence's whole code steps.

    Whole sequences are encoded (in chunks of ``chunk_codes`` steps for memory), not 240-frame windows as
    Bailando does on the fly: the encoder is convolutional, so the codes differ only near chunk edges, and
    encoding once makes a BC epoch cost no VQ-VAE passes.

    Parameters
    ----------
    vqvae : the trained ChoreographicMemory, on ``device``.
    sequences : shard sequences; sequence i has N_i = ``len(seq.music)`` code steps.
    ratio : motion frames per code step (8).
    device : where the encoder runs.
    chunk_codes : code steps encoded at once.

    Returns
    -------
    (up codes, down codes): one (N_i,) int64 array per sequence each.
    """
    ups, downs = [], []
    for seq in sequences:
        n = len(seq.music)
        up_parts, down_parts = [], []
        for a in range(0, n, chunk_codes):
            b = min(n, a + chunk_codes)
            poses = torch.as_tensor(seq.poses[a * ratio:b * ratio], device=device)[None]
            trans = torch.as_tensor(seq.trans[a * ratio:b * ratio], device=device)[None]
            up, down = vqvae.encode(poses, trans)
            up_parts.append(up[0].cpu())
            down_parts.append(down[0].cpu())
        ups.append(torch.cat(up_parts).numpy().astype(np.int64))
        downs.append(torch.cat(down_parts).numpy().astype(np.int64))
    return ups, downs



# ---------------------------------------------------------------------------------------------- bc
def run_bc(config: dict, run_dir: Path, options: StageOptions) -> Path:
    """Behaviour cloning of the policy on (music, up, down) code windows (docs/models.md) and write ``bc.pt``."""
    run_dir = Path(run_dir)
    work = run_dir / "bc"
    apply_threads(config)
    seed_everything(int(config.get("seed", 0)))
    device = stage_device(config, options)
    vqvae, vq_bundle = load_vqvae(run_dir, device)
    train = load_split(config, "train")
    ratio = shards.code_ratio(train.fps, train.music_fps)
    music_cfg = config.get("music", {})
    mean, std = shards.music_stats([s.music for s in train.sequences], bool(music_cfg.get("normalize", True)))

    def prepared(shard):
        ups, downs = encode_sequences(vqvae, shard.sequences, ratio, device)
        music = [((s.music - mean) / std).astype(np.float32) for s in shard.sequences]
        return ups, downs, music

    window_cfg = {**BC_DATA_DEFAULTS, **config_section(config, "bc", "data")}
    length, stride = int(window_cfg["length"]), int(window_cfg["stride"])
    ups, downs, music = prepared(train)
    dataset = shards.CodeWindows(ups, downs, music, length, stride)
    if len(dataset) == 0:
        raise E3D2Error(f"no training sequence has {length} code steps; lower bc.data.length")
    model_cfg = dict(config_section(config, "bc", "model"))
    vq_cfg = vq_bundle["vqvae"]["config"]
    model_cfg.setdefault("music_dim", int(train.music_dim))
    model_cfg.setdefault("vocab", int(vq_cfg["codebook_size"]))   # one vocabulary per half, the codebook size
    del vqvae
    policy = model_class("policy")(model_cfg)
    _write_config(work, config)
    trainer = _train_model(policy, dataset, config, "bc", work, options)
    used = np.unique(np.concatenate(ups)).size, np.unique(np.concatenate(downs)).size
    summary = {"train_windows": len(dataset), "window_codes": length, "train_minutes": round(train.minutes(), 3),
               "steps": trainer.total_steps, "codes_used_up": int(used[0]), "codes_used_down": int(used[1])}
    val = load_split(config, "val", required=False)
    if val is not None:
        vqvae, _ = load_vqvae(run_dir, trainer.device)
        v_up, v_down, v_music = prepared(val)
        val_set = shards.CodeWindows(v_up, v_down, v_music, length, stride)
        if len(val_set):
            summary["val"] = _mean_eval_loss(policy, val_set, trainer.config.batch_size, trainer.device)
    output = run_dir / OUTPUTS["bc"]
    if trainer.dist.is_main:
        write_json(work / "summary.json", summary)
        save_stage_output(output, {
            "policy": {"config": model_cfg, "state_dict": cpu_state(policy)},
            "music": {"kind": train.music_kind, "fps": float(train.music_fps), "mean": torch.from_numpy(mean),
                      "std": torch.from_numpy(std)}})
    return output
