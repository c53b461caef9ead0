"""The evaluation protocol of Bailando/E3D2 (docs/metrics.md): FID_k, FID_g, Div_k, Div_g, BAS, plus EDGE's PFC.

* Ground-truth pool: every file of the GT folder, full length, made relative to frame 0's root.
* Predictions: the first ``crop`` frames at 60 fps (1200 = 20 s), made relative to frame 0's root.
* Features are z-scored by the GT pool's mean and std (std + 1e-10), kinetic and geometric separately.
* BAS and PFC use each prediction's full length (the reference computes BAS on the full sequence).
"""
from __future__ import annotations

import numpy as np

from e3d2_core.errors import E3D2Error
from e3d2_core.metrics import gt_cache, inputs
from e3d2_core.metrics.beat_align import beat_align_score, motion_beats
from e3d2_core.metrics.fid import diversity, frechet_distance, normalize, pool_statistics
from e3d2_core.metrics.geometric import geometric_features
from e3d2_core.metrics.kinetic import MIN_FRAMES, kinetic_features
from e3d2_core.metrics.pfc import pfc_score

VARIANT_REFERENCE = "reference"
VARIANT_FIXED = ("fixed: kinetic acceleration = (p[t+1] - 2 p[t] + p[t-1]) / dt^2 (no precedence bug); "
                 "geometric velocities use 1/60 s, not 1/120 s; NOT comparable with published numbers")


def track_features(joints: np.ndarray, *, fixed: bool = False):
    """Kinetic and geometric features of one track.

    Parameters
    ----------
    joints : (T, 24, 3) float, metres, Y up, 60 fps, root-relative (or a window of such a track).
    fixed : the corrected variants (``--fixed``) instead of the reference's.

    Returns
    -------
    kinetic (72,) float32, geometric (32,) float32.
    """
    return kinetic_features(joints, fixed=fixed), geometric_features(joints, fixed=fixed)


def pool_features(tracks: list[np.ndarray], *, fixed: bool = False):
    """:func:`track_features` of many tracks, stacked.

    Parameters
    ----------
    tracks : N arrays (T_i, 24, 3), as :func:`track_features` takes them.
    fixed : the corrected variants instead of the reference's.

    Returns
    -------
    kinetic (N, 72) float32, geometric (N, 32) float32.
    """
    pairs = [track_features(t, fixed=fixed) for t in tracks]
    return np.stack([k for k, _ in pairs]), np.stack([g for _, g in pairs])


def set_metrics(pred_k, pred_g, ref_k, ref_g) -> dict:
    """FID_k, FID_g, Div_k, Div_g of a predicted set against a reference set (formulas: ``docs/metrics.md``).

    Parameters
    ----------
    pred_k, ref_k : (N, 72) and (M, 72) z-scored kinetic features, N, M >= 2.
    pred_g, ref_g : (N, 32) and (M, 32) z-scored geometric features.

    Returns
    -------
    {"fid_k", "fid_g", "div_k", "div_g"}: floats (the diversities are those of the predicted set).
    """
    return {
        "fid_k": frechet_distance(pred_k, ref_k),
        "fid_g": frechet_distance(pred_g, ref_g),
        "div_k": diversity(pred_k),
        "div_g": diversity(pred_g),
    }


def feature_metrics(pred_k, pred_g, gt_k, gt_g, *, div_gt=None) -> dict:
    """:func:`set_metrics` of raw features, z-scored by the GT pool's statistics, and the pool's diversities.

    Parameters
    ----------
    pred_k, gt_k : (N, 72) and (M, 72) raw kinetic features.
    pred_g, gt_g : (N, 32) and (M, 32) raw geometric features.
    div_gt : (div_k_gt, div_g_gt) of the normalised GT pool when already known, else None (computed).

    Returns
    -------
    {"fid_k", "fid_g", "div_k", "div_g", "div_k_gt", "div_g_gt"}: floats.
    """
    mean_k, std_k = pool_statistics(gt_k)
    mean_g, std_g = pool_statistics(gt_g)
    gt_kn, pred_kn = normalize(gt_k, mean_k, std_k), normalize(pred_k, mean_k, std_k)
    gt_gn, pred_gn = normalize(gt_g, mean_g, std_g), normalize(pred_g, mean_g, std_g)
    if div_gt is None:
        div_gt = (diversity(gt_kn), diversity(gt_gn))
    return {**set_metrics(pred_kn, pred_gn, gt_kn, gt_gn), "div_k_gt": float(div_gt[0]),
            "div_g_gt": float(div_gt[1])}


