"""Which torch device to run on: the one place that reads "auto" | "cpu" | "cuda" | "cuda:N"."""
from __future__ import annotations

import torch

from e3d2_core.errors import E3D2Error


def resolve_device(device: str) -> torch.device:
    """"auto" | "cpu" | "cuda" (or "cuda:N") -> torch.device, with a clear error when it cannot be used.

    "auto" is CUDA when torch sees a GPU, else the CPU.
    """
    if not isinstance(device, str):
        raise E3D2Error(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise E3D2Error(f"device '{device}' requested but CUDA is not available here (use --device cpu)")
        return torch.device(device)
    raise E3D2Error(f"unknown device '{device}' (use auto, cpu or cuda)")


def device_for_rank(device: torch.device, local_rank: int) -> torch.device:
    """``device`` for one process of a ``torchrun`` job: a bare "cuda" becomes this rank's GPU (local rank modulo
    the GPUs torch sees); an explicit "cuda:N" or the CPU stay as they are."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return device
