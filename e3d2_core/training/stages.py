"""The training stages and their registry: name -> function(config, run_dir, options) -> output path.

One run folder holds everything a pipeline produces::

    RUN/vqvae/            checkpoints/, metrics.jsonl, config.yaml, summary.json   (the vqvae stage's work)
    RUN/vqvae.pt          its output bundle: {"vqvae": {config, state_dict}, "skeleton", "data_note"}
    RUN/bc/ ...           the same for the policy
    RUN/bc.pt             {"policy": {config, state_dict}, "music": {kind, fps, mean, std}}
    RUN/model.pt          the ``bundle`` stage: every stage output's bundle keys merged into one e3d2 bundle

A stage is done when its ``output`` file exists (written atomically, last); ``run_all`` runs the registered
stages in ``order``, skipping finished ones and resuming an interrupted one from its newest checkpoint. Later
stages (demos, reward, rl, report) register themselves with :func:`register_stage`; a stage whose output is a
bundle names the keys it contributes to ``model.pt`` in ``bundle_keys``.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from e3d2_core.errors import E3D2Error
from e3d2_core.fileio import atomic_open, atomic_path
from e3d2_core.skeleton import default_skeleton
from e3d2_core.training import data as shards
from e3d2_core.training.trainer import TrainConfig, Trainer, distributed_device, seed_everything

BUNDLE_FORMAT = "e3d2-bundle"
BUNDLE_VERSION = 1


@dataclass(frozen=True)
class StageOptions:
    """What the command line adds to a config: resume an interrupted stage, device, progress bars."""

    resume: bool = False
    device: str = "auto"
    progress: bool = True
    on_step: Callable[[int], None] | None = None   # forwarded to the Trainer (tests simulate kills with it)


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[dict, Path, StageOptions], Path]
    output: str                      # file in the run folder that marks the stage as done
    needs: tuple[str, ...] = ()      # stages whose outputs must exist first
    bundle_keys: tuple[str, ...] = ()  # keys of the output bundle copied into model.pt
    order: int = 50
    help: str = ""
    rerun_after_upstream: bool = False  # in run_all, redo it when an earlier stage ran (the bundle step)


STAGES: dict[str, Stage] = {}


def register_stage(stage: Stage) -> Stage:
    """Add (or replace) a stage; ``e3d2 train NAME`` and ``e3d2 train all`` pick it up."""
    STAGES[stage.name] = stage
    return stage


# Model classes by role, as "module:Class" so a test (or another helper) can point a role elsewhere.
MODEL_CLASSES = {"vqvae": "e3d2_core.models.vqvae:ChoreographicMemory",
                 "policy": "e3d2_core.models.policy:DancePolicy"}


def model_class(role: str):
    module_name, _, class_name = MODEL_CLASSES[role].partition(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise E3D2Error(f"the {role} model class {MODEL_CLASSES[role]} is not available ({err})") from None


# ---------------------------------------------------------------------------------------------- helpers
def save_stage_output(path: Path, bundle: dict) -> Path:
    """Write a stage's output bundle atomically (tensors and plain containers only, weights_only-loadable)."""
    bundle = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, **bundle}
    with atomic_path(path) as tmp:
        torch.save(bundle, tmp)
    return path


def load_stage_output(run_dir: Path, stage: str) -> dict:
    path = Path(run_dir) / STAGES[stage].output
    if not path.is_file():
        raise E3D2Error(f"stage '{stage}' has not finished in this run (no {path.name}); run "
                        f"`e3d2 train {stage}` first", path=run_dir)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise E3D2Error(f"unreadable stage output ({type(err).__name__}: {err})", path=path) from None


def _section(config: dict, *keys: str) -> dict:
    node = config
    for i, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            raise E3D2Error(f"config: missing section '{'.'.join(keys[:i + 1])}'")
        node = node[key]
    return node


def data_dir(config: dict) -> Path:
    return Path(_section(config, "data", "dir")).expanduser()


