"""The add-on's backend process: JSON lines on stdin/stdout (``python -m e3d2_core.serve``).

Blender's Python often cannot import torch; the add-on then runs this module in another interpreter. The same
functions run in-process when torch is importable there. The schema (documented in docs/blender-addon.md):

requests, one JSON object per line on stdin::

    {"id": "1", "op": "check"}
    {"id": "2", "op": "generate", "audio": PATH, "seconds": S, "offset": S, "fps": F, "seed": N, "takes": K,
     "temperature": T, "beat_lock": S|null, "in_place": B, "facing": DEG, "bpm": X|null, "beat_offset": S|null,
     "checkpoint": PATH|null, "device": "auto", "motion": PATH|absent}   # motion: key a saved Motion
                                                    # also any other DanceRequest field (top_k, policy, ...)
    {"id": "3", "op": "score", "motion": PATH, "audio": PATH, "offset": S, "checkpoint": PATH|null}
    {"id": "4", "op": "body", "model": PATH, "betas": [..]|null}
    {"id": "5", "op": "regenerate" | "extend", ...}      # editing: see e3d2_core.serve_editing
    {"id": "2", "op": "cancel"}                     # cancels job "2"
    {"op": "quit"}                                  # cancels what runs, then exits; at end of input the
                                                    # process finishes its jobs first (batch use)

events, one JSON object per line on stdout::

    {"event": "hello", "protocol": 1, "e3d2": V, "python": V, "torch": V, "device": D}   # first line
    {"id": ID, "event": "progress", "fraction": 0..1, "message": TEXT}
    {"id": ID, "event": "result", ...}   # generate: "motions": [PATH, ...] (Motion .npz at the requested fps),
                                         #   with "score": true also "scores": [{"total", "per_minute"}|null, ...]
                                         # regenerate/extend: "motions": [PATH, ...], "edits": [{...}, ...]
                                         # score: "score": {"total", "per_minute", "times", "values"}
                                         # body: "body": PATH (.npz: vertices, faces, weights, joints)
                                         # check: "torch", "device", "generate", "score"
    {"id": ID, "event": "error", "message": ONE_LINE}
    {"id": ID, "event": "cancelled"}

Each request runs in its own thread (the add-on sends one at a time); stdout carries only protocol lines (anything a library prints goes to stderr).
"""
from __future__ import annotations

import json
import math
import os
import platform
import sys
import tempfile
import threading
from dataclasses import fields
from pathlib import Path

from e3d2_core import __version__
from e3d2_core.api import DanceRequest, rotate_facing  # noqa: F401  (rotate_facing: re-exported, tests)
from e3d2_core.errors import E3D2Error
from e3d2_core.serve_requests import JobCancelled, audio_path, require

PROTOCOL = 1
DANCE_FIELDS = tuple(field.name for field in fields(DanceRequest))     # a generate request's dance, by name


def _is_cancel_error(err: BaseException) -> bool:
    from e3d2_core import errors

    cancelled_type = getattr(errors, "Cancelled", None)
    return isinstance(err, JobCancelled) or (cancelled_type is not None and isinstance(err, cancelled_type))


# ---------------------------------------------------------------------------------------------- operations
def torch_info() -> dict:
    """Torch version and the device ``device="auto"`` would use."""
    import torch

    from e3d2_core.device import resolve_device

    device = resolve_device("auto").type
    if device == "cuda":
        device = f"cuda ({torch.cuda.get_device_name(0)})"
    return {"torch": torch.__version__, "device": device}


def check() -> dict:
    """What this backend can do: torch version, device, and whether generate/score exist in this e3d2."""
    info = torch_info()
    try:
        from e3d2_core import api
    except ImportError:
        api = None
    info.update(generate=hasattr(api, "generate"), score=hasattr(api, "score"), e3d2=__version__,
                python=platform.python_version())
    return info


def dance_request(request: dict) -> DanceRequest:
    """The :class:`~e3d2_core.api.DanceRequest` of a generate request: its fields by name, absent or null ones at
    the request's defaults; ``seconds`` 0 is the whole song (as the panel's Length); ``fps`` (the scene's rate) and
    an existing ``audio`` file are required."""
    options = {name: request[name] for name in DANCE_FIELDS if request.get(name) is not None}
    if options.get("seconds") == 0:
        del options["seconds"]
    options.update(audio=str(audio_path(request)), fps=require(request, "fps"))
    return DanceRequest(**options)


def request_json(dance: DanceRequest) -> dict:
    """The JSON fields of a generate request for ``dance`` (what :func:`dance_request` reads back)."""
    if dance.seed_motion is not None and not isinstance(dance.seed_motion, (str, os.PathLike)):
        raise E3D2Error("a seed motion travels to the backend as a Motion .npz path, not a Motion")
    values = {name: getattr(dance, name) for name in DANCE_FIELDS}
    return {name: str(value) if isinstance(value, os.PathLike) else value for name, value in values.items()}


