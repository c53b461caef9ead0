"""Measure the beat guide's tables of a finished model bundle and store them in it (atomically).

    python training/add_beat_guide.py assets/e3d2_default.pt --data data/bundled [--takes 4] [--max-codes 240]

New runs get the tables from the ``guide`` training stage; this adds them to a bundle trained before it existed.
The training split's songs are used (one track per song), never the held-out ones.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e3d2_core import checkpoint as ckpt  # noqa: E402
from e3d2_core.errors import E3D2Error  # noqa: E402
from e3d2_core.training.data import load_shard  # noqa: E402
from e3d2_core.training.guide import guide_from_shards, policies_of  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--data", type=Path, default=Path("data/bundled"), help="folder with train.npz")
    parser.add_argument("--takes", type=int, default=4)
    parser.add_argument("--max-codes", type=int, default=240)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        bundle = ckpt.load_bundle(args.bundle)
        vqvae = ckpt.build_model(bundle, "vqvae", args.bundle)
        entry = guide_from_shards(vqvae, policies_of(bundle), [load_shard(args.data / "train.npz")],
                                  bundle["music"]["mean"], bundle["music"]["std"], takes=args.takes,
                                  max_codes=args.max_codes)
        bundle["beat_guide"] = entry
        ckpt.save_bundle(args.bundle, bundle)
    except E3D2Error as err:
        print(f"e3d2: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps({"bundle": str(args.bundle), "songs": entry["songs"], "takes": entry["takes"],
                      "speed_scale": round(entry["speed_scale"], 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
