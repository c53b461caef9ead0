"""Editing a dance on its own timeline: regenerate a range, continue past the end (``api.regenerate``/``extend``).

Any Motion works (generated, or imported mocap/BVH) as long as it is on the model's SMPL skeleton. Times are
seconds on the dance's timeline; the song plays from ``audio_offset`` seconds at the dance's frame 0.

How a range [start, end) is regenerated (the model works at its own 60 fps; the result keeps the dance's fps):

1. **Context.** The kept dance just before ``start`` (up to the policy's attention band, 28 code steps = 3.7 s)
   is encoded by the VQ-VAE into codes on a grid that ends exactly at ``start``.
2. **Continuation.** The policy reads those codes with their music (teacher forcing fills its KV cache, as if it
   had danced them itself) and then samples new codes on the same song through ``end`` plus the blend, every
   take in one batch. This is the seed-motion continuation of ``generate --seed-motion`` with the whole recent
   history instead of one first pose.
3. **Decoding** context and new codes together (the decoder sees across the seam), then the seams
   (:mod:`e3d2_core.blending`): the start is aligned and inertialised onto the kept dance (pose, velocity, root
   position and heading continuous), the root path is bent to arrive where the kept dance is at the end of the
   blend, key poses are added, and the new part is crossfaded into the kept dance over ``blend`` seconds after
   ``end``; then kept joints are held (:mod:`e3d2_core.constraints`).
4. **Splicing.** Frames outside [start, end + blend) are the input's own arrays, bit for bit; the frames inside
   are the new dance resampled to the input's frame rate. The result's ``meta["edit"]`` records what was done,
   R_θ's verdict on the takes and how well the constraints held.

Extending is the same with the range starting at the dance's end and no end seam.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from e3d2_core import blending
from e3d2_core.constraints import PoseTarget, hold_joints, kept_joints, snap_joints
from e3d2_core.errors import Cancelled, E3D2Error
from e3d2_core.motion import Motion
from e3d2_core.skeleton import NUM_JOINTS, Skeleton

DEFAULT_BLEND = 0.5          # seconds over which a regenerated range hands back to the kept dance
KEY_POSE_REACH = 1.0         # seconds before and after a key pose over which it is eased in and out
SKELETON_TOLERANCE = 0.005   # metres: rest offsets closer than this count as the same skeleton
EXTRA_STEPS = 2              # codes generated past the last needed frame, so the decoder's edge stays out of view


@dataclass
class Generator:
    """The parts of a bundle an edit needs, ready for inference."""

    vqvae: object
    policy: object
    music_cfg: dict
    skeleton: Skeleton
    meta: dict
    reward: object = None
    reward_kind: str = ""
    checkpoint: str = ""
    precision: str = "fp32"

    @property
    def fps(self) -> float:
        return float(self.vqvae.fps)

    @property
    def step(self) -> int:
        return int(self.vqvae.downsample)


@dataclass
class EditPlan:
    """Where an edit happens, in model frames (60 fps) of the resampled input and in the input's own frames."""

    start: float                  # seconds
    end: float                    # seconds: end of the regenerated range
    blend_end: float              # seconds: the kept dance is back from here on
    first: int                    # model frame of ``start``
    resume: int                   # model frame of ``end``
    last: int                     # model frame where the kept dance is back (exclusive end of the new frames)
    frames: tuple[int, int]       # the input's frames [i0, i1) that change (the output's for an extension)
    extend: bool = False
    targets: list = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- loading
