"""T-REX training of R_θ on automatically ranked, time-aligned snippet pairs (Bradley-Terry loss).

Data is a list of :class:`RankedGroup`: trajectories that share one piece of music and one time axis (the takes of
one song at every ε level, or a real motion and its corrupted copies), each with a rank (lower = better). A pair
takes two trajectories of one group with different ranks and the **same** snippet (same start, same length L), so
returns compare like with like: equal lengths (summed returns grow with length) and the same music under both.
Each snippet is scored with its ``context_steps - 1`` preceding steps supplied, so a snippet's return equals the
sum of the per-step rewards the whole song would give (R_θ is causal, see ``models/reward.py``).

Loss: ``-log sigmoid(R(better) - R(worse))`` per ensemble member (2-way cross-entropy on summed returns), plus a
small L2 penalty on per-step rewards to keep their scale bounded (D-REX uses an L1 one).

Optional noise probe (``noise_weight`` > 0, :class:`NoiseProbe`): a pair says only that one snippet holds more
noise than the other, but a demonstration also knows *which* of its steps were random codes. A training-only head
predicts that from the per-step features R_θ's reward head reads, so every step carries an (automatic) label and
the shared layers learn to see seams. The probe is dropped after training: R_θ stays a function of motion and
music, ranked by the Bradley-Terry loss.
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from e3d2_core.errors import E3D2Error
from e3d2_core.models.reward import RewardModel


@dataclass
class Trajectory:
    features: torch.Tensor   # (N, Dm) step_features of one motion
    rank: float              # lower ranks better (the ε of a demonstration; 0 / 1 for clean / corrupted)
    name: str = ""
    noise: torch.Tensor | None = None   # (N,) 1.0 where the step's codes were random (demonstrations only)


@dataclass
class RankedGroup:
    music: torch.Tensor                        # (N, Da) music at the code rate
    trajectories: list[Trajectory] = field(default_factory=list)
    name: str = ""

    @property
    def steps(self) -> int:
        return min([len(self.music)] + [len(t.features) for t in self.trajectories])

    def ranks(self) -> list[float]:
        return sorted({t.rank for t in self.trajectories})


def pair_key(rank_a: float, rank_b: float) -> str:
    """The reported key of an ε pair: Python reprs, the lower ε first ("0.02|0.5")."""
    lo, hi = sorted((float(rank_a), float(rank_b)))
    return f"{lo!r}|{hi!r}"


def _window(group: RankedGroup, traj: Trajectory, start: int, length: int, context: int):
    lo = max(0, start - context + 1)
    return traj.features[lo:start + length], group.music[lo:start + length], start - lo


def _stack_windows(items, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (B, W, Dm), music (B, W, Da)) of (features, music, offset) windows of different left context,
    left-padded by repeating their first step (callers read only the last steps), on ``device``."""
    width = max(len(f) for f, _, _ in items)
    feats, music = [], []
    for f, m, _ in items:
        pad = width - len(f)
        feats.append(torch.cat([f[:1].expand(pad, -1), f]) if pad else f)
        music.append(torch.cat([m[:1].expand(pad, -1), m]) if pad else m)
    return torch.stack(feats).to(device), torch.stack(music).to(device)


def _device(model: RewardModel) -> torch.device:
    return model.motion_mean.device


def snippet_returns(model: RewardModel, items, length: int, *, members: bool = False) -> torch.Tensor:
    """Summed reward over the last ``length`` steps of each (features, music, offset) window.

    Windows of one call may differ in left context; the left padding is excluded from the sum.
    Returns (B,) or (E, B) with ``members``.
    """
    rewards = model.member_rewards(*_stack_windows(items, _device(model)))  # (E, B, W)
    returns = rewards[..., -length:].sum(-1)
    return returns if members else returns.mean(0)


