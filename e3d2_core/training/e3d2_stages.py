"""The E3D2 stages of the pipeline: demos -> reward -> rl (and rl_hand, the Table 3 ablation).

Listed in the registry of :mod:`e3d2_core.training.stages`; each reads the run folder's earlier outputs,
checkpoints as it goes (a killed stage resumes), and writes its done-marker last. Their config sections
(``demos``, ``reward``, ``rl``; every key optional) have the defaults below, in
:data:`e3d2_core.training.rl.DEFAULTS` and in ``models/reward.py``; docs/e3d2.md describes each key and the
algorithms.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from e3d2_core.errors import E3D2Error
from e3d2_core.fileio import atomic_path
from e3d2_core.generation import DEFAULT_TEMPERATURE
from e3d2_core.skeleton import forward_kinematics_torch
from e3d2_core.training.demos import DEFAULT_EPS
from e3d2_core.training.stage_common import (OUTPUTS, StageOptions, apply_threads, load_split, load_stage_output,
                                             load_vqvae, model_class, save_stage_output, stage_device, write_json)

# Each section's keys and defaults (docs/e3d2.md explains them); a config key outside these is refused on loading.
DEMOS_DEFAULTS = {"eps": DEFAULT_EPS, "takes": 4, "max_steps": None, "seed": 0, "temperature": DEFAULT_TEMPERATURE,
                  "held_out_takes": None}
REWARD_TRAIN_DEFAULTS = {"steps": 2000, "batch": 64, "lr": 1e-4, "min_len": 8, "max_len": 28, "eval_every": 100,
                         "patience": 5, "reward_l2": 1e-3, "corrupt_fraction": 0.25, "eval_seconds": 5.0,
                         "corruptions": ("noise", "shuffle", "slow", "loop"), "real_pairs": True,
                         "noise_probe": 0.0, "ema": 0.0}
# rl: rl.DEFAULTS (the runner's) plus what the stage itself reads; "eval_temperature" defaults to rl.temperature
RL_STAGE_DEFAULTS = {"checkpoint_every": 10, "eval_steps": 400, "eval_starts": 4}


def _save_torch(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(data, tmp)


def _load_torch(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged checkpoint is reported, not trusted
        raise E3D2Error(f"unreadable checkpoint ({type(err).__name__})", path=path) from None


def _models(run_dir: Path, device):
    """(vqvae, π_BC, bc bundle) of a run."""
    vqvae, _ = load_vqvae(run_dir, device)
    bc = load_stage_output(run_dir, "bc")
    policy = model_class("policy")(dict(bc["policy"]["config"]))
    policy.load_state_dict(bc["policy"]["state_dict"])
    return vqvae, policy.to(device).eval(), bc


def _songs(config: dict, max_steps: int | None):
    from e3d2_core.training.demos import songs_from_shards

    train = [load_split(config, "train")]
    val = load_split(config, "val", required=False)
    test = load_split(config, "test", required=False)
    songs = songs_from_shards(train + ([val] if val else []), test, max_steps=max_steps)
    if not any(s.split == "held_out" for s in songs):       # no test split: hold the last training song out
        train_songs = [s for s in songs if s.split == "train"]
        if len(train_songs) < 2:
            raise E3D2Error("the data has fewer than two songs: nothing to hold out for validation")
        train_songs[-1].split = "held_out"
    return songs, train[0], test


# ---------------------------------------------------------------------------------------------- demos
def run_demos(config: dict, run_dir: Path, options: StageOptions) -> Path:
    """Roll π_BC out at every ε on every song (training and held-out), one batched pass per song."""
    from e3d2_core.training.demos import generate_song_demos, seed_codes_from, write_demo_shard

    run_dir = Path(run_dir)
    cfg = {**DEMOS_DEFAULTS, **config.get("demos", {})}
    takes = int(cfg["takes"])
    # held-out takes only validate R_θ; more of them narrow its accuracy's interval at little cost (one song)
    held_takes = max(takes, int(cfg["held_out_takes"] or takes))
    apply_threads(config)
    device = stage_device(config, options)
    vqvae, policy, bc = _models(run_dir, device)
    songs, train, _ = _songs(config, cfg["max_steps"])
    rng = np.random.default_rng(int(cfg["seed"]))
    seeds = seed_codes_from(vqvae, train.sequences, takes, rng, device)
    if held_takes > takes:       # drawn after the training seeds, so those stay what they were without extra takes
        extra = seed_codes_from(vqvae, train.sequences, held_takes - takes, rng, device)
        held_seeds = tuple(torch.cat([a, b]) for a, b in zip(seeds, extra))
    else:
        held_seeds = seeds
    out_dir = run_dir / "demos"
    out_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for k, song in enumerate(songs):
        name = f"{song.split}_{k:03d}_{''.join(c if c.isalnum() else '_' for c in song.music_id)[:40]}.npz"
        names.append(name)
        if (out_dir / name).is_file() and options.resume:
            continue
        demo = generate_song_demos(vqvae, policy, song, bc["music"]["mean"], bc["music"]["std"],
                                   [float(e) for e in cfg["eps"]],
                                   *((held_takes, *held_seeds) if song.split == "held_out" else (takes, *seeds)),
                                   seed=int(cfg["seed"]) * 1000 + k, temperature=float(cfg["temperature"]))
        write_demo_shard(out_dir / name, **demo, music_id=song.music_id, split=song.split, fps=vqvae.fps)
        if options.progress:
            print(f"demos: {k + 1}/{len(songs)} {song.split} {song.music_id} ({len(song.music)} steps)")
    output = run_dir / OUTPUTS["demos"]
    write_json(output, {"shards": names, "eps": [float(e) for e in cfg["eps"]], "takes": takes,
                        "held_out_takes": held_takes,
                        "temperature": float(cfg["temperature"]),
                        "songs": {s.music_id: s.split for s in songs}, "fps": float(vqvae.fps),
                        "music_kind": str(bc["music"]["kind"])})
    return output


# ---------------------------------------------------------------------------------------------- reward
def _joints(poses, trans) -> torch.Tensor:
    return forward_kinematics_torch(torch.as_tensor(poses), torch.as_tensor(trans)).float()


def build_groups(demos: list[dict], features):
    """Ranked groups of the demonstrations, one per song (rank = ε, lower is better).

    Parameters
    ----------
    demos : demonstration shards (:func:`e3d2_core.training.demos.load_demos`).
    features : maps joints (B, T, 24, 3) at the demonstrations' fps to R_θ's step features
        (``RewardModel.features``).

    Returns
    -------
    (training groups, held-out groups).
    """
    from e3d2_core.training.trex import RankedGroup, Trajectory

    train, held = [], []
    for demo in demos:
        feats = features(_joints(demo["poses"], demo["trans"]))
        noisy = demo.get("noisy")
        trajs = [Trajectory(f, float(e), f"{demo['music_id']}/{float(e)!r}/{i}",
                            None if noisy is None else torch.from_numpy(noisy[i][:len(f)]).float())
                 for i, (f, e) in enumerate(zip(feats, demo["eps"]))]
        group = RankedGroup(torch.from_numpy(demo["music"]), trajs, demo["music_id"])
        (held if demo["split"] == "held_out" else train).append(group)
    return train, held


def split_takes(groups: list, min_takes: int = 4) -> tuple[list, list]:
    """Held-out groups in two halves by alternating takes of each rank.

    Early stopping picks R_θ on ``select``; the reported accuracy is measured on ``test``, takes the choice never
    saw (picking the best of many evaluations on the same takes flatters it).

    Parameters
    ----------
    groups : ranked groups.
    min_takes : a group with fewer takes of some rank is used whole for both halves.

    Returns
    -------
    (select, test) lists of groups.
    """
    from e3d2_core.training.trex import RankedGroup

    select, test = [], []
    for group in groups:
        by_rank: dict[float, list] = {}
        for traj in group.trajectories:
            by_rank.setdefault(traj.rank, []).append(traj)
        if min(len(t) for t in by_rank.values()) < min_takes:
            select.append(group)
            test.append(group)
            continue
        select.append(RankedGroup(group.music, [t for ts in by_rank.values() for t in ts[0::2]], group.name))
        test.append(RankedGroup(group.music, [t for ts in by_rank.values() for t in ts[1::2]], group.name))
    return select, test


def corruption_groups(motions: list[tuple[np.ndarray, np.ndarray]], fps: float, features, seed: int,
                      kinds=None, beat_column: int | None = None):
    """Clean (rank 0) against corrupted (rank 1) copies of real motion, one group per motion.

    Parameters
    ----------
    motions : (joints (T, 24, 3) metres at ``fps``, raw music (N, D) at the code rate) pairs.
    fps : the motion frame rate.
    features : R_θ's step features of joints (``RewardModel.features``).
    seed : seed of the corruptions.
    kinds : corruption kinds, one corrupted copy each (default: every kind of :mod:`e3d2_core.training.corrupt`).
    beat_column : the beat one-hot column of the raw music; "offbeat" needs it and is left out for music with
        fewer than two beats.
    """
    from e3d2_core.training import corrupt
    from e3d2_core.training.trex import RankedGroup, Trajectory

    kinds = tuple(kinds or corrupt.KINDS)
    rng = np.random.default_rng(seed)
    groups = []
    for joints, music in motions:
        period = _beat_period_frames(music, beat_column, len(joints)) if "offbeat" in kinds else None
        mine = tuple(k for k in kinds if k != "offbeat" or period is not None)
        versions = [joints] + [corrupt.corrupt(joints, kind, rng, fps, beat_period=period) for kind in mine]
        feats = [features(torch.from_numpy(np.ascontiguousarray(v))[None])[0] for v in versions]
        n = min(len(music), len(feats[0]))
        names, ranks = ("clean",) + mine, [0.0] + [1.0] * len(mine)
        groups.append(RankedGroup(torch.from_numpy(music[:n]),
                                  [Trajectory(f[:n], r, name) for f, r, name in zip(feats, ranks, names)]))
    return groups


def _beat_period_frames(music: np.ndarray, beat_column: int | None, frames: int) -> float | None:
    """Median frames between the beats marked in the music's one-hot column; None without two beats."""
    if beat_column is None:
        return None
    rows = np.flatnonzero(np.asarray(music)[:, beat_column] > 0.5)
    if len(rows) < 2:
        return None
    return float(np.median(np.diff(rows))) * frames / max(1, len(music))