def load_split(config: dict, split: str, *, required: bool = True) -> shards.Shard | None:
    path = data_dir(config) / f"{split}.npz"
    if not path.is_file() and not required:
        return None
    shard = shards.load_shard(path)
    fps = float(config.get("fps", shard.fps))
    if abs(shard.fps - fps) > 1e-6:
        raise E3D2Error(f"shard motion is {shard.fps:g} fps, the config wants {fps:g}; rebuild the data with "
                        f"--fps {fps:g}", path=path)
    music = config.get("music", {})
    if music.get("kind", shard.music_kind) != shard.music_kind:
        raise E3D2Error(f"shard music features are '{shard.music_kind}', the config wants '{music['kind']}'",
                        path=path)
    if not shard.sequences:
        raise E3D2Error(f"split '{split}' has no sequences", path=path)
    return shard


def stage_device(config: dict, options: StageOptions) -> torch.device:
    """The command line's device, else the config's, else auto (this rank's GPU under torchrun)."""
    want = options.device if options.device != "auto" else config.get("device", "auto")
    return distributed_device(want)[0]


def _is_main() -> bool:
    return not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0


def _write_json(path: Path, data: dict) -> None:
    with atomic_open(path, "w") as handle:
        json.dump(data, handle, indent=2)


def _write_config(work_dir: Path, config: dict) -> None:
    import yaml
    work_dir.mkdir(parents=True, exist_ok=True)
    with atomic_open(work_dir / "config.yaml", "w") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)


@torch.no_grad()
def _mean_eval_loss(model, dataset, batch_size: int, device) -> dict:
    """Model logs averaged over ``dataset`` in eval mode (no dropout, no codebook updates)."""
    from e3d2_core.training.trainer import default_collate
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


def apply_threads(config: dict) -> None:
    """``threads: N`` in the config caps torch's CPU threads (on a busy machine fewer can be much faster)."""
    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))


def _train_model(model, dataset, config: dict, section: str, work_dir: Path, options: StageOptions) -> Trainer:
    train_cfg = dict(_section(config, section, "train"))
    train_cfg.setdefault("seed", int(config.get("seed", 0)))
    trainer = Trainer(model, dataset, TrainConfig.from_dict(train_cfg, where=f"config {section}.train"), work_dir,
                      device=options.device if options.device != "auto" else config.get("device", "auto"),
                      progress=options.progress, desc=section, on_step=options.on_step)
    trainer.fit(resume=options.resume)
    return trainer


# ---------------------------------------------------------------------------------------------- vqvae
def run_vqvae(config: dict, run_dir: Path, options: StageOptions) -> Path:
    """Train the choreographic memory on motion windows (SPEC §3) and write ``vqvae.pt``."""
    run_dir = Path(run_dir)
    work = run_dir / "vqvae"
    apply_threads(config)
    seed_everything(int(config.get("seed", 0)))
    train = load_split(config, "train")
    window_cfg = _section(config, "vqvae", "data")
    window, stride = int(window_cfg.get("window", 240)), int(window_cfg.get("stride", 40))
    dataset = shards.MotionWindows(train.sequences, window, stride)
    if len(dataset) == 0:
        raise E3D2Error(f"no training sequence is {window} frames long; lower vqvae.data.window")
    model_cfg = dict(_section(config, "vqvae", "model"))
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
    output = run_dir / STAGES["vqvae"].output
    if trainer.dist.is_main:
        _write_json(work / "summary.json", summary)
        save_stage_output(output, {"vqvae": {"config": model_cfg, "state_dict": _cpu_state(model)},
                                   "skeleton": default_skeleton().to_dict(), "data_note": train.note,
                                   "motion_fps": float(train.fps)})
    return output


def _cpu_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def load_vqvae(run_dir: Path, device) -> tuple[torch.nn.Module, dict]:
    bundle = load_stage_output(run_dir, "vqvae")
    model = model_class("vqvae")(dict(bundle["vqvae"]["config"]))
    model.load_state_dict(bundle["vqvae"]["state_dict"])
    return model.to(device).eval(), bundle


