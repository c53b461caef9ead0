"""What every op of the add-on's backend reads from a request, and how a job learns it was cancelled."""
from __future__ import annotations

from pathlib import Path

from e3d2_core.errors import E3D2Error


class JobCancelled(Exception):
    """Raised inside a job when the client asked to cancel it."""


def require(request: dict, key: str, kind=None):
    """``request[key]``, converted by ``kind`` when given; a missing or null key is refused by name."""
    if request.get(key) is None:
        raise E3D2Error(f"request is missing '{key}'")
    value = request[key]
    return kind(value) if kind else value


def audio_path(request: dict) -> Path:
    """The request's ``"audio"`` as an existing file's path."""
    path = Path(require(request, "audio", str))
    if not path.is_file():
        raise E3D2Error("audio file not found", path=path)
    return path