def served_generator():
    """The ``module:function`` named by ``$E3D2_SERVE_GENERATOR`` (``e3d2_core.api.generate``'s signature: a way
    to serve another generator, and how the tests drive the process without a trained model), or None: the
    bundle's model."""
    import importlib

    spec = os.environ.get("E3D2_SERVE_GENERATOR")
    if not spec:
        return None
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise E3D2Error(f"E3D2_SERVE_GENERATOR={spec!r} is not importable ({err})") from None


def saved_motion(path: str):
    """A generator with ``e3d2_core.api.generate``'s signature that returns the Motion saved at ``path`` (made in
    place if asked): a dance made earlier (``e3d2 generate``) is cut, turned and resampled exactly as a fresh one
    would be."""
    from e3d2_core.motion import Motion

    def generate(audio, *, takes=1, in_place=False, progress=None, **_):
        if takes != 1:
            raise E3D2Error(f"a saved motion is one take; {takes} were asked for", path=path)
        if progress is not None:
            progress(0.5, "reading the saved motion")
        motion = Motion.load(path)
        return motion.in_place() if in_place else motion

    return generate


def generate_motions(request: dict, progress, cancelled, generate_fn=None) -> list[str]:
    """Run a generate request; returns paths of Motion ``.npz`` files (one per take) in a fresh temp folder.

    The takes are :func:`e3d2_core.api.dance`'s for the request's :class:`~e3d2_core.api.DanceRequest`: cut to
    ``[offset, offset + seconds)``, turned by ``facing``, in place if asked, at ``fps`` (the Blender scene's rate).
    ``generate_fn`` (``e3d2_core.api.generate``'s signature) makes them instead of the bundle's model.
    """
    if request.get("motion"):
        generate_fn = saved_motion(require(request, "motion", str))
    elif generate_fn is None:
        generate_fn = served_generator()
    dance = dance_request(request)

    def report(fraction, message=""):
        if cancelled():
            raise JobCancelled()
        progress(0.95 * float(fraction), str(message))

    from e3d2_core.api import dance as make_takes

    motions = make_takes(dance, progress=report, cancel=cancelled, generator=generate_fn)
    if cancelled():
        raise JobCancelled()
    out_dir = Path(request.get("out_dir") or tempfile.mkdtemp(prefix="e3d2_"))
    paths = []
    for take, motion in enumerate(motions):
        motion.meta.update({"seed": dance.seed, "take": take, "audio": str(dance.audio),
                            "audio_offset": dance.offset})
        paths.append(str(motion.save(out_dir / f"take{take}.npz")))
    progress(1.0, f"{len(paths)} take(s) ready")
    return paths


def _trimmed_audio(audio: Path, offset: float, seconds: float) -> Path:
    """A temporary WAV of ``audio`` from ``offset`` for ``seconds`` (what a trimmed strip plays)."""
    import soundfile

    try:
        data, rate = soundfile.read(str(audio), always_2d=True)
    except Exception as err:
        raise E3D2Error(f"unreadable audio ({err})", path=audio) from None
    start = int(round(offset * rate))
    clip = data[start:start + int(math.ceil(seconds * rate))]
    if len(clip) == 0:
        raise E3D2Error(f"the audio has nothing after {offset:.2f} s", path=audio)
    path = Path(tempfile.mkdtemp(prefix="e3d2_")) / "clip.wav"
    soundfile.write(str(path), clip, rate)
    return path


def score_motion(request: dict, progress, cancelled, score_fn=None) -> dict:
    """Run a score request: R_theta of a Motion against its music; returns plain lists and floats."""
    from e3d2_core.motion import Motion

    if score_fn is None:
        try:
            from e3d2_core.api import score as score_fn
        except ImportError:
            raise E3D2Error("this e3d2 has no reward model scoring yet (e3d2_core.api.score is missing)") from None
    motion = Motion.load(require(request, "motion", str))
    audio = audio_path(request)
    offset = float(request.get("offset") or 0.0)
    if offset > 0:
        audio = _trimmed_audio(audio, offset, motion.duration)
    progress(0.1, "scoring")
    result = score_fn(motion, str(audio), checkpoint=request.get("checkpoint"))
    if cancelled():
        raise JobCancelled()
    values = [float(v) for v in getattr(result, "values")]
    return {"total": float(result.total), "per_minute": float(result.per_minute),
            "times": [float(t) for t in result.times], "values": values}


def score_takes(paths, request: dict, score_fn=None) -> list:
    """R_θ of each generated take (Motion .npz paths, cut to the request's part of the song).

    Returns one ``{"total", "per_minute"}`` per take, or Nones when the model has no reward model.
    """
    scores = []
    for path in paths:
        one = {"motion": path, "audio": request.get("audio"), "offset": request.get("offset"),
               "checkpoint": request.get("checkpoint")}
        try:
            result = score_motion(one, lambda *a: None, lambda: False, score_fn)
        except E3D2Error as err:
            if "no reward model" in str(err):
                return [None] * len(paths)
            raise
        scores.append({"total": result["total"], "per_minute": result["per_minute"]})
    return scores


