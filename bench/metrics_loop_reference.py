"""Straightforward per-frame loop implementation of the metric definitions (docs/metrics.md) — the yardstick.

A literal, frame-by-frame and joint-by-joint transcription of the definitions, written for clarity, not speed:
the vectorised code in ``e3d2_core.metrics`` must give the same numbers (within 1e-6 relative) and is timed
against this in ``bench/bench_metrics.py``. Quirks are the reference's (see ``docs/metrics.md``).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import linalg
from scipy.ndimage import gaussian_filter

DT = 1.0 / 60.0
WINDOW = 2
T120 = 1.0 / 120.0

NAMES = ["root", "lhip", "rhip", "belly", "lknee", "rknee", "spine", "lankle", "rankle", "chest", "ltoes", "rtoes",
         "neck", "linshoulder", "rinshoulder", "head", "lshoulder", "rshoulder", "lelbow", "relbow", "lwrist",
         "rwrist", "lhand", "rhand"]


# ------------------------------------------------------------------------------------------------ kinetic
def loop_kinetic(pos, fixed=False):
    """(T, 24, 3) -> (72,) float32, one frame and one joint at a time."""
    n = len(pos)
    out = []
    for joint in range(pos.shape[1]):
        e_h = 0.0
        e_v = 0.0
        e_a = 0.0
        for i in range(1, n):
            # sliding-window velocity over frame differences k in [i-2, i+2] that exist
            total = np.zeros(3)
            count = 0
            for k in range(i - WINDOW, i + WINDOW + 1):
                if k - 1 < 0 or k >= n:
                    continue
                total += pos[k][joint] - pos[k - 1][joint]
                count += 1
            v = total / (count * DT)
            e_h += np.linalg.norm([v[0], v[2]]) ** 2
            e_v += np.linalg.norm([v[1]]) ** 2
            # sliding-window acceleration over k in [i-2, i+2] with k-1 >= 0 and k+1 < n
            acc = np.zeros(3)
            count = 0
            for k in range(i - WINDOW, i + WINDOW + 1):
                if k - 1 < 0 or k + 1 >= n:
                    continue
                v2 = (pos[k + 1][joint] - pos[k][joint]) / DT
                if fixed:
                    v1 = (pos[k][joint] - pos[k - 1][joint]) / DT
                else:
                    v1 = pos[k][joint] - pos[k - 1][joint] / DT  # the reference's precedence
                acc += (v2 - v1) / DT
                count += 1
            e_a += np.linalg.norm(acc / count)
        out.extend([e_h / (n - 1.0), e_v / (n - 1.0), e_a / (n - 1.0)])
    return np.array(out, dtype=np.float32)


# ------------------------------------------------------------------------------------------------ geometric
def _hl_sw_hw():
    ls = np.array([1.99113488e-01, 2.36807942e-01, -1.80702247e-02])
    le = np.array([4.54445392e-01, 2.21158922e-01, -4.10167128e-02])
    rs = np.array([-1.91692337e-01, 2.36928746e-01, -1.23055102e-02])
    lh = np.array([5.64076714e-02, -3.23069185e-01, 1.09197125e-02])
    rh = np.array([-6.24834076e-02, -3.31302464e-01, 1.50412619e-02])
    return np.linalg.norm(ls - le), np.linalg.norm(ls - rs), np.linalg.norm(lh - rh)


def loop_geometric(pos, fixed=False):
    """(T, 24, 3) -> (32,) float32, one frame at a time, one template at a time."""
    hl, sw, hw = _hl_sw_hw()
    tpf = DT if fixed else T120

    def at(frame, name):
        if name == "zero":
            return np.array([0.0, 0.0, 0.0])
        if name == "y_unit":
            return np.array([0.0, 1.0, 0.0])
        if name == "minus_y_unit":
            return np.array([0.0, -1.0, 0.0])
        if name == "y_min":
            return np.array([0.0, min(p[1] for p in pos[frame]), 0.0])
        return pos[frame][NAMES.index(name)]

    def move(t, j1, j2, j3, j4, thr):  # velocity of j3 relative to j1 along j1->j2 (j4 unused)
        vel = (at(t, j3) - at(t, j1)) - (at(t - 1, j3) - at(t - 1, j1))
        d = at(t, j2) - at(t, j1)
        return np.dot(vel, d) / np.linalg.norm(d) / tpf > thr

    def nmove(t, j1, j2, j3, j4, thr):  # velocity of j4 relative to j1 along the normal of (j1, j2, j3)
        vel = (at(t, j4) - at(t, j1)) - (at(t - 1, j4) - at(t - 1, j1))
        d = np.cross(at(t, j3) - at(t, j1), at(t, j2) - at(t, j1))
        return np.dot(vel, d) / np.linalg.norm(d) / tpf > thr

    def plane(t, j1, j2, j3, j4, thr):
        a, b, c, p = at(t, j1), at(t, j2), at(t, j3), at(t, j4)
        n = np.cross(c - a, b - a)
        return np.dot(n, p - a) / np.linalg.norm(n) > thr

    def nplane(t, j1, j2, j3, j4, thr):
        n = at(t, j2) - at(t, j1)
        return np.dot(n, at(t, j4) - at(t, j3)) / np.linalg.norm(n) > thr

    def angle(t, j1, j2, j3, j4, rng):
        u = at(t, j2) - at(t, j1)
        v = at(t, j4) - at(t, j3)
        a = math.degrees(np.arccos(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))))
        return rng[0] < a < rng[1]

    def fast(t, j, thr):
        return np.linalg.norm(at(t, j) - at(t - 1, j)) / tpf > thr

    rows = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for t in range(1, len(pos)):
            rows.append([
                nmove(t, "neck", "rhip", "lhip", "rwrist", 1.8 * hl),
                nmove(t, "neck", "lhip", "rhip", "lwrist", 1.8 * hl),
                nplane(t, "chest", "neck", "neck", "rwrist", 0.2 * hl),
                nplane(t, "chest", "neck", "neck", "lwrist", 0.2 * hl),
                move(t, "belly", "chest", "chest", "rwrist", 1.8 * hl),
                move(t, "belly", "chest", "chest", "lwrist", 1.8 * hl),
                angle(t, "relbow", "rshoulder", "relbow", "rwrist", [0, 110]),
                angle(t, "lelbow", "lshoulder", "lelbow", "lwrist", [0, 110]),
                nplane(t, "lshoulder", "rshoulder", "lwrist", "rwrist", 2.5 * sw),
                move(t, "lwrist", "rwrist", "rwrist", "lwrist", 1.4 * hl),
                move(t, "rwrist", "root", "lwrist", "root", 1.4 * hl),
                move(t, "lwrist", "root", "rwrist", "root", 1.4 * hl),
                fast(t, "rwrist", 2.5 * hl),
                fast(t, "lwrist", 2.5 * hl),
                plane(t, "root", "lhip", "ltoes", "rankle", 0.38 * hl),
                plane(t, "root", "rhip", "rtoes", "lankle", 0.38 * hl),
                nplane(t, "zero", "y_unit", "y_min", "rankle", 1.2 * hl),
                nplane(t, "zero", "y_unit", "y_min", "lankle", 1.2 * hl),
                nplane(t, "lhip", "rhip", "lankle", "rankle", 2.1 * hw),
                angle(t, "rknee", "rhip", "rknee", "rankle", [0, 110]),
                angle(t, "lknee", "lhip", "lknee", "lankle", [0, 110]),
                fast(t, "rankle", 2.5 * hl),
                fast(t, "lankle", 2.5 * hl),
                angle(t, "neck", "root", "rshoulder", "relbow", [25, 180]),
                angle(t, "neck", "root", "lshoulder", "lelbow", [25, 180]),
                angle(t, "neck", "root", "rhip", "rknee", [50, 180]),
                angle(t, "neck", "root", "lhip", "lknee", [50, 180]),
                plane(t, "rankle", "neck", "lankle", "root", 0.5 * hl),
                angle(t, "neck", "root", "zero", "y_unit", [70, 110]),
                nplane(t, "zero", "minus_y_unit", "y_min", "rwrist", -1.2 * hl),
                nplane(t, "zero", "minus_y_unit", "y_min", "lwrist", -1.2 * hl),
                fast(t, "root", 2.3 * hl),
            ])
    return np.array(rows, dtype=np.float32).mean(axis=0)


# ------------------------------------------------------------------------------------------------ sets
def loop_normalize(gt, pred):
    mean = gt.mean(axis=0)
    std = gt.std(axis=0)
    return (gt - mean) / (std + 1e-10), (pred - mean) / (std + 1e-10)


def loop_fid(pred, gt):
    mu1, mu2 = np.mean(pred, axis=0), np.mean(gt, axis=0)
    s1, s2 = np.cov(pred, rowvar=False), np.cov(gt, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        eye = np.eye(s1.shape[0]) * 1e-5
        covmean = linalg.sqrtm((s1 + eye).dot(s2 + eye))
    diff = mu1 - mu2
    return float(np.real(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)))


def loop_diversity(feats, max_pairs=None):
    """Mean pair distance by a double loop; with ``max_pairs``, stop early and return (partial sum, pairs)."""
    n = len(feats)
    total = 0.0
    pairs = 0
    for i in range(n):
        for j in range(i + 1, n):
            total += np.linalg.norm(feats[i] - feats[j])
            pairs += 1
            if max_pairs is not None and pairs >= max_pairs:
                return total, pairs
    if max_pairs is not None:
        return total, pairs
    return total / ((n * n - n) / 2)


# ------------------------------------------------------------------------------------------------ BAS, PFC
def loop_bas(pos, music_beats):
    n = len(pos)
    speed = []
    for t in range(n - 1):
        speed.append(np.mean([np.linalg.norm(pos[t + 1][j] - pos[t][j]) for j in range(pos.shape[1])]))
    speed = gaussian_filter(np.array(speed), 5)
    dance = [t for t in range(1, len(speed) - 1) if speed[t] < speed[t - 1] and speed[t] < speed[t + 1]]
    beats = [b for b in music_beats if b < len(speed)]
    score = 0.0
    for b in beats:
        score += math.exp(-min((m - b) ** 2 for m in dance) / 2 / 9)
    return score / len(beats)


def loop_pfc(pos60):
    pos = pos60[::2]  # 30 fps
    dt = 1 / 30
    acc = []
    for t in range(1, len(pos) - 1):
        a = ((pos[t + 1][0] - pos[t][0]) / dt - (pos[t][0] - pos[t - 1][0]) / dt) / dt
        a[1] = max(a[1], 0.0)
        acc.append(np.linalg.norm(a))
    peak = max(acc)
    total = 0.0
    for t in range(1, len(pos) - 1):
        speeds = [np.linalg.norm((pos[t + 1][j] - pos[t][j])[[0, 2]]) for j in (7, 10, 8, 11)]
        total += min(speeds[0], speeds[1]) * min(speeds[2], speeds[3]) * acc[t - 1] / peak
    return total / len(acc) * 1e4


def loop_metrics(pred_tracks, gt_tracks, music_beats=None, fixed=False):
    """The whole protocol on root-relative 60-fps arrays (pred already cropped), with the loop features."""
    pk = np.stack([loop_kinetic(p, fixed) for p in pred_tracks])
    pg = np.stack([loop_geometric(p, fixed) for p in pred_tracks])
    gk = np.stack([loop_kinetic(g, fixed) for g in gt_tracks])
    gg = np.stack([loop_geometric(g, fixed) for g in gt_tracks])
    gk, pk = loop_normalize(gk, pk)
    gg, pg = loop_normalize(gg, pg)
    out = {"fid_k": loop_fid(pk, gk), "fid_g": loop_fid(pg, gg), "div_k": loop_diversity(pk),
           "div_g": loop_diversity(pg), "div_k_gt": loop_diversity(gk), "div_g_gt": loop_diversity(gg)}
    if music_beats is not None:
        out["bas"] = float(np.mean([loop_bas(p, b) for p, b in zip(pred_tracks, music_beats)]))
    return out
