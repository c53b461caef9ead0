"""A generic, resumable trainer for any model with ``forward(batch) -> (loss, logs)``.

What it guarantees:

* **Deterministic.** The data order of epoch ``e`` is a permutation drawn from its own generator seeded by
  ``(seed, e)``; the model's own randomness (dropout, codebook restarts) uses torch's global RNG, whose state
  is saved in every checkpoint. Same seed, same machine, same thread count: same weights.
* **Resumable after a kill at any point.** Every ``checkpoint_every`` steps (and every ``checkpoint_seconds``)
  it writes model + optimizer + scheduler + grad-scaler + RNG states + step counter atomically (temporary file
  then rename), keeping the newest ``keep_checkpoints``. ``fit(resume=True)`` loads the newest readable one and
  replays from there, reaching the weights an uninterrupted run reaches. The metrics log is cut back to the
  resumed step so it holds no duplicate lines.
* **Several processes** under ``torchrun`` (``WORLD_SIZE`` > 1): DistributedDataParallel, NCCL on CUDA and
  gloo on CPU. Each optimiser step consumes one *global* batch of ``batch_size`` items, split evenly over the
  ranks (``batch_size`` must be divisible by the world size), so for a model whose loss is a mean over the batch
  the gradient — and thus the run — is the single-process one up to float summation order. Only rank 0 writes
  logs and checkpoints; ranks all read the same checkpoint on resume.
* **Mixed precision** on CUDA: ``precision: auto`` picks bf16 autocast where the GPU supports it, else fp16
  autocast with a GradScaler; CPU runs in fp32.

Checkpoints load with ``torch.load(weights_only=True)``: they hold tensors, numbers and plain containers only.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist

from e3d2_core.device import device_for_rank, resolve_device
from e3d2_core.errors import E3D2Error
from e3d2_core.fileio import atomic_open, atomic_path

CHECKPOINT_FORMAT = "e3d2-train-state"


# ---------------------------------------------------------------------------------------------- configuration
@dataclass
class TrainConfig:
    """How to train: plain data, read from a stage's section of the YAML config.

    Exactly one of ``epochs`` / ``steps`` sets the length. An epoch is ``len(dataset) // batch_size`` steps
    (at least 1). ``schedule`` milestones are in epochs when training by epochs, in steps otherwise.
    """

    batch_size: int
    epochs: int | None = None
    steps: int | None = None
    optimizer: dict = field(default_factory=lambda: {"kind": "adam", "lr": 1e-3})
    schedule: dict = field(default_factory=lambda: {"kind": "constant"})
    seed: int = 0
    precision: str = "auto"          # auto | fp32 | bf16 | fp16 (the last two on CUDA only)
    grad_clip: float | None = None
    checkpoint_every: int = 500      # steps
    checkpoint_seconds: float = 300.0
    keep_checkpoints: int = 2
    log_every: int = 10              # steps

    @classmethod
    def from_dict(cls, data: dict, *, where: str = "training config") -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise E3D2Error(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        try:
            config = cls(**data)
        except TypeError as err:
            raise E3D2Error(f"{where}: {err}") from None
        config.validate(where)
        return config

    def validate(self, where: str = "training config") -> None:
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise E3D2Error(f"{where}: batch_size must be a positive integer, got {self.batch_size!r}")
        if (self.epochs is None) == (self.steps is None):
            raise E3D2Error(f"{where}: give exactly one of epochs or steps")
        length = self.epochs if self.epochs is not None else self.steps
        if not isinstance(length, int) or length < 1:
            raise E3D2Error(f"{where}: epochs/steps must be a positive integer, got {length!r}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise E3D2Error(f"{where}: precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if self.optimizer.get("kind", "adam") not in ("adam", "adamw", "sgd"):
            raise E3D2Error(f"{where}: optimizer kind must be adam, adamw or sgd")
        if self.schedule.get("kind", "constant") not in ("constant", "multistep", "cosine"):
            raise E3D2Error(f"{where}: schedule kind must be constant, multistep or cosine")
        for name in ("checkpoint_every", "keep_checkpoints", "log_every"):
            if int(getattr(self, name)) < 1:
                raise E3D2Error(f"{where}: {name} must be at least 1")


# ---------------------------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (no-op for one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def distributed_device(device: str) -> tuple[torch.device, DistInfo]:
    """The torch device for ``device`` ("auto" | "cpu" | "cuda" | "cuda:N") in this process, after joining the
    ``torchrun`` process group (if any) with the backend that device needs; "auto" and "cuda" mean this rank's GPU."""
    resolved = resolve_device(device)
    info = init_distributed(resolved.type)
    return device_for_rank(resolved, info.local_rank), info


