"""One progress bar for the commands that run the model (`generate`, `edit`)."""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def progress_bar(quiet: bool):
    """Yield ``progress(fraction, message)`` drawing a tqdm bar (nothing when ``quiet``); the bar closes on exit."""
    bar = None
    if not quiet:
        from tqdm import tqdm
        bar = tqdm(total=1000, unit="‰", bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def progress(fraction, message):
        if bar is not None:
            bar.set_description_str(message[:40].ljust(40))
            bar.n = int(fraction * 1000)
            bar.refresh()

    try:
        yield progress
    finally:
        if bar is not None:
            bar.close()
