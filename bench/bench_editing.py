"""Benchmark editing with the bundled model: seams, R_θ of regenerated ranges, constraints, speed (JSON).

    python bench/bench_editing.py [--threads 1] [--cases 8] [--seeds 4] [--seed-count 8] [--only all|seams]

On the first 10 s of the bundled song "Vibe Ace" and the bundled real dance (tests/data: the CMU salsa clip read
at 60 fps, the capture's real rate -- its file says 120 -- and the five AIST++ slices at 30 fps, imported by IK):

* ``reference``: real dance's 99th percentiles of joint speed (m/s) and acceleration (m/s²), each clip at its
  own rate (the CMU clip and the AIST++ joint positions as captured);
* ``seams_per_seed``: seed by seed, extensions and regenerated ranges of the salsa and the AIST++ slices (as
  the tests check them): the seams at T0 and at the blend's end next to the unedited dance there, and the
  largest acceleration inside each 0.5 s transition over what the joined motions do nearby;
* ``seams``: ``cases`` random ranges per real dance, 2 takes each: the 99th percentile and the share above the
  reference of every joint's speed and acceleration across the seams at the range's start and at the blend's
  end, next to the same numbers for the unedited dance at the same frames; a hard cut (blend 0) as control;
* ``reward``: R_θ per minute of [1.5 s, 8.5 s) regenerated (3 takes) in fresh dances (12 per seed) against the
  fresh dances' own, per seed, and for the real dances against fresh generation;
* ``constraints``: kept joints' largest error (cm) and key poses' mean joint error (cm);
* ``speed``: seconds per edit on this machine's CPU.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from e3d2_core import api, editing, scoring  # noqa: E402
from e3d2_core.constraints import PoseTarget, kept_joints  # noqa: E402
from e3d2_core.io import load_joint_track, load_motion_file  # noqa: E402
from e3d2_core.metrics import smoothness  # noqa: E402

DATA = ROOT / "tests" / "data"
SONG = ROOT / "assets" / "music" / "Kevin_MacLeod_-_Vibe_Ace.hq.ogg"


def song_clip(folder: Path, seconds: float = 10.0) -> Path:
    import soundfile

    rate = soundfile.info(str(SONG)).samplerate
    data, rate = soundfile.read(str(SONG), frames=int(seconds * rate), always_2d=True)
    path = folder / "vibe_ace_10s.wav"
    soundfile.write(str(path), data, rate, subtype="PCM_16")
    return path


def real_dances():
    cmu = load_motion_file(DATA / "cmu_salsa_60_01_clip.bvh", fps=60.0)
    slices = sorted((DATA / "aistpp").glob("*.csv"))
    return cmu, [load_motion_file(p, fps=30.0, up="z") for p in slices], \
        [(cmu.joints(), 60.0)] + [(load_joint_track(p, fps=30.0, up="z")[0], 30.0) for p in slices]


def seam_values(joints, fps, frame):
    speeds = np.linalg.norm(joints[frame] - joints[frame - 1], axis=-1) * fps
    accelerations = [np.linalg.norm(joints[t + 1] - 2 * joints[t] + joints[t - 1], axis=-1) * fps * fps
                     for t in (frame - 1, frame) if 1 <= t < len(joints) - 1]
    return speeds, np.concatenate(accelerations)


def summary(values, reference):
    values = np.concatenate(values)
    return {"p99": round(float(np.percentile(values, 99)), 3), "share_above_reference_pct":
            round(100.0 * float((values > reference).mean()), 3), "max": round(float(values.max()), 3)}


def seams(dances, clip, generator, reference, cases, rng):
    out = {}
    for name, group in dances.items():
        edited = {k: {"v": [], "a": []} for k in ("start", "end")}
        unedited = {k: {"v": [], "a": []} for k in ("start", "end")}
        cut, root = [], []
        for dance in group:
            before = dance.joints()
            for _ in range(cases):
                start = float(rng.uniform(0.5, dance.duration - 2.5))
                end = start + float(rng.uniform(1.0, 1.8))
                for take in editing.regenerate(dance, clip, start=start, end=end, seed=3, takes=2,
                                               generator=generator):
                    joints = take.joints()
                    for side, frame in zip(("start", "end"), take.meta["edit"]["frames"]):
                        if frame >= len(joints) - 1:
                            continue
                        for into, source in ((edited, joints), (unedited, before)):
                            v, a = seam_values(source, take.fps, frame)
                            into[side]["v"].append(v), into[side]["a"].append(a)
                        root.append(float(np.linalg.norm(joints[frame, 0] - joints[frame - 1, 0]) * take.fps))
                hard = editing.regenerate(dance, clip, start=start, end=end, seed=3, blend=0.0, generator=generator)
                cut.append(seam_values(hard.joints(), hard.fps, hard.meta["edit"]["frames"][1])[1])
        out[name] = {side: {"edited": {"speed": summary(edited[side]["v"], reference["speed"]),
                                       "acceleration": summary(edited[side]["a"], reference["acceleration"])},
                            "unedited_same_frames": {
                                "speed": summary(unedited[side]["v"], reference["speed"]),
                                "acceleration": summary(unedited[side]["a"], reference["acceleration"])}}
                     for side in ("start", "end")}
        out[name]["root_speed_across_seams_max"] = round(max(root), 3)
        out[name]["hard_cut_acceleration"] = summary(cut, reference["acceleration"])
        out[name]["seams"] = sum(len(v) for v in edited["start"]["v"]) // 24 + sum(len(v) for v in edited["end"]["v"]) // 24
    return out


def _seam(motion, frame, source=None, source_frame=None):
    joints = motion.joints()
    seam = smoothness.seam(joints, motion.fps, frame)
    out = {"speed": round(seam["speed"], 3), "acceleration": round(seam["acceleration"], 2),
           "root_speed": round(seam["root_step"] * motion.fps, 3)}
    if source is not None:
        own = smoothness.seam(source.joints(), source.fps, frame if source_frame is None else source_frame)
        out["unedited_speed"], out["unedited_acceleration"] = round(own["speed"], 3), round(own["acceleration"], 2)
    return out


def _transition(motion, lo, hi, near, reference):
    """Largest joint acceleration inside frames [lo, hi), over the most the joined motions do nearby (or p99)."""
    inside = smoothness.joint_accelerations(motion.joints()[max(lo - 1, 0):hi + 1], motion.fps).max()
    bound = max([reference["acceleration"]] + [smoothness.joint_accelerations(j, motion.fps).max()
                                               for j in near if len(j) > 2])
    return round(float(inside / bound), 3)


def seams_per_seed(clip, generator, reference, cmu, aist, seeds):
    """Seed by seed, as the tests check them: extensions of the salsa's first 5 s by 3 s (seeds 7, 8, …) and of
    AIST++ slice ``seed % 5`` by 2 s; a regenerated range drawn from ``default_rng(seed)`` in the salsa and in
    slice ``seed % 5``. Seams at T0 and at the blend's end (with the unedited dance at the same frames, or for
    an extension its last step), and the transition ratio: the largest acceleration inside the 0.5 s ease or
    blend over the most the joined motions do nearby."""
    out = {"extend_cmu": [], "extend_aist": [], "regenerate_cmu": [], "regenerate_aist": []}
    dance = cmu.trim(0, 300)
    for seed in range(7, 7 + seeds):
        longer = editing.extend(dance, clip, seconds=3.0, seed=seed, generator=generator)
        out["extend_cmu"].append({"seed": seed, **_seam(longer, 300, dance, 299), "transition": _transition(
            longer, 300, 330, [longer.joints()[330:360], dance.joints()[-12:]], reference)})
    for seed in range(seeds):
        dance = aist[seed % 5]
        n = dance.num_frames
        longer = editing.extend(dance, clip, seconds=2.0, seed=seed, generator=generator)
        out["extend_aist"].append({"seed": seed, "slice": seed % 5, **_seam(longer, n, dance, n - 1),
                                   "transition": _transition(longer, n, n + 15, [longer.joints()[n + 15:n + 30],
                                                                                 dance.joints()[-6:]], reference)})
    for name, pick in (("regenerate_cmu", lambda k: cmu), ("regenerate_aist", lambda k: aist[k % 5])):
        for seed in range(seeds):
            dance = pick(seed)
            rng = np.random.default_rng(seed)
            start = float(rng.uniform(0.5, dance.duration - 2.5))
            end = start + float(rng.uniform(1.0, 1.8))
            take = editing.regenerate(dance, clip, start=start, end=end, seed=seed, generator=generator)
            i0, i1 = take.meta["edit"]["frames"]
            e, new, old = int(round(0.5 * dance.fps)), take.joints(), dance.joints()
            out[name].append({"seed": seed, "range_s": [round(start, 3), round(end, 3)],
                              "t0": {**_seam(take, i0, dance), "transition": _transition(
                                  take, i0, i0 + e, [new[i0 + e:i0 + 2 * e], old[i0 - 3:i0 + e]], reference)},
                              "blend_end": {**_seam(take, i1, dance), "transition": _transition(
                                  take, i1 - e, i1, [new[i1 - 2 * e:i1 - e], old[i1 - e:i1 + 3]], reference)}})
    return out


def reward(clip, generator, seeds, cmu, aist):
    model, entry = scoring.load_reward(None)
    music, _ = scoring.music_at_step_rate(clip, model, entry["music_kind"])
    start, end = 1.5, 8.5

    def per_minute(motion, lo, hi):
        values = np.asarray(scoring.score_arrays(model, scoring.motion_joints(motion, 60.0), music).values)
        values = values[int(np.floor(lo * 7.5)):int(np.ceil(hi * 7.5))]
        return float(values.sum() / (len(values) / 7.5 / 60.0))

    out = {"range_s": [start, end], "per_seed": []}
    for seed in range(seeds):
        fresh = api.generate(clip, seed=11 + 10 * seed, takes=12, beat_lock=0)   # edits continue the raw policy
        own = np.mean([per_minute(m, start, end) for m in fresh])
        regen = [t.meta["edit"]["reward_range_per_minute"] for m in fresh
                 for t in editing.regenerate(m, clip, start=start, end=end, seed=12 + seed, takes=3,
                                             generator=generator)]
        out["per_seed"].append({"fresh": round(float(own), 2), "regenerated": round(float(np.mean(regen)), 2),
                                "ratio": round(float(np.mean(regen) / own), 4)})
    fresh = api.generate(clip, seed=99, takes=24, beat_lock=0)
    real = {}
    for name, dance, lo, hi in (("cmu_salsa", cmu, 2.0, 6.0), ("aist_slice0", aist[0], 1.0, 4.0)):
        regen = [t.meta["edit"]["reward_range_per_minute"]
                 for t in editing.regenerate(dance, clip, start=lo, end=hi, seed=5, takes=24, generator=generator)]
        f = np.mean([per_minute(m, lo, hi) for m in fresh])
        real[name] = {"range_s": [lo, hi], "fresh": round(float(f), 2), "regenerated": round(float(np.mean(regen)), 2),
                      "ratio": round(float(np.mean(regen) / f), 4), "the_real_dance_itself": round(per_minute(dance, lo, hi), 2)}
    out["real_dance_context"] = real
    return out


def constraints(clip, generator, cmu, generated):
    out = {}
    for name, dance in (("cmu_salsa", cmu), ("generated", generated)):
        for keep in (["feet"], ["root"], ["left_wrist", "head"], ["feet", "root"], ["hands"]):
            takes = editing.regenerate(dance, clip, start=2.0, end=5.0, seed=4, takes=4, keep=keep,
                                       generator=generator)
            idx = list(kept_joints(keep, generator.skeleton))
            errors = []
            for take in takes:
                i0, i1 = take.meta["edit"]["frames"]
                errors.append(float(np.linalg.norm(take.joints()[i0:i1, idx] - dance.joints()[i0:i1, idx],
                                                   axis=-1).max() * 100))
            out[f"{name}/keep={'+'.join(keep)}_max_cm"] = round(max(errors), 4)
    for with_position in (True, False):
        target = PoseTarget.from_motion(4.0, generated, at=2.0, with_position=with_position)
        takes = editing.regenerate(cmu, clip, start=2.5, end=6.0, seed=6, takes=4, pose_targets=[target],
                                   generator=generator)
        out[f"pose_{'with' if with_position else 'without'}_position_mean_joint_cm"] = round(
            max(t.meta["edit"]["pose_error_cm"][0] for t in takes), 4)
    return out


def speed(clip, generator, generated):
    def timed(fn, repeats=3):
        fn()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        return round((time.perf_counter() - start) / repeats, 3)

    return {"regenerate_4s_1_take_s": timed(lambda: editing.regenerate(generated, clip, start=3.0, end=7.0,
                                                                        generator=generator)),
            "regenerate_4s_8_takes_s": timed(lambda: editing.regenerate(generated, clip, start=3.0, end=7.0,
                                                                         takes=8, generator=generator)),
            "regenerate_4s_keep_feet_1_take_s": timed(lambda: editing.regenerate(
                generated, clip, start=3.0, end=7.0, keep=["feet"], generator=generator), 1),
            "extend_5s_1_take_s": timed(lambda: editing.extend(generated.trim(0, 300), clip, seconds=5.0,
                                                                generator=generator)),
            "load_model_s": timed(editing.load_generator)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases", type=int, default=8, help="random ranges per real dance")
    parser.add_argument("--seeds", type=int, default=4, help="seeds of fresh dances for the R_θ comparison")
    parser.add_argument("--seed-count", type=int, default=8, help="seeds of the seam-by-seam section")
    parser.add_argument("--only", choices=("all", "seams"), default="all", help="seams: only the seam sections")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        clip = song_clip(Path(folder))
        generator = editing.load_generator()
        cmu, aist, tracks = real_dances()
        reference = smoothness.percentiles(tracks)
        generated = api.generate(clip, seed=1, beat_lock=0)
        rng = np.random.default_rng(1)
        result = {"device": "cpu", "threads": args.threads, "song": "first 10 s of Vibe Ace",
                  "reference_p99": {k: round(v, 3) for k, v in reference.items()},
                  "seams": seams({"cmu_salsa_60fps": [cmu], "aist_slices_30fps": aist}, clip, generator,
                                 reference, args.cases, rng),
                  "seams_per_seed": seams_per_seed(clip, generator, reference, cmu, aist, args.seed_count)}
        if args.only == "all":
            result.update({"reward": reward(clip, generator, args.seeds, cmu, aist),
                           "constraints": constraints(clip, generator, cmu, generated),
                           "speed": speed(clip, generator, generated)})
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
