"""The training pipeline's stage registry: name -> :class:`Stage` (function(config, run_dir, options) -> output).

One run folder holds everything a pipeline produces::

    RUN/vqvae/            checkpoints/, metrics.jsonl, config.yaml, summary.json   (the vqvae stage's work)
    RUN/vqvae.pt          its output bundle: {"vqvae": {config, state_dict}, "skeleton", "data_note"}
    RUN/bc/ ...           the same for the policy
    RUN/bc.pt             {"policy": {config, state_dict}, "music": {kind, fps, mean, std}}
    RUN/model.pt          the ``bundle`` stage: every stage output's bundle keys merged into one e3d2 bundle

A stage is done when its ``output`` file exists (written atomically, last); ``run_all`` runs the stages in
``order``, skipping finished ones and resuming an interrupted one from its newest checkpoint. Every stage of the
project is listed in :data:`STAGES` below, from the module that implements it; :func:`register_stage` adds one at
run time. A stage whose output is a bundle names the keys it contributes to ``model.pt`` in ``bundle_keys``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from e3d2_core.errors import E3D2Error
from e3d2_core.skeleton import default_skeleton
from e3d2_core.training import distill, e3d2_stages, generator_stages, guide, report
from e3d2_core.training.config_keys import CONFIG_KEYS, check_config
# the helpers callers of this module use, re-exported from where they live
from e3d2_core.training.stage_common import (BUNDLE_FORMAT, BUNDLE_VERSION, MODEL_CLASSES, OUTPUTS,  # noqa: F401
                                             StageOptions, data_dir, is_main_process, load_split,
                                             load_stage_output, model_class, save_stage_output)


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: ``run(config, run_dir, options)`` writes ``output`` (last) and returns its path."""

    name: str
    run: Callable[[dict, Path, StageOptions], Path]
    output: str                      # file in the run folder that marks the stage as done
    needs: tuple[str, ...] = ()      # stages whose outputs must exist first
    bundle_keys: tuple[str, ...] = ()  # keys of the output bundle copied into model.pt
    order: int = 50
    help: str = ""
    rerun_after_upstream: bool = False  # in run_all, redo it when an earlier stage ran (the bundle step)


# ---------------------------------------------------------------------------------------------- bundle
def run_bundle(config: dict, run_dir: Path, options: StageOptions) -> Path:
    """Merge the finished stages' bundle keys into ``model.pt`` (later stages override earlier ones).

    The config's ``bundle.default_policy`` ("beat", "rl" or "bc") names the policy that ``policy="auto"`` runs;
    without it the bundle falls back on the first it holds of π_beat, π_RL and π_BC."""
    from e3d2_core.checkpoint import POLICY_PARTS, save_bundle
    from e3d2_core import __version__
    run_dir = Path(run_dir)
    merged: dict = {}
    for stage in sorted(STAGES.values(), key=lambda s: s.order):
        if not stage.bundle_keys or not (run_dir / stage.output).is_file():
            continue
        out = load_stage_output(run_dir, stage.name)
        merged.update({k: out[k] for k in stage.bundle_keys if k in out})
    missing = [k for k in ("vqvae", "policy", "music") if k not in merged]
    if missing:
        raise E3D2Error(f"cannot bundle: missing {', '.join(missing)} (run the vqvae and bc stages)", path=run_dir)
    default = (config.get("bundle") or {}).get("default_policy")
    if default is not None:
        if default not in POLICY_PARTS:
            raise E3D2Error(f"bundle.default_policy must be one of {', '.join(POLICY_PARTS)}, got {default!r}")
        if POLICY_PARTS[default] not in merged:
            raise E3D2Error(f"cannot bundle: bundle.default_policy is {default!r}, but the run has no "
                            f"{POLICY_PARTS[default]} (run the stage that trains it first)", path=run_dir)
        merged["default_policy"] = default
    merged.setdefault("skeleton", default_skeleton().to_dict())
    merged["data_note"] = str(merged.get("data_note", ""))
    merged.update(format=BUNDLE_FORMAT, version=BUNDLE_VERSION, code_version=__version__,
                  training={"config_name": str(config.get("name", "")), "seed": int(config.get("seed", 0))})
    output = run_dir / STAGES["bundle"].output
    if is_main_process():
        save_bundle(output, merged)
    return output


