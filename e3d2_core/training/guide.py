"""The beat guide's tables for a trained model: how fast each code moves, measured on the policies' own dances.

:mod:`e3d2_core.beat_guide` tilts sampling toward codes that are slow on the beat and fast off it; it needs, per
code and per frame of the code, the mean joint speed of decoded dances. This module measures that on the
training songs (one track per song, ``takes`` sampled takes each, by π_BC and π_RL when the run has one) and
stores it as the bundle's ``"beat_guide"`` entry. Training songs only: the held-out songs stay unseen.

The stage also measures how often the real training dances (encoded by the run's VQ-VAE) come back to a code
within ``repeat_window`` steps and stores it with the config's ``repeat_cost`` as the bundle's ``"repeat"`` entry
(:class:`e3d2_core.repeat_limit.RepeatLimit`).
"""
from __future__ import annotations

import numpy as np

from e3d2_core import generation as gen
from e3d2_core.beat_guide import guide_entry, measure_tables
from e3d2_core.generation import normalise_music
from e3d2_core.repeat_limit import REPEAT_WINDOW, repeat_limit_of
from e3d2_core.training.demos import songs_from_shards

GUIDE_DEFAULTS = {"takes": 4, "max_codes": 240, "seed": 0, "temperature": 0.7, "repeat_cost": 0.0,
                  "repeat_window": REPEAT_WINDOW, "repeat_share": 0.9}


def guide_from_shards(vqvae, policies, train_shards, mean, std, *, takes: int = 4, max_codes: int = 240,
                      seed: int = 0, temperature: float = 0.7) -> dict:
    """The ``"beat_guide"`` bundle entry of ``vqvae``, measured on ``policies``' dances to the shards' songs.

    Args:
        vqvae: ChoreographicMemory (eval mode).
        policies: DancePolicy models (fp32; each measured with ``takes`` takes per song).
        train_shards: training :class:`e3d2_core.training.data.Shard` s (one track per song is used).
        mean, std: (D,) the bundle's music normalisation.
    Returns:
        {"up": (K, 8), "down": (K, 8), "speed_scale": float, "songs": int, "takes": int}.
    """
    songs = [normalise_music(s.music, mean, std) for s in songs_from_shards(train_shards, None)]
    device = vqvae.vq_up.codebook.device
    tables = []
    for policy in policies:
        runner = gen.policy_for_inference(policy, "fp32", device)
        tables.append(measure_tables(vqvae, runner, songs, takes=takes, max_codes=max_codes, seed=seed,
                                     temperature=temperature))
    merged = _merge(tables)
    return {**guide_entry(merged), "songs": len(songs), "takes": takes * len(policies)}


def repeat_from_shards(vqvae, shards, *, cost: float, window: int = REPEAT_WINDOW, share: float = 0.9) -> dict:
    """The ``"repeat"`` bundle entry: the repeats within ``window`` steps that ``share`` of the real dances' code
    steps stay within (both halves, each dance encoded whole), with ``cost`` logits per repeat beyond."""
    import torch

    device = vqvae.vq_up.codebook.device
    sequences = []
    for shard in shards:
        for seq in shard.sequences:
            up, down = vqvae.encode(torch.as_tensor(seq.poses[None], device=device),
                                    torch.as_tensor(seq.trans[None], device=device))
            sequences += [up[0].cpu().numpy(), down[0].cpu().numpy()]
    return repeat_limit_of(sequences, window=window, share=share, cost=cost).entry()


def _merge(tables: list[dict]) -> dict:
    """Occurrence-weighted mean of several measurements of the same codebook."""
    if len(tables) == 1:
        return tables[0]
    out = {"speed_scale": float(np.mean([t["speed_scale"] for t in tables]))}
    weights = np.stack([t["counts_down"] for t in tables]).astype(np.float64)
    turns = np.stack([t["turn"] for t in tables]).astype(np.float64)
    out["turn"] = ((turns * weights).sum(0) / np.maximum(weights.sum(0), 1)).astype(np.float32)
    for half in ("up", "down"):
        counts = np.stack([t[f"counts_{half}"] for t in tables]).astype(np.float64)       # (P, K)
        values = np.stack([t[half] for t in tables]).astype(np.float64)                   # (P, K, 8)
        total = counts.sum(0)
        mean = (values * counts[..., None]).sum(0) / np.maximum(total, 1)[:, None]
        fallback = values.mean(0)                                  # unseen everywhere: the halves' mean profiles
        out[half] = np.where(total[:, None] > 0, mean, fallback).astype(np.float32)
        out[f"counts_{half}"] = total.astype(np.int64)
    return out


def policies_of(bundle: dict) -> list:
    """π_BC and, when present, π_RL of a bundle or stage-output dict, as fp32 eval models."""
    from e3d2_core.models.policy import DancePolicy

    found = []
    for part in ("policy", "policy_rl"):
        if part in bundle:
            model = DancePolicy(dict(bundle[part]["config"]))
            model.load_state_dict(bundle[part]["state_dict"])
            found.append(model.eval())
    return found



def run_guide(config: dict, run_dir, options) -> "Path":
    """The ``guide`` stage: the beat guide's tables of the run's VQ-VAE, measured on π_BC's and (when the run has
    one) π_RL's dances to the training songs; config section ``guide: {takes, max_codes, seed, temperature}``."""
    from pathlib import Path

    from e3d2_core.training import stage_common as stages

    run_dir = Path(run_dir)
    cfg = {**GUIDE_DEFAULTS, **config.get("guide", {})}
    stages.apply_threads(config)
    device = stages.stage_device(config, options)
    vqvae, _ = stages.load_vqvae(run_dir, device)
    bc = stages.load_stage_output(run_dir, "bc")
    parts = dict(bc)
    if (run_dir / stages.OUTPUTS["rl"]).is_file():
        parts.update(stages.load_stage_output(run_dir, "rl"))
    entry = guide_from_shards(vqvae, policies_of(parts), [stages.load_split(config, "train")],
                              bc["music"]["mean"], bc["music"]["std"], takes=int(cfg["takes"]),
                              max_codes=int(cfg["max_codes"]), seed=int(cfg["seed"]),
                              temperature=float(cfg["temperature"]))
    repeat = repeat_from_shards(vqvae, [stages.load_split(config, "train")], cost=float(cfg["repeat_cost"]),
                                window=int(cfg["repeat_window"]), share=float(cfg["repeat_share"]))
    output = run_dir / stages.OUTPUTS["guide"]
    if options.progress:
        print(f"guide: code speeds measured on {entry['songs']} songs x {entry['takes']} takes; real dance "
              f"repeats a code {repeat['free_repeats']} times in {repeat['window']} steps (90 %), "
              f"{repeat['cost']:g} logits per repeat beyond")
    stages.save_stage_output(output, {"beat_guide": entry, "repeat": repeat})
    return output
