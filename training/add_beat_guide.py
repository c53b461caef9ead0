"""Give a finished model bundle the beat guide's tables, its repeat limit and π_beat (distilled on its guided
takes), in place.

    python training/add_beat_guide.py assets/e3d2_default.pt --data data/bundled [--takes 4] [--max-codes 240]
                                      [--distill-steps 600]   (0: the tables only) [--repeat-cost 1.0]   (0: none)

New runs get both from the ``guide`` and ``distill`` training stages (the settings of ``training/configs/default.yaml``
are the defaults here); this adds them to a bundle trained before they existed. The training split's songs are used
(one track per song), never the held-out ones. The bundle is rewritten atomically.
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
from e3d2_core.training.distill import beat_policy  # noqa: E402
from e3d2_core.repeat_limit import RepeatLimit  # noqa: E402
from e3d2_core.training.guide import guide_from_shards, policies_of, repeat_from_shards  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--data", type=Path, default=Path("data/bundled"), help="folder with train.npz")
    parser.add_argument("--takes", type=int, default=4)
    parser.add_argument("--max-codes", type=int, default=240)
    parser.add_argument("--distill-steps", type=int, default=600, help="π_beat's fine-tuning steps (0: none)")
    parser.add_argument("--repeat-cost", type=float, default=1.0,
                        help="logits per repeat of a code within 2 s beyond what the real training dances repeat "
                             "(0: none)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        bundle = ckpt.load_bundle(args.bundle)
        vqvae = ckpt.build_model(bundle, "vqvae", args.bundle)
        train = [load_shard(args.data / "train.npz")]
        policies = policies_of(bundle)
        mean, std = bundle["music"]["mean"], bundle["music"]["std"]
        entry = guide_from_shards(vqvae, policies, train, mean, std, takes=args.takes, max_codes=args.max_codes)
        bundle["beat_guide"] = entry
        repeat = None
        if args.repeat_cost > 0:
            bundle["repeat"] = repeat_from_shards(vqvae, train, cost=args.repeat_cost)
            repeat = RepeatLimit.from_entry(bundle["repeat"])
        if args.distill_steps > 0:
            bundle["policy_beat"] = beat_policy(vqvae, policies[-1], train, entry, mean, std,
                                                {"steps": args.distill_steps}, repeat=repeat)
        ckpt.save_bundle(args.bundle, bundle)
    except E3D2Error as err:
        print(f"e3d2: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps({"bundle": str(args.bundle), "songs": entry["songs"], "takes": entry["takes"],
                      "speed_scale": round(entry["speed_scale"], 4), "repeat": bundle.get("repeat"),
                      "policy_beat": bundle.get("policy_beat", {}).get("distilled")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