def load_generator(checkpoint=None, *, policy: str = "auto", device: str = "auto",
                   precision: str = "auto") -> Generator:
    """Models of a bundle (the bundled default when None) for editing, with R_θ when the bundle has one."""
    from pathlib import Path

    from e3d2_core import api
    from e3d2_core import checkpoint as ckpt
    from e3d2_core import generation as gen
    from e3d2_core import scoring

    if policy not in ("auto", "rl", "bc"):
        raise E3D2Error(f"policy must be 'auto', 'rl' or 'bc', got {policy!r}")
    torch_device = gen.resolve_device(device)
    chosen = gen.resolve_precision(precision, torch_device)
    path = Path(checkpoint) if checkpoint is not None else api.default_checkpoint()
    bundle = ckpt.load_bundle(path)
    part = api._policy_part(bundle, policy, path)
    vqvae, policy_model = ckpt.build_generator_models(bundle, path, policy_part=part)
    reward, kind = None, ""
    if "reward" in bundle:
        reward = scoring.reward_from_entry(bundle["reward"], policy_state=bundle["policy"]["state_dict"],
                                           where=str(path))
        kind = str(bundle["reward"].get("music_kind", bundle["music"]["kind"]))
    card = bundle.get("model_card") if isinstance(bundle.get("model_card"), dict) else {}
    meta = {"model": str(card.get("name", path.stem)), "checkpoint": str(path),
            "checkpoint_sha256": ckpt.file_sha256(path), "precision": chosen,
            "policy": {"policy": "bc", "policy_rl": "rl"}[part]}
    skeleton = Skeleton.from_dict(bundle["skeleton"]) if isinstance(bundle.get("skeleton"), dict) else vqvae.skeleton
    return Generator(gen.vqvae_for_inference(vqvae, chosen, torch_device, copy_model=False),
                     gen.policy_for_inference(policy_model, chosen, torch_device, copy_model=False),
                     dict(bundle["music"]), skeleton, meta, reward, kind, str(path), chosen)


def check_skeleton(motion: Motion, skeleton: Skeleton) -> None:
    """Refuse a motion made for another skeleton than the model's (names, tree or rest offsets)."""
    own = motion.skeleton
    if tuple(own.names) != tuple(skeleton.names) or tuple(own.parents) != tuple(skeleton.parents):
        raise E3D2Error("the dance is on another skeleton (its joints are not the model's SMPL 24): retarget it "
                        "to SMPL first (`e3d2 import`)")
    worst = float(np.abs(own.offsets - skeleton.offsets).max())
    if worst > SKELETON_TOLERANCE:
        raise E3D2Error(f"the dance is on another skeleton (its bones differ from the model's SMPL skeleton by up "
                        f"to {100 * worst:.1f} cm, e.g. fitted with --smpl-model): import it without "
                        f"--smpl-model to edit it")


# ---------------------------------------------------------------------------------------------- music
@dataclass
class Song:
    features: np.ndarray          # (N, D) raw features at the code rate, row k at song time k / rate
    rate: float                   # rows per second
    duration: float               # seconds of audio
    offset: float                 # song time at the dance's frame 0
    tempo: float = 0.0
    audio_hash: str = ""

    @property
    def seconds_after_offset(self) -> float:
        return self.duration - self.offset


def read_song(audio, generator: Generator, *, audio_offset: float = 0.0, bpm=None, beat_offset=None) -> Song:
    """The model's music features of ``audio`` (cached per song), refusing silence."""
    from e3d2_core import api
    from e3d2_core import audio as audio_mod

    if not isinstance(audio_offset, (int, float)) or not math.isfinite(audio_offset) or audio_offset < 0:
        raise E3D2Error(f"audio_offset must be a number of seconds ≥ 0, got {audio_offset!r}")
    cfg = generator.music_cfg
    features = audio_mod.extract_features(audio, fps=float(cfg["fps"]), kind=str(cfg["kind"]), bpm=bpm,
                                          beat_offset=beat_offset)
    samples, _ = audio_mod.load_audio(audio, sr=int(round(512 * float(cfg["fps"]))))
    if samples.size == 0 or float(abs(samples).max()) < api.SILENCE_PEAK:
        raise E3D2Error("the song is silent: nothing to dance to", path=audio)
    if audio_offset >= features.duration:
        raise E3D2Error(f"the song is {features.duration:.2f} s long; an audio offset of {audio_offset:.2f} s "
                        f"leaves nothing to dance to", path=audio)
    return Song(np.asarray(features.features, np.float32), float(cfg["fps"]), float(features.duration),
                float(audio_offset), float(features.tempo), features.audio_hash)


