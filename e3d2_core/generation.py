"""Streaming dance generation: music features -> codes (policy with a KV cache) -> Motion (chunked decoding).

Everything here works on arrays; :func:`e3d2_core.api.generate` adds audio loading and the checkpoint.

* Step i feeds (music frame i+1, up code i, down code i) and samples code i+1 (docs/models.md), so N music
  frames at the code rate give N codes and 8N motion frames. Code 0 comes from the seed motion (its first window
  encoded by the VQ-VAE), from a neutral standing pose encoded the same way (seed 0, take 1), or from a seeded
  draw of a commonly used code pair (other seeds and takes), see :func:`seed_codes`.
* Sampling: ``temperature`` 0 is greedy (argmax, the paper's); otherwise softmax(logits / T), optionally limited to
  the ``top_k`` best codes, drawn with a seeded ``torch.Generator``. Several takes run batched in one pass.
* Repeats: a :class:`e3d2_core.repeat_limit.RepeatLimit` makes a code the take drew often in its last steps
  cost logits, so the policy cannot loop on one or two codes for seconds (a held pose, trembling).
* Precision: "fp32"; "bf16" (policy and VQ-VAE decoder weights and activations in bfloat16; sampling and root
  integration in float32); "int8" (dynamic int8 quantisation of every Linear layer of the policy, CPU only; the
  decoder in bf16 where native, else float32). "auto" picks bf16 where the hardware runs it natively (CUDA, or
  CPUs with AVX512-BF16 / AMX), otherwise fp32. See docs/models.md for the measured speed and agreement.
"""
from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
from torch import nn

from e3d2_core.dance_options import DEFAULT_TEMPERATURE  # noqa: F401  (the E3D2 stages read it here)
from e3d2_core.dance_options import check_sampling
from e3d2_core.device import resolve_device  # noqa: F401 (api and the tests resolve devices through here)
from e3d2_core.errors import Cancelled, E3D2Error
from e3d2_core.models.policy import DancePolicy
from e3d2_core.models.vqvae import ChoreographicMemory
from e3d2_core.motion import Motion
from e3d2_core.repeat_limit import RepeatLimit
from e3d2_core.skeleton import NUM_JOINTS

PRECISIONS = ("auto", "fp32", "bf16", "int8")


def _cancelled_error():
    return Cancelled("generation cancelled")


# ---------------------------------------------------------------------------------------------- precision
def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 matrix products run natively (not emulated) on ``device``."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise E3D2Error(f"unknown precision '{precision}' (use one of {', '.join(PRECISIONS)})")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "int8" and device.type != "cpu":
        raise E3D2Error("precision int8 (dynamic quantisation) runs on the CPU only; use bf16 or fp32 on CUDA")
    return precision


def policy_for_inference(policy: DancePolicy, precision: str, device: torch.device, *,
                         copy_model: bool = True) -> DancePolicy:
    """``policy`` in eval mode on ``device`` at ``precision`` ("fp32", "bf16" or "int8"); a copy unless
    ``copy_model`` is False (then the given model is converted, saving a second set of weights in memory)."""
    model = (copy.deepcopy(policy) if copy_model else policy).eval().to(device)
    if precision == "bf16":
        return model.to(torch.bfloat16)
    if precision == "int8":
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # torch.ao's deprecation notice: the API still works
            return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return model


def vqvae_for_inference(vqvae: ChoreographicMemory, precision: str, device: torch.device, *,
                        copy_model: bool = True) -> ChoreographicMemory:
    """The VQ-VAE for decoding: bfloat16 convolutions for "bf16", and for "int8" where bf16 is native (int8
    applies to the policy's Linear layers only); float32 otherwise. A copy unless ``copy_model`` is False."""
    model = (copy.deepcopy(vqvae) if copy_model else vqvae).eval().to(device)
    use_bf16 = precision == "bf16" or (precision == "int8" and native_bf16(device))
    return model.to(torch.bfloat16) if use_bf16 else model


# ---------------------------------------------------------------------------------------------- first codes
def neutral_pose(num_frames: int = 8, fps: float = 60.0) -> Motion:
    """A relaxed standing pose (arms lowered ~70° from the T-pose), feet on the floor, facing +Z."""
    from e3d2_core.skeleton import default_skeleton

    poses = np.zeros((num_frames, NUM_JOINTS, 3), np.float32)
    names = default_skeleton().names
    poses[:, names.index("left_shoulder")] = (0.0, 0.0, -1.2)
    poses[:, names.index("right_shoulder")] = (0.0, 0.0, 1.2)
    trans = np.zeros((num_frames, 3), np.float32)
    probe = Motion(poses[:1], trans[:1], fps).joints()
    trans[:, 1] = -probe[0, :, 1].min() + 0.02          # lowest joint (the feet) a little above the floor
    return Motion(poses, trans, fps, {"source": "neutral pose"})