def gt_diversities(gt_k, gt_g):
    """Diversity of the normalised GT pool itself (kinetic, geometric)."""
    mean_k, std_k = pool_statistics(gt_k)
    mean_g, std_g = pool_statistics(gt_g)
    return diversity(normalize(gt_k, mean_k, std_k)), diversity(normalize(gt_g, mean_g, std_g))


def _check_length(track: inputs.Track, joints: np.ndarray, what: str) -> None:
    if len(joints) < MIN_FRAMES:
        raise E3D2Error(f"{what} has {len(joints)} frame(s) at 60 fps; the feature windows need at least "
                        f"{MIN_FRAMES}", path=track.path)


def track_bas(joints: np.ndarray, music_beats: np.ndarray) -> float | None:
    """BAS of one track, or None where it is undefined.

    Parameters
    ----------
    joints : (T, 24, 3) float, metres, 60 fps.
    music_beats : (K,) int, music-beat frame indices at 60 fps; only those within the first T-1 frames count.

    Returns
    -------
    BAS in [0, 1]; None without a music beat in those frames or without a motion beat.
    """
    beats = music_beats[music_beats < len(joints) - 1]
    if len(beats) == 0:
        return None
    dance = motion_beats(joints)
    return beat_align_score(beats, dance) if len(dance) else None


def sequence_bas(joints: np.ndarray, music_beats: np.ndarray, *, path=None) -> float:
    """:func:`track_bas`, with a clear error for a song without beats or a dance without motion beats.

    Parameters
    ----------
    joints, music_beats : as :func:`track_bas`.
    path : the dance's file, named in the error.
    """
    score = track_bas(joints, music_beats)
    if score is not None:
        return score
    length = len(joints) - 1
    if not (music_beats < length).any():
        raise E3D2Error(f"no music beats within the dance's first {length} frames (60 fps): BAS undefined",
                        path=path)
    raise E3D2Error("the dance has no motion beats (its smoothed joint speed has no local minimum): "
                    "BAS undefined", path=path)


def _gt_pool(gt_folder, *, fmt, fps, fixed, cache_path, notes: list[str]) -> dict:
    files = inputs.list_track_files(gt_folder, fmt)
    fingerprint = None
    if cache_path is not None:
        fingerprint = gt_cache.folder_fingerprint(files, {"fmt": fmt, "fps": fps, "fixed": fixed})
        pool, reason = gt_cache.load(cache_path, fingerprint)
        if pool is not None:
            notes.append(f"{reason}: {cache_path}")
            return pool
        notes.append(f"{reason}; computing GT features and writing {cache_path}")
    if len(files) < 2:
        raise E3D2Error("the ground-truth folder needs at least two dances (FID and diversity compare sets)",
                        path=gt_folder)
    kinetic, geometric, assumed = [], [], 0
    for path in files:  # one file at a time: the full AIST++ pool is ~1M frames
        track = inputs.load_track(path, fmt=fmt, fps=fps)
        _check_length(track, track.joints, "ground-truth dance")
        k, g = track_features(inputs.root_relative(track.joints), fixed=fixed)
        kinetic.append(k)
        geometric.append(g)
        assumed += track.fps_assumed
    kinetic, geometric = np.stack(kinetic), np.stack(geometric)
    div_k_gt, div_g_gt = gt_diversities(kinetic, geometric)
    pool = {"names": [p.stem for p in files], "kinetic": kinetic, "geometric": geometric,
            "div_k_gt": div_k_gt, "div_g_gt": div_g_gt, "fps_assumed": assumed}
    if cache_path is not None:
        gt_cache.save(cache_path, pool, fingerprint)
    return pool


