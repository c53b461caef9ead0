"""One-file model bundles: configs, weights, music normalisation, skeleton and version, saved atomically and
loaded safely.

A bundle is a plain dict (docs/models.md, Checkpoints)::

    {"format": "e3d2-bundle", "version": 1, "code_version": str,
     "music": {"kind": str, "fps": float, "mean": (D,) tensor, "std": (D,) tensor},
     "skeleton": Skeleton.to_dict(), "data_note": str,
     "vqvae": {"config": dict, "state_dict": {...}}, "policy": {"config": dict, "state_dict": {...}},
     optional "reward", "policy_rl", "policy_beat", "model_card",
     "beat_guide": {"up": (K, 8) tensor, "down": (K, 8) tensor, "speed_scale": float, ...},
     "repeat": {"window": int, "free_repeats": int, "cost": float},
     "default_policy": "beat" | "rl" | "bc"   (what policy="auto" runs; without it: π_beat, else π_RL, else π_BC)}

It holds only tensors and plain containers, and is read with ``torch.load(weights_only=True)``: loading a
checkpoint can never run code. Every problem becomes a one-line :class:`E3D2Error` naming the file.
"""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch

from e3d2_core import __version__
from e3d2_core.dance_options import check_policy
from e3d2_core.errors import E3D2Error
from e3d2_core.fileio import atomic_path, file_sha256  # noqa: F401  (re-exported: api, tests)
from e3d2_core.paths import assets_dir

FORMAT = "e3d2-bundle"
VERSION = 1
_PLAIN = (str, int, float, bool, type(None), torch.Tensor)
DEFAULT_CHECKPOINT_NAME = "e3d2_default.pt"


def default_checkpoint() -> Path:
    """``assets/e3d2_default.pt`` (the bundled model), with a clear error when it is not installed."""
    path = assets_dir() / DEFAULT_CHECKPOINT_NAME
    if not path.is_file():
        raise E3D2Error(f"no checkpoint given and the default model {path} is not installed "
                        f"(pass a checkpoint, or train one: see docs/models.md)")
    return path


