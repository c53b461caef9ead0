"""`report`: the paper's Tables 1, 3, 4 and Figure 3 for one run, with bootstrap 95 % intervals.

Evaluation protocol (documented in docs/e3d2.md):
* music: Table 1 and Table 3 use the **held-out** music (the test split's song(s)); Table 4 uses the demonstrations
  on the **training** music (seen music, as the paper's Table 4 appears to) and ū from R_θ on those same rollouts.
* motion is cut into 5-s windows (300 frames at 60 fps); every window is one sample. Generated dances start from
  the first code of the held-out real dance (Bailando's seeding) and are decoded as the product decodes:
  ``report.samples`` (4) seeded samples per held-out dance at ``report.temperature`` (the generation default,
  0.7); ``temperature: 0`` gives the paper's greedy decoding, one dance each. Greedy decoding of the bundled π_BC
  barely moves (0.22 m/s mean joint speed against 1.27 for the real dance), which no metric should reward.
* FID_k / FID_g against the windows of the held-out real motion, z-scored by the statistics of all real windows
  (train + test); Div over the normalised generated windows; BAS per window with the **exact music beats** the
  shards store (``beat_frames``: the song's beats at the motion fps, docs/metrics.md), averaged; all with
  :mod:`e3d2_core.metrics.evaluate`'s functions (``pool_features``, ``set_metrics``, ``track_bas``). Shards written
  before they existed fall back to the code-rate beat column (beats placed at each step's first frame) and the report's
  ``protocol.music_beats`` and a note on stderr say so (``prepare_bundled.py --add-beats DIR`` upgrades them).
* 95 % intervals: percentile bootstrap over windows (200 resamples).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from e3d2_core.generation import DEFAULT_TEMPERATURE
from e3d2_core.metrics.evaluate import pool_features, set_metrics, track_bas
from e3d2_core.metrics.fid import normalize, pool_statistics
from e3d2_core.skeleton import forward_kinematics_torch
from e3d2_core.training.stage_common import OUTPUTS, load_split, load_stage_output, load_vqvae, model_class

WINDOW_SECONDS = 5.0
# the config's ``report`` section: bootstrap resamples, and the decoding of the generated dances
REPORT_DEFAULTS = {"resamples": 200, "temperature": DEFAULT_TEMPERATURE, "samples": 4}
METRICS = ("fid_k", "fid_g", "div_k", "div_g", "bas")


def windows(joints: np.ndarray, size: int) -> list[np.ndarray]:
    """Non-overlapping ``size``-frame windows of a (T, 24, 3) track from frame 0 (a shorter rest is dropped)."""
    return [joints[a:a + size] for a in range(0, len(joints) - size + 1, size)]


def bas_of(window_list, beat_list) -> np.ndarray:
    """BAS of the windows where it is defined.

    Parameters
    ----------
    window_list : n arrays (W, 24, 3), metres, 60 fps.
    beat_list : n arrays of music-beat frames, relative to each window's first frame.

    Returns
    -------
    (m,) float, m <= n: the windows with a music beat and a motion beat, in order.
    """
    scores = [track_bas(w, beats) for w, beats in zip(window_list, beat_list)]
    return np.array([score for score in scores if score is not None])


def metric_table(pred, ref, pool_stats, bas_scores, rng, resamples: int = 200, extra: dict | None = None) -> dict:
    """FID, Div and BAS of predicted windows against reference windows, with percentile bootstrap intervals.

    Parameters
    ----------
    pred, ref : (kinetic (n, 72), geometric (n, 32)) raw features of the predicted and reference windows.
    pool_stats : ((mean, std) kinetic, (mean, std) geometric) that z-score both (all real windows).
    bas_scores : (m,) per-window BAS (:func:`bas_of`), bootstrapped separately.
    rng : numpy Generator of the bootstrap draws.
    resamples : bootstrap draws of the n windows (with replacement).
    extra : {name: (n,) per-window scores} (e.g. PFC), averaged over the same draws as FID and Div (NaN windows
        left out of the mean); each becomes one more metric with its interval.

    Returns
    -------
    {"fid_k", "fid_g", "div_k", "div_g", "bas", *extra, "ci": {metric: [2.5 %, 97.5 %] or None}, "n_windows"}.
    """
    (pk, pg), (rk, rg) = pred, ref
    (mk, sk), (mg, sg) = pool_stats
    nk, ng, rkn, rgn = normalize(pk, mk, sk), normalize(pg, mg, sg), normalize(rk, mk, sk), normalize(rg, mg, sg)

    extra = {name: np.asarray(v, np.float64) for name, v in (extra or {}).items()}
    names = METRICS + tuple(extra)

    def mean_finite(values):
        values = values[np.isfinite(values)]
        return float(values.mean()) if len(values) else None

    def compute(idx, bas_idx):
        out = {**set_metrics(nk[idx], ng[idx], rkn, rgn),
               "bas": float(bas_scores[bas_idx].mean()) if len(bas_scores) else None}
        out.update({name: mean_finite(v[idx]) for name, v in extra.items()})
        return out

    n = len(nk)
    result = compute(np.arange(n), np.arange(len(bas_scores)))
    boots = [compute(rng.integers(0, n, n), rng.integers(0, max(1, len(bas_scores)), len(bas_scores)))
             for _ in range(resamples)]
    def interval(m):
        values = [b[m] for b in boots if b[m] is not None]
        if result[m] is None or not values:
            return None
        return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]

    result["ci"] = {m: interval(m) for m in names}
    result["n_windows"] = n
    return result


def _joints(poses, trans) -> np.ndarray:
    return forward_kinematics_torch(torch.as_tensor(poses), torch.as_tensor(trans)).float().numpy()


def _beats(music: np.ndarray, beat_column: int, per_step: int) -> np.ndarray:
    return np.flatnonzero(music[:, beat_column] > 0.5) * per_step


def sequence_beats(seq, beat_column: int, per_step: int) -> np.ndarray:
    """Music-beat frames of one shard sequence.

    Parameters
    ----------
    seq : a shard ``Sequence``.
    beat_column : the beat one-hot column of its music features.
    per_step : motion frames per code step (8).

    Returns
    -------
    (K,) int64 frames at the motion fps: its exact ``beat_frames`` when the shard has them, else the code-rate
    beat column's steps placed at their first frame (older shards).
    """
    if seq.beat_frames is not None:
        return np.asarray(seq.beat_frames, np.int64)
    return _beats(seq.music, beat_column, per_step)


def exact_beats_for_music(music: np.ndarray, music_id: str, shards) -> np.ndarray | None:
    """Exact beats of a track cut from a shard sequence, found by its music id and rows.

    Parameters
    ----------
    music : (N, D) code-rate features: a sequence's music or its prefix (e.g. a demonstration's).
    music_id : the song's id.
    shards : shards (or None) to look in.

    Returns
    -------
    (K,) int64 frames at the motion fps within the N steps, or None when no sequence with beats matches.
    """
    n = len(music)
    for shard in shards:
        if shard is None:
            continue
        for seq in shard.sequences:
            if (seq.music_id == music_id and seq.beat_frames is not None and len(seq.music) >= n
                    and np.array_equal(seq.music[:n], music)):
                return np.asarray(seq.beat_frames[seq.beat_frames < n * shard.ratio], np.int64)
    return None


def random_code_joints(vqvae, lengths, seed: int = 0) -> list[np.ndarray]:
    """A random-code policy: uniform random (up, down) codes, one per step, decoded by the VQ-VAE.

    Parameters
    ----------
    vqvae : the run's ChoreographicMemory.
    lengths : frame counts; each gives N = frames // 8 code steps.
    seed : seed of the code draws.

    Returns
    -------
    One (8N, 24, 3) joint track (metres) per length.
    """
    generator = torch.Generator().manual_seed(seed)
    size = int(vqvae.config["codebook_size"])
    out = []
    with torch.no_grad():
        for frames in lengths:
            n = int(frames) // vqvae.downsample
            up = torch.randint(size, (1, n), generator=generator)
            down = torch.randint(size, (1, n), generator=generator)
            poses, trans = vqvae.decode(up, down)
            out.append(_joints(poses[0], trans[0]))
    return out


@torch.no_grad()
def _generate(policy, vqvae, seqs, mean, std, temperature: float = 0.0, samples: int = 1, seed: int = 0):
    """Dances of ``policy`` on the music of held-out sequences, each from the first code of that real dance.

    Parameters
    ----------
    policy, vqvae : the models.
    seqs : shard sequences (their music and first motion frames are used).
    mean, std : (D,) music normalisation of the bundle.
    temperature : 0 is greedy (then one dance per sequence), else seeded sampling at this temperature.
    samples : dances per sequence when sampling.
    seed : sequence k draws with seed ``seed * 1000 + k``.

    Returns
    -------
    (8N, 24, 3) joint tracks (metres), sequence-major.
    """
    from e3d2_core.generation import generate_codes

    samples = 1 if temperature <= 0 else int(samples)
    out = []
    for k, seq in enumerate(seqs):
        frames = min(len(seq.poses), 64) // vqvae.downsample * vqvae.downsample
        up0, down0 = vqvae.encode(torch.as_tensor(seq.poses[:frames])[None], torch.as_tensor(seq.trans[:frames])[None])
        music = ((torch.from_numpy(seq.music) - mean) / std).float()
        up, down = generate_codes(policy.eval(), music, up0[:, 0].cpu().expand(samples),
                                  down0[:, 0].cpu().expand(samples), temperature=temperature,
                                  generator=torch.Generator().manual_seed(seed * 1000 + k))
        poses, trans = vqvae.decode(up, down)
        out += [_joints(poses[i], trans[i]) for i in range(samples)]
    return out


@dataclass
class Evaluation:
    """Everything the report's tables share: the held-out reference windows, the pool statistics and the models.

    ``evaluate(joint_list, beat_list, pfc=False)`` cuts tracks into 5-s windows (beats shifted with them) and
    scores them against the held-out real windows; ``generate(state_dict)`` rolls a policy out on every held-out
    sequence's music (``samples`` takes each at ``temperature``; greedy, one each, at 0), and
    ``generated_beats`` are the music beats that go with its output.
    """

    vqvae: object
    bc: dict
    fps: float
    per_step: int
    size: int
    beat_column: int
    train: object
    val: object
    test: object
    real_test: list
    stats: tuple
    ref: tuple
    rng: np.random.Generator
    resamples: int
    exact_beats: bool
    notes: list = field(default_factory=list)
    temperature: float = 0.0
    samples: int = 1

    @property
    def test_beats(self) -> list:
        return [b for _, b in self.real_test]

    @property
    def per_sequence(self) -> int:
        """Generated dances per held-out sequence (greedy decoding gives one)."""
        return 1 if self.temperature <= 0 else self.samples

    @property
    def generated_beats(self) -> list:
        return [b for b in self.test_beats for _ in range(self.per_sequence)]

    def window_pairs(self, joint_list, beat_list):
        return [(w, b[(b >= a) & (b < a + self.size)] - a) for j, b in zip(joint_list, beat_list)
                for a, w in zip(range(0, len(j) - self.size + 1, self.size), windows(j, self.size))]

    def evaluate(self, joint_list, beat_list, pfc: bool = False) -> dict | None:
        wins = self.window_pairs(joint_list, beat_list)
        if len(wins) < 2:
            return None
        extra = None
        if pfc:
            from e3d2_core.metrics import pfc_score
            extra = {"pfc": [pfc_score(w, self.fps) for w, _ in wins]}
        return metric_table(pool_features([w for w, _ in wins]), self.ref, self.stats,
                            bas_of([w for w, _ in wins], [b for _, b in wins]), self.rng, self.resamples, extra)

    @property
    def generated_music(self) -> list:
        return [seq.music for seq in self.test.sequences for _ in range(self.per_sequence)]

    def policy(self, state):
        policy = model_class("policy")(dict(self.bc["policy"]["config"]))
        policy.load_state_dict(state)
        return policy

    def generate(self, state) -> list[np.ndarray]:
        return _generate(self.policy(state), self.vqvae, self.test.sequences, self.bc["music"]["mean"],
                         self.bc["music"]["std"], self.temperature, self.samples)


def evaluation(config: dict, run_dir: Path, *, rng=None, quiet: bool = False) -> Evaluation:
    """Load a run's VQ-VAE and π_BC and the data splits, and build the held-out reference (see module docstring).

    Parameters
    ----------
    config : the run's training config (its ``report`` section and data).
    run_dir : the run folder.
    rng : numpy Generator of the bootstrap draws (default: seeded with 0).
    quiet : no note on stderr for shards without exact beats.
    """
    from e3d2_core.training.hand_reward import BEAT_COLUMN

    run_dir = Path(run_dir)
    report_cfg = {**REPORT_DEFAULTS, **config.get("report", {})}
    resamples = int(report_cfg["resamples"])
    vqvae, _ = load_vqvae(run_dir, torch.device("cpu"))
    bc = load_stage_output(run_dir, "bc")
    fps, per_step = float(vqvae.fps), int(vqvae.downsample)
    size = int(round(WINDOW_SECONDS * fps))
    beat_column = BEAT_COLUMN[str(bc["music"]["kind"])]
    train = load_split(config, "train")
    val = load_split(config, "val", required=False)
    test = load_split(config, "test", required=False) or val
    exact = test.has_beats and train.has_beats
    notes = []
    if not exact:
        notes.append("shards without exact music beats (beat_frames): BAS uses the code-rate beat column, beats "
                     "placed at each step's first frame; run `python training/prepare_bundled.py --add-beats "
                     "DATA_DIR` to upgrade them")
        if not quiet:
            print(f"report: note: {notes[-1]}", file=sys.stderr)
    real_test = [(_joints(s.poses, s.trans), sequence_beats(s, beat_column, per_step)) for s in test.sequences]
    real_all = [_joints(s.poses, s.trans) for s in train.sequences] + [j for j, _ in real_test]
    pool = [w for j in real_all for w in windows(j, size)]
    pk, pg = pool_features(pool)
    ev = Evaluation(vqvae, bc, fps, per_step, size, beat_column, train, val, test, real_test,
                    (pool_statistics(pk), pool_statistics(pg)), (None, None),
                    rng if rng is not None else np.random.default_rng(0), resamples, exact, notes,
                    float(report_cfg["temperature"]), int(report_cfg["samples"]))
    ev.ref = pool_features([w for w, _ in ev.window_pairs([j for j, _ in real_test], ev.test_beats)])
    return ev


@torch.no_grad()
def reward_per_minute(reward_model, joint_list, music_list, rng, resamples: int = 200) -> dict:
    """R_θ's return per minute of each dance on its music.

    Parameters
    ----------
    reward_model : R_θ.
    joint_list : (T_i, 24, 3) joint tracks at R_θ's fps.
    music_list : (N_i, D) raw code-rate music of each.
    rng, resamples : the bootstrap over dances.

    Returns
    -------
    {"mean": float, "ci": [2.5 %, 97.5 %], "n": number of dances}.
    """
    values = []
    for joints, music in zip(joint_list, music_list):
        feats = reward_model.features(torch.as_tensor(joints)[None])
        n = min(feats.shape[1], len(music))
        total = reward_model(feats[:, :n], torch.as_tensor(music[:n])[None]).sum().item()
        values.append(total / (n * reward_model.step_seconds / 60.0))
    values = np.array(values)
    boots = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(resamples)]
    return {"mean": float(values.mean()), "ci": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
            "n": int(len(values))}


def build_report(config: dict, run_dir: Path) -> dict:
    """The report of a finished run (Tables 1, 3, 4, R_θ's accuracy, the protocol): what ``report.json`` holds."""
    from e3d2_core.training.demos import load_demos

    run_dir = Path(run_dir)
    ev = evaluation(config, run_dir)
    index = json.loads((run_dir / "demos.json").read_text())
    test_beats = ev.generated_beats
    from e3d2_core.scoring import reward_from_entry

    reward_model = reward_from_entry(load_stage_output(run_dir, "reward")["reward"],
                                     policy_state=ev.bc["policy"]["state_dict"], where=str(run_dir / "reward.pt"))
    returns = {"gt": reward_per_minute(reward_model, [j for j, _ in ev.real_test],
                                       [s.music for s in ev.test.sequences], ev.rng, ev.resamples)}
    table1 = {"gt": ev.evaluate([j for j, _ in ev.real_test], ev.test_beats)}
    bc_dances = ev.generate(ev.bc["policy"]["state_dict"])
    table1["bc"] = ev.evaluate(bc_dances, test_beats)
    returns["bc"] = reward_per_minute(reward_model, bc_dances, ev.generated_music, ev.rng, ev.resamples)
    table3 = [{"reward": "learned", "steps": 0, **(table1["bc"] or {})},
              {"reward": "hand", "steps": 0, **(table1["bc"] or {})}]
    for name, reward in (("rl", "learned"), ("rl_hand", "hand")):
        out_path = run_dir / OUTPUTS[name]
        if not out_path.is_file():
            continue
        snaps = sorted((run_dir / name / "snapshots").glob("steps_*.pt"), key=lambda p: int(p.stem[6:]))
        for snap in snaps:
            state = torch.load(snap, weights_only=True)
            table3.append({"reward": reward, "steps": int(state["interaction_steps"]),
                           **(ev.evaluate(ev.generate(state["policy"]), test_beats) or {})})
        final = torch.load(out_path, weights_only=True)["policy_rl"]
        dances = ev.generate(final["state_dict"])
        metrics = ev.evaluate(dances, test_beats)
        returns[name] = reward_per_minute(reward_model, dances, ev.generated_music, ev.rng, ev.resamples)
        table3.append({"reward": reward, "steps": int(final["interaction_steps"]), **(metrics or {})})
        if name == "rl":
            table1["rl"] = metrics
    reward_summary = json.loads((run_dir / "reward" / "summary.json").read_text())
    table4 = {}
    demos = [d for d in load_demos(run_dir) if d["split"] == "train"]
    demo_exact = True
    for eps in index["eps"]:
        joint_list, beat_list = [], []
        for d in demos:
            beats = exact_beats_for_music(d["music"], d["music_id"], (ev.train, ev.val)) if ev.exact_beats else None
            if beats is None:
                demo_exact = False
                beats = _beats(d["music"], ev.beat_column, ev.per_step)
            for i in np.flatnonzero(np.isclose(d["eps"], eps)):
                joint_list.append(_joints(d["poses"][i], d["trans"][i]))
                beat_list.append(beats)
        row = ev.evaluate(joint_list, beat_list) or {}
        row["u_bar"] = reward_summary["u_bar_train"].get(repr(float(eps)))
        table4[repr(float(eps))] = row
    exact_text = f"exact music beats at {ev.fps:g} fps (shards' beat_frames)"
    fallback = "code-rate beat column (beats at each step's first frame)"
    return {"table1": table1, "table3": table3, "table4": table4,
            "reward_accuracy": reward_summary["reward_accuracy"],
            "reward_accuracy_interval": reward_summary.get("reward_accuracy_interval"),
            "reward_held_out_takes": reward_summary.get("held_out_takes"),
            "reward_per_minute_held_out": returns,
            "u_bar_held_out": reward_summary["u_bar_held_out"],
            "robustness_held_out_real": reward_summary.get("robustness_held_out_real"),
            "protocol": {"window_seconds": WINDOW_SECONDS, "table1_table3_music": "held-out (test split)",
                         "decoding": (f"{ev.samples} samples per held-out dance at temperature {ev.temperature:g}"
                                      if ev.temperature > 0 else "greedy, one per held-out dance"),
                         "table4_music": "training music (seen)", "reference": "held-out real motion windows",
                         "normalisation": "all real windows (train + test)",
                         "intervals": f"bootstrap 95 %, {ev.resamples}",
                         "music_beats": exact_text if ev.exact_beats else fallback,
                         "table4_music_beats": exact_text if ev.exact_beats and demo_exact else fallback},
            "notes": ev.notes,
            "figure3": str(run_dir / "reward" / "accuracy.png")}


def run_report(config: dict, run_dir: Path, options) -> Path:
    """The ``report`` stage: write :func:`build_report` to ``RUN/report.json``."""
    from e3d2_core.fileio import atomic_open

    report = build_report(config, run_dir)
    output = Path(run_dir) / OUTPUTS["report"]
    with atomic_open(output, "w") as handle:
        json.dump(report, handle, indent=2)
    return output
