"""Beat-guided sampling: tilt the policy's next-code choice toward codes whose motion dips on the music's beats.

A dance is *on* the beat when its kinematic beats -- the minima of mean joint speed, the moments a step lands or
a move stops (what BAS reads) -- fall on the music's beats, with the motion faster in between. The policy decides
*what* to dance; this guide decides, among the codes the policy finds likely, *which one lands where*:

* :func:`code_speed_profiles` measures, once per VQ-VAE, how fast each code moves at each of its ``downsample``
  (8) frames: the mean joint speed of the decoded motion, split into the joints each half drives (upper codes:
  spine, arms and head; lower codes: pelvis and legs, which carry the root's travel), averaged over every place
  the code occurs in a set of decoded dances. The tables travel in the bundle (``"beat_guide"``).
* :class:`BeatGuide` turns the music's beats into per-frame weights ``w(t) = g(t) - mean(g)``, where ``g`` is a
  Gaussian bump of ``sigma`` seconds on every beat and the mean is over the song, so the weights sum to about zero
  over a beat: positive on the beat (slow down here), negative between beats (move here). At the step that picks
  code i+1 it adds ``-strength * sum_f w(f) * log(speed[code, f])`` to each candidate's logit, over code i+1's
  frames. The contrast is in log speed, so a code gains by being *relatively* slow on the beat and fast off it:
  on a linear scale fast codes would win (speed is unbounded above, not below) and the dancer would speed up.
  The log is softened, ``log(speed + SOFTENING * mean speed)``: on a pure log scale a code that trembles in
  place (0.02 -> 0.1 m/s) has a larger contrast than a step (0.5 -> 1.5 m/s), and on a lively memory the guide
  then held one trembling pose (measured, docs/music-following.md).
* Only the policy's own nucleus is reordered (the fewest likeliest codes holding ``CANDIDATE_MASS`` of its
  probability): a strong guide otherwise reaches codes the policy would never dance in that context (bent over
  to the floor, measured), and the dance stops being the policy's.
* Speeds are measured with the body's turning taken out (:func:`e3d2_core.skeleton.body_frame`), and every
  draw of a lower code pays ``strength * TURN_COST`` per turn per second it spins: fast codes are often turning
  ones, and a guide that buys speed with spins makes the dancer spin (measured: 13 % of the time faster than
  360°/s, real dance 2 %).

``strength`` is in logits per unit of normalised speed contrast: 0 gives the raw policy's choice exactly; the
product default is ``api.BEAT_GUIDE_DEFAULT``. Only the ranking among candidates changes; temperature and top-k still
apply, so the dance stays the policy's. Metrics of the raw model (the paper's tables) never use it.
"""
from __future__ import annotations

import numpy as np
import torch

from e3d2_core.errors import E3D2Error
from e3d2_core.skeleton import LOWER_JOINTS, NUM_JOINTS, UPPER_JOINTS, body_frame

BEAT_SIGMA = 0.1             # seconds: the width of "on the beat"
TURN_COST = 1.0              # logits per turn per second of a lower code, times the strength
SPEED_FLOOR = 0.02           # m/s: log speed of a code is taken above this (a still code is not -inf)
SOFTENING = 1.0              # x the mean joint speed: the contrast is in log(speed + this) (new bundles)
CANDIDATE_MASS = 0.9         # the guide reorders the policy's nucleus of this probability only (new bundles)


