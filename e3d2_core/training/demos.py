"""Automatically ranked demonstrations: π_BC rolled out with noise level ε (D-REX), ranked by ε.

Noise (our choice, see docs/e3d2.md): **token-level ε-greedy, compounding**. At every autoregressive step each take
independently, with probability ε, replaces its (up, down) pair by two uniform random codes; otherwise it takes
π_BC's own action: a sample at ``temperature`` (default :data:`e3d2_core.generation.DEFAULT_TEMPERATURE`), or the
argmax with temperature 0. The chosen codes are fed back into the context, so noise compounds as in D-REX (the
policy must continue from whatever was executed). ε = 1 is a uniformly random code sequence.

Why the base action is a *sample*, not the argmax: on the bundled data greedy π_BC barely moves (mean joint speed
0.22 m/s against 1.27 for real dance), so argmax-based demonstrations rank "still" above "moving" at every ε and
R_θ learns that less motion is better, which RL then exploits. Sampled π_BC dances (≈0.8 m/s) and is the policy
the product runs, so the ranking compares dance with noisier dance.

Batching: every take of every ε level of one song runs in **one** batched streaming pass with the KV cache
(B = levels x takes), each row with its own ε. Takes differ by their seed codes (first codes of different training
dances) and by the noise draws.

Music: the shards' music (raw code-rate features), one track per music id: the *training* music is every music id
of the train/val shards that the test shard does not use (every bundled song and loop except the held-out one);
the *held-out* music is the test shard's. Held-out demonstrations only validate R_θ.

Output: ``RUN/demos/<split>_<k>_<music id>.npz`` (atomic), one per song: ``up``/``down`` (B, N) codes, ``eps`` and
``take`` (B,), ``noisy`` (B, N) (which steps executed random codes), decoded ``poses`` (B, 8N, 24, 3) / ``trans``
(B, 8N, 3) at the model fps, ``music`` (N, D) raw features, ``music_id``, ``split``; then ``RUN/demos.json`` (the
stage's done-marker, written last).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from e3d2_core.errors import E3D2Error
from e3d2_core.fileio import atomic_open

DEFAULT_EPS = (0.02, 0.25, 0.5, 0.75, 1.0)


@dataclass
class Song:
    music_id: str
    music: np.ndarray        # (N, D) raw code-rate features
    split: str               # "train" | "held_out"


@torch.no_grad()
def noisy_rollout(policy, music: torch.Tensor, first_up: torch.Tensor, first_down: torch.Tensor,
                  eps: torch.Tensor, generator: torch.Generator,
                  temperature: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ε-greedy streaming rollout of ``policy`` (its own action: argmax, or a sample at ``temperature`` > 0).

    Args:
        policy: DancePolicy (start/step streaming API).
        music: (N, D) *normalised* code-rate music; frame i goes with code i (step i feeds music i+1).
        first_up, first_down: (B,) code 0 of each row.
        eps: (B,) noise level of each row.
        generator: CPU generator for the noise draws (reproducible).
    Returns:
        up, down: (B, N) long codes (CPU).
        noisy: (B, N) bool, True where the executed codes were the random ones (code 0, the seed, is False).
    """
    from e3d2_core.generation import choose, generate_codes

    b = first_up.shape[0]
    vocab_up = policy.config.get("vocab_up", policy.config["vocab"])
    vocab_down = policy.config.get("vocab_down", policy.config["vocab"])
    draws = [torch.zeros(b, dtype=torch.bool)]

    def greedy_then_noise(logits_up, logits_down):
        # D-REX noise: with probability ε the executed (up, down) pair is uniform random; it is fed back, so
        # the noise compounds through the context
        u = choose(logits_up, temperature, None, generator).cpu()
        d = choose(logits_down, temperature, None, generator).cpu()
        noisy = torch.rand(b, generator=generator) < eps
        draws.append(noisy)
        u = torch.where(noisy, torch.randint(vocab_up, (b,), generator=generator), u)
        d = torch.where(noisy, torch.randint(vocab_down, (b,), generator=generator), d)
        return u, d

    up, down = generate_codes(policy, music, first_up, first_down, pick=greedy_then_noise)
    return up, down, torch.stack(draws, 1)