def real_over_policy_groups(demos: list[dict], shards, features, split: str = "train"):
    """Real dance (rank 0) against π_BC's least-noisy takes (rank 1) on the same music and time axis.

    ε-ranked pairs only teach R_θ what makes π_BC's dances worse; these teach it what real dance has that π_BC's
    lacks, so RL is pulled towards real motion rather than towards whatever the ε ranking happens to prefer.

    Parameters
    ----------
    demos : demonstration shards.
    shards : data shards (or None) holding the real sequences.
    features : R_θ's step features of joints.
    split : the demonstrations' split to use ("train" or "held_out").

    Returns
    -------
    One group per demonstration song whose music is a real sequence's (music id and feature rows match).
    """
    from e3d2_core.training.trex import RankedGroup, Trajectory

    groups = []
    for demo in demos:
        if demo["split"] != split:
            continue
        n = len(demo["music"])
        real = next((seq for shard in shards if shard is not None for seq in shard.sequences
                     if seq.music_id == demo["music_id"] and len(seq.music) >= n
                     and np.array_equal(seq.music[:n], demo["music"])), None)
        if real is None:
            continue
        best = np.flatnonzero(demo["eps"] == demo["eps"].min())
        real_feats = features(_joints(real.poses, real.trans)[None])[0][:n]
        policy_feats = features(_joints(demo["poses"][best], demo["trans"][best]))
        steps = min(n, len(real_feats))
        trajs = [Trajectory(real_feats[:steps], 0.0, "real")]
        trajs += [Trajectory(f[:steps], 1.0, f"policy/{i}") for i, f in zip(best, policy_feats)]
        groups.append(RankedGroup(torch.from_numpy(demo["music"][:steps]), trajs, demo["music_id"]))
    return groups