def seed_codes(vqvae: ChoreographicMemory, seed_motion: Motion | None, takes: int, seed: int = 0):
    """First codes and where the dance starts.

    Returns (up0 (takes,), down0 (takes,), init_trans (3,), init_heading float).

    * With a seed motion (resampled to the model's fps): its first window (up to 30 codes, Bailando's 240 frames)
      is encoded and its first code pair starts every take; the dance continues from the seed's first floor
      position and heading.
    * Without one: take 1 of seed 0 starts from a neutral standing pose encoded by the VQ-VAE (the default,
      deterministic dance); every other take, and every take of another seed, starts from a code pair drawn
      (seeded) in proportion to each codebook's EMA usage, i.e. a pose the training data used. So the seed and
      the take choose different dances even with greedy decoding. The dance starts at the origin facing +Z.
    """
    from e3d2_core.models import representation as rep

    motion = seed_motion if seed_motion is not None else neutral_pose(8, vqvae.fps)
    if abs(motion.fps - vqvae.fps) > 1e-6:
        motion = motion.resample(vqvae.fps)
    window = min(motion.num_frames, 30 * vqvae.downsample)
    poses = torch.from_numpy(motion.poses[None, :window])
    trans = torch.from_numpy(motion.trans[None, :window])
    up, down = vqvae.encode(poses, trans)
    heading = float(rep.heading(rep.rotations.axis_angle_to_matrix(poses[0, 0, 0].double())))
    up0, down0 = up[:, 0].cpu().expand(takes).clone(), down[:, 0].cpu().expand(takes).clone()
    if seed_motion is None:
        drawn = torch.Generator().manual_seed(int(seed))
        first = 1 if int(seed) == 0 else 0
        for codes, codebook in ((up0, vqvae.vq_up), (down0, vqvae.vq_down)):
            usage = codebook.ema_count.detach().float().cpu().clamp_min(0) + 1e-6
            codes[first:] = torch.multinomial(usage, takes, replacement=True, generator=drawn)[first:]
    return up0, down0, trans[0, 0].clone(), heading


# ---------------------------------------------------------------------------------------------- sampling
def choose(logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None):
    """(B, K) logits -> (B,) codes: argmax when temperature is 0, else a (top-k limited) softmax sample."""
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, -1)
    return torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].to(logits.device)


