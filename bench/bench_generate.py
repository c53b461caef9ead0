"""Benchmark dance generation on the CPU: real-time factor, batched takes, lighter weights, peak memory (JSON).

    python bench/bench_generate.py [--sizes small,paper] [--threads 2] [--memory-seconds 60,600]

Random weights (speed does not depend on training). Per size it measures, per code step (8 frames = 1/7.5 s):
* ``window_fp32``: Bailando's way, re-running the policy over the last 29 steps for every new code;
* ``cache_fp32`` / ``cache_bf16`` / ``cache_int8``: the streaming policy with its KV cache (one step = 3 tokens);
* VQ-VAE decoding per code (chunked, fp32 and bf16);
real-time factor = (seconds of music per code) / (policy step + decoding per code); batched takes; how close the
lighter paths stay to fp32 (teacher-forced logits: max difference, top-1 agreement). Peak RSS is measured in a fresh
subprocess per song length with the paper-size model on synthetic code-rate music features.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e3d2_core.generation import (generate_motions, native_bf16, policy_for_inference,  # noqa: E402
                                  vqvae_for_inference)
from e3d2_core.models.policy import DancePolicy  # noqa: E402
from e3d2_core.models.vqvae import ChoreographicMemory  # noqa: E402

SIZES = {
    "small": ({"codebook_size": 256, "code_dim": 128, "width": 128},
              {"n_layer": 6, "n_head": 8, "n_embd": 256, "vocab": 256}),
    "paper": ({}, {}),      # DEFAULT_CONFIGs: 512×512 codebooks, width 512; 12 layers × 768, 12 heads, band 28
}
SECONDS_PER_CODE = 8 / 60.0


def build(size: str, seed: int = 0):
    torch.manual_seed(seed)
    vq_cfg, pol_cfg = SIZES[size]
    vq = ChoreographicMemory(vq_cfg).eval()
    for codebook in (vq.vq_up, vq.vq_down):          # random weights: give the codebook a realistic spread
        torch.nn.init.normal_(codebook.codebook)
    pol = DancePolicy({**pol_cfg, "dropout": 0.0}).eval()
    return vq, pol


def _timed(fn, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


@torch.no_grad()
def window_step_seconds(policy, repeats=4) -> float:
    """Bailando: every new code re-runs the whole 29-step window (uncached)."""
    d = policy.config["music_dim"]
    music, codes = torch.randn(1, 29, d), torch.randint(0, policy.config["vocab"], (1, 29))
    policy.logits(music, codes, codes)
    return _timed(lambda: policy.logits(music, codes, codes), repeats)


@torch.no_grad()
def cached_step_seconds(policy, batch=1, repeats=10, dtype=torch.float32) -> float:
    d, band = policy.config["music_dim"], policy.config["band"]
    state = policy.start(batch)
    music = torch.randn(batch, d, dtype=dtype)
    codes = torch.zeros(batch, dtype=torch.long)
    for _ in range(band):                                # fill the cache: steady-state cost
        policy.step(state, music, codes, codes)
    return _timed(lambda: policy.step(state, music, codes, codes), repeats)


@torch.no_grad()
def decode_seconds_per_code(vq, codes=256) -> float:
    up = torch.randint(0, vq.config["codebook_size"], (1, codes))
    chunk = vq.config["decode_chunk"]
    list(vq.decode_chunks(up[:, :chunk], up[:, :chunk]))      # warm-up (primitive creation)
    start = time.perf_counter()
    list(vq.decode_chunks(up, up))
    return (time.perf_counter() - start) / codes


@torch.no_grad()
def closeness(policy, light, steps=40, seed=1) -> dict:
    """Teacher-forced on fp32's greedy codes: how far the lighter policy's logits are from fp32's."""
    g = torch.Generator().manual_seed(seed)
    d = policy.config["music_dim"]
    music = torch.randn(steps, d, generator=g)
    ref_state, light_state = policy.start(1), light.start(1)
    up = down = torch.zeros(1, dtype=torch.long)
    worst, agree, spread = 0.0, 0, 0.0
    for i in range(steps):
        ru, rd = policy.step(ref_state, music[i:i + 1], up, down)
        lu, ld = light.step(light_state, music[i:i + 1], up, down)
        worst = max(worst, (lu - ru).abs().max().item(), (ld - rd).abs().max().item())
        spread = max(spread, ru.std().item())
        agree += int(lu.argmax() == ru.argmax()) + int(ld.argmax() == rd.argmax())
        up, down = ru.argmax(-1), rd.argmax(-1)
    return {"max_abs_logit_diff": worst, "fp32_logit_std": spread, "top1_agreement": agree / (2 * steps)}