def music_for_steps(song: Song, generator: Generator, first_frame: int, steps: int) -> torch.Tensor:
    """(steps, D) normalised music for code steps starting at model frame ``first_frame`` (may be < 0)."""
    from e3d2_core import generation as gen

    frames = first_frame + generator.step * np.arange(steps)
    rows = np.rint((song.offset + frames / generator.fps) * song.rate).astype(np.int64)
    rows = np.clip(rows, 0, len(song.features) - 1)
    return gen.normalise_music(song.features[rows], generator.music_cfg["mean"], generator.music_cfg["std"])


# ---------------------------------------------------------------------------------------------- planning
def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise E3D2Error(f"{name} must be a number of seconds, got {value!r}")
    return float(value)


def plan_range(motion: Motion, model_frames: int, song: Song, generator: Generator, start, end,
               blend) -> EditPlan:
    """Check a regeneration range against the dance and the song; where it lies in frames.

    ``model_frames``: how many frames the dance has at the model's rate (after :meth:`Motion.resample`)."""
    start, end = _number(start, "start"), _number(end, "end")
    blend = _number(blend, "blend")
    duration = motion.duration
    step_seconds = generator.step / generator.fps
    if blend < 0:
        raise E3D2Error(f"blend must be ≥ 0 seconds, got {blend:g}")
    if start < 0 or start >= duration:
        raise E3D2Error(f"the range starts at {start:g} s, outside the dance (0 to {duration:.3f} s)")
    if end > duration + 1e-9:
        raise E3D2Error(f"the range ends at {end:g} s, past the end of the dance ({duration:.3f} s); "
                        f"use extend to continue a dance")
    if end <= start:
        raise E3D2Error(f"the range {start:g}-{end:g} s is empty: its end must come after its start")
    if end - start < step_seconds - 1e-9:
        raise E3D2Error(f"the range {start:g}-{end:g} s is shorter than one code step ({step_seconds:.3f} s): "
                        f"the model cannot change less")
    if end > song.seconds_after_offset + 1e-9:
        raise E3D2Error(f"the range ends at {end:g} s, but the song ends at {song.seconds_after_offset:.3f} s "
                        f"of the dance")
    blend_end = min(end + blend, duration)
    fps = generator.fps
    first = _frame_at(start, fps)
    resume = max(_frame_at(end, fps), first + 1)
    last = min(max(_frame_at(blend_end, fps), resume), model_frames)
    i0, i1 = _frame_at(start, motion.fps), _frame_at(blend_end, motion.fps)
    if blend_end >= duration - 1e-9:
        i1 = motion.num_frames
    return EditPlan(start, end, blend_end, first, resume, last, (i0, max(i1, i0 + 1)))


def plan_extension(motion: Motion, model_frames: int, song: Song, generator: Generator, seconds) -> EditPlan:
    """Check an extension by ``seconds`` (None: to the end of the song); where it lies in frames."""
    duration = motion.duration
    room = song.seconds_after_offset - duration
    step_seconds = generator.step / generator.fps
    if seconds is None:
        if room < step_seconds - 1e-9:
            raise E3D2Error(f"the song ends at {song.seconds_after_offset:.3f} s of the dance, which is "
                            f"{duration:.3f} s long already: nothing left to continue on")
        seconds = room
    seconds = _number(seconds, "seconds")
    if seconds < step_seconds - 1e-9:
        raise E3D2Error(f"extending by {seconds:g} s is less than one code step ({step_seconds:.3f} s)")
    if seconds > room + 1e-9:
        raise E3D2Error(f"the song ends {max(room, 0):.3f} s after the dance: it can be extended by at most "
                        f"that much, not {seconds:g} s")
    first = model_frames
    added = int(math.floor(seconds * motion.fps + 1e-9))
    if added < 1:
        raise E3D2Error(f"extending by {seconds:g} s adds no frame at {motion.fps:g} fps")
    end = duration + seconds
    last = first + int(math.ceil(seconds * generator.fps - 1e-9)) + 1
    return EditPlan(duration, end, end, first, last, last,
                    (motion.num_frames, motion.num_frames + added), extend=True)