def code_speed_profiles(joints: np.ndarray, up: np.ndarray, down: np.ndarray, *, fps: float, downsample: int,
                        codebook_size: int) -> dict:
    """Per-code speed at each frame of the code, from decoded dances.

    Args:
        joints: (B, 8N, 24, 3) joint positions of the decoded dances, metres.
        up, down: (B, N) the codes they were decoded from.
        fps: frames per second of ``joints``.
        downsample: frames per code (8).
        codebook_size: K, codes per half.
    Returns:
        {"up": (K, 8) float32, "down": (K, 8) float32} mean speed (m/s, turning removed:
        :func:`e3d2_core.skeleton.body_frame`) of the half's joints, weighted by their share of the 24 joints,
        at each frame of each code (codes never seen get the half's mean profile); "turn": (K,) mean |yaw rate|
        (rad/s) of each lower code; "counts_up", "counts_down": (K,) occurrences; "speed_scale": float, the mean
        joint speed overall.
    """
    world = np.asarray(joints, np.float64)
    joints = body_frame(world)
    b, frames = joints.shape[:2]
    n = frames // downsample
    if up.shape != (b, n) or down.shape != (b, n):
        raise E3D2Error(f"codes {up.shape}/{down.shape} do not fit {b} dances of {frames} frames")
    velocity = np.linalg.norm(np.diff(joints, axis=1, prepend=joints[:, :1]), axis=-1) * fps   # (B, T, 24)
    velocity[:, 0] = velocity[:, 1]
    tables = {}
    for half, codes, members in (("up", up, UPPER_JOINTS), ("down", down, LOWER_JOINTS)):
        share = velocity[..., list(members)].sum(-1) / NUM_JOINTS                          # (B, T)
        per_code = share[:, : n * downsample].reshape(b * n, downsample)
        flat = np.asarray(codes).reshape(-1)
        sums = np.zeros((codebook_size, downsample))
        np.add.at(sums, flat, per_code)
        counts = np.bincount(flat, minlength=codebook_size)
        mean_profile = per_code.mean(0)
        table = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], mean_profile[None])
        tables[half] = table.astype(np.float32)
        tables[f"counts_{half}"] = counts.astype(np.int64)
    across = world[..., 1, :] - world[..., 2, :]
    heading = np.unwrap(np.arctan2(across[..., 0], across[..., 2]), axis=1)
    turn = np.abs(np.diff(heading, axis=1, prepend=heading[:, :1])) * fps                    # (B, T) rad/s
    per_code = turn[:, : n * downsample].reshape(b * n, downsample).mean(1)
    flat = np.asarray(down).reshape(-1)
    counts = np.bincount(flat, minlength=codebook_size)
    sums = np.bincount(flat, weights=per_code, minlength=codebook_size)
    tables["turn"] = np.where(counts > 0, sums / np.maximum(counts, 1), per_code.mean()).astype(np.float32)
    tables["speed_scale"] = float(velocity.mean())
    return tables


def guide_entry(tables: dict, *, softening: float = SOFTENING, candidate_mass: float = CANDIDATE_MASS) -> dict:
    """``tables`` as a bundle entry (tensors and plain numbers), with the contrast's ``softening`` and the
    ``candidate_mass`` the guide keeps (bundles from before them carry neither: 0 and 1, the guide as it was)."""
    return {"up": torch.as_tensor(tables["up"]), "down": torch.as_tensor(tables["down"]),
            "turn": torch.as_tensor(tables["turn"]), "speed_scale": float(tables["speed_scale"]),
            "softening": float(softening), "candidate_mass": float(candidate_mass)}