def _check_plain(value, where: str) -> None:
    """Refuse anything that ``weights_only`` loading could not read back (objects, numpy arrays, functions)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise E3D2Error(f"bundle key {key!r} at {where} is not a string")
            _check_plain(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise E3D2Error(f"bundle entry {where} is a {type(value).__name__}; only tensors and plain data are stored")


def save_bundle(path, bundle: dict) -> None:
    """Write ``bundle`` to ``path`` atomically (the old file survives any failure). Adds format/version fields."""
    bundle = {"format": FORMAT, "version": VERSION, "code_version": __version__, **bundle}
    _check_plain(bundle, "bundle")
    with atomic_path(path) as tmp:
        torch.save(bundle, tmp)


def load_bundle(path, *, require=("vqvae", "policy")) -> dict:
    """Read and validate a bundle; ``require`` lists the parts the caller needs.

    Raises E3D2Error for: a missing file, a corrupt or truncated file, a file holding objects (refused: it could
    run code), something that is not an e3d2 bundle, an unsupported version, missing parts, malformed parts.
    """
    path = Path(path)
    if not path.is_file():
        raise E3D2Error("no such checkpoint file", path=path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # pickle-protocol notices for foreign files
            bundle = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise E3D2Error("checkpoint holds Python objects, not only tensors and plain data; refusing to load it "
                            "(it could run code)", path=path) from None
        raise E3D2Error(f"corrupt checkpoint ({first[:160]})", path=path) from None
    except Exception as err:  # noqa: BLE001 -- any failure to parse the file means it is damaged
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise E3D2Error(f"corrupt or truncated checkpoint ({type(err).__name__}: {first[:160]})", path=path) from None
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise E3D2Error("not an e3d2 checkpoint bundle", path=path)
    if bundle.get("version") != VERSION:
        raise E3D2Error(f"checkpoint format version {bundle.get('version')!r} is not supported "
                        f"(this e3d2 reads version {VERSION})", path=path)
    missing = [part for part in require if part not in bundle]
    if missing:
        raise E3D2Error(f"incompatible checkpoint: missing {', '.join(missing)}", path=path)
    for part in [p for p in ("vqvae", "policy", "reward", "policy_rl", "policy_beat") if p in bundle]:
        entry = bundle[part]
        if not (isinstance(entry, dict) and isinstance(entry.get("config"), dict)
                and isinstance(entry.get("state_dict"), dict)):
            raise E3D2Error(f"incompatible checkpoint: '{part}' needs a config dict and a state_dict", path=path)
    guide = bundle.get("beat_guide")
    if guide is not None:
        tables = [guide.get(h) if isinstance(guide, dict) else None for h in ("up", "down")]
        if not all(isinstance(t, torch.Tensor) and t.ndim == 2 and t.shape == tables[0].shape
                   and bool(torch.isfinite(t).all()) and bool((t >= 0).all()) for t in tables):
            raise E3D2Error("incompatible checkpoint: 'beat_guide' needs two finite, non-negative (K, 8) speed "
                            "tables 'up' and 'down'", path=path)
    default = bundle.get("default_policy")
    if default is not None and (default not in POLICY_PARTS or POLICY_PARTS[default] not in bundle):
        raise E3D2Error(f"incompatible checkpoint: its default policy {default!r} is not one of the policies it "
                        "holds", path=path)
    if bundle.get("repeat") is not None:
        from e3d2_core.repeat_limit import RepeatLimit
        try:
            RepeatLimit.from_entry(bundle["repeat"])
        except (E3D2Error, KeyError, TypeError, ValueError):
            raise E3D2Error("incompatible checkpoint: 'repeat' needs a whole window ≥ 1, free_repeats from 0 to "
                            "the window and a cost ≥ 0", path=path) from None
    if "policy" in require or "policy_rl" in require:
        music = bundle.get("music")
        if not (isinstance(music, dict) and {"kind", "fps", "mean", "std"} <= set(music)):
            raise E3D2Error("incompatible checkpoint: 'music' needs kind, fps, mean and std", path=path)
    return bundle


def build_model(bundle: dict, part: str, path=None):
    """Instantiate ``part`` ("vqvae", "policy", "policy_rl" or "policy_beat") from its config and load its weights (strict)."""
    from e3d2_core.models.policy import DancePolicy
    from e3d2_core.models.vqvae import ChoreographicMemory

    cls = ChoreographicMemory if part == "vqvae" else DancePolicy
    entry = bundle[part]
    try:
        model = cls(entry["config"])
        model.load_state_dict(entry["state_dict"], strict=True)
    except (ValueError, TypeError, KeyError, RuntimeError, E3D2Error) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise E3D2Error(f"incompatible checkpoint: {part} weights do not match its config ({first[:200]})",
                        path=path) from None
    return model.eval()


def build_generator_models(bundle: dict, path=None, policy_part: str = "policy"):
    """(vqvae, policy) from a bundle, checking that they fit each other and the music normalisation."""
    vqvae, policy = build_model(bundle, "vqvae", path), build_model(bundle, policy_part, path)
    if policy.config["vocab"] != vqvae.config["codebook_size"]:
        raise E3D2Error(f"incompatible checkpoint: the policy has {policy.config['vocab']} codes but the VQ-VAE "
                        f"{vqvae.config['codebook_size']}", path=path)
    music = bundle["music"]
    for key in ("mean", "std"):
        value = music[key]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != (policy.config["music_dim"],):
            raise E3D2Error(f"incompatible checkpoint: music {key} must be a ({policy.config['music_dim']},) "
                            f"tensor", path=path)
    if abs(float(music["fps"]) - vqvae.fps / vqvae.downsample) > 1e-6:
        raise E3D2Error(f"incompatible checkpoint: music at {music['fps']} fps, but the codes run at "
                        f"{vqvae.fps / vqvae.downsample} per second", path=path)
    return vqvae, policy


POLICY_PARTS = {"beat": "policy_beat", "rl": "policy_rl", "bc": "policy"}
POLICY_NAMES = {part: name for name, part in POLICY_PARTS.items()}


def policy_part(bundle: dict, policy: str, path=None) -> str:
    """Which policy of the bundle to run for ``policy`` ("auto", "beat", "rl" or "bc"): the one asked for, or for
    "auto" the bundle's ``"default_policy"`` (the one its training run measured best), else the first it has of
    π_beat ("policy_beat", distilled on its beat-guided takes), π_RL ("policy_rl") and π_BC ("policy")."""
    check_policy(policy)
    if policy == "auto" and bundle.get("default_policy") is not None:
        return POLICY_PARTS[bundle["default_policy"]]
    if policy == "auto":
        return next(part for part in ("policy_beat", "policy_rl", "policy") if part in bundle)
    part = POLICY_PARTS[policy]
    if part not in bundle:
        what = {"beat": "beat-distilled policy (π_beat)", "rl": "RL-fine-tuned policy (π_RL)"}[policy]
        raise E3D2Error(f"this checkpoint has no {what}; use policy='bc'", path=path)
    return part