@torch.no_grad()
def generate_codes(policy: DancePolicy, music: torch.Tensor, first_up: torch.Tensor, first_down: torch.Tensor, *,
                   temperature: float = 0.0, top_k: int | None = None, generator: torch.Generator | None = None,
                   progress: Callable | None = None, cancel: Callable | None = None,
                   pick: Callable | None = None,
                   repeat: RepeatLimit | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stream the policy over the song.

    Args:
        policy: a DancePolicy (any precision; see :func:`policy_for_inference`).
        music: (N, D) normalised music features at the code rate (float32); frame i goes with code i.
        first_up, first_down: (B,) code 0 of each take.
        pick: ``pick(logits_up, logits_down) -> (up, down)`` (B,) codes to feed back; default: :func:`choose`
            with ``temperature``/``top_k`` (the demonstrations' ε-greedy noise plugs in here).
        repeat: a :class:`RepeatLimit` applied to the logits before ``pick``; None: repeats are free.
    Returns:
        up, down: (B, N) long codes on the CPU.
    """
    device = policy.stream.device
    n = music.shape[0]
    b = first_up.shape[0]
    up = torch.empty(b, n, dtype=torch.long)
    down = torch.empty(b, n, dtype=torch.long)
    up[:, 0], down[:, 0] = first_up, first_down
    state = policy.start(b, device)
    music = music.to(device)
    u, d = first_up.to(device), first_down.to(device)
    limited = repeat is not None and repeat.cost > 0
    recent = None                   # the RecentCodes of the up and down halves, made once the vocabulary is seen
    report_every = max(1, n // 100)
    for i in range(n - 1):
        if cancel is not None and cancel():
            raise _cancelled_error()
        lu, ld = policy.step(state, music[i + 1].expand(b, -1), u, d)
        if limited:
            if recent is None:
                recent = repeat.counter(u, lu.shape[-1]), repeat.counter(d, ld.shape[-1])
            lu, ld = recent[0].penalise(lu), recent[1].penalise(ld)
        if pick is None:
            u, d = choose(lu, temperature, top_k, generator), choose(ld, temperature, top_k, generator)
        else:
            u, d = (code.to(device) for code in pick(lu, ld))
        if limited:
            recent[0].push(u)
            recent[1].push(d)
        up[:, i + 1], down[:, i + 1] = u.cpu(), d.cpu()
        if progress is not None and (i % report_every == 0 or i == n - 2):
            progress((i + 1) / max(1, n - 1), f"dancing: step {i + 1}/{n - 1}")
    return up, down


END_PAD_CODES = 2          # code steps danced past the song's end and cut (see generate_motions)


def normalise_music(features: np.ndarray, mean, std) -> torch.Tensor:
    """(N, D) raw features -> float32 tensor (x − mean) / std (std floored at 1e-8)."""
    mean = torch.as_tensor(mean, dtype=torch.float32)
    std = torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-8)
    features = torch.as_tensor(np.asarray(features, dtype=np.float32))
    if features.ndim != 2 or features.shape[1] != mean.shape[0]:
        raise E3D2Error(f"music features are {tuple(features.shape)}, the model needs (N, {mean.shape[0]})")
    return (features - mean) / std


@torch.no_grad()
def generate_motions(vqvae: ChoreographicMemory, policy: DancePolicy, music: torch.Tensor, *, takes: int = 1,
                     seed: int = 0, temperature: float = 0.0, top_k: int | None = None,
                     seed_motion: Motion | None = None, in_place: bool = False, progress=None, cancel=None,
                     meta: dict | None = None, guide=None, repeat: RepeatLimit | None = None) -> list[Motion]:
    """Normalised code-rate music (N, D) -> ``takes`` Motions of 8N frames at the VQ-VAE's fps.

    ``policy`` is used as given (prepare it with :func:`policy_for_inference`); ``vqvae`` runs in float32 on its
    own device. ``guide``: ``guide(num_frames, choose) -> pick`` builds a sampler that tilts each draw (the beat
    guide, :class:`e3d2_core.beat_guide.BeatGuide`); ``choose(logits)`` is this call's seeded sampler and
    ``num_frames`` the frames danced, end padding included. ``repeat``: see :func:`generate_codes`.
    Progress: 0-0.85 while dancing, 0.85-1 while decoding.
    """
    check_sampling(takes=takes, seed=seed, temperature=temperature, top_k=top_k)
    if takes > 1 and temperature <= 0 and seed_motion is not None:
        raise E3D2Error("several takes from one seed motion need a temperature above 0: greedy decoding "
                        "(temperature 0) from the same start gives identical takes")
    n = music.shape[0]
    if n < 2:
        step = vqvae.downsample / vqvae.fps
        raise E3D2Error(f"the song is too short: it gives {n} code step(s) of {step:.3f} s, at least 2 are needed")
    generator = torch.Generator().manual_seed(int(seed))
    up0, down0, init_trans, init_heading = seed_codes(vqvae, seed_motion, takes, seed)
    # the decoder's convolutions see zero padding past the last code, which bends the last frames (a foot
    # plunged 30 cm in the final 3 frames): dance a little past the end on the last music row, then cut
    music = torch.cat([music, music[-1:].expand(END_PAD_CODES, -1)])

    def dance_progress(fraction, message):
        if progress is not None:
            progress(0.85 * fraction, message)

    pick = None
    if guide is not None:
        pick = guide(music.shape[0] * vqvae.downsample, lambda logits: choose(logits, temperature, top_k, generator))
    up, down = generate_codes(policy, music, up0, down0, temperature=temperature, top_k=top_k,
                              generator=generator, progress=dance_progress, cancel=cancel, pick=pick, repeat=repeat)
    frames = (n + END_PAD_CODES) * vqvae.downsample
    poses = np.empty((takes, frames, NUM_JOINTS, 3), np.float32)
    trans = np.empty((takes, frames, 3), np.float32)
    device = vqvae.vq_up.codebook.device
    at = 0
    for piece_poses, piece_trans in vqvae.decode_chunks(up.to(device), down.to(device),
                                                       init_trans=init_trans, init_heading=init_heading):
        if cancel is not None and cancel():
            raise _cancelled_error()
        t = piece_poses.shape[1]
        poses[:, at:at + t], trans[:, at:at + t] = piece_poses.numpy(), piece_trans.numpy()
        at += t
        if progress is not None:
            progress(0.85 + 0.15 * at / frames, f"decoding: frame {at}/{frames}")
    motions = []
    for k in range(takes):
        take_meta = {**(meta or {}), "seed": int(seed), "take": k + 1, "temperature": float(temperature),
                     "top_k": None if top_k is None else int(top_k),
                     "codes_up": up[k, :n].tolist(), "codes_down": down[k, :n].tolist()}
        motion = keep_above_floor(Motion(poses[k, :n * vqvae.downsample], trans[k, :n * vqvae.downsample],
                                         vqvae.fps, take_meta))
        motions.append(motion.in_place() if in_place else motion)
    return motions


def keep_above_floor(motion: Motion, *, smooth_seconds: float = 0.15) -> Motion:
    """The dance lifted wherever a sole would go below the floor (y = 0, :func:`e3d2_core.io.floor.sole_heights`):
    the lift is the needed height spread smoothly over neighbouring frames (a running maximum over ±0.5 s, then a
    Gaussian of ``smooth_seconds``, so a 5-cm lift adds about 2 m/s² to the root), and never less than needed, so
    no sole ends below the floor. Frames that stand or fly are kept."""
    from scipy.ndimage import gaussian_filter1d, maximum_filter1d

    from e3d2_core.io.floor import sole_heights
    need = np.maximum(0.0, -sole_heights(motion.joints().astype(np.float64)))
    if not need.any():
        return motion
    width = max(1, int(round(1.0 * motion.fps)))
    lift = gaussian_filter1d(maximum_filter1d(need, width), smooth_seconds * motion.fps)
    lift = np.maximum(lift, need)
    trans = motion.trans.copy()
    trans[:, 1] += lift.astype(trans.dtype)
    return motion.copy(trans=trans)