@torch.no_grad()
def robustness(model, motions, fps: float, seed: int, repeats: int = 5, kinds=None,
               beat_column: int | None = None) -> dict:
    """How often R_θ's return ranks real motion above a corrupted copy of it.

    Parameters
    ----------
    model : R_θ.
    motions : (joints (T, 24, 3) at ``fps``, raw music (N, D)) pairs.
    fps : the motion frame rate.
    seed : seed of the corruptions.
    repeats : corrupted copies per motion and kind.
    kinds : corruption kinds (default: all).
    beat_column : the music's beat one-hot column; "offbeat" only for music where it marks two beats or more.

    Returns
    -------
    {kind: fraction of pairs won by the real motion, or None without a pair}.
    """
    from e3d2_core.training import corrupt

    rng = np.random.default_rng(seed)
    wins = {kind: [] for kind in (kinds or corrupt.KINDS)}
    for joints, music in motions:
        period = _beat_period_frames(music, beat_column, len(joints))
        clean = model.features(torch.from_numpy(np.ascontiguousarray(joints))[None], fps)
        n = min(len(music), clean.shape[1])
        m = torch.from_numpy(music[:n])[None]
        r_clean = model(clean[:, :n], m).sum().item()
        for kind in wins:
            if kind == "offbeat" and period is None:
                continue
            for _ in range(repeats):
                bad = model.features(torch.from_numpy(corrupt.corrupt(joints, kind, rng, fps, beat_period=period))
                                     [None], fps)
                wins[kind].append(r_clean > model(bad[:, :n], m).sum().item())
    return {kind: float(np.mean(v)) if v else None for kind, v in wins.items()}