class NoiseProbe(nn.Module):
    """Training-only heads, one per ensemble member, that say from R_θ's per-step features whether the step's
    codes were random (see the module docstring)."""

    def __init__(self, members: int, width: int):
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(width, 1) for _ in range(members))

    def loss(self, model: RewardModel, items, labels: torch.Tensor, length: int):
        """Binary cross-entropy summed over members on the last ``length`` steps of each window (labels (B, L)),
        and the ensemble's per-step accuracy."""
        hidden = model.member_hidden(*_stack_windows(items, _device(model)))[..., -length:, :]    # (E, B, L, W)
        labels = labels.to(hidden.device)
        logits = torch.stack([head(h).squeeze(-1) for head, h in zip(self.heads, hidden)])
        loss = F.binary_cross_entropy_with_logits(logits, labels.expand_as(logits), reduction="none")
        accuracy = ((logits.mean(0) > 0) == (labels > 0.5)).float().mean().item()
        return loss.mean((1, 2)).sum(), accuracy


def sample_noise_windows(pool: list, count: int, length: int, rng: np.random.Generator, context: int):
    """``count`` windows of ``length`` steps from (group, trajectory) pairs with noise masks, and their labels
    (count, length)."""
    items, labels = [], []
    for _ in range(count):
        group, traj = pool[rng.integers(len(pool))]
        start = int(rng.integers(0, group.steps - length + 1))
        items.append(_window(group, traj, start, length, context))
        labels.append(traj.noise[start:start + length].float())
    return items, torch.stack(labels)


def sample_pairs(groups: list[RankedGroup], count: int, length: int, rng: np.random.Generator, context: int):
    """``count`` (better_window, worse_window) pairs of ``length`` steps from random groups and rank pairs."""
    usable = [g for g in groups if g.steps >= length and len(g.ranks()) >= 2]
    if not usable:
        raise E3D2Error(f"no group has two ranks and {length} steps")
    better, worse = [], []
    for _ in range(count):
        group = usable[rng.integers(len(usable))]
        a, b = rng.choice(len(group.trajectories), 2, replace=False)
        ta, tb = group.trajectories[a], group.trajectories[b]
        while ta.rank == tb.rank:
            a, b = rng.choice(len(group.trajectories), 2, replace=False)
            ta, tb = group.trajectories[a], group.trajectories[b]
        if tb.rank < ta.rank:
            ta, tb = tb, ta
        start = int(rng.integers(0, group.steps - length + 1))
        better.append(_window(group, ta, start, length, context))
        worse.append(_window(group, tb, start, length, context))
    return better, worse


def trex_loss(model: RewardModel, better, worse, length: int, reward_l2: float = 0.0):
    """Bradley-Terry loss summed over ensemble members, and the pairwise accuracy of the ensemble mean."""
    r_better = snippet_returns(model, better, length, members=True)
    r_worse = snippet_returns(model, worse, length, members=True)
    loss = F.softplus(r_worse - r_better).mean(-1).sum()   # = -log sigmoid(Rb - Rw)
    if reward_l2:
        loss = loss + reward_l2 * ((r_better / length) ** 2 + (r_worse / length) ** 2).mean()
    accuracy = (r_better.mean(0) > r_worse.mean(0)).float().mean().item()
    return loss, accuracy


def _evaluation_pairs(groups: list[RankedGroup], length: int, windows: int, context: int) -> dict[str, list]:
    """{pair_key: [(better take, worse take, better window, worse window)]}: every take pair of every rank pair of
    every group, at ``windows`` evenly spaced starts, in a fixed order."""
    per_key: dict[str, list] = {}
    for g, group in enumerate(groups):
        if group.steps < length:
            continue
        starts = np.linspace(0, group.steps - length, windows).round().astype(int)
        for (a, ta), (b, tb) in itertools.combinations(enumerate(group.trajectories), 2):
            if ta.rank == tb.rank:
                continue
            if tb.rank < ta.rank:
                (a, ta), (b, tb) = (b, tb), (a, ta)
            for s in starts:
                per_key.setdefault(pair_key(ta.rank, tb.rank), []).append(
                    ((g, a), (g, b), _window(group, ta, int(s), length, context),
                     _window(group, tb, int(s), length, context)))
    return dict(sorted(per_key.items(), key=lambda kv: tuple(float(x) for x in kv[0].split("|"))))


