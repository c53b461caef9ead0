"""Time `e3d2 train all` (every stage: vqvae -> bc -> demos -> reward -> rl -> report -> bundle) for a config on
the bundled data, stage by stage; prints JSON with the total against a goal (tiny.yaml: 15 minutes on 2 cores).

    python bench/bench_training.py [--config training/configs/tiny.yaml] [--data data/bundled] [--goal-minutes 15]

Builds the bundled data first when --data has no train.npz (training/prepare_bundled.py, a few minutes).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=str(REPO / "training" / "configs" / "micro.yaml"))
    parser.add_argument("--data", default=str(REPO / "data" / "bundled"))
    parser.add_argument("--goal-minutes", type=float, default=15.0)
    args = parser.parse_args()
    from e3d2_core.cli import main as cli
    from e3d2_core.training import stages
    if not (Path(args.data) / "train.npz").is_file():
        from training import prepare_bundled
        prepare_bundled.prepare(Path(args.data), progress=False)
    with tempfile.TemporaryDirectory() as run:
        start = time.perf_counter()
        cpu = time.process_time()
        stage_seconds, code = {}, 0
        for stage in sorted(stages.STAGES.values(), key=lambda s: s.order):   # what `train all` runs, timed
            began = time.perf_counter()
            code = cli(["train", stage.name, "--config", args.config, "--run", run, "--data", args.data,
                        "--no-progress"])
            stage_seconds[stage.name] = round(time.perf_counter() - began, 1)
            if code:
                break
        wall = time.perf_counter() - start
        result = {"config": Path(args.config).name, "exit": code, "wall_s": round(wall, 1),
                  "goal_s": args.goal_minutes * 60, "within_goal": bool(code == 0 and wall <= args.goal_minutes * 60),
                  "cpu_s": round(time.process_time() - cpu, 1), "load_avg_1min": round(os.getloadavg()[0], 2),
                  "stage_wall_s": stage_seconds, "stages": {}}
        for stage in ("vqvae", "bc"):
            lines = (Path(run) / stage / "metrics.jsonl").read_text().splitlines()
            last = json.loads(lines[-1])
            summary = json.loads((Path(run) / stage / "summary.json").read_text())
            result["stages"][stage] = {"steps": last["step"], "train_s": last["seconds"],
                                       "s_per_step": round(last["seconds"] / last["step"], 4),
                                       "val": summary.get("val")}
    print(json.dumps(result, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
