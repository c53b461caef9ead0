"""Benchmark of the foundation: forward kinematics and music-feature extraction. Prints one JSON object.

FK: frames per second for a batch of 10,000 random poses (numpy float64; torch float32 on CPU, and on CUDA if
present). Features: extraction of the bundled 61.5-s song, uncached, decode included: frames per second and the
real-time factor (seconds of audio per second of compute), for Bailando 438-d at 60 and 7.5 fps and compact at
60 fps. Memory: peak traced (tracemalloc) allocation of a 60-s song against the same song looped to 600 s
(``--memory``; at 7.5 fps, and at 60 fps for 60 s against 180 s, to show chunking keeps it flat).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from e3d2_core import audio  # noqa: E402
from e3d2_core.paths import asset_path  # noqa: E402
from e3d2_core.skeleton import forward_kinematics, forward_kinematics_torch  # noqa: E402

SONG = asset_path("music/Kevin_MacLeod_-_Vibe_Ace.hq.ogg")


def best_of(fn, repeats=3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_fk(frames=10_000) -> dict:
    rng = np.random.default_rng(0)
    poses = rng.normal(scale=0.4, size=(frames, 24, 3))
    trans = rng.normal(size=(frames, 3))
    out = {"batch_frames": frames, "numpy_float64": frames / best_of(lambda: forward_kinematics(poses, trans))}
    p, t = torch.tensor(poses, dtype=torch.float32), torch.tensor(trans, dtype=torch.float32)
    with torch.no_grad():
        forward_kinematics_torch(p, t)
        out["torch_cpu_float32"] = frames / best_of(lambda: forward_kinematics_torch(p, t))
        if torch.cuda.is_available():
            pc, tc = p.cuda(), t.cuda()
            forward_kinematics_torch(pc, tc)

            def on_gpu():
                forward_kinematics_torch(pc, tc)
                torch.cuda.synchronize()
            out["torch_cuda_float32"] = frames / best_of(on_gpu)
    out["torch_threads"] = torch.get_num_threads()
    return {k: (round(v) if isinstance(v, float) else v) for k, v in out.items()}


def bench_features() -> dict:
    audio.extract_features(SONG, fps=7.5, cache=False)                 # warm-up: imports, numba JIT
    duration = audio.audio_duration(SONG)
    results = {"song": SONG.name, "song_seconds": round(duration, 2)}
    for name, fps, kind in [("bailando_60fps", 60.0, "bailando"), ("bailando_7.5fps", 7.5, "bailando"),
                            ("compact_60fps", 60.0, "compact")]:
        start = time.perf_counter()
        result = audio.extract_features(SONG, fps=fps, kind=kind, cache=False)
        seconds = time.perf_counter() - start
        results[name] = {"seconds": round(seconds, 2), "frames": result.features.shape[0],
                         "frames_per_s": round(result.features.shape[0] / seconds, 1),
                         "real_time_factor": round(duration / seconds, 2), "beats": len(result.beat_frames),
                         "tempo_bpm": round(result.tempo, 1)}
    audio.extract_features(SONG, fps=60.0, cache=True)                 # fills the cache
    start = time.perf_counter()
    audio.extract_features(SONG, fps=60.0, cache=True)
    results["cached_60fps_seconds"] = round(time.perf_counter() - start, 3)
    return results


def peak_memory_mb(path, fps) -> float:
    tracemalloc.start()
    audio.extract_features(path, fps=fps, cache=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return round(peak / 2 ** 20, 1)


def bench_memory() -> dict:
    import soundfile as sf
    samples, sr = sf.read(SONG, dtype="float32")
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        for seconds in (60, 180, 600):
            reps = int(np.ceil(seconds * sr / len(samples)))
            path = Path(folder) / f"song_{seconds}s.flac"
            sf.write(path, np.tile(samples, (reps, 1))[: seconds * sr], sr)
        out["peak_traced_MB_7.5fps"] = {f"{s}s": peak_memory_mb(Path(folder) / f"song_{s}s.flac", 7.5)
                                        for s in (60, 600)}
        out["peak_traced_MB_60fps"] = {f"{s}s": peak_memory_mb(Path(folder) / f"song_{s}s.flac", 60.0)
                                       for s in (60, 180)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--memory", action="store_true", help="also measure peak memory of long songs (slow)")
    args = parser.parse_args()
    os.environ.setdefault("E3D2_CACHE", tempfile.mkdtemp(prefix="e3d2-bench-cache-"))
    report = {"fk_frames_per_s": bench_fk(), "features": bench_features()}
    if args.memory:
        report["memory"] = bench_memory()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