@torch.no_grad()
def pairwise_accuracy(model: RewardModel, groups: list[RankedGroup], length: int, windows: int = 4,
                      max_pairs_per_key: int | None = 400, batch: int = 128,
                      intervals: int = 0, seed: int = 0) -> dict:
    """Accuracy per rank pair on a fixed, deterministic pair set: every take pair of every rank pair of every
    group, at ``windows`` evenly spaced starts (above ``max_pairs_per_key``, an evenly spaced subset of them, so
    every take still counts; None: all).

    Returns {pair_key: accuracy}; with ``intervals`` = R > 0, {pair_key: {"accuracy", "low", "high"}} where
    low/high bound a 95 % bootstrap interval from R resamples of the *takes* (pairs of one take are not
    independent, so takes, not pairs, are resampled).
    """
    was_training = model.training
    model.eval()
    rng = np.random.default_rng(seed)
    result = {}
    for key, pairs in _evaluation_pairs(groups, length, windows, model.context_steps).items():
        if max_pairs_per_key and len(pairs) > max_pairs_per_key:
            pairs = [pairs[i] for i in np.linspace(0, len(pairs) - 1, max_pairs_per_key).round().astype(int)]
        correct = np.empty(len(pairs))
        for i in range(0, len(pairs), batch):
            chunk = pairs[i:i + batch]
            rb = snippet_returns(model, [p[2] for p in chunk], length)
            rw = snippet_returns(model, [p[3] for p in chunk], length)
            correct[i:i + len(chunk)] = (rb > rw).cpu().numpy()
        accuracy = float(correct.mean())
        if not intervals:
            result[key] = accuracy
            continue
        low, high = _take_bootstrap([(p[0], p[1]) for p in pairs], correct, intervals, rng)
        result[key] = {"accuracy": accuracy, "low": low, "high": high}
    model.train(was_training)
    return result


def _take_bootstrap(takes: list[tuple], correct: np.ndarray, resamples: int,
                    rng: np.random.Generator) -> tuple[float, float]:
    """95 % interval of the accuracy of pairs (better take, worse take) -> correct, resampling the takes of each
    side with replacement (a take drawn twice counts its pairs twice)."""
    better = sorted({b for b, _ in takes})
    worse = sorted({w for _, w in takes})
    row = {t: i for i, t in enumerate(better)}
    col = {t: i for i, t in enumerate(worse)}
    hits = np.zeros((len(better), len(worse)))
    count = np.zeros_like(hits)
    for (b, w), c in zip(takes, correct):
        hits[row[b], col[w]] += c
        count[row[b], col[w]] += 1
    samples = []
    for _ in range(resamples):
        ib, iw = rng.integers(len(better), size=len(better)), rng.integers(len(worse), size=len(worse))
        n = count[np.ix_(ib, iw)].sum()
        if n:
            samples.append(hits[np.ix_(ib, iw)].sum() / n)
    if not samples:
        return float(correct.mean()), float(correct.mean())
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(low), float(high)


@torch.no_grad()
def return_per_minute(model: RewardModel, groups: list[RankedGroup]) -> dict[str, float]:
    """ū per rank: the mean over trajectories of (whole-trajectory return / its duration in minutes)."""
    was_training = model.training
    model.eval()
    minutes_per_step = model.step_seconds / 60.0
    values: dict[float, list] = {}
    for group in groups:
        n = group.steps
        feats = torch.stack([t.features[:n] for t in group.trajectories]).to(_device(model))
        music = group.music[:n].expand(len(feats), -1, -1).to(feats.device)
        totals = model(feats, music).sum(-1) / (n * minutes_per_step)
        for t, total in zip(group.trajectories, totals.tolist()):
            values.setdefault(t.rank, []).append(total)
    model.train(was_training)
    return {repr(float(k)): float(np.mean(v)) for k, v in sorted(values.items())}