def smpl_body(request: dict) -> str:
    """A skinned SMPL body from a licensed model file (smplx): .npz with vertices (V,3) Y-up m, faces (F,3),
    weights (V,24), joints (24,3) -- the rest shape for ``betas`` (zeros when absent)."""
    import numpy as np
    import smplx
    import torch

    path = Path(require(request, "model", str))
    if not path.exists():
        raise E3D2Error("SMPL model file not found", path=path)
    betas = torch.zeros(1, 10) if not request.get("betas") else torch.tensor([request["betas"]], dtype=torch.float32)
    try:
        kwargs = {"model_path": str(path), "num_betas": betas.shape[1]}
        if path.is_file():
            kwargs["ext"] = path.suffix.lstrip(".")
        model = smplx.SMPL(**kwargs)
        with torch.no_grad():  # the rest shape only (no pose): smplx's own blend-shape and regressor data
            shaped = model.v_template + torch.einsum("vcb,b->vc", model.shapedirs[..., : betas.shape[1]], betas[0])
            joints = torch.einsum("jv,vc->jc", model.J_regressor, shaped)[:24]
    except Exception as err:  # smplx raises assorted errors for unreadable or foreign files
        raise E3D2Error(f"not a usable SMPL model file ({type(err).__name__}: {err})", path=path) from None
    vertices, joints = shaped.double().numpy(), joints.double().numpy()
    # the body's pelvis goes to the origin, as the skeleton's (trans is the pelvis position)
    vertices, joints = vertices - joints[0], joints - joints[0]
    out = Path(request.get("out_dir") or tempfile.mkdtemp(prefix="e3d2_")) / "body.npz"
    np.savez(out, vertices=vertices, faces=model.faces.astype(np.int64), joints=joints,
             weights=model.lbs_weights.double().numpy())
    return str(out)


def handle(request: dict, emit, cancelled, *, generate_fn=None, score_fn=None, edit_fns=None) -> None:
    """Run one request, reporting through ``emit(dict)``: progress..., then result, error or cancelled.

    ``edit_fns``: {"regenerate": fn, "extend": fn} replacing ``api.regenerate``/``api.extend``."""
    job = request.get("id")

    def progress(fraction, message=""):
        emit({"id": job, "event": "progress", "fraction": round(float(fraction), 4), "message": message})

    try:
        op = request.get("op")
        if op == "check":
            result = check()
        elif op == "generate":
            result = {"motions": generate_motions(request, progress, cancelled, generate_fn)}
            if request.get("score"):
                result["scores"] = score_takes(result["motions"], request, score_fn)
        elif op in ("regenerate", "extend"):
            from e3d2_core.serve_editing import edit_motions
            result = edit_motions(request, progress, cancelled, (edit_fns or {}).get(op))
        elif op == "score":
            result = {"score": score_motion(request, progress, cancelled, score_fn)}
        elif op == "body":
            result = {"body": smpl_body(request)}
        else:
            raise E3D2Error(f"unknown op {op!r}")
    except Exception as err:  # every failure becomes one line for the add-on's report
        if _is_cancel_error(err) or cancelled():  # whatever a generator raises once asked to stop
            emit({"id": job, "event": "cancelled"})
        elif isinstance(err, E3D2Error):
            emit({"id": job, "event": "error", "message": str(err)})
        else:
            emit({"id": job, "event": "error", "message": f"{type(err).__name__}: {err}".splitlines()[0]})
        return
    emit({"id": job, "event": "result", **result})


# ---------------------------------------------------------------------------------------------- process
def main(stdin=None, stdout=None) -> int:
    """Serve requests until EOF or ``quit``; returns the exit code (3 when torch is missing)."""
    stdin = stdin or sys.stdin
    out = stdout or sys.stdout
    sys.stdout = sys.stderr  # library chatter must not corrupt the protocol stream
    lock = threading.Lock()

    def emit(event: dict) -> None:
        with lock:
            out.write(json.dumps(event) + "\n")
            out.flush()

    try:
        info = torch_info()
    except ImportError:
        emit({"event": "error", "message": f"torch is not installed for {sys.executable}; use the add-on's "
                                           f"'Set up backend' or pip install e3d2's requirements there"})
        return 3
    emit({"event": "hello", "protocol": PROTOCOL, "e3d2": __version__, "python": platform.python_version(), **info})

    jobs: dict = {}  # id -> (thread, cancel event)
    quitting = False
    for line in stdin:
        line = line.strip()
        if not line:
            continue
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError as err:
            emit({"event": "error", "message": f"bad request line ({err})"})
            continue
        op, job = request.get("op"), request.get("id")
        if op == "quit":
            quitting = True
            break
        if op == "cancel":
            if job in jobs:
                jobs[job][1].set()
            continue
        cancel = threading.Event()
        worker = threading.Thread(target=handle, args=(request, emit, cancel.is_set), daemon=True)
        jobs[job] = (worker, cancel)
        worker.start()
    # quit: stop what is running; end of input (a piped batch of requests): let it finish
    for thread, cancel in jobs.values():
        if quitting:
            cancel.set()
        thread.join()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