@torch.no_grad()
def encode_sequences(vqvae, sequences: list[shards.Sequence], ratio: int, device,
                     chunk_codes: int = 512) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Up and down codes of every sequence's whole code steps (``len(seq.music)`` steps each), (N,) int64.

    Whole sequences are encoded (in chunks of ``chunk_codes`` steps for memory), not 240-frame windows as
    Bailando does on the fly: the encoder is convolutional, so the codes differ only near chunk edges, and
    encoding once makes a BC epoch cost no VQ-VAE passes.
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
    """Behaviour cloning of the policy on (music, up, down) code windows (SPEC §4) and write ``bc.pt``."""
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

    window_cfg = _section(config, "bc", "data")
    length, stride = int(window_cfg.get("length", 57)), int(window_cfg.get("stride", 1))
    ups, downs, music = prepared(train)
    dataset = shards.CodeWindows(ups, downs, music, length, stride)
    if len(dataset) == 0:
        raise E3D2Error(f"no training sequence has {length} code steps; lower bc.data.length")
    model_cfg = dict(_section(config, "bc", "model"))
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
    output = run_dir / STAGES["bc"].output
    if trainer.dist.is_main:
        _write_json(work / "summary.json", summary)
        save_stage_output(output, {
            "policy": {"config": model_cfg, "state_dict": _cpu_state(policy)},
            "music": {"kind": train.music_kind, "fps": float(train.music_fps), "mean": torch.from_numpy(mean),
                      "std": torch.from_numpy(std)}})
    return output


# ---------------------------------------------------------------------------------------------- bundle
def run_bundle(config: dict, run_dir: Path, options: StageOptions) -> Path:
    """Merge the finished stages' bundle keys into ``model.pt`` (later stages override earlier ones)."""
    from e3d2_core.checkpoint import save_bundle
    from e3d2_core import __version__
    run_dir = Path(run_dir)
    merged: dict = {}
    for stage in sorted(STAGES.values(), key=lambda s: s.order):
        if not stage.bundle_keys or not (run_dir / stage.output).is_file():
            continue
        out = load_stage_output(run_dir, stage.name)
        merged.update({k: out[k] for k in stage.bundle_keys if k in out})
    missing = [k for k in ("vqvae", "policy", "music") if k not in merged]
    if missing:
        raise E3D2Error(f"cannot bundle: missing {', '.join(missing)} (run the vqvae and bc stages)", path=run_dir)
    merged.setdefault("skeleton", default_skeleton().to_dict())
    merged["data_note"] = str(merged.get("data_note", ""))
    merged.update(format=BUNDLE_FORMAT, version=BUNDLE_VERSION, code_version=__version__,
                  training={"config_name": str(config.get("name", "")), "seed": int(config.get("seed", 0))})
    output = run_dir / STAGES["bundle"].output
    if _is_main():
        save_bundle(output, merged)
    return output


def run_all(config: dict, run_dir: Path, options: StageOptions) -> list[str]:
    """Run every registered stage in order, skipping finished ones; returns the names of the stages run."""
    ran = []
    for stage in sorted(STAGES.values(), key=lambda s: s.order):
        stale = stage.rerun_after_upstream and ran
        if (Path(run_dir) / stage.output).is_file() and not stale:
            continue
        run_stage(stage.name, config, run_dir, StageOptions(True, options.device, options.progress, options.on_step))
        ran.append(stage.name)
    return ran


def run_stage(name: str, config: dict, run_dir: Path, options: StageOptions) -> Path:
    if name not in STAGES:
        raise E3D2Error(f"unknown training stage '{name}'; known: {', '.join(STAGES)}")
    stage = STAGES[name]
    for need in stage.needs:
        if not (Path(run_dir) / STAGES[need].output).is_file():
            raise E3D2Error(f"stage '{name}' needs stage '{need}' first (no {STAGES[need].output} in the run)",
                            path=run_dir)
    return stage.run(config, Path(run_dir), options)


register_stage(Stage("vqvae", run_vqvae, "vqvae.pt", bundle_keys=("vqvae", "skeleton", "data_note", "motion_fps"),
                     order=10, help="choreographic memory (up/down VQ-VAE) on motion windows"))
register_stage(Stage("bc", run_bc, "bc.pt", needs=("vqvae",), bundle_keys=("policy", "music"), order=20,
                     help="behaviour-cloned policy pi_BC on (music, code) windows"))
register_stage(Stage("bundle", run_bundle, "model.pt", needs=("vqvae", "bc"), order=90,
                     help="merge the stage outputs into the run's model.pt bundle", rerun_after_upstream=True))

# The E3D2 stages (demos, reward, rl, rl_hand) register themselves; imported last, they use the helpers above.
importlib.import_module("e3d2_core.training.e3d2_stages")