def run_all(config: dict, run_dir: Path, options: StageOptions) -> list[str]:
    """Run every registered stage in order, skipping finished ones; returns the names of the stages run."""
    ran = []
    for stage in sorted(STAGES.values(), key=lambda s: s.order):
        stale = stage.rerun_after_upstream and ran
        if (Path(run_dir) / stage.output).is_file() and not stale:
            continue
        run_stage(stage.name, config, run_dir, StageOptions(True, options.device, options.progress, options.on_step))
        ran.append(stage.name)
    return ran


def run_stage(name: str, config: dict, run_dir: Path, options: StageOptions) -> Path:
    """Run stage ``name`` into ``run_dir`` once the stages it needs have finished; returns its output path.

    The config is checked first: an unknown key is an error (``config_keys.check_config``).
    """
    check_config(config)
    if name not in STAGES:
        raise E3D2Error(f"unknown training stage '{name}'; known: {', '.join(STAGES)}")
    stage = STAGES[name]
    for need in stage.needs:
        if not (Path(run_dir) / STAGES[need].output).is_file():
            raise E3D2Error(f"stage '{name}' needs stage '{need}' first (no {STAGES[need].output} in the run)",
                            path=run_dir)
    return stage.run(config, Path(run_dir), options)


def _stage(name: str, run, **fields) -> Stage:
    return Stage(name, run, OUTPUTS[name], **fields)


STAGES: dict[str, Stage] = {stage.name: stage for stage in (
    # the generator (docs/training.md)
    _stage("vqvae", generator_stages.run_vqvae, order=10, bundle_keys=("vqvae", "skeleton", "data_note", "motion_fps"),
           help="choreographic memory (up/down VQ-VAE) on motion windows"),
    _stage("bc", generator_stages.run_bc, order=20, needs=("vqvae",), bundle_keys=("policy", "music"),
           help="behaviour-cloned policy pi_BC on (music, code) windows"),
    _stage("bundle", run_bundle, order=90, needs=("vqvae", "bc"), rerun_after_upstream=True,
           help="merge the stage outputs into the run's model.pt bundle"),
    # E3D2 on top of π_BC (docs/e3d2.md)
    _stage("demos", e3d2_stages.run_demos, order=30, needs=("vqvae", "bc"),
           help="ε-ranked demonstrations: π_BC rolled out with token-level ε-greedy noise"),
    _stage("reward", e3d2_stages.run_reward, order=40, needs=("demos",), bundle_keys=("reward",),
           help="reward model R_θ by T-REX on time-aligned snippet pairs"),
    _stage("rl", e3d2_stages.run_rl, order=50, needs=("reward",), bundle_keys=("policy_rl",),
           help="π_RL: PPO against R_θ with a KL guard to π_BC"),
    _stage("rl_hand", e3d2_stages.run_rl_hand, order=55, needs=("reward",),
           help="Table 3 ablation: the same RL with the hand-designed reward"),
    # following the beat (docs/music-following.md)
    _stage("guide", guide.run_guide, order=60, needs=("bc",), bundle_keys=("beat_guide", "repeat"),
           rerun_after_upstream=True, help="the beat guide's tables (each code's speed, frame by frame, on the "
                                           "policies' dances) and how often real dance repeats a code"),
    _stage("distill", distill.run_distill, order=65, needs=("guide",), bundle_keys=("policy_beat",),
           rerun_after_upstream=True, help="π_beat: π_RL fine-tuned on its own beat-guided takes"),
    _stage("report", report.run_report, order=80, needs=("rl",),
           help="the paper's Tables 1, 3, 4 and Figure 3 on the run's held-out music"),
)}


def register_stage(stage: Stage) -> Stage:
    """Add (or replace) a stage at run time; ``e3d2 train NAME`` and ``e3d2 train all`` pick it up."""
    STAGES[stage.name] = stage
    OUTPUTS[stage.name] = stage.output
    CONFIG_KEYS.setdefault(stage.name, None)      # its config section is the stage's own to check
    return stage