def _frame_at(seconds: float, fps: float) -> int:
    """The first frame whose time is at or after ``seconds``."""
    return int(math.ceil(seconds * fps - 1e-9))


# ---------------------------------------------------------------------------------------------- codes
@torch.no_grad()
def continue_codes(policy, music: torch.Tensor, history_up: torch.Tensor, history_down: torch.Tensor,
                   new_steps: int, *, temperature: float, top_k: int | None, generator: torch.Generator,
                   progress=None, cancel=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Continue a code history with the policy.

    Args:
        policy: a DancePolicy prepared for inference.
        music: (H + new_steps, D) normalised music, row i with code i (H = history length ≥ 1).
        history_up, history_down: (B, H) codes already danced (fed by teacher forcing).
        new_steps: codes to sample after the history.
    Returns:
        up, down (B, new_steps) sampled codes on the CPU.
    """
    from e3d2_core import generation as gen

    device = policy.stream.device
    b, h = history_up.shape
    music = music.to(device)
    state = policy.start(b, device)
    up_hist, down_hist = history_up.to(device), history_down.to(device)
    for i in range(h - 1):         # step i feeds music i+1 with code i (generation's alignment)
        policy.step(state, music[i + 1].expand(b, -1), up_hist[:, i], down_hist[:, i])
    u, d = up_hist[:, -1], down_hist[:, -1]
    up = torch.empty(b, new_steps, dtype=torch.long)
    down = torch.empty(b, new_steps, dtype=torch.long)
    report_every = max(1, new_steps // 100)
    for k in range(new_steps):
        if cancel is not None and cancel():
            raise Cancelled("generation cancelled")
        lu, ld = policy.step(state, music[h + k].expand(b, -1), u, d)
        u, d = gen.choose(lu, temperature, top_k, generator), gen.choose(ld, temperature, top_k, generator)
        up[:, k], down[:, k] = u.cpu(), d.cpu()
        if progress is not None and (k % report_every == 0 or k == new_steps - 1):
            progress((k + 1) / new_steps, f"dancing: step {k + 1}/{new_steps}")
    return up, down


# ---------------------------------------------------------------------------------------------- the edit
def _check_sampling(takes, temperature, top_k, seed):
    if isinstance(takes, bool) or not isinstance(takes, int) or takes < 1:
        raise E3D2Error(f"takes must be a whole number ≥ 1, got {takes!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise E3D2Error(f"seed must be a whole number, got {seed!r}")
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature < 0:
        raise E3D2Error(f"temperature must be a number ≥ 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise E3D2Error(f"top_k must be a whole number ≥ 1, got {top_k!r}")
    if takes > 1 and temperature <= 0:
        raise E3D2Error("several takes of one edit need a temperature above 0: greedy decoding "
                        "(temperature 0) continues the same dance identically")


def _as_motion(motion) -> Motion:
    from pathlib import Path

    if isinstance(motion, Motion):
        return motion
    if isinstance(motion, (str, Path)):
        return Motion.load(motion)
    raise E3D2Error(f"the dance must be a Motion or a Motion .npz path, got {type(motion).__name__}")


def _targets(pose_targets, plan: EditPlan) -> list[PoseTarget]:
    out = []
    for target in pose_targets or ():
        if not isinstance(target, PoseTarget):
            raise E3D2Error(f"key poses must be PoseTarget objects, got {type(target).__name__}")
        target = target.checked()
        if not plan.start < target.time < plan.end:
            raise E3D2Error(f"a key pose at {target.time:g} s lies outside the regenerated range "
                            f"({plan.start:g}-{plan.end:g} s): it must fall strictly inside it")
        out.append(target)
    return sorted(out, key=lambda t: t.time)


def edit(motion, audio, plan_fn, *, seed=0, takes=1, keep=(), pose_targets=(), temperature=0.7, top_k=None,
         checkpoint=None, device="auto", precision="auto", policy="auto", audio_offset=0.0, bpm=None,
         beat_offset=None, progress=None, cancel=None, generator: Generator | None = None):
    """Shared body of :func:`regenerate` and :func:`extend`.

    ``plan_fn(motion, model_frames, song, generator) -> EditPlan`` checks the request and places it."""
    def report(fraction, message):
        if progress is not None:
            progress(float(min(1.0, max(0.0, fraction))), message)

    def check_cancel():
        if cancel is not None and cancel():
            raise Cancelled("generation cancelled")

    _check_sampling(takes, temperature, top_k, seed)
    motion = _as_motion(motion)
    report(0.0, "loading the model")
    generator = generator or load_generator(checkpoint, policy=policy, device=device, precision=precision)
    check_skeleton(motion, generator.skeleton)
    keep_idx = kept_joints(keep, generator.skeleton)
    check_cancel()
    report(0.02, "reading the music")
    song = read_song(audio, generator, audio_offset=audio_offset, bpm=bpm, beat_offset=beat_offset)
    fps, step = generator.fps, generator.step
    model_motion = motion if abs(motion.fps - fps) < 1e-9 else motion.resample(fps)
    plan = plan_fn(motion, model_motion.num_frames, song, generator)
    plan.targets = _targets(pose_targets, plan)
    if plan.extend and plan.targets:
        raise E3D2Error("key poses apply to a regenerated range, not to an extension")
    check_cancel()

    kept_q, kept_t = blending.to_track(model_motion.poses, model_motion.trans)          # (T, 24, 4), (T, 3)

    # the code grid ends at the range's first frame; up to one attention band of context before it
    band = int(generator.policy.config["band"])
    history = min(band, math.ceil(plan.first / step))
    grid_start = plan.first - step * history
    new_steps = math.ceil((plan.last + 1 - plan.first) / step) + EXTRA_STEPS
    music = music_for_steps(song, generator, grid_start, max(history, 1) + new_steps)
    torch_gen = torch.Generator().manual_seed(int(seed))
    report(0.05, "dancing")
    if history > 0:
        window = np.arange(grid_start, plan.first).clip(0)                                # front-padded
        up_h, down_h = generator.vqvae.encode(torch.from_numpy(model_motion.poses[None, window]),
                                              torch.from_numpy(model_motion.trans[None, window]))
        up_h, down_h = up_h.cpu().expand(takes, -1), down_h.cpu().expand(takes, -1)
        up_n, down_n = continue_codes(generator.policy, music, up_h, down_h, new_steps, temperature=temperature,
                                      top_k=top_k, generator=torch_gen, cancel=cancel,
                                      progress=lambda f, m: report(0.05 + 0.75 * f, m))
        up, down = torch.cat([up_h, up_n], 1), torch.cat([down_h, down_n], 1)
    else:                          # from the dance's first frame: a first pose as generate draws it
        from e3d2_core.generation import seed_codes

        up0, down0, _, _ = seed_codes(generator.vqvae, None, takes, seed)
        up_n, down_n = continue_codes(generator.policy, music, up0[:, None], down0[:, None], new_steps - 1,
                                      temperature=temperature, top_k=top_k, generator=torch_gen, cancel=cancel,
                                      progress=lambda f, m: report(0.05 + 0.75 * f, m))
        up, down = torch.cat([up0[:, None], up_n], 1), torch.cat([down0[:, None], down_n], 1)
    check_cancel()
    report(0.82, "decoding")
    device = generator.vqvae.vq_up.codebook.device
    poses, trans = generator.vqvae.decode(up.to(device), down.to(device))
    new_q, new_t = blending.to_track(poses.double().numpy(), trans.double().numpy())      # (B, L, 24, 4)
    seam = plan.first - grid_start                    # index of the range's first frame in the decoded frames
    sections = _join(new_q, new_t, kept_q, kept_t, seam, plan, fps)
    check_cancel()

    report(0.9, "constraints")
    sec_q, sec_t = sections
    sec_poses, sec_t = blending.from_track(sec_q, sec_t)
    if keep_idx:
        sec_poses, sec_t = _hold(sec_poses, sec_t, model_motion, plan, keep_idx, generator.skeleton)
    check_cancel()
    results = _splice(motion, model_motion, sec_poses, sec_t, plan)
    report(0.95, "scoring the takes")
    _describe(results, motion, plan, generator, song, audio, seed, temperature, top_k, keep, keep_idx)
    report(1.0, "done")
    return results[0] if len(results) == 1 else results


def _join(new_q, new_t, kept_q, kept_t, seam: int, plan: EditPlan, fps: float):
    """The new frames [first, last) of every take, joined to the kept dance at both seams (model fps)."""
    first, last, resume = plan.first, plan.last, plan.resume
    if first >= 1 and seam >= 1:
        q, t = blending.align_start(new_q, new_t, seam - 1, kept_q[first - 1, 0], kept_t[first - 1])
        kept = slice(max(first - 2, 0), first)
        body_q, body_t = blending.inertialize(q, t, kept_q[kept], kept_t[kept], seam,
                                              rate=blending.DEFAULT_SPRING_RATE / fps)
    else:                          # nothing kept before: start where and facing where the dance started
        q, t = blending.align_start(new_q, new_t, seam, kept_q[0, 0], kept_t[0])
        body_q, body_t = q[:, seam:], t[:, seam:]
    length = last - first
    if not plan.extend and last < len(kept_q):     # arrive where the kept dance is when it takes over
        body_q, body_t = blending.meet_root(body_q, body_t, last - first, kept_q[last, 0], kept_t[last])
    for target in plan.targets:
        at = int(round(target.time * fps)) - first
        reach = int(round(KEY_POSE_REACH * fps))
        before, after = min(reach, at), min(reach, max(last - first - 1 - at, 0))
        pose_q = blending.rotations.axis_angle_to_quaternion(target.poses)
        body_q, body_t = blending.reach_pose(body_q, body_t, at, pose_q, target.trans, before, after)
    body_q, body_t = body_q[:, :length], body_t[:, :length]
    if not plan.extend and last > resume:
        span = np.arange(resume, last)
        end = last if last < len(kept_q) else last - 1
        weight = blending.smootherstep((span - resume + 1) / max(end - resume + 1, 1))
        fade_q, fade_t = blending.crossfade(body_q[:, resume - first:], body_t[:, resume - first:],
                                            kept_q[span], kept_t[span], weight)
        body_q = np.concatenate([body_q[:, :resume - first], fade_q], 1)
        body_t = np.concatenate([body_t[:, :resume - first], fade_t], 1)
    return body_q, body_t


def _hold(poses, trans, model_motion: Motion, plan: EditPlan, keep_idx, skeleton):
    """Kept joints over the new frames: the root path copied, other joints by inverse kinematics."""
    first, last = plan.first, plan.first + poses.shape[1]
    if plan.extend:                # past the end there is nothing to keep but the last frame's place
        idx = np.full(last - first, model_motion.num_frames - 1)
    else:
        idx = np.arange(first, last)
    targets = model_motion.joints(skeleton)[idx].astype(np.float64)
    root_kept = 0 in keep_idx
    if root_kept:
        trans = np.broadcast_to(model_motion.trans[idx].astype(np.float64), trans.shape).copy()
    poses, trans = hold_joints(poses, trans, targets, keep_idx, skeleton, root_fixed=root_kept,
                               root_guess=model_motion.trans[idx].astype(np.float64))
    b, t = poses.shape[:2]
    flat = snap_joints(poses.reshape(b * t, NUM_JOINTS, 3), trans.reshape(b * t, 3),
                       np.broadcast_to(targets, (b, t) + targets.shape[1:]).reshape(b * t, NUM_JOINTS, 3),
                       keep_idx, skeleton)
    return flat.reshape(poses.shape), trans


def _splice(motion: Motion, model_motion: Motion, sec_poses, sec_trans, plan: EditPlan) -> list[Motion]:
    """Every take: the input's own frames outside the edit, the new frames (at the input's fps) inside."""
    i0, i1 = plan.frames
    fps = model_motion.fps
    out = []
    for k in range(sec_poses.shape[0]):
        if abs(motion.fps - fps) < 1e-9:
            new_poses, new_trans = sec_poses[k, : i1 - i0], sec_trans[k, : i1 - i0]
        else:                      # the joined dance at the model's rate, resampled at the input's frames
            tail = slice(plan.first + sec_poses.shape[1], None)
            joined = Motion(np.concatenate([model_motion.poses[:plan.first], sec_poses[k], model_motion.poses[tail]]),
                            np.concatenate([model_motion.trans[:plan.first], sec_trans[k], model_motion.trans[tail]]),
                            fps)
            times = np.arange(i0, i1) / motion.fps
            new_poses, new_trans = _sample(joined, times)
        poses = np.concatenate([motion.poses[:i0], new_poses.astype(np.float32), motion.poses[i1:]])
        trans = np.concatenate([motion.trans[:i0], new_trans.astype(np.float32), motion.trans[i1:]])
        out.append(Motion(poses, trans, motion.fps, _clean_meta(motion.meta)))
    return out


def _sample(motion: Motion, times: np.ndarray):
    """Poses and trans of ``motion`` at ``times`` (seconds): slerp between its frames, clamped at its ends."""
    at = np.clip(np.asarray(times) * motion.fps, 0, motion.num_frames - 1)
    lo = np.floor(at).astype(int)
    hi = np.minimum(lo + 1, motion.num_frames - 1)
    w = at - lo
    q = blending.rotations.axis_angle_to_quaternion(motion.poses.astype(np.float64))
    q_hi = np.where(np.sum(q[lo] * q[hi], -1, keepdims=True) < 0, -q[hi], q[hi])
    mixed = blending.rotations.quaternion_slerp(q[lo], q_hi, w[:, None] * np.ones(q[lo].shape[:-1]))
    trans = motion.trans[lo] * (1 - w[:, None]) + motion.trans[hi] * w[:, None]
    return blending.quat_log(mixed), trans


def _clean_meta(meta: dict) -> dict:
    """The input's meta without what no longer describes the edited dance (its generated codes)."""
    import json

    meta = json.loads(json.dumps(meta))
    for key in ("codes_up", "codes_down", "reward_total", "reward_totals"):
        meta.pop(key, None)
    return meta


