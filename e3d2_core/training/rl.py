"""RL fine-tuning of π_RL ← π_BC against R_θ (or the hand-designed reward of Table 3).

Algorithm (chosen, see docs/e3d2.md): **on-policy PPO** (clip 0.2) without a learned critic.

* Rollouts: every iteration takes ``songs`` random windows of training music and streams ``takes`` samples of
  each (temperature sampling = the exploration Bailando's greedy rollouts lack) in one batched pass with the KV
  cache. The action at step i is the (up, down) pair; its log-probability is the sum of the two.
* Reward: per step, R_θ on the decoded motion (FK joints), z-scored with the mean/std of π_BC's own sampled
  rollouts (fixed at the start, so the scale means "better than π_BC"), or the hand reward likewise.
* Advantage: discounted reward-to-go (γ) minus the mean over the takes of the same window at the same step -- the
  takes share music and time, so this group baseline replaces a critic (which on CPU would cost as much as the
  policy and, per Bailando's issue #42, is where the actor-critic drifted) -- then divided by the batch std.
* Guard: ``kl`` x the exact per-step KL(π_RL || π_BC) over both code vocabularies, added to the loss.
* Dropout stays off (Bailando freezes it too), so rollout and update see the same distribution.

Interaction steps are generated code steps (takes x generated steps), as the paper counts them.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from e3d2_core.errors import E3D2Error
from e3d2_core.models.reward import RewardModel
from e3d2_core.skeleton import forward_kinematics_torch
from e3d2_core.training.hand_reward import hand_reward

DEFAULTS = {
    "iterations": 50, "songs": 2, "takes": 4, "window": 48, "temperature": 0.7, "lr": 1e-5, "clip": 0.2,
    "ppo_epochs": 2, "gamma": 0.9, "kl": 0.1, "grad_clip": 1.0, "stats_windows": 4, "seed": 0,
    "eval_every": 10, "reward": "learned", "orientation_weight": 1.0, "snapshot_steps": [],
}


def sample_codes(policy, music: torch.Tensor, first_up, first_down, temperature: float, generator):
    """Temperature sampling with the KV cache. music (B, L, D) normalised; returns up, down (B, L) and the
    behaviour log-probabilities (B, L-1) of the sampled pairs."""
    device = next(policy.parameters()).device
    b, length = music.shape[:2]
    up = torch.empty(b, length, dtype=torch.long)
    down = torch.empty(b, length, dtype=torch.long)
    logp = torch.empty(b, length - 1)
    up[:, 0], down[:, 0] = first_up, first_down
    state = policy.start(b, device)
    u, d = first_up.to(device), first_down.to(device)
    for i in range(length - 1):
        lu, ld = policy.step(state, music[:, i + 1].to(device), u, d)
        pu = torch.log_softmax(lu.float().cpu() / temperature, -1)
        pd = torch.log_softmax(ld.float().cpu() / temperature, -1)
        u = torch.multinomial(pu.exp(), 1, generator=generator)[:, 0]
        d = torch.multinomial(pd.exp(), 1, generator=generator)[:, 0]
        logp[:, i] = pu.gather(1, u[:, None])[:, 0] + pd.gather(1, d[:, None])[:, 0]
        up[:, i + 1], down[:, i + 1] = u, d
        u, d = u.to(device), d.to(device)
    return up, down, logp


@torch.no_grad()
def decode_joints(vqvae, up, down) -> torch.Tensor:
    """Codes (B, L) -> FK joints (B, 8L, 24, 3) at the VQ-VAE's fps."""
    device = vqvae.vq_up.codebook.device if hasattr(vqvae, "vq_up") else torch.device("cpu")
    poses, trans = vqvae.decode(up.to(device), down.to(device))
    return forward_kinematics_torch(poses.float().cpu(), trans.float().cpu())


@torch.no_grad()
def step_rewards(kind: str, joints: torch.Tensor, raw_music: torch.Tensor, *, reward_model: RewardModel | None,
                 fps: float, beat_column: int | None = None, orientation_weight: float = 1.0) -> torch.Tensor:
    """(B, L) per-step reward of decoded motion: R_θ ("learned") or the hand-designed one ("hand")."""
    if kind == "learned":
        feats = reward_model.features(joints, fps)
        return reward_model(feats, raw_music[:, :feats.shape[1]])
    if kind == "hand":
        beats = raw_music[..., beat_column] > 0.5
        return hand_reward(joints, beats, fps, orientation_weight=orientation_weight)
    raise E3D2Error(f"unknown reward {kind!r}")


