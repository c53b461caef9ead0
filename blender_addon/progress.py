"""Progress of a job run without a UI (background Blender, headless.py): short output on any stream.

On a terminal, one line rewritten in place; on a pipe or a log file, a line only when the job passes the next
quarter (and one for the end), so a log holds a handful of lines however many progress events the job sends.
No bpy here.
"""
from __future__ import annotations

import sys


class ProgressPrinter:
    """``printer(fraction, message)`` per progress event; ``close()`` when the job ends.

    ``stream``: where to write (default ``sys.stdout``); ``is_tty``: override the terminal check; ``steps``:
    how many lines a non-terminal gets (at 1/steps, 2/steps, ... of the job).
    """

    def __init__(self, stream=None, *, is_tty: bool | None = None, prefix: str = "e3d2", steps: int = 4):
        self.stream = stream if stream is not None else sys.stdout
        if is_tty is None:
            isatty = getattr(self.stream, "isatty", None)
            is_tty = bool(isatty and isatty())
        self.is_tty, self.prefix, self.steps = is_tty, prefix, max(int(steps), 1)
        self._width, self._step, self._last = 0, 0, None

    def __call__(self, fraction: float, message: str) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        line = f"{self.prefix}: {100 * fraction:3.0f}% {message}".rstrip()
        if self.is_tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self.stream.flush()
            return
        step = int(fraction * self.steps + 1e-9)
        self._last = line
        if step > self._step:
            self._step = step
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last = None

    def close(self) -> None:
        """End the in-place line (terminal), or print the last state if its line was not shown (pipe)."""
        if self.is_tty and self._width:
            self.stream.write("\n")
        elif not self.is_tty and self._last is not None and self._step < self.steps:
            self.stream.write(self._last + "\n")
        self.stream.flush()
        self._width, self._last = 0, None