def _describe(results, motion: Motion, plan: EditPlan, generator: Generator, song: Song, audio, seed, temperature,
              top_k, keep, keep_idx) -> None:
    """``meta["edit"]`` of every take: the request, the changed frames, constraint errors and R_θ scores."""
    i0, i1 = plan.frames
    scores = _scores(results, plan, generator, song, audio)
    for k, result in enumerate(results):
        info = {"op": "extend" if plan.extend else "regenerate", "start": plan.start, "end": plan.end,
                "blend_end": plan.blend_end, "frames": [int(i0), int(i1)], "seed": int(seed), "take": k + 1,
                "temperature": float(temperature), "top_k": None if top_k is None else int(top_k),
                "audio": str(audio), "audio_offset": song.offset, "audio_hash": song.audio_hash,
                **generator.meta}
        if keep_idx:
            info["keep"] = [generator.skeleton.names[j] for j in keep_idx]
            info["keep_error_cm"] = _keep_error(result, motion, plan, keep_idx, generator.skeleton)
        if plan.targets:
            info["pose_error_cm"] = [_pose_error(result, target, generator.skeleton) for target in plan.targets]
        if scores is not None:
            info.update(scores[k])
        result.meta["edit"] = info
        result.meta["edits"] = list(motion.meta.get("edits", [])) + [
            {key: info[key] for key in ("op", "start", "end", "seed", "take")}]


