"""Does the dance follow the music? Tempo, phase and plausibility of generated dances against real dance (JSON).

    python bench/bench_music_follow.py [--checkpoint B.pt] [--data DATA] [--bundled data/bundled]
                                       [--tempos 70,85,100,115,130,145,160] [--takes 3] [--seconds 20] [-o out.json]

Songs nobody trained on:
* synthetic steady tracks (kick + clap on every beat, a quiet hat on the off-beat) at each of ``--tempos``;
* the held-out MIDI renders of the music library with exact beats (``DATA/music_library/freedoom``, the recipe's
  ``EVAL_SONGS``), when ``--data`` has them.
Every dance is measured against the songs' *true* beats (:mod:`e3d2_core.metrics.music_follow`): tempo match rate
(the motion's own period is the beat period, x1/2 or x2, within 6 %), BAS on the beats and on the off-beats (their
difference is the phase gain), the octave-folded tempo correlation over songs, mean joint speed, time spinning
faster than 360 deg/s, pelvis acceleration, the lowest foot point, foot sliding in contact, pose spread (over
the take and in its stillest 4 s) and jitter share. Every generated row samples with the checkpoint's repeat limit
(:class:`e3d2_core.repeat_limit.RepeatLimit`, recorded as the row's ``repeat``); ``recent_repeats`` is how often
the code drawn at a step occurred in the 16 steps before (real dance, encoded: a median 0).
Rows: ``rl_raw`` (pi_RL: no beat guide, no beat lock), ``bc_raw`` (pi_BC, the same), ``beat_raw`` (pi_beat, a
policy distilled on its own beat-guided takes, the same), ``rl_guided`` (pi_RL with the default beat guide, no
lock), ``rl_locked`` (pi_RL with the default lock, no guide), ``bc_product`` (pi_BC with the default guide and
lock), ``product`` (what ``e3d2 generate`` gives: the bundle's default policy, named in ``default_policy``, with the
default guide and lock),
and ``real_dance`` (the recipe's held-out real dance on its music, ``--bundled``/test.npz and val.npz, cut to
``--seconds``). Means come with take-bootstrap 95 % intervals.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from e3d2_core.metrics.music_follow import follow_measures  # noqa: E402
from e3d2_core.repeat_limit import recent_repeats  # noqa: E402

EVAL_MIDI = ("D_E1M5", "D_E1M7", "D_RUNNI2", "D_BUNNY", "D_DOOM2", "D_EVIL")
FPS = 60.0
ROWS = {"rl_raw": {"policy": "rl", "beat_lock": 0.0, "beat_guide": 0.0},
        "bc_raw": {"policy": "bc", "beat_lock": 0.0, "beat_guide": 0.0},
        "beat_raw": {"policy": "beat", "beat_lock": 0.0, "beat_guide": 0.0},
        "rl_guided": {"policy": "rl", "beat_lock": 0.0, "beat_guide": None},
        "rl_locked": {"policy": "rl", "beat_lock": None, "beat_guide": 0.0},
        "bc_product": {"policy": "bc", "beat_lock": None, "beat_guide": None},
        "product": {"policy": "auto", "beat_lock": None, "beat_guide": None}}


def steady_track(bpm: float, seconds: float, sr: int = 22050, seed: int = 0):
    """(samples (n,) float32, beat times (K,) s): a drum pattern whose beats no tracker can mistake for the
    off-beat -- a kick and a broadband clap on every beat (accented on 2 and 4), a quiet hat half-way."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    y = np.zeros(n)
    t = np.arange(int(0.12 * sr)) / sr
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-t * 30)) * t) * np.exp(-t * 18)
    clap = rng.standard_normal(int(0.08 * sr)) * np.exp(-np.arange(int(0.08 * sr)) / sr * 40) * 0.7
    hat = rng.standard_normal(int(0.03 * sr)) * np.exp(-np.arange(int(0.03 * sr)) / sr * 120) * 0.12
    period = 60.0 / bpm
    beats = np.arange(0.25, seconds - 0.2, period)
    for k, beat in enumerate(beats):
        i = int(beat * sr)
        y[i:i + len(kick)] += kick[: n - i]
        y[i:i + len(clap)] += clap[: n - i] * (1.0 if k % 2 else 0.6)
        j = int((beat + period / 2) * sr)
        if j < n:
            y[j:j + len(hat)] += hat[: n - j]
    return (0.5 * y / np.abs(y).max()).astype(np.float32), beats


def songs(args, folder: Path) -> list[tuple[str, Path, np.ndarray]]:
    """(name, audio path, true beat times) of every evaluation song."""
    import soundfile as sf
    out = []
    for bpm in args.tempos:
        y, beats = steady_track(bpm, args.seconds)
        path = folder / f"steady_{bpm:g}bpm.wav"
        sf.write(path, y, 22050)
        out.append((f"steady_{bpm:g}", path, beats))
    midi = Path(args.data) / "music_library" / "freedoom" if args.data else None
    for name in EVAL_MIDI:
        if midi is not None and (midi / f"{name}.ogg").is_file():
            beats = np.loadtxt(midi / f"{name}.beats.txt", comments="#", ndmin=1)
            out.append((name, midi / f"{name}.ogg", beats))
    return out


