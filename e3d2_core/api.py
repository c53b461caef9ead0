"""The Python entry points of e3d2 (one function per CLI command)."""
from __future__ import annotations


def evaluate(pred, gt, *, music=None, fps=None, crop=1200, gt_cache=None, fmt=None, fixed=False) -> dict:
    """Standard dance metrics of a folder of predicted dances against a ground-truth pool folder.

    Parameters
    ----------
    pred, gt : folders of Motion ``.npz`` files or joint tracks ``.npy`` ((T, 72) or (T, 24, 3), metres, Y up).
    music : folder with, per predicted file, an audio file or a ``.npy`` of music-beat frame indices at 60 fps,
        matched by identical stem, else by the AIST++ music id (``mBR0``...) in the name. None: no BAS.
    fps : frame rate of joint tracks that carry none (default: 60 fps, reported in ``notes``).
    crop : predictions are cut to their first ``crop`` frames at 60 fps (1200 = 20 s; 0 = no crop).
    gt_cache : ``.npz`` file caching the GT pool's features, reused while the GT folder is unchanged.
    fmt : ``"bailando"`` (pickled ``{'pred_position'}`` .npy) or ``"edge"`` (.pkl with ``full_pose``).
    fixed : corrected feature variants (not comparable with published numbers; labelled in ``variant``).

    Returns
    -------
    dict with ``fid_k, fid_g, div_k, div_g, bas`` (None without music), ``pfc`` (EDGE's, ×10^4),
    ``div_k_gt, div_g_gt``, the counts ``n_pred, n_gt, n_bas``, ``crop``, ``variant`` and ``notes`` (list of str).
    """
    from e3d2_core.metrics.evaluate import evaluate_folders

    return evaluate_folders(pred, gt, music=music, fps=fps, crop=crop, gt_cache_path=gt_cache, fmt=fmt,
                            fixed=fixed)