class BeatGuide:
    """A ``pick`` for :func:`e3d2_core.generation.generate_codes` that tilts each draw toward on-beat codes.

    Args:
        entry: the bundle's ``"beat_guide"`` ({"up": (K, 8), "down": (K, 8), "turn": (K,), "speed_scale": float};
            without "turn", turning is free).
        beat_frames: (M,) music beats in motion frames (fractional allowed), on the dance's clock.
        num_frames: frames of the dance (8 x code steps, end padding included).
        strength: logits per unit of log-speed contrast (0: the policy's own choice).
        choose: ``choose(logits (B, K)) -> (B,) codes``, the sampler the guide hands the tilted logits to.
        fps: motion frames per second; ``sigma``: seconds, the width of a beat.
    """

    def __init__(self, entry: dict, beat_frames, num_frames: int, *, strength: float, choose, fps: float = 60.0,
                 sigma: float = BEAT_SIGMA):
        if not (np.isfinite(strength) and strength >= 0):
            raise E3D2Error(f"beat guide strength must be ≥ 0, got {strength!r}")
        offset = float(entry.get("softening", 0.0)) * float(entry.get("speed_scale", 0.0))
        self.up = speed_log(entry["up"], offset)
        self.down = speed_log(entry["down"], offset)
        self.downsample = self.up.shape[1]
        turn = entry.get("turn")
        # spins buy speed: a fast code is often a turning one, so every draw pays for turning (turns per second)
        self.turn_cost = (torch.zeros(self.down.shape[0]) if turn is None else
                          TURN_COST * torch.as_tensor(turn, dtype=torch.float32) / (2 * np.pi))
        self.strength, self.choose = float(strength), choose
        self.mass = float(entry.get("candidate_mass", 1.0))
        self.weights = beat_weights(np.asarray(beat_frames, np.float64), num_frames, sigma * fps)
        self.step = 0

    def bias(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(K,) logit bias of the up and down codes placed at code ``step`` (its frames 8*step .. 8*step+7)."""
        w = self.weights[step * self.downsample:(step + 1) * self.downsample]
        if len(w) < self.downsample:
            w = np.pad(w, (0, self.downsample - len(w)))
        w = torch.as_tensor(w, dtype=torch.float32)
        return -self.strength * (self.up @ w), -self.strength * (self.down @ w + self.turn_cost)

    def __call__(self, logits_up: torch.Tensor, logits_down: torch.Tensor):
        self.step += 1                      # the first call picks code 1 (code 0 is the seed)
        bias_up, bias_down = self.bias(self.step)
        return (self.choose(candidates(logits_up, self.mass) + bias_up.to(logits_up.device)),
                self.choose(candidates(logits_down, self.mass) + bias_down.to(logits_down.device)))


def candidates(logits: torch.Tensor, mass: float) -> torch.Tensor:
    """(B, K) logits with every code outside the policy's nucleus set to -inf: the fewest most likely codes whose
    probabilities (softmax of the raw logits) sum to ``mass``. The guide then only reorders what the policy
    would dance; ``mass`` 1 keeps every code."""
    if mass >= 1.0:
        return logits
    probs = torch.softmax(logits.float(), -1)
    ranked, order = probs.sort(-1, descending=True)
    outside = (ranked.cumsum(-1) - ranked) >= mass              # the mass before a code already reaches ``mass``
    mask = torch.zeros_like(outside).scatter(-1, order, outside)
    return logits.masked_fill(mask, float("-inf"))


def speed_log(table, offset: float) -> torch.Tensor:
    """log(speed + offset) of a (K, 8) speed table, speeds taken above ``SPEED_FLOOR``."""
    return torch.log(torch.as_tensor(table, dtype=torch.float32).clamp_min(SPEED_FLOOR) + offset)


def beat_weights(beat_frames: np.ndarray, num_frames: int, sigma_frames: float) -> np.ndarray:
    """(num_frames,) g - mean(g): a unit Gaussian bump of ``sigma_frames`` on every beat (the nearest beat's),
    minus its mean over the dance. Zeros without at least two beats."""
    beats = beat_frames[(beat_frames > -3 * sigma_frames) & (beat_frames < num_frames + 3 * sigma_frames)]
    if len(beats) < 2 or num_frames < 1:
        return np.zeros(num_frames)
    t = np.arange(num_frames, dtype=np.float64)
    nearest = np.abs(t[:, None] - beats[None]).min(1)
    g = np.exp(-0.5 * (nearest / sigma_frames) ** 2)
    return g - g.mean()


@torch.no_grad()
def measure_tables(vqvae, policy, songs, *, takes: int = 4, max_codes: int = 240, seed: int = 0,
                   temperature: float = 0.7) -> dict:
    """:func:`code_speed_profiles` of ``policy``'s own dances: ``takes`` sampled takes on each song, decoded.

    Args:
        vqvae: the ChoreographicMemory the policy's codes belong to (float32, CPU or CUDA).
        policy: a DancePolicy ready for inference (:func:`e3d2_core.generation.policy_for_inference`).
        songs: normalised code-rate music, each (N, D) float32 tensor.
        takes: takes per song; ``max_codes``: code steps per take at most (240 = 32 s at 7.5 codes/s).
    Returns:
        the tables dict of :func:`code_speed_profiles` (its ``counts_*`` say how well each code was seen).
    """
    from e3d2_core import generation as gen
    from e3d2_core.motion import Motion

    joints, ups, downs = [], [], []
    for index, music in enumerate(songs):
        music = torch.as_tensor(music)[:max_codes]
        if music.shape[0] < 8:
            continue
        generator = torch.Generator().manual_seed(seed + index)
        up0, down0, init_trans, init_heading = gen.seed_codes(vqvae, None, takes, seed + index + 1)
        up, down = gen.generate_codes(policy, music, up0, down0, temperature=temperature, generator=generator)
        device = vqvae.vq_up.codebook.device
        poses, trans = vqvae.decode(up.to(device), down.to(device), init_trans=init_trans,
                                    init_heading=init_heading)
        for k in range(takes):
            joints.append(Motion(poses[k].numpy(), trans[k].numpy(), vqvae.fps).joints())
        ups.append(up.numpy())
        downs.append(down.numpy())
    if not joints:
        raise E3D2Error("no song is long enough to measure the codes' speeds (8 code steps at least)")
    frames = min(j.shape[0] for j in joints)
    codes = frames // vqvae.downsample
    return code_speed_profiles(np.stack([j[:codes * vqvae.downsample] for j in joints]),
                               np.concatenate([u[:, :codes] for u in ups]),
                               np.concatenate([d[:, :codes] for d in downs]),
                               fps=vqvae.fps, downsample=vqvae.downsample,
                               codebook_size=int(vqvae.config["codebook_size"]))


class BeatGuideWarning(UserWarning):
    """The beat guide could not act (no tables in the checkpoint, or no beats); the draws are the policy's own."""
