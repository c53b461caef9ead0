"""Normalisation, Fréchet distance and diversity of feature sets (Bailando ``utils/metrics_new.py``)."""
from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg
from scipy.spatial.distance import pdist

STD_EPS = 1e-10
SQRTM_RETRY_EPS = 1e-5


def pool_statistics(gt_features: np.ndarray):
    """Per-dimension mean and (population) std of the ground-truth pool, in the features' dtype (float32).

    gt_features: (N, D). Returns (mean (D,), std (D,)).
    """
    return gt_features.mean(axis=0), gt_features.std(axis=0)


def normalize(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """z-score by the ground-truth pool's statistics: ``(x - mean) / (std + 1e-10)``."""
    return (features - mean) / (std + STD_EPS)


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    """``scipy.linalg.sqrtm``; its singular-matrix warning is expected here (40 samples, rank <= 39)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.sqrtm(matrix)


def frechet_distance(pred: np.ndarray, gt: np.ndarray) -> float:
    """FID between two normalised feature sets, (N, D) and (M, D), N, M >= 2.

    ``np.cov`` (unbiased) and ``scipy.linalg.sqrtm``; if the square root is not finite both covariances get
    1e-5·I and it is retried. The reference returns a complex number when the product's square root has a small
    imaginary part; the real part is what gets reported, and that is what this returns.
    """
    mu1, mu2 = pred.mean(axis=0), gt.mean(axis=0)
    sigma1, sigma2 = np.cov(pred, rowvar=False), np.cov(gt, rowvar=False)
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * SQRTM_RETRY_EPS
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
    value = diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)
    return float(np.real(value))


def diversity(features: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs i < j of the rows of ``features`` (N, D), N >= 2."""
    n = features.shape[0]
    return float(pdist(np.asarray(features, dtype=np.float64)).sum() / ((n * n - n) / 2))
