"""How much of the motion does the choreographic memory keep? Prints one JSON object.

    python bench/bench_memory_speed.py [--checkpoint B.pt | --run RUN] [--data data/bundled] [--windows 16]

Real training windows (the recipe's ``train.npz``, up to 16 s each) are encoded to codes and decoded again by the
VQ-VAE of a bundle (default: the bundled one) or of a run's ``vqvae`` stage (finished, or its newest trainer
checkpoint while it trains). For the originals and the reconstructions, with and without the decoder's output
smoothing: mean joint speed (m/s, all 24 joints), root speed, and joint speed relative to the pelvis; ``kept`` is
reconstructed over original. The policies choose among codes, so no dance can move faster than its memory lets
it: a memory that halves the joint speed halves the dance's (docs/music-following.md).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from e3d2_core.errors import E3D2Error  # noqa: E402
from e3d2_core.models.vqvae import ChoreographicMemory  # noqa: E402
from e3d2_core.motion import Motion  # noqa: E402

FPS = 60.0


def load_memory(checkpoint: str | None, run: str | None) -> tuple[ChoreographicMemory, str]:
    """(the VQ-VAE in eval mode, where it came from)."""
    if run:
        import yaml

        from e3d2_core.training.stage_common import OUTPUTS, load_stage_output
        stage = Path(run) / "vqvae"
        if (Path(run) / OUTPUTS["vqvae"]).is_file():
            part = load_stage_output(Path(run), "vqvae")["vqvae"]
            config, state, source = part["config"], part["state_dict"], str(Path(run) / OUTPUTS["vqvae"])
        else:
            from e3d2_core.training.trainer import load_latest_checkpoint
            trainer = load_latest_checkpoint(stage / "checkpoints")       # weights-only, the trainer's own reader
            if trainer is None:
                raise E3D2Error("the run has no VQ-VAE output or checkpoint yet", path=stage)
            config = yaml.safe_load((stage / "config.yaml").read_text())["vqvae"]["model"]
            state, source = trainer["model"], f"{stage / 'checkpoints'} (step {trainer['step']})"
    else:
        from e3d2_core.checkpoint import default_checkpoint, load_bundle
        path = checkpoint or default_checkpoint()
        part = load_bundle(path, require=("vqvae",))["vqvae"]
        config, state, source = part["config"], part["state_dict"], str(path)
    model = ChoreographicMemory(dict(config))
    model.load_state_dict(state)
    return model.eval(), source


def speeds(poses: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """(joint, root, pelvis-relative) mean speeds in m/s of a dance."""
    joints = Motion(poses, trans, FPS).joints()
    step = np.diff(joints, axis=0) * FPS
    relative = np.diff(joints - joints[:, :1], axis=0) * FPS
    return np.array([np.linalg.norm(step, axis=-1).mean(), np.linalg.norm(step[:, 0], axis=-1).mean(),
                     np.linalg.norm(relative, axis=-1).mean()])


def measure(model: ChoreographicMemory, sequences, *, windows: int, seconds: float, seed: int) -> dict:
    picks = np.random.default_rng(seed).permutation(len(sequences))
    frames_max = int(seconds * FPS) // model.downsample * model.downsample
    rows = {"original": [], "reconstructed": [], "reconstructed_unsmoothed": []}
    smoothing = float(model.config["output_smoothing"])
    for i in picks:
        if len(rows["original"]) >= windows:
            break
        seq = sequences[i]
        frames = min(seq.num_frames, frames_max) // model.downsample * model.downsample
        if frames < 4 * FPS:
            continue
        poses, trans = seq.poses[:frames], seq.trans[:frames]
        rows["original"].append(speeds(poses, trans))
        up, down = model.encode(torch.as_tensor(poses[None], dtype=torch.float32),
                                torch.as_tensor(trans[None], dtype=torch.float32))
        for key, sigma in (("reconstructed", smoothing), ("reconstructed_unsmoothed", 0.0)):
            model.config["output_smoothing"] = sigma
            out_poses, out_trans = model.decode(up, down, init_trans=torch.as_tensor(trans[0], dtype=torch.float32))
            rows[key].append(speeds(out_poses[0].numpy(), out_trans[0].numpy()))
        model.config["output_smoothing"] = smoothing
    if not rows["original"]:
        raise E3D2Error("no training window of at least 4 s to measure")
    means = {key: np.mean(value, axis=0) for key, value in rows.items()}
    result = {"windows": len(rows["original"]), "output_smoothing": smoothing}
    for key, value in means.items():
        result[key] = {"joint_speed": round(float(value[0]), 4), "root_speed": round(float(value[1]), 4),
                       "pelvis_relative_speed": round(float(value[2]), 4)}
        if key != "original":
            result[key]["kept"] = {name: round(float(value[k] / means["original"][k]), 3)
                                   for k, name in enumerate(("joint", "root", "pelvis_relative"))}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", help="model bundle (default: the bundled one)")
    source.add_argument("--run", help="a training run folder: its vqvae stage (or newest checkpoint)")
    parser.add_argument("--data", default=str(ROOT / "data" / "bundled"), help="the recipe's output folder")
    parser.add_argument("--windows", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=16.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from e3d2_core.training.data import load_shard
    torch.set_num_threads(1)
    try:
        model, source_text = load_memory(args.checkpoint, args.run)
        shard = Path(args.data) / "train.npz"
        if not shard.is_file():
            raise E3D2Error("no train.npz: build the data with python training/prepare_bundled.py -o DIR",
                            path=args.data)
        with torch.no_grad():
            result = measure(model, load_shard(shard).sequences, windows=args.windows, seconds=args.seconds,
                             seed=args.seed)
    except E3D2Error as err:
        print(f"bench_memory_speed: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"memory": source_text, **result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
