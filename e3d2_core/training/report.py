"""`report`: the paper's Tables 1, 3, 4 and Figure 3 for one run, with bootstrap 95 % intervals.

Evaluation protocol (documented in docs/e3d2.md):
* music: Table 1 and Table 3 use the **held-out** music (the test split's song(s)); Table 4 uses the demonstrations
  on the **training** music (seen music, as the paper's Table 4 appears to) and ū from R_θ on those same rollouts.
* motion is cut into 5-s windows (300 frames at 60 fps); every window is one sample. Generated dances start from
  the first code of the held-out real dance (Bailando's seeding) and decode greedily.
* FID_k / FID_g against the windows of the held-out real motion, z-scored by the statistics of all real windows
  (train + test); Div over the normalised generated windows; BAS per window with the music beats of the beat
  column (code rate, placed at each step's first frame), averaged.
* 95 % intervals: percentile bootstrap over windows (200 resamples).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from e3d2_core.skeleton import forward_kinematics_torch

WINDOW_SECONDS = 5.0
METRICS = ("fid_k", "fid_g", "div_k", "div_g", "bas")


def windows(joints: np.ndarray, size: int) -> list[np.ndarray]:
    return [joints[a:a + size] for a in range(0, len(joints) - size + 1, size)]


def features(window_list):
    from e3d2_core.metrics import geometric_features, kinetic_features

    k = np.stack([kinetic_features(w) for w in window_list])
    g = np.stack([geometric_features(w) for w in window_list])
    return k, g


def bas_of(window_list, beat_list):
    from e3d2_core.metrics import beat_align_score, motion_beats

    scores = []
    for w, beats in zip(window_list, beat_list):
        beats = beats[beats < len(w) - 1]
        mb = motion_beats(w)
        if len(beats) and len(mb):
            scores.append(beat_align_score(beats, mb))
    return np.array(scores)


def metric_table(pred, ref, pool_stats, bas_scores, rng, resamples: int = 200) -> dict:
    """{fid_k, fid_g, div_k, div_g, bas, ci: {metric: [lo, hi]}} for predicted vs reference window features."""
    from e3d2_core.metrics import diversity, frechet_distance, normalize

    (pk, pg), (rk, rg) = pred, ref
    (mk, sk), (mg, sg) = pool_stats
    nk, ng, rkn, rgn = normalize(pk, mk, sk), normalize(pg, mg, sg), normalize(rk, mk, sk), normalize(rg, mg, sg)

    def compute(idx, bas_idx):
        return {"fid_k": float(frechet_distance(nk[idx], rkn)), "fid_g": float(frechet_distance(ng[idx], rgn)),
                "div_k": float(diversity(nk[idx])), "div_g": float(diversity(ng[idx])),
                "bas": float(bas_scores[bas_idx].mean()) if len(bas_scores) else None}

    n = len(nk)
    result = compute(np.arange(n), np.arange(len(bas_scores)))
    boots = [compute(rng.integers(0, n, n), rng.integers(0, max(1, len(bas_scores)), len(bas_scores)))
             for _ in range(resamples)]
    result["ci"] = {m: ([float(np.percentile([b[m] for b in boots], 2.5)),
                         float(np.percentile([b[m] for b in boots], 97.5))] if result[m] is not None else None)
                    for m in METRICS}
    result["n_windows"] = n
    return result


def _joints(poses, trans) -> np.ndarray:
    return forward_kinematics_torch(torch.as_tensor(poses), torch.as_tensor(trans)).float().numpy()


def _beats(music: np.ndarray, beat_column: int, per_step: int) -> np.ndarray:
    return np.flatnonzero(music[:, beat_column] > 0.5) * per_step


@torch.no_grad()
def _generate(policy, vqvae, seqs, mean, std):
    from e3d2_core.training.demos import noisy_rollout

    out = []
    for seq in seqs:
        frames = min(len(seq.poses), 64) // vqvae.downsample * vqvae.downsample
        up0, down0 = vqvae.encode(torch.as_tensor(seq.poses[:frames])[None], torch.as_tensor(seq.trans[:frames])[None])
        music = (torch.from_numpy(seq.music) - mean) / std
        up, down = noisy_rollout(policy.eval(), music.float(), up0[:, 0].cpu(), down0[:, 0].cpu(), torch.zeros(1),
                                 torch.Generator().manual_seed(0))
        poses, trans = vqvae.decode(up, down)
        out.append(_joints(poses[0], trans[0]))
    return out


def build_report(config: dict, run_dir: Path) -> dict:
    from e3d2_core.training import stages
    from e3d2_core.training.demos import load_demos
    from e3d2_core.training.hand_reward import BEAT_COLUMN

    run_dir = Path(run_dir)
    rng = np.random.default_rng(0)
    resamples = int(config.get("report", {}).get("resamples", 200))
    vqvae, _ = stages.load_vqvae(run_dir, torch.device("cpu"))
    bc = stages.load_stage_output(run_dir, "bc")
    index = json.loads((run_dir / "demos.json").read_text())
    fps, per_step = float(index["fps"]), int(vqvae.downsample)
    size = int(round(WINDOW_SECONDS * fps))
    beat_column = BEAT_COLUMN[str(index["music_kind"])]
    train = stages.load_split(config, "train")
    test = stages.load_split(config, "test", required=False) or stages.load_split(config, "val")
    real_test = [(_joints(s.poses, s.trans), _beats(s.music, beat_column, per_step)) for s in test.sequences]
    real_all = [_joints(s.poses, s.trans) for s in train.sequences] + [j for j, _ in real_test]
    pool = [w for j in real_all for w in windows(j, size)]
    pk, pg = features(pool)
    from e3d2_core.metrics import pool_statistics
    stats = (pool_statistics(pk), pool_statistics(pg))

    def table_for(joint_list, beat_list):
        wins = [(w, b[(b >= a) & (b < a + size)] - a) for j, b in zip(joint_list, beat_list)
                for a, w in zip(range(0, len(j) - size + 1, size), windows(j, size))]
        if len(wins) < 2:
            return None
        return wins

    ref_wins = table_for([j for j, _ in real_test], [b for _, b in real_test])
    ref = features([w for w, _ in ref_wins])

    def evaluate_joints(joint_list, beat_list):
        wins = table_for(joint_list, beat_list)
        if wins is None:
            return None
        return metric_table(features([w for w, _ in wins]), ref, stats,
                            bas_of([w for w, _ in wins], [b for _, b in wins]), rng, resamples)

    def policy_from(state):
        policy = stages.model_class("policy")(dict(bc["policy"]["config"]))
        policy.load_state_dict(state)
        return policy

    test_beats = [b for _, b in real_test]
    table1 = {"gt": evaluate_joints([j for j, _ in real_test], test_beats)}
    mean, std = bc["music"]["mean"], bc["music"]["std"]
    table1["bc"] = evaluate_joints(_generate(policy_from(bc["policy"]["state_dict"]), vqvae, test.sequences,
                                             mean, std), test_beats)
    table3 = [{"reward": "learned", "steps": 0, **(table1["bc"] or {})},
              {"reward": "hand", "steps": 0, **(table1["bc"] or {})}]
    for name, reward in (("rl", "learned"), ("rl_hand", "hand")):
        out_path = run_dir / stages.STAGES[name].output
        if not out_path.is_file():
            continue
        snaps = sorted((run_dir / name / "snapshots").glob("steps_*.pt"), key=lambda p: int(p.stem[6:]))
        for snap in snaps:
            state = torch.load(snap, weights_only=True)
            table3.append({"reward": reward, "steps": int(state["interaction_steps"]),
                           **(evaluate_joints(_generate(policy_from(state["policy"]), vqvae, test.sequences, mean,
                                                        std), test_beats) or {})})
        final = torch.load(out_path, weights_only=True)["policy_rl"]
        metrics = evaluate_joints(_generate(policy_from(final["state_dict"]), vqvae, test.sequences, mean, std),
                                  test_beats)
        table3.append({"reward": reward, "steps": int(final["interaction_steps"]), **(metrics or {})})
        if name == "rl":
            table1["rl"] = metrics
    reward_summary = json.loads((run_dir / "reward" / "summary.json").read_text())
    table4 = {}
    demos = [d for d in load_demos(run_dir) if d["split"] == "train"]
    for eps in index["eps"]:
        joint_list, beat_list = [], []
        for d in demos:
            for i in np.flatnonzero(np.isclose(d["eps"], eps)):
                joint_list.append(_joints(d["poses"][i], d["trans"][i]))
                beat_list.append(_beats(d["music"], beat_column, per_step))
        row = evaluate_joints(joint_list, beat_list) or {}
        row["u_bar"] = reward_summary["u_bar_train"].get(repr(float(eps)))
        table4[repr(float(eps))] = row
    return {"table1": table1, "table3": table3, "table4": table4,
            "reward_accuracy": reward_summary["reward_accuracy"],
            "u_bar_held_out": reward_summary["u_bar_held_out"],
            "robustness_held_out_real": reward_summary.get("robustness_held_out_real"),
            "protocol": {"window_seconds": WINDOW_SECONDS, "table1_table3_music": "held-out (test split)",
                         "table4_music": "training music (seen)", "reference": "held-out real motion windows",
                         "normalisation": "all real windows (train + test)", "intervals": "bootstrap 95 %, 200"},
            "figure3": str(run_dir / "reward" / "accuracy.png")}


def run_report(config: dict, run_dir: Path, options) -> Path:
    from e3d2_core.fileio import atomic_open
    from e3d2_core.training import stages

    report = build_report(config, run_dir)
    output = Path(run_dir) / stages.STAGES["report"].output
    with atomic_open(output, "w") as handle:
        json.dump(report, handle, indent=2)
    return output