def sequence_logp(policy, music, up, down, temperature: float):
    """Log-probabilities (B, L-1) of the taken pairs, and the two log-softmax tables, by an uncached pass."""
    lu, ld = policy.logits(music[:, 1:], up[:, :-1], down[:, :-1])
    pu = torch.log_softmax(lu.float() / temperature, -1)
    pd = torch.log_softmax(ld.float() / temperature, -1)
    logp = pu.gather(-1, up[:, 1:, None])[..., 0] + pd.gather(-1, down[:, 1:, None])[..., 0]
    return logp, pu, pd


def discounted_to_go(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    out = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0])
    for i in range(rewards.shape[1] - 1, -1, -1):
        running = rewards[:, i] + gamma * running
        out[:, i] = running
    return out


def ppo_update(policy, reference, optimizer, music, up, down, old_logp, advantages, cfg) -> dict:
    """``ppo_epochs`` clipped-surrogate steps with the exact KL(π || π_BC) penalty; returns logs.

    Rollouts are kept on the CPU (sampling and rewards run there); the update runs on the policy's device."""
    device = next(policy.parameters()).device
    music, up, down, old_logp, advantages = (t.to(device) for t in (music, up, down, old_logp, advantages))
    with torch.no_grad():
        _, ref_u, ref_d = sequence_logp(reference, music, up, down, cfg["temperature"])
    logs = {}
    for _ in range(cfg["ppo_epochs"]):
        logp, pu, pd = sequence_logp(policy, music, up, down, cfg["temperature"])
        ratio = torch.exp(logp - old_logp)
        clipped = ratio.clamp(1 - cfg["clip"], 1 + cfg["clip"])
        pg = -torch.min(ratio * advantages, clipped * advantages).mean()
        kl = ((pu.exp() * (pu - ref_u)).sum(-1) + (pd.exp() * (pd - ref_d)).sum(-1)).mean()
        loss = pg + cfg["kl"] * kl
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg["grad_clip"])
        optimizer.step()
        logs = {"pg_loss": pg.item(), "kl": kl.item(), "ratio": ratio.mean().item(),
                "clip_frac": ((ratio - 1).abs() > cfg["clip"]).float().mean().item()}
    return logs