def _keep_error(result: Motion, motion: Motion, plan: EditPlan, keep_idx, skeleton) -> float:
    """Largest distance (cm) of a kept joint from where it was, over the changed frames (the input's fps)."""
    i0, i1 = plan.frames
    new = result.joints(skeleton)[i0:i1, list(keep_idx)]
    if plan.extend:
        old = np.broadcast_to(motion.joints(skeleton)[-1, list(keep_idx)], new.shape)
    else:
        old = motion.joints(skeleton)[i0:i1, list(keep_idx)]
    return round(float(np.linalg.norm(new - old, axis=-1).max()) * 100.0, 4)


def pose_error_cm(poses: np.ndarray, trans: np.ndarray, target: PoseTarget, skeleton) -> float:
    """Mean joint distance (cm) between one frame of a dance (poses (24, 3), trans (3,)) and a key pose.

    A key pose without a position is placed at the dance's pelvis, turned to the dance's heading (how
    :func:`blending.reach_pose` meets it)."""
    from e3d2_core.skeleton import forward_kinematics

    poses, trans = np.asarray(poses, np.float64), np.asarray(trans, np.float64)
    want_poses, want_trans = np.array(target.poses, np.float64), target.trans
    if want_trans is None:
        root = blending.quat_exp(want_poses[0])
        turn = blending.wrap_angle(blending.heading(blending.quat_exp(poses[0])) - blending.heading(root))
        want_poses[0] = blending.quat_log(blending.rotations.quaternion_multiply(blending.yaw_quat(turn), root))
        want_trans = trans
    got = forward_kinematics(poses[None], trans[None], skeleton)[0]
    want = forward_kinematics(want_poses[None], np.asarray(want_trans, np.float64)[None], skeleton)[0]
    return round(float(np.linalg.norm(got - want, axis=-1).mean()) * 100.0, 4)


