"""What every training stage uses: the run folder's files, the data splits, the device, the model classes.

No stage module is imported here, so each stage module (``generator_stages``, ``e3d2_stages``, ``report``) can
import this one and :mod:`e3d2_core.training.stages` can import them all to build its registry, without a circle.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from e3d2_core.errors import E3D2Error
from e3d2_core.fileio import atomic_open, atomic_path
from e3d2_core.training import data as shards
from e3d2_core.training.trainer import distributed_device

BUNDLE_FORMAT = "e3d2-bundle"
BUNDLE_VERSION = 1

# The file in the run folder that marks each stage as done (written last, atomically); the registry's stages name
# theirs from here, so a stage finds another's output without importing the registry.
OUTPUTS = {"vqvae": "vqvae.pt", "bc": "bc.pt", "demos": "demos.json", "reward": "reward.pt", "rl": "rl.pt",
           "rl_hand": "rl_hand.pt", "guide": "guide.pt", "distill": "distill.pt", "report": "report.json",
           "bundle": "model.pt"}

# Model classes by role, as "module:Class" so a test (or another helper) can point a role elsewhere.
MODEL_CLASSES = {"vqvae": "e3d2_core.models.vqvae:ChoreographicMemory",
                 "policy": "e3d2_core.models.policy:DancePolicy"}


@dataclass(frozen=True)
class StageOptions:
    """What the command line adds to a config: resume an interrupted stage, device, progress bars."""

    resume: bool = False
    device: str = "auto"
    progress: bool = True
    on_step: Callable[[int], None] | None = None   # forwarded to the Trainer (tests simulate kills with it)


def model_class(role: str):
    """The class :data:`MODEL_CLASSES` names for ``role`` ("vqvae" or "policy")."""
    module_name, _, class_name = MODEL_CLASSES[role].partition(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise E3D2Error(f"the {role} model class {MODEL_CLASSES[role]} is not available ({err})") from None


# ---------------------------------------------------------------------------------------------- run folder
def save_stage_output(path: Path, bundle: dict) -> Path:
    """Write a stage's output bundle atomically (tensors and plain containers only, weights_only-loadable)."""
    bundle = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, **bundle}
    with atomic_path(path) as tmp:
        torch.save(bundle, tmp)
    return path


def load_stage_output(run_dir: Path, stage: str) -> dict:
    """The output bundle of a finished stage of the run.

    Parameters
    ----------
    run_dir : the run folder.
    stage : a stage name; its file is ``OUTPUTS[stage]``.

    Raises E3D2Error when the stage has not finished or its file is unreadable.
    """
    path = Path(run_dir) / OUTPUTS[stage]
    if not path.is_file():
        raise E3D2Error(f"stage '{stage}' has not finished in this run (no {path.name}); run "
                        f"`e3d2 train {stage}` first", path=run_dir)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise E3D2Error(f"unreadable stage output ({type(err).__name__}: {err})", path=path) from None


def write_json(path: Path, data) -> None:
    """``data`` as indented JSON, atomically (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w") as handle:
        json.dump(data, handle, indent=2)


def cpu_state(model: torch.nn.Module) -> dict:
    """A detached CPU copy of ``model``'s state dict (what stage outputs store)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def load_vqvae(run_dir: Path, device) -> tuple[torch.nn.Module, dict]:
    """(the run's VQ-VAE on ``device`` in eval mode, the vqvae stage's output bundle)."""
    bundle = load_stage_output(run_dir, "vqvae")
    model = model_class("vqvae")(dict(bundle["vqvae"]["config"]))
    model.load_state_dict(bundle["vqvae"]["state_dict"])
    return model.to(device).eval(), bundle


# ---------------------------------------------------------------------------------------------- config and data
def config_section(config: dict, *keys: str) -> dict:
    """The section ``config[keys[0]][keys[1]]...``.

    Parameters
    ----------
    config : a training config.
    keys : the path of the section, e.g. ("bc", "train").

    Raises E3D2Error naming the first missing section (e.g. 'bc.train').
    """
    node = config
    for i, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            raise E3D2Error(f"config: missing section '{'.'.join(keys[:i + 1])}'")
        node = node[key]
    return node


def data_dir(config: dict) -> Path:
    """The shard folder of ``data.dir`` (``~`` expanded)."""
    return Path(config_section(config, "data", "dir")).expanduser()


def load_split(config: dict, split: str, *, required: bool = True) -> shards.Shard | None:
    """A data split's shard, checked against the config's fps and music kind.

    Parameters
    ----------
    config : a training config (``data.dir``, ``fps``, ``music.kind``).
    split : "train", "val" or "test" (the file ``<data.dir>/<split>.npz``).
    required : False: a missing shard gives None instead of an error.

    Returns
    -------
    The :class:`~e3d2_core.training.data.Shard`, or None.
    """
    path = data_dir(config) / f"{split}.npz"
    if not path.is_file() and not required:
        return None
    shard = shards.load_shard(path)
    fps = float(config.get("fps", shard.fps))
    if abs(shard.fps - fps) > 1e-6:
        raise E3D2Error(f"shard motion is {shard.fps:g} fps, the config wants {fps:g}; rebuild the data with "
                        f"--fps {fps:g}", path=path)
    music = config.get("music", {})
    if music.get("kind", shard.music_kind) != shard.music_kind:
        raise E3D2Error(f"shard music features are '{shard.music_kind}', the config wants '{music['kind']}'",
                        path=path)
    if not shard.sequences:
        raise E3D2Error(f"split '{split}' has no sequences", path=path)
    return shard


# ---------------------------------------------------------------------------------------------- device, threads
def stage_device(config: dict, options: StageOptions) -> torch.device:
    """The command line's device, else the config's, else auto (this rank's GPU under torchrun)."""
    want = options.device if options.device != "auto" else config.get("device", "auto")
    return distributed_device(want)[0]


def is_main_process() -> bool:
    """True outside torchrun and on its rank 0 (the one process that writes outputs)."""
    return not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0


def apply_threads(config: dict) -> None:
    """``threads: N`` in the config caps torch's CPU threads (on a busy machine fewer can be much faster)."""
    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))

