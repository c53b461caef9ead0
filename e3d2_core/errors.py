"""The one exception users see: a clear, one-line, actionable message (the CLI prints it and exits 2)."""


class E3D2Error(ValueError):
    """Bad input or an impossible request. ``str(err)`` names the file (if any) and what is wrong.

    A ``ValueError``, so callers that catch ``ValueError`` (what the models raised before) still catch it.
    """

    def __init__(self, message: str, *, path=None):
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class Cancelled(E3D2Error):
    """The caller asked a long job (generation, scoring) to stop; nothing was written."""