# ---------------------------------------------------------------------------------------------- pieces
def epoch_order(num_items: int, epoch: int, seed: int, needed: int) -> np.ndarray:
    """``needed`` dataset indices for ``epoch``: concatenated seeded permutations (wraps for tiny datasets)."""
    rng = np.random.Generator(np.random.PCG64([seed, epoch]))
    chunks, have = [], 0
    while have < needed:
        chunks.append(rng.permutation(num_items))
        have += num_items
    return np.concatenate(chunks)[:needed]


def build_optimizer(params, spec: dict) -> torch.optim.Optimizer:
    spec = dict(spec)
    kind = spec.pop("kind", "adam")
    lr = float(spec.pop("lr", 1e-3))
    wd = float(spec.pop("weight_decay", 0.0))
    if kind in ("adam", "adamw"):
        betas = tuple(float(b) for b in spec.pop("betas", (0.9, 0.999)))
        eps = float(spec.pop("eps", 1e-8))
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        optimizer = cls(params, lr=lr, betas=betas, eps=eps, weight_decay=wd)
    else:
        optimizer = torch.optim.SGD(params, lr=lr, momentum=float(spec.pop("momentum", 0.9)), weight_decay=wd)
    if spec:
        raise E3D2Error(f"optimizer: unknown key(s) {', '.join(sorted(spec))}")
    return optimizer


def lr_factor(spec: dict, steps_per_unit: int, total_steps: int) -> Callable[[int], float]:
    """The schedule as a pure function of the optimiser step: multiplies the base learning rate.

    ``multistep``: ×gamma at each milestone (in epochs or steps, see TrainConfig), as MultiStepLR stepped per
    epoch. ``cosine``: linear warm-up over ``warmup_steps`` then cosine decay to ``min_factor``.
    """
    kind = spec.get("kind", "constant")
    if kind == "multistep":
        bounds = sorted(int(m) * steps_per_unit for m in spec.get("milestones", []))
        gamma = float(spec.get("gamma", 0.1))
        return lambda step: gamma ** sum(step >= b for b in bounds)
    if kind == "cosine":
        warmup = int(spec.get("warmup_steps", 0))
        floor = float(spec.get("min_factor", 0.0))

        def cosine(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        return cosine
    return lambda step: 1.0


def default_collate(items: Sequence[dict]) -> dict:
    """Stack a list of ``{name: array}`` items into ``{name: tensor (B, ...)}``."""
    out = {}
    for key in items[0]:
        values = [torch.as_tensor(item[key]) for item in items]
        out[key] = torch.stack(values)
    return out


def _rng_state(device: torch.device) -> dict:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])}}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["key"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global RNG and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


# ---------------------------------------------------------------------------------------------- checkpoints
def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint files in ``folder``, oldest first (by the step in their name)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("step_*.pt") if p.stem[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.stem[5:]))


def load_latest_checkpoint(folder: Path) -> dict | None:
    """The newest checkpoint in ``folder`` that loads, or None. Unreadable ones are skipped, newest first."""
    for path in reversed(list_checkpoints(folder)):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:   # a damaged file (disk full, foreign file): fall back to the previous checkpoint
            continue
        if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
            return state
    return None


