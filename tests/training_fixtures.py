"""Small real models and datasets for the trainer tests (imported by spawned worker processes too)."""
from __future__ import annotations

import os

import numpy as np
import pytest
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


@pytest.fixture(autouse=True)
def one_thread():
    """Training tests run single-threaded: on a shared 2-core machine, 2 torch threads are ~8x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


class TinyVQ(nn.Module):
    """A small real VQ-VAE with ChoreographicMemory's training interface (used until/besides the real
    one): one stride-8 conv per half, nearest-neighbour codebooks with a straight-through gradient."""

    UP = [3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23]
    DOWN = [0, 1, 2, 4, 5, 7, 8, 10, 11]

    def __init__(self, config: dict):
        super().__init__()
        k, w = int(config["codebook_size"]), int(config.get("width", 16))
        self.fps = float(config.get("fps", 60.0))
        self.config = dict(config)
        self.enc = nn.ModuleDict({"up": nn.Conv1d(45, w, 8, stride=8), "down": nn.Conv1d(27 + 3, w, 8, stride=8)})
        self.dec = nn.ModuleDict({"up": nn.ConvTranspose1d(w, 45, 8, stride=8),
                                  "down": nn.ConvTranspose1d(w, 27 + 3, 8, stride=8)})
        self.codebook = nn.ParameterDict({h: nn.Parameter(torch.randn(k, w) * 0.1) for h in ("up", "down")})

    def _inputs(self, poses, trans):
        vel = torch.diff(trans, dim=1, prepend=trans[:, :1])
        return {"up": poses[:, :, self.UP].flatten(2).transpose(1, 2),
                "down": torch.cat([poses[:, :, self.DOWN].flatten(2), vel], -1).transpose(1, 2)}

    def _quantise(self, half, z):
        z = z.transpose(1, 2)                                          # (B,N,w)
        dist = (z[..., None, :] - self.codebook[half]).pow(2).sum(-1)  # (B,N,K)
        codes = dist.argmin(-1)
        return codes, z, self.codebook[half][codes]

    def encode(self, poses, trans):
        x = self._inputs(poses, trans)
        return tuple(self._quantise(h, self.enc[h](x[h]))[0] for h in ("up", "down"))

    def decode(self, up, down, *, init_trans=None):
        out = {h: self.dec[h](self.codebook[h][c].transpose(1, 2)).transpose(1, 2)
               for h, c in (("up", up), ("down", down))}
        poses = torch.zeros(up.shape[0], out["up"].shape[1], 24, 3)
        poses[:, :, self.UP] = out["up"].reshape(*out["up"].shape[:2], 15, 3)
        poses[:, :, self.DOWN] = out["down"][..., :27].reshape(*out["down"].shape[:2], 9, 3)
        trans = torch.cumsum(out["down"][..., 27:], 1) + (0 if init_trans is None else init_trans[:, None])
        return poses, trans

    def forward(self, batch):
        x = self._inputs(batch["poses"], batch["trans"])
        loss = 0.0
        for h in ("up", "down"):
            _, z, q = self._quantise(h, self.enc[h](x[h]))
            st = z + (q - z).detach()
            recon = self.dec[h](st.transpose(1, 2))
            loss = loss + (recon - x[h]).abs().mean() + 0.25 * (z - q.detach()).pow(2).mean() \
                + (q - z.detach()).pow(2).mean()
        return loss, {}


class TinyPolicy(nn.Module):
    """A small real policy with DancePolicy's training interface: a GRU over (up_i, down_i, music_{i+1})
    predicting (up_{i+1}, down_{i+1}) — the one-step shift done inside forward, as DancePolicy does."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        e = int(config.get("n_embd", 16))
        self.up = nn.Embedding(int(config["vocab"]), e)
        self.down = nn.Embedding(int(config["vocab"]), e)
        self.music = nn.Linear(int(config["music_dim"]), e)
        self.gru = nn.GRU(e, e, batch_first=True)
        self.head_up = nn.Linear(e, int(config["vocab"]))
        self.head_down = nn.Linear(e, int(config["vocab"]))

    def forward(self, batch):
        up, down, music = batch["up"], batch["down"], batch["music"]
        h, _ = self.gru(self.up(up[:, :-1]) + self.down(down[:, :-1]) + self.music(music[:, 1:]))
        ce = nn.functional.cross_entropy
        lu = ce(self.head_up(h).flatten(0, 1), up[:, 1:].flatten())
        ld = ce(self.head_down(h).flatten(0, 1), down[:, 1:].flatten())
        return lu + ld, {"ce_up": float(lu.detach()), "ce_down": float(ld.detach())}
