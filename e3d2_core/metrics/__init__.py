"""Standard dance metrics (AIST++/Bailando protocol): kinetic and geometric features, FID, diversity, BAS, PFC.

Reproduces the reference evaluation code's numbers by default (quirks kept, see ``docs/metrics.md``); every
function is vectorised over frames.
"""
from e3d2_core.metrics.beat_align import beat_align_score, motion_beats, motion_signal
from e3d2_core.metrics.fid import diversity, frechet_distance, normalize, pool_statistics
from e3d2_core.metrics.geometric import geometric_features
from e3d2_core.metrics.kinetic import kinetic_features
from e3d2_core.metrics.pfc import pfc_score

__all__ = [
    "beat_align_score", "motion_beats", "motion_signal", "diversity", "frechet_distance", "normalize",
    "pool_statistics", "geometric_features", "kinetic_features", "pfc_score",
]
