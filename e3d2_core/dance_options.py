"""The options fresh dances (:class:`e3d2_core.api.DanceRequest`) and edits (:mod:`e3d2_core.editing`) share:
sampling (seed, takes, temperature, top_k) and the policy: the default temperature and the checks.

No torch here: the Blender add-on reads the default for its panel.
"""
from __future__ import annotations

import math

from e3d2_core.errors import E3D2Error

# The sampling temperature the product generates with by default, and the one the E3D2 stages (demonstrations, RL,
# report) treat as "the policy": greedy decoding of a small-data π_BC settles into near-still motion
# (docs/e3d2.md has the numbers), 0.7 dances while staying close to the policy's modes.
DEFAULT_TEMPERATURE = 0.7
POLICIES = ("auto", "rl", "bc")     # π_RL when the bundle has it, else π_BC; or one of them by name


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_sampling(*, takes, seed, temperature, top_k) -> None:
    """Raise :class:`E3D2Error` unless ``takes`` is a whole number ≥ 1, ``seed`` a whole number, ``temperature``
    a finite number ≥ 0 and ``top_k`` None or a whole number ≥ 1."""
    if not _whole(takes) or takes < 1:
        raise E3D2Error(f"takes must be a whole number ≥ 1, got {takes!r}")
    if not _whole(seed):
        raise E3D2Error(f"seed must be a whole number, got {seed!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not math.isfinite(temperature) or temperature < 0:
        raise E3D2Error(f"temperature must be a number ≥ 0, got {temperature!r}")
    if top_k is not None and (not _whole(top_k) or top_k < 1):
        raise E3D2Error(f"top_k must be a whole number ≥ 1, got {top_k!r}")


def check_policy(policy) -> None:
    """Raise :class:`E3D2Error` unless ``policy`` is one of ``POLICIES``."""
    if policy not in POLICIES:
        raise E3D2Error(f"policy must be 'auto', 'rl' or 'bc', got {policy!r}")
