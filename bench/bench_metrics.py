"""Benchmark: 40 predictions against a 1,363-sequence pool of 20-s tracks, vectorised vs per-frame loops.

The pool and the predictions are generated from the five real AIST++ slices in ``tests/data/aistpp`` (30 fps,
upsampled to 60 fps) by augmentation: random slice, rotation about Y, mirroring, time shift (start offset),
speed change (0.8-1.25x), segments tiled and cross-faded (root-aligned) to 20 s, plus 1-mm noise. Music beats
are synthetic beat grids (95-135 bpm) at 60 fps.

The vectorised protocol (features of 1,403 tracks, z-scoring, FID, diversities including the pool's 928k pairs,
BAS and PFC of the 40) is timed in full. The loop implementation (``bench/metrics_loop_reference.py``) is slow
(about 1-2 s per 20-s track), so it is timed on 30 tracks and on 20,000 diversity pairs, and extrapolated to the
same workload. Agreement: the 30 tracks' features and the metrics computed from them by both implementations
(max relative difference, goal <= 1e-6). File reading is excluded from both. Prints one JSON object.

    python bench/bench_metrics.py [--loop-tracks 30] [--pool 1363] [--pred 40]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import metrics_loop_reference as loop  # noqa: E402
from e3d2_core.metrics import beat_align_score, motion_beats, pfc_score  # noqa: E402
from e3d2_core.metrics.evaluate import feature_metrics, pool_features, sequence_bas  # noqa: E402
from e3d2_core.metrics.inputs import resample_positions, root_relative  # noqa: E402
from e3d2_core.motion import from_z_up  # noqa: E402
from e3d2_core.skeleton import default_skeleton  # noqa: E402

AIST_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "aistpp"
FPS = 60
LENGTH = 20 * FPS
BLEND = 20


def real_slices() -> list[np.ndarray]:
    paths = sorted(AIST_DIR.glob("true_*.csv"))
    return [resample_positions(from_z_up(np.loadtxt(p, delimiter=",").reshape(-1, 24, 3)), 30.0) for p in paths]


def _segment(rng, slices, mirror_map) -> np.ndarray:
    clip = slices[rng.integers(len(slices))]
    speed = rng.uniform(0.8, 1.25)
    clip = resample_positions(clip, FPS * speed)  # played back `speed` times faster at 60 fps
    clip = clip[rng.integers(0, len(clip) // 3):]  # time shift
    if rng.random() < 0.5:
        clip = clip[:, mirror_map] * np.array([-1.0, 1.0, 1.0])
    angle = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    return clip @ rot.T


def synth_track(rng, slices, mirror_map) -> np.ndarray:
    """One 20-s 60-fps track of root-aligned, cross-faded augmented segments of real motion."""
    track = _segment(rng, slices, mirror_map)
    ramp = np.linspace(0, 1, BLEND)[:, None, None]
    while len(track) < LENGTH:
        seg = _segment(rng, slices, mirror_map)
        seg = seg + (track[-BLEND, 0] - seg[0, 0]) * np.array([1.0, 0.0, 1.0])  # continue on the floor
        mixed = track[-BLEND:] * (1 - ramp) + seg[:BLEND] * ramp
        track = np.concatenate([track[:-BLEND], mixed, seg[BLEND:]])
    return track[:LENGTH] + rng.normal(0, 1e-3, (LENGTH, 24, 3))


def beat_grid(rng) -> np.ndarray:
    period = FPS * 60 / rng.uniform(95, 135)
    return np.round(rng.uniform(0, period) + period * np.arange(int(LENGTH / period) + 1)).astype(np.int64)


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-12)))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=1363)
    parser.add_argument("--pred", type=int, default=40)
    parser.add_argument("--loop-tracks", type=int, default=30)
    parser.add_argument("--loop-pairs", type=int, default=20000)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    slices, mirror_map = real_slices(), default_skeleton().mirror_map
    t0 = time.perf_counter()
    gt = [synth_track(rng, slices, mirror_map) for _ in range(args.pool)]
    pred = [synth_track(rng, slices, mirror_map) for _ in range(args.pred)]
    beats = [beat_grid(rng) for _ in range(args.pred)]
    generate_s = time.perf_counter() - t0

    # ---------------------------------------------------------------- vectorised, the whole workload
    t0 = time.perf_counter()
    gt_rel = [root_relative(t) for t in gt]
    pred_rel = [root_relative(t[:1200]) for t in pred]
    gt_k, gt_g = pool_features(gt_rel)
    pred_k, pred_g = pool_features(pred_rel)
    t_feat = time.perf_counter() - t0
    metrics = feature_metrics(pred_k, pred_g, gt_k, gt_g)
    t_sets = time.perf_counter() - t0 - t_feat
    metrics["bas"] = float(np.mean([sequence_bas(t, b) for t, b in zip(pred, beats)]))
    metrics["pfc"] = float(np.mean([pfc_score(t) for t in pred]))
    vector_s = time.perf_counter() - t0

    # ---------------------------------------------------------------- loop, on a sample, extrapolated
    n_loop_pred = min(10, args.pred)
    n_loop_gt = args.loop_tracks - n_loop_pred
    sample = pred_rel[:n_loop_pred] + gt_rel[:n_loop_gt]
    t0 = time.perf_counter()
    loop_k = np.stack([loop.loop_kinetic(t) for t in sample])
    loop_g = np.stack([loop.loop_geometric(t) for t in sample])
    per_track = (time.perf_counter() - t0) / len(sample)

    gkn, pkn = loop.loop_normalize(gt_k, pred_k)
    t0 = time.perf_counter()
    _, pairs = loop.loop_diversity(gkn, max_pairs=args.loop_pairs)
    per_pair = (time.perf_counter() - t0) / pairs
    t0 = time.perf_counter()
    loop_bas = [loop.loop_bas(t, b) for t, b in zip(pred[:n_loop_pred], beats)]
    per_bas = (time.perf_counter() - t0) / n_loop_pred
    t0 = time.perf_counter()
    ggn, pgn = loop.loop_normalize(gt_g, pred_g)
    loop.loop_fid(pkn, gkn)
    loop.loop_fid(pgn, ggn)
    fid_s = time.perf_counter() - t0
    n_pairs = sum(n * (n - 1) // 2 for n in (args.pool, args.pred) * 2)
    loop_s = per_track * (args.pool + args.pred) + per_pair * n_pairs + per_bas * args.pred + fid_s

    # ---------------------------------------------------------------- agreement on the looped tracks
    vec_k = np.concatenate([pred_k[:n_loop_pred], gt_k[:n_loop_gt]])
    vec_g = np.concatenate([pred_g[:n_loop_pred], gt_g[:n_loop_gt]])
    mine = feature_metrics(vec_k[:n_loop_pred], vec_g[:n_loop_pred], vec_k[n_loop_pred:], vec_g[n_loop_pred:])
    lgk, lpk = loop.loop_normalize(loop_k[n_loop_pred:], loop_k[:n_loop_pred])
    lgg, lpg = loop.loop_normalize(loop_g[n_loop_pred:], loop_g[:n_loop_pred])
    theirs = {"fid_k": loop.loop_fid(lpk, lgk), "fid_g": loop.loop_fid(lpg, lgg),
              "div_k": loop.loop_diversity(lpk), "div_g": loop.loop_diversity(lpg),
              "div_k_gt": loop.loop_diversity(lgk), "div_g_gt": loop.loop_diversity(lgg)}
    mine_bas = [beat_align_score(b[b < len(t) - 1], motion_beats(t)) for t, b in zip(pred[:n_loop_pred], beats)]
    agreement = {
        "kinetic_features_max_rel": rel(vec_k, loop_k),
        "geometric_features_max_abs": float(np.abs(vec_g - loop_g).max()),
        "metrics_max_rel": max(rel(mine[k], theirs[k]) for k in theirs),
        "bas_max_rel": rel(mine_bas, loop_bas),
        "pfc_max_rel": rel([pfc_score(t) for t in pred[:3]], [loop.loop_pfc(t) for t in pred[:3]]),
    }
    result = {
        "workload": {"pool": args.pool, "pred": args.pred, "frames_per_track": LENGTH, "fps": FPS,
                     "diversity_pairs": n_pairs},
        "generate_s": round(generate_s, 2),
        "vectorised_s": round(vector_s, 3),
        "vectorised_breakdown_s": {"features": round(t_feat, 3), "fid_and_diversity": round(t_sets, 3),
                                   "bas_and_pfc": round(vector_s - t_feat - t_sets, 3)},
        "loop_s_extrapolated": round(loop_s, 1),
        "loop_measured_on": {"tracks": len(sample), "s_per_track": round(per_track, 3),
                             "diversity_pairs": pairs, "us_per_pair": round(per_pair * 1e6, 2),
                             "bas_s_per_track": round(per_bas, 3)},
        "speedup": round(loop_s / vector_s, 1),
        "speedup_goal": 20,
        "agreement": agreement,
        "agreement_ok": all(v <= 1e-6 for v in agreement.values()),
        "metrics": {k: round(v, 6) for k, v in metrics.items()},
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "cpu": platform.processor()},
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