def plot_accuracy(history: list[dict], path: Path) -> None:
    """The paper's Figure 3: pairwise accuracy per ε pair during training, train (dashed) and held-out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [h["step"] for h in history]
    keys = sorted({k for h in history for k in h["held_out_accuracy"]},
                  key=lambda k: tuple(float(x) for x in k.split("|")))
    for i, key in enumerate(keys):
        color = plt.cm.viridis(i / max(1, len(keys) - 1))
        ax.plot(steps, [h["held_out_accuracy"].get(key, np.nan) for h in history], color=color, label=key)
        ax.plot(steps, [h["train_accuracy"].get(key, np.nan) for h in history], color=color, ls="--", lw=0.8)
    ax.set_xlabel("training step")
    ax.set_ylabel("pairwise accuracy")
    ax.set_ylim(0.0, 1.02)
    ax.set_title("R_θ accuracy per ε pair (solid: held-out music, dashed: training music)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def _real_motions(shard, fps: float, limit: int = 8):
    """(joints, raw music) of a shard's real dances, for corruption pairs and the robustness check."""
    out = []
    for seq in (shard.sequences if shard else [])[:limit]:
        out.append((_joints(seq.poses, seq.trans).numpy(), np.asarray(seq.music, np.float32)))
    return out


def run_reward(config: dict, run_dir: Path, options: StageOptions) -> Path:
    """Train R_θ by T-REX on the demonstrations (+ clean-vs-corrupted pairs of real and ε=min motion, and real
    dance over π_BC on the same music)."""
    from e3d2_core.models.reward import RewardModel
    from e3d2_core.scoring import policy_fingerprint, reward_entry
    from e3d2_core.training.demos import load_demos
    from e3d2_core.training.trex import pairwise_accuracy, return_per_minute, train_trex

    run_dir = Path(run_dir)
    work = run_dir / "reward"
    cfg = config.get("reward", {})
    train_cfg = {**REWARD_TRAIN_DEFAULTS, **cfg.get("train", {})}
    seed = int(cfg.get("seed", config.get("seed", 0)))
    apply_threads(config)
    torch.manual_seed(seed)
    index = json.loads((run_dir / OUTPUTS["demos"]).read_text())
    fps = float(index["fps"])
    demos = load_demos(run_dir)
    music_dim = demos[0]["music"].shape[1]
    model = RewardModel({**cfg.get("model", {}), "fps": fps, "music_dim": int(music_dim)})
    train, held = build_groups(demos, model.features)
    if not train or not held:
        raise E3D2Error("R_θ needs demonstrations on training and on held-out music", path=run_dir)
    # corrupted pairs: the real training dances, and the least-noisy demonstrations
    train_shard = load_split(config, "train")
    test_shard = load_split(config, "test", required=False)
    real_train = _real_motions(train_shard, fps)
    best_eps = min(float(e) for e in index["eps"])
    demo_clean = [(_joints(d["poses"][i], d["trans"][i]).numpy(), d["music"])
                  for d in demos if d["split"] != "held_out" for i in np.flatnonzero(d["eps"] == best_eps)[:1]]
    kinds = tuple(train_cfg["corruptions"])
    from e3d2_core.audio import BEAT_COLUMN
    beat_column = BEAT_COLUMN.get(str(config.get("music", {}).get("kind", "compact")))
    extra = corruption_groups(real_train, fps, model.features, seed, kinds, beat_column) if kinds else []
    # π_BC's takes have no timing of their own to break: only the motion corruptions
    plain = tuple(k for k in kinds if k != "offbeat")
    extra += corruption_groups(demo_clean, fps, model.features, seed + 1, plain) if plain else []
    val_shard = load_split(config, "val", required=False)
    real_groups = (real_over_policy_groups(demos, (train_shard, val_shard), model.features)
                   if train_cfg["real_pairs"] else [])
    extra += real_groups
    held_real_pairs = real_over_policy_groups(demos, (test_shard,), model.features, split="held_out")
    model.fit_normalisation(torch.cat([t.features for g in train for t in g.trajectories]),
                            torch.cat([g.music for g in train]))
    state_path = work / "state.pt"
    state = _load_torch(state_path) if options.resume and state_path.is_file() else None
    if state is not None:
        model.load_state_dict(state["model"])  # normalisation buffers included

    def save(s):
        _save_torch(state_path, s)

    def log(record):
        if options.progress:
            print(f"reward: step {record['step']} loss {record['loss']:.3f} held-out {record['held_out_mean']:.3f}")

    # accuracy is judged on snippets as long as the report's windows (5 s): R_θ scores windows and whole dances,
    # and shorter snippets of ε-ranked takes are often mislabelled (a 0.25 take can hold more noise than a 0.5 one)
    eval_len = max(1, int(round(float(train_cfg["eval_seconds"]) / model.step_seconds)))
    eval_len = min(eval_len, min(g.steps for g in held))     # short held-out songs (tiny test data)
    short_len = (int(train_cfg["min_len"]) + int(train_cfg["max_len"])) // 2
    held_select, held_test = split_takes(held)
    model.to(stage_device(config, options))     # trains on the GPU when there is one; judged on the CPU below
    state = train_trex(model, train, held_select, steps=int(train_cfg["steps"]), batch=int(train_cfg["batch"]),
                       lr=float(train_cfg["lr"]), min_len=int(train_cfg["min_len"]),
                       max_len=int(train_cfg["max_len"]), eval_len=eval_len,
                       eval_every=int(train_cfg["eval_every"]), patience=int(train_cfg["patience"]),
                       reward_l2=float(train_cfg["reward_l2"]), extra_train=extra or None,
                       extra_fraction=float(train_cfg["corrupt_fraction"]),
                       noise_weight=float(train_cfg["noise_probe"]), ema=float(train_cfg["ema"]), seed=seed,
                       state=state, log=log, checkpoint_fn=save)
    model.cpu()
    held_real = _real_motions(test_shard, fps)
    accuracy = pairwise_accuracy(model, held_test, eval_len, max_pairs_per_key=None, intervals=1000, seed=seed)
    summary = {
        "steps": state["step"], "best_held_out_mean": state["best"],
        "reward_accuracy": {k: v["accuracy"] for k, v in accuracy.items()},
        "reward_accuracy_interval": {k: [v["low"], v["high"]] for k, v in accuracy.items()},
        "held_out_takes": {"select": sum(len(g.trajectories) for g in held_select),
                           "test": sum(len(g.trajectories) for g in held_test),
                           "split": any(a is not b for a, b in zip(held_select, held_test))},
        "reward_accuracy_short": pairwise_accuracy(model, held_test, short_len),
        "train_accuracy": pairwise_accuracy(model, train, eval_len, windows=2),
        "u_bar_held_out": return_per_minute(model, held), "u_bar_train": return_per_minute(model, train),
        "robustness_held_out_real": robustness(model, held_real, fps, seed, beat_column=beat_column)
        if held_real else None,
        "real_over_policy_held_out": (pairwise_accuracy(model, held_real_pairs, eval_len).get("0.0|1.0")
                                      if held_real_pairs else None),
        "corruption_pairs": {"real_training_dances": len(real_train), "eps_min_demos": len(demo_clean),
                             "kinds": list(kinds), "real_over_policy_songs": len(real_groups)},
        "held_out_music": sorted({g.name for g in held}), "eval_snippet_steps": eval_len,
        "eval_snippet_seconds": eval_len * model.step_seconds, "short_snippet_steps": short_len,
    }
    write_json(work / "history.json", state["history"])
    write_json(work / "summary.json", summary)
    if state["history"]:
        plot_accuracy(state["history"], work / "accuracy.png")
    bc = load_stage_output(run_dir, "bc")
    entry = reward_entry(model, policy_fingerprint=policy_fingerprint(bc["policy"]["state_dict"]),
                         music_kind=str(index["music_kind"]), note="T-REX on ε-ranked π_BC demonstrations",
                         metrics={"reward_accuracy": summary["reward_accuracy"]})
    output = run_dir / OUTPUTS["reward"]
    save_stage_output(output, {"reward": entry})
    return output


