"""Sampling that keeps the dance from looping: a code the dance has drawn often in the last steps costs logits.

Real dance, encoded by the choreographic memory, rarely comes back to a code soon: the code at a step occurred a
median 0 times in the 16 steps (2 s) before it, and no more than 5 times at 90 % of the steps. The policy's own
draws loop: a median 5-7 times, up to one code held or two codes alternating for seconds, which decodes to a
held pose with the decoder's tremor (measured, docs/music-following.md). The cause is the autoregression: a code
the policy has just danced makes the same code likelier next.

A :class:`RepeatLimit` counts, for every take and every code, how often it was drawn in the last ``window``
steps (``n``), and takes ``cost * max(0, n - free_repeats)`` off the code's logit before the draw, so looping
dances as often as real dance does for free, and more costs more the longer it goes on. ``free_repeats`` is
measured on the real training dances (:func:`repeat_limit_of`, by the ``guide`` training stage); the bundle
stores it with the cost (``"repeat"``). Bundles without one loop freely.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from e3d2_core.errors import E3D2Error

REPEAT_WINDOW = 16           # code steps (~2 s at 7.5 codes/s) that a repeat is counted over
FREE_REPEATS = 5             # the bundled real dance, encoded: 90 % of codes occur ≤ 5 times in the 16 steps before


@dataclass(frozen=True)
class RepeatLimit:
    """Drawing a code that occurred ``n`` times in the last ``window`` steps costs ``cost * max(0, n -
    free_repeats)`` logits. ``window``, ``free_repeats``: whole numbers ≥ 1 and ≥ 0; ``cost`` ≥ 0 (0: off)."""

    window: int = REPEAT_WINDOW
    free_repeats: int = FREE_REPEATS
    cost: float = 1.0

    def __post_init__(self):
        if not (isinstance(self.window, int) and self.window >= 1):
            raise E3D2Error(f"repeat window must be a whole number of code steps ≥ 1, got {self.window!r}")
        if not (isinstance(self.free_repeats, int) and 0 <= self.free_repeats <= self.window):
            raise E3D2Error(f"free repeats must be a whole number from 0 to the window, got {self.free_repeats!r}")
        if not (np.isfinite(self.cost) and self.cost >= 0):
            raise E3D2Error(f"repeat cost must be a number ≥ 0, got {self.cost!r}")

    @classmethod
    def from_entry(cls, entry: dict | None) -> "RepeatLimit | None":
        """The bundle's ``"repeat"`` entry ({"window", "free_repeats", "cost"}) as a RepeatLimit; None: none."""
        if entry is None:
            return None
        return cls(int(entry["window"]), int(entry["free_repeats"]), float(entry["cost"]))

    def entry(self) -> dict:
        return {"window": int(self.window), "free_repeats": int(self.free_repeats), "cost": float(self.cost)}

    def counter(self, first: torch.Tensor, vocab: int) -> "RecentCodes":
        """A :class:`RecentCodes` for one half of ``first.shape[0]`` takes, starting from their codes ``first``."""
        return RecentCodes(self, first, vocab)


class RecentCodes:
    """How often each code was drawn in each take's last ``limit.window`` steps, and the cost that gives."""

    def __init__(self, limit: RepeatLimit, first: torch.Tensor, vocab: int):
        self.limit = limit
        self.counts = torch.zeros(first.shape[0], vocab, device=first.device)
        self.history: deque = deque()
        self.push(first)

    def push(self, codes: torch.Tensor) -> None:
        """Count the (B,) codes just drawn; the draw ``window`` steps back stops counting."""
        ones = torch.ones(codes.shape[0], 1, device=self.counts.device)
        self.counts.scatter_add_(1, codes.to(self.counts.device)[:, None], ones)
        self.history.append(codes.to(self.counts.device))
        if len(self.history) > self.limit.window:
            self.counts.scatter_add_(1, self.history.popleft()[:, None], -ones)

    def penalise(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, K) logits less each code's cost."""
        excess = (self.counts - self.limit.free_repeats).clamp_min(0)
        return logits - (self.limit.cost * excess).to(logits.device, logits.dtype)


def recent_repeats(codes, window: int = REPEAT_WINDOW) -> np.ndarray:
    """(N,) codes -> (N - 1,) how often the code at each step 1..N-1 occurred in the ``window`` steps before it."""
    codes = np.asarray(codes)
    return np.array([int(np.sum(codes[max(0, t - window):t] == codes[t])) for t in range(1, len(codes))],
                    np.int64)


def repeat_limit_of(code_sequences, *, window: int = REPEAT_WINDOW, share: float = 0.9,
                    cost: float = 1.0) -> RepeatLimit:
    """The RepeatLimit of real dance: ``free_repeats`` is the count that ``share`` of the steps of
    ``code_sequences`` (each (N,) codes of one half of one real dance, encoded) stay within."""
    counts = [recent_repeats(c, window) for c in code_sequences]
    counts = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    if counts.size == 0:
        raise E3D2Error("no encoded dance to measure how often real dance repeats a code")
    return RepeatLimit(int(window), int(np.quantile(counts, share, method="inverted_cdf")), float(cost))
