"""Where generation runs: in Blender's own Python (when torch imports there) or in a backend process.

No bpy and no torch here. A backend starts *jobs* (one request each: generate, score, body, check); a job runs
in the background and is polled from Blender's timer (``poll`` returns new events), or waited for
synchronously in background mode (``wait``). Events and requests follow ``e3d2_core.serve``'s JSON-lines schema
in both cases, so the in-process and subprocess paths behave the same.
"""
from __future__ import annotations

import importlib.util
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

# What "Set up backend" installs (e3d2_core itself travels with the add-on and is put on PYTHONPATH).
BACKEND_REQUIREMENTS = ("torch>=2.2", "numpy>=1.24,<2", "scipy>=1.10", "librosa>=0.10", "soundfile>=0.12",
                        "smplx>=0.1.28", "pyyaml>=6", "tqdm>=4.60")
FINAL_EVENTS = ("result", "error", "cancelled")


class BackendError(Exception):
    """A one-line reason the backend could not do the job (shown in Blender's report)."""


def core_path() -> str:
    """The folder holding the ``e3d2_core`` package (put on the backend process's PYTHONPATH)."""
    spec = importlib.util.find_spec("e3d2_core")
    if spec is None or spec.origin is None:
        raise BackendError("e3d2_core is not importable from the add-on (broken installation)")
    return str(Path(spec.origin).resolve().parent.parent)


# ---------------------------------------------------------------------------------------------- jobs
class Job:
    """One request running in the background. ``poll()`` -> new events; ``final`` is the last event or None."""

    def __init__(self, request: dict):
        self.request = request
        self.events: queue.Queue = queue.Queue()
        self.final: dict | None = None
        self.fraction, self.message = 0.0, "starting"

    def _take(self, event: dict) -> None:
        if event.get("event") == "progress":
            self.fraction, self.message = float(event.get("fraction", 0.0)), str(event.get("message", ""))
        elif event.get("event") in FINAL_EVENTS and self.final is None:
            self.final = event

    def poll(self) -> list[dict]:
        out = []
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return out
            self._take(event)
            out.append(event)

    @property
    def done(self) -> bool:
        self.poll()
        return self.final is not None

    def cancel(self) -> None:
        """Ask the job to stop (abstract: the in-process and subprocess jobs each know how)."""
        raise NotImplementedError(f"{type(self).__name__} must implement cancel()")

    def wait(self, on_progress=None, timeout: float | None = None) -> dict:
        """Block until the job ends; returns the result event or raises :class:`BackendError`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.final is None:
            for event in self.poll():
                if event.get("event") == "progress" and on_progress:
                    on_progress(float(event.get("fraction", 0.0)), str(event.get("message", "")))
            if self.final is None:
                if deadline is not None and time.monotonic() > deadline:
                    self.cancel()
                    raise BackendError(f"the backend gave no answer within {timeout:.0f} s")
                time.sleep(0.02)
        return result_of(self.final)


def result_of(event: dict) -> dict:
    """The result event, or a BackendError for an error/cancelled one."""
    kind = event.get("event")
    if kind == "result":
        return event
    if kind == "cancelled":
        raise BackendError("cancelled")
    raise BackendError(event.get("message") or "the backend failed without a message")


class ThreadJob(Job):
    """Runs ``handler(request, emit, cancelled)`` (``e3d2_core.serve.handle``'s signature) in a thread."""

    def __init__(self, request: dict, handler):
        super().__init__(request)
        self._cancel = threading.Event()

        def run():
            try:
                handler(request, self.events.put, self._cancel.is_set)
            except BaseException as err:  # the handler reports its own errors; this is a last resort
                self.events.put({"id": request.get("id"), "event": "error", "message": f"{type(err).__name__}: {err}"})

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def cancel(self) -> None:
        self._cancel.set()


class ProcessJob(Job):
    """Runs one request in a fresh backend process (``python -m e3d2_core.serve`` unless ``command`` given)."""

    def __init__(self, request: dict, python: str, command=None, env=None, kill_after: float = 5.0):
        super().__init__(request)
        self.kill_after = kill_after
        self.stderr_tail: deque = deque(maxlen=20)
        self.hello: dict | None = None
        environment = dict(os.environ if env is None else env)
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [core_path(), environment.get("PYTHONPATH")]))
        environment["PYTHONUNBUFFERED"] = "1"
        command = list(command or [python, "-m", "e3d2_core.serve"])
        try:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True, encoding="utf-8", env=environment)
        except OSError as err:
            raise BackendError(f"cannot start the backend interpreter {command[0]!r} ({err.strerror or err})") \
                from None
        self._send(request)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _send(self, message: dict) -> None:
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except (OSError, ValueError):
            pass  # the process is gone; the reader reports why

    def _read_stdout(self) -> None:
        finished = False
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                self.stderr_tail.append(line.rstrip())
                continue
            if event.get("event") == "hello":
                self.hello = event
                continue
            if "id" not in event and event.get("event") == "error":  # startup failure (no torch, ...)
                event["id"] = self.request.get("id")
            self.events.put(event)
            if event.get("event") in FINAL_EVENTS and event.get("id") == self.request.get("id"):
                finished = True
                self._send({"op": "quit"})
                break
        code = self.process.wait()
        if not finished:
            time.sleep(0.05)  # let the stderr reader catch the last words
            last = next((l for l in reversed(self.stderr_tail) if l.strip()), "")
            self.events.put({"id": self.request.get("id"), "event": "error",
                             "message": f"the e3d2 backend stopped unexpectedly (exit code {code})"
                                        + (f": {last.strip()}" if last else "")})

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self.stderr_tail.append(line.rstrip())

    def cancel(self) -> None:
        """Ask the process to stop; kill it if it has not within ``kill_after`` seconds."""
        self._send({"op": "cancel", "id": self.request.get("id")})

        def reaper():
            try:
                self.process.wait(timeout=self.kill_after)
            except subprocess.TimeoutExpired:
                self.process.kill()

        threading.Thread(target=reaper, daemon=True).start()