def bench_size(size: str, takes: int) -> dict:
    vq, pol = build(size)
    cpu = torch.device("cpu")
    out = {"policy_params_M": sum(p.numel() for p in pol.parameters()) / 1e6,
           "vqvae_params_M": sum(p.numel() for p in vq.parameters()) / 1e6}
    bf16, int8 = policy_for_inference(pol, "bf16", cpu), policy_for_inference(pol, "int8", cpu)
    vq_bf16 = vqvae_for_inference(vq, "bf16", cpu)
    step = {"window_fp32": window_step_seconds(pol),
            "cache_fp32": cached_step_seconds(pol),
            "cache_bf16": cached_step_seconds(bf16, dtype=torch.bfloat16),
            "cache_int8": cached_step_seconds(int8)}
    decode = {"fp32": decode_seconds_per_code(vq), "bf16": decode_seconds_per_code(vq_bf16)}
    out["step_ms"] = {k: 1000 * v for k, v in step.items()}
    out["decode_ms_per_code"] = {k: 1000 * v for k, v in decode.items()}
    out["realtime_factor"] = {
        "window_fp32 (Bailando)": SECONDS_PER_CODE / (step["window_fp32"] + decode["fp32"]),
        "cache_fp32": SECONDS_PER_CODE / (step["cache_fp32"] + decode["fp32"]),
        "cache_bf16 (+bf16 decode)": SECONDS_PER_CODE / (step["cache_bf16"] + decode["bf16"]),
        "cache_int8 (+fp32 decode)": SECONDS_PER_CODE / (step["cache_int8"] + decode["fp32"]),
        "cache_int8 (+bf16 decode)": SECONDS_PER_CODE / (step["cache_int8"] + decode["bf16"]),
        "policy_only_cache_bf16": SECONDS_PER_CODE / step["cache_bf16"],
        "policy_only_cache_int8": SECONDS_PER_CODE / step["cache_int8"],
    }
    batched = cached_step_seconds(bf16, batch=takes, dtype=torch.bfloat16)
    out["batched_takes_bf16"] = {"takes": takes, "step_ms": 1000 * batched,
                                 "policy_ms_per_take": 1000 * batched / takes,
                                 "realtime_factor_per_take": SECONDS_PER_CODE / (batched / takes + decode["bf16"])}
    out["closeness_to_fp32"] = {"bf16": closeness(pol, bf16), "int8": closeness(pol, int8)}
    return out


def memory_child(seconds: float, size: str, precision: str) -> None:
    """Run one generation and print the peak RSS (MB) as JSON (called in a fresh process)."""
    vq, pol = build(size)
    cpu = torch.device("cpu")
    codes = int(seconds / SECONDS_PER_CODE)
    music = torch.randn(codes, pol.config["music_dim"])
    start = time.perf_counter()
    motions = generate_motions(vqvae_for_inference(vq, precision, cpu, copy_model=False),
                               policy_for_inference(pol, precision, cpu, copy_model=False), music)
    elapsed = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "frames": motions[0].num_frames, "wall_s": elapsed,
                      "realtime_factor": seconds / elapsed,
                      "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="small,paper")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--takes", type=int, default=4)
    parser.add_argument("--memory-seconds", default="60,600")
    parser.add_argument("--memory-size", default="paper")
    parser.add_argument("--memory-precision", default="bf16" if native_bf16(torch.device("cpu")) else "fp32")
    parser.add_argument("--checkpoint", help="also measure closeness to fp32 on this trained bundle's policy")
    parser.add_argument("--_child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args._child is not None:
        memory_child(args._child, args.memory_size, args.memory_precision)
        return
    report = {"threads": args.threads, "torch": torch.__version__, "native_bf16": native_bf16(torch.device("cpu")),
              "load_average_start": os.getloadavg(), "seconds_per_code": SECONDS_PER_CODE, "sizes": {}}
    for size in [s for s in args.sizes.split(",") if s]:
        report["sizes"][size] = bench_size(size, args.takes)
    if args.checkpoint:
        from e3d2_core.checkpoint import build_generator_models, load_bundle
        _, trained = build_generator_models(load_bundle(args.checkpoint), args.checkpoint)
        cpu = torch.device("cpu")
        report["trained_closeness_to_fp32"] = {
            "checkpoint": args.checkpoint,
            **{p: closeness(trained, policy_for_inference(trained, p, cpu), steps=100) for p in ("bf16", "int8")}}
    memory = {}
    for seconds in [float(s) for s in args.memory_seconds.split(",") if s]:
        cmd = [sys.executable, __file__, "--_child", str(seconds), "--threads", str(args.threads),
               "--memory-size", args.memory_size, "--memory-precision", args.memory_precision]
        result = subprocess.run(cmd, capture_output=True, text=True, check=True)
        memory[f"{seconds:g}s"] = json.loads(result.stdout.strip().splitlines()[-1])
    if memory:
        peaks = [m["peak_rss_MB"] for m in memory.values()]
        report["memory"] = {"size": args.memory_size, "precision": args.memory_precision, "runs": memory,
                            "peak_ratio_last_to_first": peaks[-1] / peaks[0]}
    report["load_average_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
