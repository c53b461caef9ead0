"""The public Python API: what the CLI, the Blender add-on and scripts call."""
from __future__ import annotations


def score(motion, audio, *, checkpoint=None, motion_fps=None):
    """R_θ's score of a dance: ``Score(total, per_minute, times, values)`` (see :mod:`e3d2_core.scoring`).

    Args:
        motion: a Motion, a Motion ``.npz`` path, or joint positions (T, 72) / (T, 24, 3) with ``motion_fps``.
            Other frame rates are resampled to the reward model's; skeletons other than SMPL-24 are refused.
        audio: the music file (or precomputed step-rate ``MusicFeatures``).
        checkpoint: a bundle or stand-alone reward file; the bundled default when None.
    Returns:
        Score: total return, return per minute, step-centre times (s) and per-step values; ``note`` says when
        motion and music lengths differ and only their overlap was scored.
    """
    from e3d2_core import scoring

    return scoring.score(motion, audio, checkpoint=checkpoint, motion_fps=motion_fps)
