"""Training configs: every shipped one loads and fits its models and trainer; a typo'd key is refused by name."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from e3d2_core import cli
from e3d2_core.commands.train import load_config
from e3d2_core.errors import E3D2Error
from e3d2_core.models import policy, vqvae
from e3d2_core.models.reward import DEFAULT_CONFIG as REWARD_MODEL_DEFAULTS
from e3d2_core.training import stages
from e3d2_core.training.trainer import TrainConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "training" / "configs").glob("*.yaml"))


def test_the_configs_folder_has_the_documented_configs():
    assert {p.stem for p in CONFIGS} >= {"micro", "tiny", "default", "paper"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    config = load_config(path)
    vqvae.make_config(config["vqvae"]["model"])          # the models refuse unknown keys themselves
    policy.make_config(config["bc"]["model"])
    assert set(config.get("reward", {}).get("model", {})) <= set(REWARD_MODEL_DEFAULTS)
    for section in ("vqvae", "bc"):
        TrainConfig.from_dict(config[section]["train"], where=f"{path.name} {section}.train")


def _write(tmp_path, config: dict) -> Path:
    path = tmp_path / "foo.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _micro() -> dict:
    return yaml.safe_load(next(p for p in CONFIGS if p.stem == "micro").read_text())


@pytest.mark.parametrize("section, key", [(("bc", "train"), "stesp"), (("demos",), "take"),
                                          (("reward", "train"), "corupt_fraction"), (("rl",), "itertions"),
                                          (("vqvae", "data"), "windw"), (("report",), "sample"),
                                          (("music",), "normalise"), (("reward", "model"), "hiden")])
def test_a_typo_in_a_stage_section_is_refused_with_its_key_section_and_file(tmp_path, section, key):
    config = _micro()
    node = config
    for name in section:
        node = node.setdefault(name, {})
    node[key] = 1
    path = _write(tmp_path, config)
    with pytest.raises(E3D2Error) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"unknown key '{key}' in section '{'.'.join(section)}' of {path}; known: ")
    if section == ("bc", "train"):
        assert "known: batch_size, checkpoint_every, checkpoint_seconds, epochs, grad_clip" in message


def test_a_typo_at_the_top_level_is_refused(tmp_path):
    path = _write(tmp_path, {**_micro(), "sed": 1})
    with pytest.raises(E3D2Error, match=r"^unknown key 'sed' at the top level of .*foo\.yaml; known: bc, bundle, data, "):
        load_config(path)


def test_the_cli_prints_the_unknown_key_in_one_line(tmp_path, capsys):
    config = _micro()
    config["bc"]["train"]["stesp"] = 40
    path = _write(tmp_path, config)
    assert cli.main(["train", "all", "--config", str(path), "--run", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"unknown key 'stesp' in section 'bc.train' of {path}; known: batch_size, "
                        "checkpoint_every, checkpoint_seconds, epochs, grad_clip, keep_checkpoints, log_every, "
                        "optimizer, precision, schedule, seed, steps")
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_a_config_built_in_code_is_checked_too(tmp_path):
    config = {**_micro(), "data": {"dir": str(tmp_path)}, "rl": {"iterations": 3, "klx": 0.1}}
    with pytest.raises(E3D2Error, match=r"^unknown key 'klx' in section 'rl' of the config; known: checkpoint_every, clip, "):
        stages.run_stage("vqvae", config, tmp_path / "run", stages.StageOptions(progress=False))


def test_a_stage_registered_at_run_time_owns_its_section(tmp_path, monkeypatch):
    monkeypatch.setattr(stages, "STAGES", dict(stages.STAGES))
    monkeypatch.setattr(stages, "OUTPUTS", dict(stages.OUTPUTS))
    monkeypatch.setattr(stages, "CONFIG_KEYS", dict(stages.CONFIG_KEYS))
    monkeypatch.setattr("e3d2_core.training.config_keys.CONFIG_KEYS", stages.CONFIG_KEYS)

    def run_extra(config, run_dir, options):
        out = run_dir / "extra.txt"
        run_dir.mkdir(parents=True, exist_ok=True)
        out.write_text(str(config["extra"]["anything"]))
        return out

    stages.register_stage(stages.Stage("extra", run_extra, "extra.txt", order=95))
    config = {**_micro(), "extra": {"anything": 7}}
    out = stages.run_stage("extra", config, tmp_path / "run", stages.StageOptions(progress=False))
    assert out.read_text() == "7" and stages.OUTPUTS["extra"] == "extra.txt"