# ---------------------------------------------------------------------------------------------- rl
def _rl(config: dict, run_dir: Path, options: StageOptions, kind: str) -> Path:
    from e3d2_core.scoring import reward_from_entry
    from e3d2_core.training.demos import load_demos, seed_codes_from, Song
    from e3d2_core.training.hand_reward import BEAT_COLUMN
    from e3d2_core.training.rl import RLRunner, evaluate_returns

    run_dir = Path(run_dir)
    name = "rl" if kind == "learned" else "rl_hand"
    work = run_dir / name
    cfg = {**RL_STAGE_DEFAULTS, **config.get("rl", {}), "reward": kind}
    apply_threads(config)
    torch.manual_seed(int(cfg.get("seed", 0)))
    device = stage_device(config, options)
    vqvae, policy, bc = _models(run_dir, device)
    reward_model = reward_from_entry(load_stage_output(run_dir, "reward")["reward"],
                                     policy_state=bc["policy"]["state_dict"], where=str(run_dir / "reward.pt"))
    index = json.loads((run_dir / OUTPUTS["demos"]).read_text())
    demos = load_demos(run_dir)
    songs = [Song(d["music_id"], d["music"], d["split"]) for d in demos]
    train_songs = [s for s in songs if s.split == "train"]
    held_songs = [s for s in songs if s.split == "held_out"]
    train_shard = load_split(config, "train")
    seeds = seed_codes_from(vqvae, train_shard.sequences, 8, np.random.default_rng(0), device)
    mean, std = bc["music"]["mean"], bc["music"]["std"]
    beat_column = BEAT_COLUMN[str(index["music_kind"])]
    runner = RLRunner(policy, vqvae, train_songs, mean, std, seeds, cfg, reward_model=reward_model,
                      beat_column=beat_column)
    state_path = work / "state.pt"
    log_path = work / "metrics.jsonl"
    if options.resume and state_path.is_file():
        runner.load_state(_load_torch(state_path))
    elif log_path.exists():
        log_path.unlink()

    def evaluate():
        out = {}
        for music, songs_ in (("held_out", held_songs), ("train", train_songs[:2])):
            returns = evaluate_returns(runner.policy, vqvae, songs_, mean, std, seeds, reward_model=reward_model,
                                       kinds=("learned", "hand"), beat_column=beat_column,
                                       max_steps=int(cfg["eval_steps"]), starts=int(cfg["eval_starts"]),
                                       temperature=float(cfg.get("eval_temperature", runner.cfg["temperature"])))
            out.update({f"{music}_{kind}": value for kind, value in returns.items()})
        return out

    summary_path = work / "summary.json"
    before = json.loads(summary_path.read_text())["before"] if summary_path.is_file() and options.resume \
        else evaluate()
    write_json(summary_path, {"before": before})
    snapshots = sorted(int(s) for s in cfg.get("snapshot_steps", []))
    while runner.iteration_count < int(cfg["iterations"]):
        steps_before = runner.interaction_steps
        record = runner.iteration()
        for milestone in snapshots:
            if steps_before < milestone <= runner.interaction_steps:
                _save_torch(work / "snapshots" / f"steps_{milestone}.pt", {"policy": runner.state()["policy"],
                                                                           "interaction_steps": milestone})
        if runner.iteration_count % int(cfg["eval_every"]) == 0:
            record["eval"] = evaluate()
        with open(log_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if options.progress:
            print(f"{name}: iteration {record['iteration']} steps {record['interaction_steps']} "
                  f"reward {record['reward_raw']:.3f} kl {record['kl']:.4f}")
        if runner.iteration_count % int(cfg["checkpoint_every"]) == 0:
            _save_torch(state_path, runner.state())
    after = evaluate()
    write_json(summary_path, {"before": before, "after": after, "interaction_steps": runner.interaction_steps,
                              "reward_stats": list(runner.stats or []), "reward": kind,
                              "rl_music": "training music (every song except the held-out one)"})
    output = run_dir / OUTPUTS[name]
    policy_cfg = dict(bc["policy"]["config"])
    save_stage_output(output, {"policy_rl": {"config": policy_cfg, "state_dict": runner.state()["policy"],
                                             "reward": kind, "interaction_steps": runner.interaction_steps}})
    return output


def run_rl(config: dict, run_dir: Path, options: StageOptions) -> Path:
    """π_RL ← π_BC, PPO against the learned reward R_θ."""
    return _rl(config, run_dir, options, "learned")


def run_rl_hand(config: dict, run_dir: Path, options: StageOptions) -> Path:
    """The Table 3 ablation: the same RL against the hand-designed reward (beat alignment + orientation)."""
    return _rl(config, run_dir, options, "hand")