def bootstrap(values, stat=np.mean, resamples: int = 2000, seed: int = 0):
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"mean": None, "ci95": None, "n": 0}
    rng = np.random.default_rng(seed)
    draws = [stat(values[rng.integers(0, len(values), len(values))]) for _ in range(resamples)]
    return {"mean": round(float(stat(values)), 4), "ci95": [round(float(np.percentile(draws, 2.5)), 4),
                                                            round(float(np.percentile(draws, 97.5)), 4)],
            "n": int(len(values))}


def correlation_ci(x, y, resamples: int = 2000, seed: int = 0):
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3:
        return {"r": None, "ci95": None, "n": int(len(x))}
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        i = rng.integers(0, len(x), len(x))
        if np.std(x[i]) > 0 and np.std(y[i]) > 0:
            draws.append(np.corrcoef(x[i], y[i])[0, 1])
    return {"r": round(float(np.corrcoef(x, y)[0, 1]), 4),
            "ci95": [round(float(np.percentile(draws, 2.5)), 4), round(float(np.percentile(draws, 97.5)), 4)],
            "n": int(len(x))}


def summarise(takes: list[dict]) -> dict:
    summary = {key: bootstrap([t[key] for t in takes]) for key in
               ("tempo_match", "bas", "bas_offbeat", "phase_gain", "speed", "spin_fraction", "pelvis_accel",
                "foot_slide", "pose_spread", "pose_spread_low", "jitter_share", "recent_repeats")
               if all(key in t for t in takes)}
    summary["lowest_foot_min"] = round(float(min(t["lowest_foot"] for t in takes)), 4)
    summary["tempo_correlation_folded"] = correlation_ci([t["folded_bpm"] for t in takes],
                                                         [t["music_bpm"] for t in takes])
    return summary


def generated_row(row: dict, eval_songs, args) -> tuple[list[dict], float]:
    import warnings

    from e3d2_core import api
    takes, seconds = [], 0.0
    for name, path, beats in eval_songs:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            motions = api.generate(path, seconds=args.seconds, seed=args.seed, takes=args.takes,
                                   checkpoint=args.checkpoint, device="cpu", **row)
        seconds += time.perf_counter() - start
        motions = motions if isinstance(motions, list) else [motions]
        frames = np.round(np.asarray(beats) * FPS).astype(np.int64)
        for motion in motions:
            repeats = np.r_[recent_repeats(motion.meta["codes_up"]), recent_repeats(motion.meta["codes_down"])]
            takes.append({"song": name, "repeat": motion.meta.get("repeat"), "recent_repeats": float(repeats.mean()),
                          **follow_measures(motion.joints(), frames, FPS)})
    return takes, seconds


def real_row(args) -> list[dict]:
    from e3d2_core.motion import Motion
    from e3d2_core.training.data import load_shard
    takes = []
    for split in ("test", "val"):
        path = Path(args.bundled) / f"{split}.npz"
        if not path.is_file():
            continue
        for seq in load_shard(path).sequences:
            frames = int(args.seconds * FPS)
            if seq.beat_frames is None or seq.num_frames < 4 * FPS:
                continue
            joints = Motion(seq.poses[:frames], seq.trans[:frames], FPS).joints()
            beats = np.asarray(seq.beat_frames)
            takes.append({"song": seq.name, **follow_measures(joints, beats[beats < frames], FPS)})
    return takes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="model bundle (default: the bundled one)")
    parser.add_argument("--data", default=os.environ.get("E3D2_DATA"),
                        help="data folder with music_library/freedoom (default $E3D2_DATA)")
    parser.add_argument("--bundled", default=str(ROOT / "data" / "bundled"), help="the recipe's output folder")
    parser.add_argument("--tempos", default="70,85,100,115,130,145,160",
                        type=lambda s: [float(v) for v in s.split(",")])
    parser.add_argument("--takes", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", default="rl_raw,bc_raw,beat_raw,rl_guided,rl_locked,bc_product,product,real_dance")
    parser.add_argument("-o", "--output", help="also write the JSON here")
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from e3d2_core import checkpoint as ckpt
    bundle = ckpt.load_bundle(args.checkpoint or ckpt.default_checkpoint())
    result = {"seconds": args.seconds, "takes_per_song": args.takes, "rows": {},
              "default_policy": ckpt.POLICY_NAMES[ckpt.policy_part(bundle, "auto")]}
    del bundle
    with tempfile.TemporaryDirectory() as tmp:
        eval_songs = songs(args, Path(tmp))
        result["songs"] = [name for name, _, _ in eval_songs]
        for name in args.rows.split(","):
            if name == "real_dance":
                takes = real_row(args)
                if takes:
                    result["rows"][name] = {**summarise(takes), "takes": len(takes)}
                continue
            takes, seconds = generated_row(ROWS[name], eval_songs, args)
            result["rows"][name] = {**summarise(takes), "takes": len(takes),
                                    "generation_seconds": round(seconds, 2), "repeat": takes[0]["repeat"],
                                    "per_song": {s: round(float(np.mean([t["tempo_match"] for t in takes
                                                                         if t["song"] == s])), 3)
                                                 for s in result["songs"]}}
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
