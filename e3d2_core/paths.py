"""Where run-time data lives: the bundled ``assets/`` folder beside the package, or ``$E3D2_ASSETS``."""
from __future__ import annotations

import os
from pathlib import Path

from e3d2_core.errors import E3D2Error

_PACKAGE_DIR = Path(__file__).resolve().parent


def assets_dir() -> Path:
    """The assets folder: ``$E3D2_ASSETS``, else ``<repo>/assets``, else ``e3d2_core/assets`` (packed add-on)."""
    candidates = [os.environ.get("E3D2_ASSETS"), _PACKAGE_DIR.parent / "assets", _PACKAGE_DIR / "assets"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise E3D2Error("cannot find the e3d2 assets folder; set E3D2_ASSETS to the folder holding smpl_skeleton.json")


def asset_path(name: str) -> Path:
    """Path of one bundled asset, with a clear error when it is missing."""
    path = assets_dir() / name
    if not path.exists():
        raise E3D2Error(f"bundled asset '{name}' is missing from {path.parent}")
    return path


def cache_dir() -> Path:
    """Per-user cache for derived data (music features): ``$E3D2_CACHE`` or ``~/.cache/e3d2``."""
    path = Path(os.environ.get("E3D2_CACHE") or Path.home() / ".cache" / "e3d2")
    path.mkdir(parents=True, exist_ok=True)
    return path
