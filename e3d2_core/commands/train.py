"""``e3d2 train STAGE --config C.yaml --run DIR [--resume]``: run one training stage, or all of them."""
from __future__ import annotations

from pathlib import Path

HELP = "train a stage of the pipeline (vqvae, bc, bundle, ... or all) from a YAML config"
DESCRIPTION = """\
Train one stage of the E3D2 pipeline into a run folder, or every registered stage in order with `all`.

  e3d2 train vqvae --config training/configs/tiny.yaml --run runs/tiny
  e3d2 train bc    --config training/configs/tiny.yaml --run runs/tiny
  e3d2 train all   --config training/configs/tiny.yaml --run runs/tiny      (skips finished stages)

Each stage checkpoints as it goes; after a kill, repeat the command with --resume (`all` always resumes).
Several GPUs: torchrun --nproc_per_node N -m e3d2_core.cli train STAGE ... (see docs/training.md).
"""


def add_arguments(parser) -> None:
    parser.add_argument("stage", help="stage name (vqvae, bc, bundle, and stages other parts add) or 'all'")
    parser.add_argument("--config", required=True, help="YAML config, e.g. training/configs/tiny.yaml")
    parser.add_argument("--run", required=True, help="run folder (created if needed)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted stage from its checkpoint")
    parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    parser.add_argument("--data", help="training data folder (train.npz, val.npz); overrides the config's data.dir")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--reward", choices=("learned", "hand"), default="learned",
                        help="for the rl stage: R_θ (default) or the hand-designed reward (Table 3 ablation, "
                             "the same as stage rl_hand)")


def load_config(path) -> dict:
    """Read a training config (YAML mapping) with a one-line error for anything unreadable or any unknown key."""
    import yaml
    from e3d2_core.errors import E3D2Error
    from e3d2_core.training.config_keys import check_config
    path = Path(path)
    if not path.is_file():
        raise E3D2Error("no such config file", path=path)
    try:
        config = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise E3D2Error(f"not a valid YAML config ({type(err).__name__})", path=path) from None
    if not isinstance(config, dict) or "data" not in config:
        raise E3D2Error("a training config is a YAML mapping with at least a 'data' section", path=path)
    check_config(config, source=path)
    return config


def run(args) -> int:
    from e3d2_core.errors import E3D2Error
    from e3d2_core.training import stages

    config = load_config(args.config)
    if args.data:
        config["data"] = {**config["data"], "dir": args.data}
    if args.device not in ("auto", "cpu", "cuda"):
        raise E3D2Error(f"unknown device {args.device!r}; use auto, cpu or cuda")
    options = stages.StageOptions(resume=args.resume, device=args.device, progress=not args.no_progress)
    if args.stage == "all":
        ran = stages.run_all(config, Path(args.run), options)
        print(f"stages run: {', '.join(ran) or 'none (all finished)'}; model: {Path(args.run) / 'model.pt'}")
    else:
        stage = "rl_hand" if args.stage == "rl" and args.reward == "hand" else args.stage
        output = stages.run_stage(stage, config, Path(args.run), options)
        print(f"{args.stage}: wrote {output}")
    return 0