def _pose_error(result: Motion, target: PoseTarget, skeleton) -> float:
    frame = min(int(round(target.time * result.fps)), result.num_frames - 1)
    return pose_error_cm(result.poses[frame], result.trans[frame], target, skeleton)


def _scores(results, plan: EditPlan, generator: Generator, song: Song, audio):
    """R_θ of every take: the whole dance and the regenerated range (per minute), or None without R_θ."""
    if generator.reward is None:
        return None
    from e3d2_core import scoring

    model = generator.reward
    music, _ = scoring.music_at_step_rate(audio, model, generator.reward_kind or "compact")
    fps, per_step = model.config["fps"], model.config["frames_per_step"]
    step_rate = fps / per_step
    first_row = int(round(song.offset * step_rate))
    music = music[first_row:]
    out = []
    for result in results:
        joints = scoring.motion_joints(result, fps)
        score = scoring.score_arrays(model, joints, music)
        values = np.asarray(score.values)
        lo = int(math.floor(plan.start * step_rate + 1e-9))
        hi = min(int(math.ceil(plan.end * step_rate - 1e-9)), len(values))
        window = values[lo:hi]
        per_minute = float(window.sum() / (len(window) / step_rate / 60.0)) if len(window) else float("nan")
        out.append({"reward_total": score.total, "reward_per_minute": score.per_minute,
                    "reward_range_per_minute": per_minute})
    return out


# ---------------------------------------------------------------------------------------------- entry points
def regenerate(motion, audio, *, start, end, blend=DEFAULT_BLEND, **kwargs):
    """See :func:`e3d2_core.api.regenerate`."""
    return edit(motion, audio, lambda m, n, s, g: plan_range(m, n, s, g, start, end, blend), **kwargs)


def extend(motion, audio, *, seconds=None, **kwargs):
    """See :func:`e3d2_core.api.extend`."""
    return edit(motion, audio, lambda m, n, s, g: plan_extension(m, n, s, g, seconds), **kwargs)