# ---------------------------------------------------------------------------------------------- backends
class InProcessBackend:
    """Runs ``e3d2_core.serve.handle`` in a thread of this process (needs torch here).

    ``generate_fn`` / ``score_fn`` replace ``e3d2_core.api.generate`` / ``score`` (same signatures), and
    ``edit_fns`` ``{"regenerate": fn, "extend": fn}`` the editing functions: the injection point for other
    generators and for tests.
    """

    name = "in-process"

    def __init__(self, generate_fn=None, score_fn=None, edit_fns=None):
        self.generate_fn, self.score_fn, self.edit_fns = generate_fn, score_fn, edit_fns

    def start(self, request: dict) -> Job:
        from e3d2_core import serve  # imports torch lazily inside its operations

        def handler(req, emit, cancelled):
            serve.handle(req, emit, cancelled, generate_fn=self.generate_fn, score_fn=self.score_fn,
                         edit_fns=self.edit_fns)

        return ThreadJob(request, handler)


class SubprocessBackend:
    """Runs each job in ``python -m e3d2_core.serve`` under the configured interpreter."""

    name = "subprocess"

    def __init__(self, python: str, command=None):
        self.python, self.command = python, command

    def start(self, request: dict) -> Job:
        if not self.command and not (self.python and Path(self.python).is_file()):
            raise BackendError(f"backend interpreter not found: {self.python!r} (set it in the add-on preferences)")
        return ProcessJob(request, self.python, command=self.command)


def torch_importable() -> bool:
    """True when torch can be imported in this Python (checked without importing it)."""
    return importlib.util.find_spec("torch") is not None


_override = None


def use_backend(backend) -> None:
    """Make every add-on job go to ``backend`` (None restores the configured choice)."""
    global _override
    _override = backend


def choose_backend(mode: str = "AUTO", python: str = ""):
    """The backend for a job: an override set by :func:`use_backend`, else by the preferences' mode."""
    if _override is not None:
        return _override
    if mode == "IN_PROCESS" or (mode == "AUTO" and torch_importable()):
        if not torch_importable():
            raise BackendError("torch is not importable in Blender's Python; choose the subprocess backend")
        return InProcessBackend()
    if not python:
        raise BackendError("no backend: torch is not importable in Blender's Python and no backend interpreter "
                           "is set (Preferences > Add-ons > e3d2: Set up backend)")
    return SubprocessBackend(python)


def check_backend(python: str, timeout: float = 180.0) -> dict:
    """Start the backend under ``python`` and ask what it has: {"torch", "device", "generate", "score", ...}."""
    job = SubprocessBackend(python).start({"id": "check", "op": "check"})
    return job.wait(timeout=timeout)


# ---------------------------------------------------------------------------------------------- set up
def venv_python(venv_dir) -> Path:
    venv_dir = Path(venv_dir)
    return venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def base_interpreter() -> str:
    """A real Python executable to create the environment with (Blender's bundled one, or this one)."""
    return sys.executable


def setup_environment(venv_dir, requirements=BACKEND_REQUIREMENTS, *, wheels_dir=None, online=False,
                      progress=None, cancelled=None) -> Path:
    """Create a private virtual environment and pip-install e3d2's requirements into it.

    Installs from the registry only when ``online`` (Blender's "Allow Online Access"), otherwise only from
    ``wheels_dir`` (``--no-index --find-links``). Returns the environment's python. Raises BackendError with
    pip's last error line when anything fails.
    """
    progress = progress or (lambda fraction, message: None)
    if not online and not wheels_dir:
        raise BackendError("Blender does not allow online access and no wheel folder is set: enable online "
                           "access (Preferences > System > Network) or choose a folder of wheels")
    if wheels_dir and not Path(wheels_dir).is_dir():
        raise BackendError(f"wheel folder not found: {wheels_dir}")
    python = venv_python(venv_dir)
    steps = [([base_interpreter(), "-m", "venv", str(venv_dir)], "creating the environment")] \
        if not python.is_file() else []
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
    pip += ["--no-index", "--find-links", str(wheels_dir)] if not online else \
        (["--find-links", str(wheels_dir)] if wheels_dir else [])
    steps.append((pip + list(requirements), "installing " + ", ".join(r.split("=")[0].split("<")[0].split(">")[0]
                                                                     for r in requirements)))
    for n, (command, label) in enumerate(steps):
        progress(n / len(steps), label)
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        tail: deque = deque(maxlen=30)
        for line in process.stdout:
            tail.append(line.rstrip())
            if line.startswith(("Collecting", "Processing", "Installing", "Successfully")):
                progress((n + 0.5) / len(steps), line.strip()[:120])
            if cancelled and cancelled():
                process.kill()
                raise BackendError("cancelled")
        if process.wait() != 0:
            reason = next((l for l in reversed(tail) if l.startswith("ERROR")), tail[-1] if tail else "")
            raise BackendError(f"{label} failed: {reason.strip()}")
    progress(1.0, "installed")
    return python
