"""Cache of the ground-truth pool's features and statistics, keyed by a fingerprint of the folder's contents.

The file (``.npz``, no pickles) holds the pool's names, raw kinetic (N, 72) and geometric (N, 32) features,
their per-dimension mean/std (the z-score statistics, stored for inspection; they are recomputed from the
features on load, bit for bit), the pool's own diversities and the fingerprint.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from e3d2_core.errors import E3D2Error
from e3d2_core.fileio import atomic_open

CACHE_VERSION = 1
_FIELDS = ("names", "kinetic", "geometric", "div_k_gt", "div_g_gt", "fps_assumed", "fingerprint", "version")


def folder_fingerprint(files: list[Path], settings: dict) -> str:
    """sha256 over the settings and every file's name, size and bytes (so any edit, addition or removal shows)."""
    digest = hashlib.sha256(json.dumps({"cache_version": CACHE_VERSION, **settings}, sort_keys=True).encode())
    for path in files:
        digest.update(path.name.encode() + b"\0" + str(path.stat().st_size).encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load(path, fingerprint: str):
    """The cached pool as a dict, or ``(None, reason)`` when absent, unreadable or made from other contents."""
    path = Path(path)
    if not path.is_file():
        return None, "no GT cache yet"
    try:
        with np.load(path, allow_pickle=False) as data:
            if set(_FIELDS) - set(data.files):
                return None, "GT cache is not a metrics cache"
            if int(data["version"]) != CACHE_VERSION:
                return None, "GT cache was written by another version"
            if str(data["fingerprint"]) != fingerprint:
                return None, "GT folder or settings changed since the cache was written"
            pool = {
                "names": [str(n) for n in data["names"]],
                "kinetic": data["kinetic"].astype(np.float32),
                "geometric": data["geometric"].astype(np.float32),
                "div_k_gt": float(data["div_k_gt"]),
                "div_g_gt": float(data["div_g_gt"]),
                "fps_assumed": int(data["fps_assumed"]),
            }
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        return None, f"GT cache unreadable ({type(err).__name__})"
    if pool["kinetic"].shape != (len(pool["names"]), 72) or pool["geometric"].shape != (len(pool["names"]), 32):
        return None, "GT cache has wrong shapes"
    return pool, "GT features loaded from cache"


def save(path, pool: dict, fingerprint: str) -> None:
    """Write the pool atomically (an interrupted write leaves the old cache)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise E3D2Error("the GT cache file must end in .npz", path=path)
    with atomic_open(path) as handle:
        np.savez(handle, names=np.array(pool["names"], dtype=str), kinetic=pool["kinetic"],
                 geometric=pool["geometric"], div_k_gt=np.float64(pool["div_k_gt"]),
                 div_g_gt=np.float64(pool["div_g_gt"]), fps_assumed=np.int64(pool.get("fps_assumed", 0)),
                 mean_k=pool["kinetic"].mean(axis=0), std_k=pool["kinetic"].std(axis=0),
                 mean_g=pool["geometric"].mean(axis=0), std_g=pool["geometric"].std(axis=0), fingerprint=np.array(fingerprint),
                 version=np.int64(CACHE_VERSION))
