"""Every training stage and generation on a CUDA GPU at a config's model sizes (default: paper.yaml), shortened to a
few steps per stage on a small real data set; prints JSON: wall time, steady-state seconds per step and peak GPU
memory per stage, then generation speed (real-time factor) of a one-minute song on the GPU and the CPU, with the run's
bundle and with the bundled default.

    python bench/bench_gpu.py [--config training/configs/paper.yaml] [--data DIR] [--steps 40] [--out F.json]

Without --data (or when it has no train.npz) it builds a small bundle from the real data folder
($E3D2_DATA, else data/real): two CMU salsa takes and one AIST++ clip on one loop, music features of the
config's kind. Throughput does not depend on how much data there is; dance quality is not measured here.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SONG = REPO / "assets" / "music" / "Kevin_MacLeod_-_Vibe_Ace.hq.ogg"     # about a minute of music
CLIPS = {"cmu_60_01", "cmu_61_01", "aist_gBR_sBM_cAll_d04_mBR0_ch02_slice0", "cmu_60_13", "cmu_60_14"}


def shortened(config: dict, data: Path, steps: int) -> dict:
    """``config`` with its models kept and every stage cut to a few steps."""
    config = copy.deepcopy(config)
    config["data"] = {**config["data"], "dir": str(data)}
    config["device"] = "cuda"
    config.pop("threads", None)
    for stage in ("vqvae", "bc"):
        train = config[stage]["train"]
        train.pop("epochs", None)
        train.pop("schedule", None)
        train.update(steps=steps, checkpoint_every=steps, log_every=max(1, steps // 4))
    config["demos"] = {**config.get("demos", {}), "takes": 2, "held_out_takes": 4, "max_steps": 64}
    config["reward"]["train"] = {**config["reward"].get("train", {}), "steps": steps, "eval_every": steps,
                                 "max_len": 16, "min_len": 8}
    # window 32: the bench's loop is 52 code steps long
    config["rl"] = {**config.get("rl", {}), "iterations": 3, "window": 32, "eval_every": 3, "eval_steps": 64,
                    "checkpoint_every": 3, "snapshot_steps": []}
    config["report"] = {**config.get("report", {}), "samples": 2, "resamples": 50}
    return config


def steady_seconds_per_step(metrics: Path) -> float | None:
    """Seconds per step between the first and the last logged step (the first steps include CUDA warm-up)."""
    rows = [row for row in map(json.loads, metrics.read_text().splitlines()) if "seconds" in row and "step" in row]
    if len(rows) < 2 or rows[-1]["step"] == rows[0]["step"]:
        return None
    return (rows[-1]["seconds"] - rows[0]["seconds"]) / (rows[-1]["step"] - rows[0]["step"])


def time_generation(bundle: Path, song: Path, device: str, precision: str) -> dict:
    from e3d2_core.api import generate
    generate(song, seconds=2.0, checkpoint=bundle, device=device, precision=precision)       # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    dance = generate(song, checkpoint=bundle, device=device, precision=precision, seed=1)
    wall = time.perf_counter() - start
    seconds = len(dance.poses) / dance.fps
    return {"device": device, "precision": precision, "music_s": round(seconds, 2), "wall_s": round(wall, 3),
            "real_time_factor": round(seconds / wall, 1)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=str(REPO / "training" / "configs" / "paper.yaml"))
    parser.add_argument("--data", type=Path)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu: torch sees no CUDA GPU here; run it on a GPU machine", file=sys.stderr)
        return 2
    from e3d2_core.checkpoint import default_checkpoint
    from e3d2_core.commands.train import load_config
    from e3d2_core.training import stages
    from training import prepare_bundled

    base = load_config(args.config)
    result = {"config": Path(args.config).name, "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
              "steps_per_stage": args.steps, "stages": {}}
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp) / "data"
        if not (data / "train.npz").is_file():
            began = time.perf_counter()
            prepare_bundled.prepare(data, kind=base["music"]["kind"], held_out="loop_breakbeat",
                                    songs={"loop_amen_full"}, clips=CLIPS, max_clip_seconds=12, min_song=15,
                                    songs_per_clip=1, progress=False)
            result["data_prepare_s"] = round(time.perf_counter() - began, 1)
        config = shortened(base, data, args.steps)
        run = Path(tmp) / "run"
        options = stages.StageOptions(resume=False, device="cuda", progress=False)
        for stage in sorted(stages.STAGES.values(), key=lambda s: s.order):
            torch.cuda.reset_peak_memory_stats()
            began = time.perf_counter()
            stages.run_stage(stage.name, config, run, options)
            torch.cuda.synchronize()
            entry = {"wall_s": round(time.perf_counter() - began, 2),
                     "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)}
            metrics = run / stage.name / "metrics.jsonl"
            if metrics.is_file():
                entry["s_per_step"] = steady_seconds_per_step(metrics)
            result["stages"][stage.name] = entry
        result["generation"] = {
            name: [time_generation(bundle, SONG, device, precision)
                   for device, precision in (("cuda", "bf16"), ("cuda", "fp32"), ("cpu", "fp32"))]
            for name, bundle in (("this_run", run / "model.pt"), ("bundled_default", default_checkpoint()))}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
