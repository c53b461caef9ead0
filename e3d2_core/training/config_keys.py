"""The keys a training config (``training/configs/*.yaml``) may hold, and the check that refuses any other.

A typo in a stage's section would otherwise be silently ignored (the stage reads its defaults instead), so every
key is checked when the config is loaded, naming the key, its section and the file. The known keys come from the
defaults the stages read (``docs/training.md`` and ``docs/e3d2.md`` describe each one). ``None`` marks a section
whose contents are checked elsewhere: the VQ-VAE's and the policy's ``model`` sections by the model class itself
(it refuses unknown keys; ``stages.MODEL_CLASSES`` may point a role at another class), and the section of a stage
added at run time with ``stages.register_stage``.
"""
from __future__ import annotations

from dataclasses import fields

from e3d2_core.errors import E3D2Error
from e3d2_core.models.reward import DEFAULT_CONFIG as REWARD_MODEL_DEFAULTS
from e3d2_core.training import distill, guide, rl
from e3d2_core.training.e3d2_stages import DEMOS_DEFAULTS, REWARD_TRAIN_DEFAULTS, RL_STAGE_DEFAULTS
from e3d2_core.training.generator_stages import BC_DATA_DEFAULTS, VQVAE_DATA_DEFAULTS
from e3d2_core.training.report import REPORT_DEFAULTS
from e3d2_core.training.trainer import TrainConfig


def _values(keys) -> dict:
    """Keys whose values are plain settings (not sections)."""
    return dict.fromkeys(keys)


_TRAIN = _values(f.name for f in fields(TrainConfig))

# section -> {key: sub-section, or None for a value (or a section checked elsewhere)}
CONFIG_KEYS: dict = {
    **_values(("name", "seed", "device", "fps", "threads")),
    "data": _values(("dir",)),
    "music": _values(("kind", "fps", "normalize")),
    "vqvae": {"model": None, "data": _values(VQVAE_DATA_DEFAULTS), "train": _TRAIN},
    "bc": {"model": None, "data": _values(BC_DATA_DEFAULTS), "train": _TRAIN},
    "demos": _values(DEMOS_DEFAULTS),
    "reward": {"model": _values(REWARD_MODEL_DEFAULTS), "train": _values(REWARD_TRAIN_DEFAULTS), "seed": None},
    # "reward" is left out: the stage sets it (rl: learned, rl_hand: hand)
    "rl": _values([*(k for k in rl.DEFAULTS if k != "reward"), *RL_STAGE_DEFAULTS, "eval_temperature"]),
    "guide": _values(guide.GUIDE_DEFAULTS),
    "distill": _values(distill.DEFAULTS),
    "report": _values(REPORT_DEFAULTS),
    "bundle": _values(("default_policy",)),
}


def check_config(config: dict, source=None) -> None:
    """Refuse a key that no stage reads.

    Parameters
    ----------
    config : the parsed YAML mapping.
    source : the file it came from (named in the message), or None for a config built in code.

    Raises E3D2Error "unknown key 'X' in section 'bc.train' of FILE; known: ..." for the first unknown key.
    """
    where = f"of {source}" if source is not None else "of the config"
    _check(config, CONFIG_KEYS, (), where)


def _check(node, known: dict, section: tuple[str, ...], where: str) -> None:
    if not isinstance(node, dict):
        return                      # a section that is not a mapping fails where the stage reads it
    for key, value in node.items():
        if key not in known:
            place = f"in section '{'.'.join(section)}'" if section else "at the top level"
            raise E3D2Error(f"unknown key '{key}' {place} {where}; known: {', '.join(sorted(known))}")
        if known[key] is not None:
            _check(value, known[key], (*section, str(key)), where)