def train_trex(model: RewardModel, train: list[RankedGroup], held_out: list[RankedGroup], *,
               steps: int = 2000, batch: int = 64, lr: float = 1e-4, weight_decay: float = 1e-4,
               min_len: int = 8, max_len: int = 28, eval_len: int | None = None, eval_every: int = 100,
               patience: int = 5, reward_l2: float = 1e-3, extra_train: list[RankedGroup] | None = None,
               extra_fraction: float = 0.25, noise_weight: float = 0.0, ema: float = 0.0, seed: int = 0,
               state: dict | None = None, log=None, checkpoint_fn=None) -> dict:
    """Train ``model`` in place, on the device it is on, with early stopping on held-out mean pairwise accuracy;
    restore the best weights.

    ``extra_train`` (e.g. clean vs corrupted motion groups) supplies ``extra_fraction`` of every batch.
    ``noise_weight`` > 0 adds the :class:`NoiseProbe` loss on ``batch // 2`` windows per step of the training
    trajectories that carry noise masks (none: no probe).
    ``ema`` > 0 (e.g. 0.995): evaluations, early stopping and the returned weights use an exponential moving
    average of the weights; single-pair gradients are noisy and held-out accuracy swings between evaluations.
    ``state`` resumes a previous call (as returned, or as passed to ``checkpoint_fn(state)`` every evaluation).
    Returns the state: {"step", "best", "history", "model", "optimizer", "best_model", "stale"}.
    """
    rng = np.random.default_rng(seed)
    noise_pool = [(g, t) for g in train if g.steps >= max_len for t in g.trajectories if t.noise is not None]
    probe = NoiseProbe(len(model.members), model.config["hidden"]) if noise_weight and noise_pool else None
    if probe is not None:
        probe.to(_device(model))
    parameters = list(model.parameters()) + (list(probe.parameters()) if probe else [])
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    eval_len = eval_len or (min_len + max_len) // 2
    state = dict(state or {"step": 0, "best": -1.0, "history": [], "best_model": None, "stale": 0})
    averaged = copy.deepcopy(model) if ema else None
    judged = averaged if ema else model          # the weights evaluations and early stopping see
    if state.get("model") is not None:
        model.load_state_dict(state["model"])
        if averaged is not None:
            averaged.load_state_dict(state.get("averaged") or state["model"])
        if probe is not None and state.get("probe") is not None:
            probe.load_state_dict(state["probe"])
        optimizer.load_state_dict(state["optimizer"])
        rng = np.random.default_rng(seed + state["step"])
    context = model.context_steps
    n_extra = int(round(batch * extra_fraction)) if extra_train else 0
    model.train()
    while state["step"] < steps and state["stale"] < patience:
        length = int(rng.integers(min_len, max_len + 1))
        better, worse = sample_pairs(train, batch - n_extra, length, rng, context)
        if n_extra:
            eb, ew = sample_pairs(extra_train, n_extra, length, rng, context)
            better, worse = better + eb, worse + ew
        loss, accuracy = trex_loss(model, better, worse, length, reward_l2)
        if probe is not None:
            items, labels = sample_noise_windows(noise_pool, batch // 2, length, rng, context)
            noise_loss, noise_accuracy = probe.loss(model, items, labels, length)
            loss = loss + noise_weight * noise_loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state["step"] += 1
        if averaged is not None:
            decay = min(ema, (1 + state["step"]) / (10 + state["step"]))   # short memory while weights move fast
            with torch.no_grad():
                for kept, live in zip(averaged.parameters(), model.parameters()):
                    kept.lerp_(live, 1.0 - decay)
        if state["step"] % eval_every == 0 or state["step"] == steps:
            record = {"step": state["step"], "loss": loss.item(), "batch_accuracy": accuracy,
                      "train_accuracy": pairwise_accuracy(judged, train[:8], eval_len, windows=2),
                      "held_out_accuracy": pairwise_accuracy(judged, held_out, eval_len)}
            if probe is not None:
                record["noise_probe_accuracy"] = noise_accuracy
            score = float(np.mean(list(record["held_out_accuracy"].values()))) if held_out else accuracy
            record["held_out_mean"] = score
            state["history"].append(record)
            if score > state["best"]:
                state["best"], state["stale"] = score, 0
                state["best_model"] = copy.deepcopy(judged.state_dict())
            else:
                state["stale"] += 1
            if log:
                log(record)
            # copies: restoring the best weights at the end must not rewrite the state's live weights
            state["model"], state["optimizer"] = copy.deepcopy(model.state_dict()), optimizer.state_dict()
            state["probe"] = copy.deepcopy(probe.state_dict()) if probe is not None else None
            state["averaged"] = copy.deepcopy(averaged.state_dict()) if averaged is not None else None
            if checkpoint_fn:
                checkpoint_fn(state)
    if state.get("best_model") is not None:
        model.load_state_dict(state["best_model"])
    model.eval()
    return state