def songs_from_shards(train_shards, held_out_shard, max_steps: int | None = None,
                      min_steps: int = 16) -> list[Song]:
    """One track per music id: the longest sequence's music; held-out ids are those only the test split uses."""
    held_ids = {s.music_id for s in held_out_shard.sequences} if held_out_shard is not None else set()
    best: dict[tuple[str, str], np.ndarray] = {}
    for split, shards in (("train", train_shards), ("held_out", [held_out_shard] if held_out_shard else [])):
        for shard in shards:
            for seq in shard.sequences:
                if split == "train" and seq.music_id in held_ids:
                    continue
                key = (split, seq.music_id)
                if key not in best or len(seq.music) > len(best[key]):
                    best[key] = seq.music
    songs = []
    for (split, music_id), music in sorted(best.items()):
        music = music[:max_steps] if max_steps else music
        if len(music) >= min_steps:
            songs.append(Song(music_id, np.asarray(music, np.float32), split))
    return songs


def seed_codes_from(vqvae, sequences, count: int, rng: np.random.Generator, device) -> tuple[torch.Tensor, ...]:
    """First (up, down) codes of ``count`` randomly chosen training dances (their first 64 frames encoded)."""
    picks = rng.choice(len(sequences), count, replace=len(sequences) < count)
    ups, downs = [], []
    for i in picks:
        seq = sequences[int(i)]
        frames = min(len(seq.poses), 64) // vqvae.downsample * vqvae.downsample
        poses = torch.as_tensor(seq.poses[:frames], device=device)[None]
        trans = torch.as_tensor(seq.trans[:frames], device=device)[None]
        up, down = vqvae.encode(poses, trans)
        ups.append(up[0, 0].cpu())
        downs.append(down[0, 0].cpu())
    return torch.stack(ups), torch.stack(downs)


def write_demo_shard(path: Path, *, up, down, eps, take, poses, trans, music, music_id: str, split: str,
                     fps: float, noisy=None) -> Path:
    # ``noisy`` is optional so shards written before it existed stay readable (R_θ then has no noise probe)
    extra = {} if noisy is None else {"noisy": np.asarray(noisy, bool)}
    with atomic_open(path) as handle:
        np.savez(handle, up=np.asarray(up, np.int16), down=np.asarray(down, np.int16), **extra,
                 eps=np.asarray(eps, np.float64), take=np.asarray(take, np.int64),
                 poses=np.asarray(poses, np.float32), trans=np.asarray(trans, np.float32),
                 music=np.asarray(music, np.float32), music_id=np.array(music_id), split=np.array(split),
                 fps=np.float64(fps))
    return path


def load_demo_shard(path) -> dict:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as err:
        raise E3D2Error(f"unreadable demonstration shard ({err})", path=path) from None
    for key in ("up", "down", "eps", "poses", "trans", "music", "music_id", "split"):
        if key not in out:
            raise E3D2Error(f"demonstration shard lacks '{key}'", path=path)
    out["music_id"], out["split"] = str(out["music_id"]), str(out["split"])
    return out


def load_demos(run_dir) -> list[dict]:
    """Every demonstration shard of a run, in the order the index lists them."""
    run_dir = Path(run_dir)
    index = run_dir / "demos.json"
    if not index.is_file():
        raise E3D2Error("no demonstrations in this run; run `e3d2 train demos` first", path=run_dir)
    files = json.loads(index.read_text())["shards"]
    return [load_demo_shard(run_dir / "demos" / name) for name in files]


def generate_song_demos(vqvae, policy, song: Song, music_mean, music_std, eps_levels, takes: int,
                        seed_up: torch.Tensor, seed_down: torch.Tensor, seed: int,
                        temperature: float = 0.0) -> dict:
    """All (ε, take) rollouts of one song in one batched pass, decoded to motion."""
    device = next(policy.parameters()).device
    rows = [(e, k) for e in eps_levels for k in range(takes)]
    eps = torch.tensor([e for e, _ in rows], dtype=torch.float32)
    take = np.array([k for _, k in rows])
    first_up, first_down = seed_up[take], seed_down[take]
    music = (torch.from_numpy(song.music) - music_mean) / music_std
    generator = torch.Generator().manual_seed(int(seed))
    up, down, noisy = noisy_rollout(policy, music.float(), first_up, first_down, eps, generator, temperature)
    poses, trans = vqvae.decode(up.to(device), down.to(device))
    return {"up": up.numpy(), "down": down.numpy(), "noisy": noisy.numpy(), "eps": eps.double().numpy().round(6),
            "take": take, "poses": poses.cpu().numpy(), "trans": trans.cpu().numpy(), "music": song.music}