def evaluate_folders(pred, gt=None, *, music=None, fps=None, crop=1200, gt_cache_path=None, fmt=None,
                     fixed=False) -> dict:
    """Evaluate a folder of predicted dances against a ground-truth folder (see :func:`e3d2_core.api.evaluate`).

    ``pred`` may be one dance file; with a single prediction (or no ``gt``) FID and diversity, which compare
    sets, are None and a note says why, while BAS and PFC (per dance) are still computed.
    """
    if crop is not None and crop < 0:
        raise E3D2Error(f"--crop must be >= 0 (0 = no crop), got {crop}")
    notes: list[str] = []
    pred_files = inputs.list_track_files(pred, fmt)
    music_files = None
    if music is not None:  # match every dance before any heavy work, so a missing song fails fast
        if inputs.is_music_file(music):
            music_files = [inputs.music_file(music)] * len(pred_files)
        else:
            index = inputs.music_index(music)
            music_files = [inputs.match_music(path, index) for path in pred_files]

    tracks = [inputs.load_track(path, fmt=fmt, fps=fps) for path in pred_files]
    result = {name: None for name in ("fid_k", "fid_g", "div_k", "div_g", "div_k_gt", "div_g_gt")}
    pool = {"names": []}
    if len(tracks) < 2:
        notes.append("FID_k, FID_g, Div_k and Div_g compare sets of dances and need at least two predictions "
                     "(got one): only BAS (with --music) and PFC are given")
    elif gt is None:
        notes.append("no ground-truth folder (--gt): FID and the diversities need one; only BAS (with --music) "
                     "and PFC are given")
    else:
        cropped = []
        for track in tracks:
            joints = track.joints[:crop] if crop else track.joints
            _check_length(track, joints, "predicted dance")
            cropped.append(inputs.root_relative(joints))
        pred_k, pred_g = pool_features(cropped, fixed=fixed)
        pool = _gt_pool(gt, fmt=fmt, fps=fps, fixed=fixed, cache_path=gt_cache_path, notes=notes)
        result = feature_metrics(pred_k, pred_g, pool["kinetic"], pool["geometric"],
                                 div_gt=(pool["div_k_gt"], pool["div_g_gt"]))
        for name, gt_feats in (("kinetic", pool["kinetic"]), ("geometric", pool["geometric"])):
            constant = int((gt_feats.std(axis=0) == 0).sum())
            if constant:
                notes.append(f"{constant} {name} feature(s) are constant over the GT pool: the reference's z-score "
                             f"by std + 1e-10 blows their differences up (FID/Div meaningless; use a larger pool)")

    result["bas"] = None
    if music_files is not None:
        scores = [sequence_bas(t.joints, inputs.load_music_beats(m), path=t.path)
                  for t, m in zip(tracks, music_files)]
        result["bas"] = float(np.mean(scores))

    pfc = np.array([pfc_score(t.joints, fps=inputs.TARGET_FPS) for t in tracks])
    still = int(np.isnan(pfc).sum())
    result["pfc"] = float(np.nanmean(pfc)) if still < len(pfc) else None
    if still:
        notes.append(f"PFC: {still} dance(s) whose root never accelerates were left out (EDGE divides by zero)")

    assumed = sum(t.fps_assumed for t in tracks) + pool.get("fps_assumed", 0)
    if assumed:
        notes.append(f"{assumed} joint track(s) carry no frame rate: assumed 60 fps (pass --fps to set it)")
    result.update({
        "n_pred": len(tracks),
        "n_gt": len(pool["names"]),
        "n_bas": len(tracks) if music_files is not None else 0,
        "crop": int(crop or 0),
        "variant": VARIANT_FIXED if fixed else VARIANT_REFERENCE,
        "notes": notes,
    })
    return result
