"""Small real models and datasets for the trainer tests (imported by spawned worker processes too)."""
from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn


class TinyMotionAutoencoder(nn.Module):
    """A real (small) temporal conv autoencoder on motion windows: batch {"poses": (B,T,24,3), "trans": (B,T,3)}.

    Loss: mean squared reconstruction error of the 75 channels. ``dropout`` > 0 makes the forward pass consume
    the global torch RNG, which a resumed run must restore to reproduce the uninterrupted run.
    """

    def __init__(self, width: int = 16, dropout: float = 0.0):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv1d(75, width, 4, stride=2, padding=1), nn.ReLU(),
                                     nn.Dropout(dropout), nn.Conv1d(width, width, 3, padding=1))
        self.decoder = nn.Sequential(nn.ReLU(), nn.ConvTranspose1d(width, 75, 4, stride=2, padding=1))

    def forward(self, batch):
        x = torch.cat([batch["poses"].flatten(2), batch["trans"]], dim=-1).transpose(1, 2)  # (B,75,T)
        recon = self.decoder(self.encoder(x))
        loss = torch.mean((recon - x) ** 2)
        return loss, {"mse": float(loss.detach())}


class MotionWindows(torch.utils.data.Dataset):
    """``count`` smooth random motion windows of ``frames`` frames (sums of sinusoids, seeded)."""

    def __init__(self, count: int = 24, frames: int = 16, seed: int = 0):
        rng = np.random.default_rng(seed)
        t = np.arange(frames)[None, :, None] / frames
        freq = rng.uniform(0.5, 3, size=(count, 1, 75))
        phase = rng.uniform(0, 2 * np.pi, size=(count, 1, 75))
        x = (0.5 * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)
        self.poses = x[..., :72].reshape(count, frames, 24, 3)
        self.trans = x[..., 72:]

    def __len__(self):
        return len(self.poses)

    def __getitem__(self, i):
        return {"poses": self.poses[i], "trans": self.trans[i]}


def flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.state_dict().values()])


def ddp_worker(rank: int, world: int, port: int, work_dir: str, config: dict, out_path: str):
    """One rank of a gloo DDP run (called by torch.multiprocessing.spawn)."""
    from e3d2_core.training.trainer import TrainConfig, Trainer
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = TinyMotionAutoencoder()
    trainer = Trainer(model, MotionWindows(), TrainConfig.from_dict(config), work_dir, device="cpu",
                      progress=False)
    trainer.fit()
    torch.save({"params": flat_params(model), "world": dist.get_world_size()}, f"{out_path}.{rank}")
    dist.destroy_process_group()
