"""The backend's editing requests (``regenerate``, ``extend``) and the R_θ scores of a generation's takes.

Requests (JSON lines, see :mod:`e3d2_core.serve`)::

    {"id": "5", "op": "regenerate", "motion": PATH, "audio": PATH, "offset": S, "start": S, "end": S,
     "blend": S, "seed": N, "takes": K, "temperature": T, "keep": [NAME, ...], "checkpoint": PATH|null,
     "device": "auto"}
    {"id": "6", "op": "extend", "motion": PATH, "audio": PATH, "offset": S, "seconds": S|null, "seed": N,
     "takes": K, "temperature": T, "keep": [NAME, ...], "checkpoint": PATH|null, "device": "auto"}

``motion`` is the dance at the rate it should come back at (the add-on sends the action sampled at the scene's
fps); ``offset`` is the song's time at its frame 0; ``start``/``end``/``seconds`` are seconds of the dance. The
result event carries ``"motions": [PATH, ...]`` (one Motion .npz per take, same fps) and ``"edits"``: each take's
``meta["edit"]`` (``frames`` [i0, i1) that changed, R_θ ``reward_total``/``reward_per_minute``/
``reward_range_per_minute`` when the model has R_θ, ``keep_error_cm``).

A generate request with ``"score": true`` also gets ``"scores"``: per take ``{"total", "per_minute"}`` from R_θ
(null when the model has no reward model), for the add-on's list of takes.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

from e3d2_core.dance_options import DEFAULT_TEMPERATURE
from e3d2_core.errors import E3D2Error
from e3d2_core.serve_requests import JobCancelled, audio_path, require


def _temperature(request: dict) -> float:
    """The request's temperature; absent or null means the default."""
    value = request.get("temperature")
    return DEFAULT_TEMPERATURE if value is None else float(value)


def _edit_function(op: str):
    from e3d2_core import api

    return {"regenerate": api.regenerate, "extend": api.extend}[op]


def edit_motions(request: dict, progress, cancelled, edit_fn=None) -> dict:
    """Run a regenerate or extend request; returns {"motions": [paths], "edits": [meta["edit"] dicts]}.

    ``edit_fn`` has ``api.regenerate``'s (or ``api.extend``'s) signature (the default).
    """
    from e3d2_core.motion import Motion

    op = request.get("op")
    edit_fn = edit_fn or _edit_function(op)
    motion = Motion.load(require(request, "motion", str))
    audio = audio_path(request)
    offset = float(request.get("offset") or 0.0)
    takes = int(request.get("takes") or 1)
    if offset < 0 or not math.isfinite(offset) or takes < 1:
        raise E3D2Error(f"bad {op} request: offset={offset}, takes={takes}")

    def report(fraction, message=""):
        if cancelled():
            raise JobCancelled()
        progress(0.95 * float(fraction), str(message))

    common = dict(seed=int(request.get("seed") or 0), takes=takes, keep=list(request.get("keep") or []),
                  temperature=_temperature(request), checkpoint=request.get("checkpoint"),
                  device=request.get("device") or "auto", audio_offset=offset, progress=report, cancel=cancelled)
    if op == "regenerate":
        result = edit_fn(motion, str(audio), start=float(require(request, "start")),
                         end=float(require(request, "end")), blend=float(request.get("blend", 0.5)), **common)
    else:
        seconds = request.get("seconds")
        result = edit_fn(motion, str(audio), seconds=None if seconds is None else float(seconds), **common)
    if cancelled():
        raise JobCancelled()
    motions = result if isinstance(result, (list, tuple)) else [result]
    out_dir = Path(request.get("out_dir") or tempfile.mkdtemp(prefix="e3d2_"))
    paths = [str(m.save(out_dir / f"take{k}.npz")) for k, m in enumerate(motions)]
    progress(1.0, f"{len(paths)} take(s) ready")
    return {"motions": paths, "edits": [dict(m.meta.get("edit", {})) for m in motions]}