class RLRunner:
    """Holds π_RL, the frozen π_BC, the decoder and the reward; one :meth:`iteration` = rollouts + PPO update."""

    def __init__(self, policy, vqvae, songs, music_mean, music_std, seeds, cfg: dict, *,
                 reward_model: RewardModel | None = None, beat_column: int | None = None):
        self.cfg = {**DEFAULTS, **cfg}
        self.policy = policy.eval()
        self.reference = copy.deepcopy(policy).eval().requires_grad_(False)
        self.vqvae = vqvae.eval()
        self.songs = [s for s in songs if len(s.music) >= self.cfg["window"]]
        if not self.songs:
            raise E3D2Error(f"no training song has {self.cfg['window']} code steps")
        self.mean, self.std = music_mean, music_std
        self.seed_up, self.seed_down = seeds
        self.reward_model = reward_model
        self.beat_column = beat_column
        self.fps = float(vqvae.fps)
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=self.cfg["lr"], betas=(0.5, 0.999))
        self.rng = np.random.default_rng(self.cfg["seed"])
        self.generator = torch.Generator().manual_seed(int(self.cfg["seed"]))
        self.stats = None
        self.iteration_count = 0
        self.interaction_steps = 0

    def _batch(self):
        cfg, rows, raw = self.cfg, [], []
        for _ in range(cfg["songs"]):
            song = self.songs[self.rng.integers(len(self.songs))]
            start = int(self.rng.integers(0, len(song.music) - cfg["window"] + 1))
            window = torch.from_numpy(song.music[start:start + cfg["window"]])
            rows += [window] * cfg["takes"]
        raw = torch.stack(rows)
        picks = self.rng.integers(len(self.seed_up), size=len(rows))
        return raw, (raw - self.mean) / self.std, self.seed_up[picks], self.seed_down[picks]

    def rewards(self, up, down, raw):
        joints = decode_joints(self.vqvae, up, down)
        return step_rewards(self.cfg["reward"], joints, raw, reward_model=self.reward_model, fps=self.fps,
                            beat_column=self.beat_column, orientation_weight=self.cfg["orientation_weight"])

    def fit_reward_stats(self):
        """z-score statistics of the per-step reward of π_BC's sampled rollouts."""
        values = []
        for _ in range(self.cfg["stats_windows"]):
            raw, music, fu, fd = self._batch()
            up, down, _ = sample_codes(self.reference, music, fu, fd, self.cfg["temperature"], self.generator)
            values.append(self.rewards(up, down, raw)[:, 1:].flatten())
        values = torch.cat(values)
        self.stats = (values.mean().item(), max(values.std().item(), 1e-6))
        return self.stats

    def iteration(self) -> dict:
        if self.stats is None:
            self.fit_reward_stats()
        cfg = self.cfg
        raw, music, fu, fd = self._batch()
        up, down, old_logp = sample_codes(self.policy, music, fu, fd, cfg["temperature"], self.generator)
        reward = self.rewards(up, down, raw)[:, 1:]               # reward of each generated step
        z = (reward - self.stats[0]) / self.stats[1]
        to_go = discounted_to_go(z, cfg["gamma"])
        groups = to_go.reshape(cfg["songs"], cfg["takes"], -1)
        advantages = (groups - groups.mean(1, keepdim=True)).reshape_as(to_go)
        advantages = advantages / (advantages.std() + 1e-6)
        logs = ppo_update(self.policy, self.reference, self.optimizer, music, up, down, old_logp, advantages, cfg)
        self.iteration_count += 1
        self.interaction_steps += up.shape[0] * (up.shape[1] - 1)
        return {"iteration": self.iteration_count, "interaction_steps": self.interaction_steps,
                "reward_raw": reward.mean().item(), "reward_z": z.mean().item(), **logs}

    def state(self) -> dict:
        return {"policy": {k: v.detach().cpu().clone() for k, v in self.policy.state_dict().items()},
                "optimizer": self.optimizer.state_dict(), "iteration": self.iteration_count,
                "interaction_steps": self.interaction_steps,
                "stats": list(self.stats) if self.stats else None,
                "rng": torch.from_numpy(np.frombuffer(json_bytes(self.rng.bit_generator.state), np.uint8).copy()),
                "generator": self.generator.get_state()}

    def load_state(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.iteration_count, self.interaction_steps = int(state["iteration"]), int(state["interaction_steps"])
        self.stats = tuple(state["stats"]) if state["stats"] else None
        self.rng.bit_generator.state = json_loads(bytes(state["rng"].numpy()))
        self.generator.set_state(state["generator"])


def json_bytes(obj) -> bytes:
    import json
    return json.dumps(obj).encode()


def json_loads(data: bytes):
    import json
    return json.loads(data.decode())


@torch.no_grad()
def evaluate_returns(policy, vqvae, songs, music_mean, music_std, seeds, *, reward_model=None,
                     kinds=("learned",), beat_column=None, max_steps: int = 400, starts: int = 4,
                     temperature: float = 0.0) -> dict:
    """{kind: mean per-minute return} of rollouts over ``songs``, ``starts`` per song, each from a different first
    code: seeded samples at ``temperature`` (the product's decoding), or greedy with 0 (deterministic given the
    first pose, so one start per song would measure one dance)."""
    from e3d2_core.generation import generate_codes

    fps = float(vqvae.fps)
    totals = {kind: [] for kind in kinds}
    for k, song in enumerate(songs):
        raw = torch.from_numpy(song.music[:max_steps])[None]
        music = (raw - music_mean) / music_std
        for j in range(starts):
            pick = (k * starts + j) % len(seeds[0])
            up, down = generate_codes(policy.eval(), music[0].float(), seeds[0][pick][None], seeds[1][pick][None],
                                      temperature=temperature,
                                      generator=torch.Generator().manual_seed(k * starts + j))
            joints = decode_joints(vqvae, up, down)
            minutes = up.shape[1] * vqvae.downsample / fps / 60.0
            for kind in kinds:
                r = step_rewards(kind, joints, raw, reward_model=reward_model, fps=fps, beat_column=beat_column)
                totals[kind].append(r.sum().item() / minutes)
    return {kind: float(np.mean(v)) for kind, v in totals.items()}
