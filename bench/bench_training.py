"""Time `e3d2 train all` (vqvae + bc + bundle) for a config on the bundled data; prints JSON.

    python bench/bench_training.py [--config training/configs/micro.yaml] [--data data/bundled]

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
    args = parser.parse_args()
    from e3d2_core.cli import main as cli
    if not (Path(args.data) / "train.npz").is_file():
        from training import prepare_bundled
        prepare_bundled.prepare(Path(args.data), progress=False)
    with tempfile.TemporaryDirectory() as run:
        start = time.perf_counter()
        cpu = time.process_time()
        code = cli(["train", "all", "--config", args.config, "--run", run, "--data", args.data, "--no-progress"])
        result = {"config": Path(args.config).name, "exit": code, "wall_s": round(time.perf_counter() - start, 1),
                  "cpu_s": round(time.process_time() - cpu, 1), "load_avg_1min": round(os.getloadavg()[0], 2),
                  "stages": {}}
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