# ---------------------------------------------------------------------------------------------- the trainer
class Trainer:
    """Train ``model`` on ``dataset`` (a sequence of dict items) into ``work_dir``.

    ``work_dir`` receives ``checkpoints/step_XXXXXXXX.pt`` and ``metrics.jsonl`` (one JSON object per logged
    step: step, epoch, lr, the model's logs averaged over the interval and over ranks, seconds elapsed).
    ``on_step(step)`` is called after every completed optimiser step (tests use it to simulate a kill).
    """

    def __init__(self, model: torch.nn.Module, dataset, config: TrainConfig, work_dir, *,
                 collate: Callable = default_collate, device: str = "auto", progress: bool = True,
                 desc: str = "train", on_step: Callable[[int], None] | None = None):
        config.validate()
        self.config = config
        self.work_dir = Path(work_dir)
        self.dataset = dataset
        self.collate = collate
        self.progress = progress
        self.desc = desc
        self.on_step = on_step
        self.device, self.dist = distributed_device(device)
        if config.batch_size % self.dist.world_size:
            raise E3D2Error(f"batch_size {config.batch_size} is not divisible by the {self.dist.world_size} "
                            "processes; pick a multiple of the world size")
        if len(dataset) < 1:
            raise E3D2Error(f"{desc}: the training set is empty")
        self.model = model.to(self.device)
        self.steps_per_epoch = max(1, len(dataset) // config.batch_size)
        self.total_steps = (config.steps if config.steps is not None
                            else config.epochs * self.steps_per_epoch)
        unit = self.steps_per_epoch if config.epochs is not None else 1
        self.optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], config.optimizer)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_factor(config.schedule, unit, self.total_steps))
        self.autocast_dtype = self._autocast_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.wrapped = model
        if self.dist.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids,
                                                                     find_unused_parameters=True)
        self.step = 0

    # -------------------------------------------------------------- helpers
    def _autocast_dtype(self):
        wanted = self.config.precision
        if self.device.type != "cuda" or wanted == "fp32":
            if wanted in ("bf16", "fp16") and self.device.type != "cuda":
                raise E3D2Error(f"precision {wanted} needs a CUDA device; use auto or fp32 on CPU")
            return None
        if wanted == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if wanted == "bf16" else torch.float16

    @property
    def checkpoint_dir(self) -> Path:
        return self.work_dir / "checkpoints"

    @property
    def metrics_path(self) -> Path:
        return self.work_dir / "metrics.jsonl"

    def _batch(self, step: int, order_cache: dict) -> dict:
        epoch, k = divmod(step, self.steps_per_epoch)
        if order_cache.get("epoch") != epoch:
            order_cache["epoch"] = epoch
            order_cache["order"] = epoch_order(len(self.dataset), epoch, self.config.seed,
                                               self.steps_per_epoch * self.config.batch_size)
        per_rank = self.config.batch_size // self.dist.world_size
        start = k * self.config.batch_size + self.dist.rank * per_rank
        indices = order_cache["order"][start:start + per_rank]
        batch = self.collate([self.dataset[int(i)] for i in indices])
        return {key: value.to(self.device, non_blocking=True) if torch.is_tensor(value) else value
                for key, value in batch.items()}

    def state_dict(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "step": self.step, "total_steps": self.total_steps,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": _rng_state(self.device), "config": json.loads(json.dumps(asdict(self.config))),
                "world_size": self.dist.world_size}

    def save_checkpoint(self) -> Path | None:
        """Rank 0 writes ``checkpoints/step_<step>.pt`` atomically and prunes older ones."""
        if not self.dist.is_main:
            return None
        path = self.checkpoint_dir / f"step_{self.step:08d}.pt"
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)
        for old in list_checkpoints(self.checkpoint_dir)[:-self.config.keep_checkpoints]:
            old.unlink(missing_ok=True)
        return path

    def load_state(self, state: dict) -> None:
        if state.get("total_steps") != self.total_steps:
            raise E3D2Error(f"{self.checkpoint_dir}: checkpoint was made for a {state.get('total_steps')}-step run, "
                            f"this config gives {self.total_steps} steps; use a new run folder or the same config")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"], self.device)
        self.step = int(state["step"])

    def _truncate_metrics(self) -> None:
        """Keep only log lines up to the resumed step (the lines after it will be written again)."""
        if not self.dist.is_main or not self.metrics_path.exists():
            return
        kept = []
        for line in self.metrics_path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                if json.loads(line).get("step", 0) <= self.step:
                    kept.append(line)
        with atomic_open(self.metrics_path, "w") as handle:
            handle.write("".join(f"{line}\n" for line in kept))

    def _reduce_logs(self, sums: dict, count: int) -> dict:
        keys = sorted(sums)
        values = torch.tensor([sums[k] / max(count, 1) for k in keys], dtype=torch.float64)
        if self.dist.world_size > 1:
            values = values.to(self.device)
            dist.all_reduce(values)
            values = values.cpu() / self.dist.world_size
        return {k: float(v) for k, v in zip(keys, values.tolist())}

    # -------------------------------------------------------------- the loop
    def fit(self, resume: bool = False) -> dict:
        """Train to the end (or continue from the newest checkpoint when ``resume``); return the last logs."""
        seed_everything(self.config.seed)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self.dist.is_main and self.checkpoint_dir.is_dir():
            for stale in self.checkpoint_dir.glob(".step_*"):   # temporary files of a save that was killed
                stale.unlink(missing_ok=True)
        if resume:
            state = load_latest_checkpoint(self.checkpoint_dir)
            if state is not None:
                self.load_state(state)
        elif list_checkpoints(self.checkpoint_dir) or self.metrics_path.exists():
            raise E3D2Error(f"{self.work_dir} already holds a training run; resume it (--resume) or pick a new "
                            "run folder")
        self._truncate_metrics()
        if self.dist.world_size > 1:
            dist.barrier()
        bar = None
        if self.progress and self.dist.is_main:
            from tqdm.auto import tqdm
            bar = tqdm(total=self.total_steps, initial=self.step, desc=self.desc, unit="step", dynamic_ncols=True)
        order_cache: dict = {}
        sums: dict = {}
        count = 0
        last_logs: dict = {}
        started = time.monotonic()
        last_save = time.monotonic()
        self.model.train()
        try:
            while self.step < self.total_steps:
                batch = self._batch(self.step, order_cache)
                with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                    enabled=self.autocast_dtype is not None):
                    loss, logs = self.wrapped(batch)
                if not torch.isfinite(loss.detach()):
                    raise E3D2Error(f"{self.desc}: loss became {float(loss)} at step {self.step}; lower the "
                                    "learning rate or check the data")
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if self.config.grad_clip:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(self.config.grad_clip))
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                self.step += 1
                sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
                for key, value in (logs or {}).items():
                    sums[key] = sums.get(key, 0.0) + float(value)
                count += 1
                last = self.step == self.total_steps
                if self.step % self.config.log_every == 0 or last:
                    last_logs = self._reduce_logs(sums, count)
                    sums, count = {}, 0
                    record = {"step": self.step, "epoch": self.step / self.steps_per_epoch,
                              "lr": self.optimizer.param_groups[0]["lr"], **last_logs,
                              "seconds": round(time.monotonic() - started, 3)}
                    if self.dist.is_main:
                        with open(self.metrics_path, "a") as handle:
                            handle.write(json.dumps(record) + "\n")
                    if bar is not None:
                        bar.set_postfix(loss=f"{last_logs['loss']:.4g}")
                if bar is not None:
                    bar.update(1)
                due = (self.step % self.config.checkpoint_every == 0
                       or time.monotonic() - last_save >= self.config.checkpoint_seconds)
                if last or due:
                    self.save_checkpoint()
                    last_save = time.monotonic()
                if self.on_step is not None:
                    self.on_step(self.step)
        finally:
            if bar is not None:
                bar.close()
        if self.dist.world_size > 1:
            dist.barrier()
        return last_logs
