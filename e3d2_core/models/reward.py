"""R_θ: the learned per-step dance reward of E3D2, read from the motion itself and the music.

Input is *joint positions* (forward kinematics of any Motion, or positions-only data), never the policy's codes:
codes would hide decoding artefacts and could not score imported or hand-made animation.

Per code step (``frames_per_step`` = 8 frames at the model's ``fps``) the motion is summarised by
:func:`step_features`: root-relative joint positions and joint velocities expressed in the body's heading frame
(so the reward does not depend on where the dancer stands or faces), the root velocity in that frame, root height,
mean joint speeds and accelerations, and the per-frame mean speed (the motion-beat signal, kept at frame
resolution so beat timing inside a step stays visible) and the step's peak speed and acceleration (a one-frame pop
or seam would vanish in a mean). The music comes in at the code rate.

The network is a *causal* dilated temporal convolution over steps: ``r_t`` depends on steps ``t - C + 1 .. t``
only (C = :attr:`RewardModel.context_steps`). Causal and of finite context was chosen because (1) a snippet's
return is then exactly the sum of the same per-step rewards the whole song would give once the ``C - 1`` steps
before the snippet are supplied (training and scoring agree); (2) in RL, the reward of step t is fixed once
step t is generated, so credit is not smeared onto earlier actions by future context.
An ensemble of independently initialised members is averaged (D-REX uses 3).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from e3d2_core.errors import E3D2Error

LEFT_HIP, RIGHT_HIP, LEFT_SHOULDER, RIGHT_SHOULDER = 1, 2, 16, 17
NUM_JOINTS = 24
# rel. positions, velocities, speeds, accelerations, root height, per-step peak speed and peak acceleration
MOTION_DIM_BASE = 72 + 72 + 24 + 24 + 1 + 2

DEFAULT_CONFIG = {
    "fps": 60.0,             # model frame rate; other motion is resampled to it
    "frames_per_step": 8,    # one code step
    "music_dim": 438,        # music features per code step (the bundle's kind)
    "hidden": 128,
    "layers": 3,             # dilations 1, 2, 4, ... -> context 1 + (kernel-1) * (2**layers - 1) steps
    "kernel": 3,
    "dropout": 0.1,
    "ensemble": 1,
    "frame_velocities": False,   # also feed each step's per-frame joint velocities (frames_per_step x 72 numbers)
    "frame_encoder": 0,          # > 0 (needs frame_velocities): width of a per-frame encoder max/mean-pooled per step
}


def motion_dim(frames_per_step: int, frame_velocities: bool = False) -> int:
    return MOTION_DIM_BASE + frames_per_step + (frames_per_step * 72 if frame_velocities else 0)


def heading_rotation(joints: torch.Tensor) -> torch.Tensor:
    """Per-frame rotation about +Y that turns the body to face +Z.

    Args:
        joints: (..., 24, 3) positions, Y up.
    Returns:
        (..., 3, 3) matrices R with ``R @ forward = +Z`` for the body's horizontal forward direction
        (forward = across x up, across = left-minus-right hips and shoulders).
    """
    across = (joints[..., LEFT_HIP, :] - joints[..., RIGHT_HIP, :]
              + joints[..., LEFT_SHOULDER, :] - joints[..., RIGHT_SHOULDER, :])
    # forward = across x (0, 1, 0) = (-a_z, 0, a_x)
    fx, fz = -across[..., 2], across[..., 0]
    angle = torch.atan2(fx, fz)  # heading about +Y, 0 when facing +Z
    c, s = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    # rotation by -angle about Y
    return torch.stack([c, zero, -s, zero, one, zero, s, zero, c], -1).reshape(angle.shape + (3, 3))


def step_features(joints: torch.Tensor, fps: float, frames_per_step: int = 8,
                  frame_velocities: bool = False) -> torch.Tensor:
    """Per-step motion summary that R_θ reads.

    Args:
        joints: (B, T, 24, 3) joint positions in metres, Y up, at ``fps``; T >= 2 (frames past the last whole
            step are dropped).
        fps: frame rate of ``joints``.
        frames_per_step: frames pooled into one step.
        frame_velocities: also append every frame's joint velocities in the heading frame (m/s), unpooled:
            a random code's seam lives inside a step, and step means blur it (measured: a per-step classifier
            of random-code steps went from 84 % to 87 % held-out with them).
    Returns:
        (B, N, D) float tensor, N = T // frames_per_step, D = :func:`motion_dim` (frames_per_step,
        frame_velocities).
    """
    B, T = joints.shape[:2]
    n_steps = T // frames_per_step
    joints = joints.float()
    heading = heading_rotation(joints)                                     # (B,T,3,3)
    root = joints[:, :, :1]
    rel = torch.einsum("btij,btkj->btki", heading, joints - root)           # (B,T,24,3)
    disp = joints[:, 1:] - joints[:, :-1]
    disp = torch.cat([disp[:, :1], disp], 1) * fps                           # m/s, frame 0 copies frame 1
    vel = torch.einsum("btij,btkj->btki", heading, disp)
    speed = vel.norm(dim=-1)                                                 # (B,T,24)
    acc = torch.cat([(disp[:, 1:2] - disp[:, :1]), disp[:, 1:] - disp[:, :-1]], 1).norm(dim=-1) * fps / 100.0
    height = joints[:, :, 0, 1:2]
    per_frame = torch.cat([rel.flatten(2), vel.flatten(2), speed, acc, height], -1)  # (B,T,193)
    per_frame = per_frame[:, :n_steps * frames_per_step].reshape(B, n_steps, frames_per_step, -1)
    beat_signal = speed.mean(-1)[:, :n_steps * frames_per_step].reshape(B, n_steps, frames_per_step)
    # peaks inside a step: a pop or a seam lasts one frame and would vanish in the step mean
    peak_acc = acc.mean(-1)[:, :n_steps * frames_per_step].reshape(B, n_steps, frames_per_step).amax(-1, True)
    parts = [per_frame.mean(2), beat_signal.amax(-1, True), peak_acc, beat_signal]
    if frame_velocities:
        parts.append(vel[:, :n_steps * frames_per_step].reshape(B, n_steps, -1))
    return torch.cat(parts, -1)


class CausalConvBlock(nn.Module):
    """Pre-norm residual block: LayerNorm -> causal dilated Conv1d -> GELU -> Linear."""

    def __init__(self, width: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.pad = (kernel - 1) * dilation
        self.conv = nn.Conv1d(width, width, kernel, dilation=dilation)
        self.proj = nn.Linear(width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):  # (B, N, W)
        h = self.norm(x).transpose(1, 2)
        h = self.conv(F.pad(h, (self.pad, 0))).transpose(1, 2)
        return x + self.drop(self.proj(F.gelu(h)))


class FrameEncoder(nn.Module):
    """Reads a step's per-frame joint velocities and their frame-to-frame changes (across the boundary with the
    step before, too) with one shared MLP, then pools over the step's frames by max and mean.

    Why: a random code's seam is a jolt in one or two frames. A linear layer over the flattened frames weighs each
    frame position separately and cannot say "a jolt anywhere in the step"; a shared nonlinearity with max pooling
    can.
    """

    def __init__(self, frames_per_step: int, width: int, out: int):
        super().__init__()
        self.frames = frames_per_step
        self.mlp = nn.Sequential(nn.Linear(2 * 72, width), nn.GELU(), nn.Linear(width, width))
        self.out = nn.Linear(2 * width, out)

    def forward(self, frame_vel):  # (B, N, frames*72) z-scored -> (B, N, out)
        v = frame_vel.unflatten(-1, (self.frames, 72))                        # (B, N, frames, 72)
        # a code seam sits at the step boundary: the first frame's change is taken from the previous step's last
        # frame (the first step has none and repeats its own first frame)
        last_before = torch.cat([v[:, :1, :1], v[:, :-1, -1:]], 1)
        change = v - torch.cat([last_before, v[..., :-1, :]], -2)
        h = self.mlp(torch.cat([v, change], -1))                               # (B, N, frames, width)
        return self.out(torch.cat([h.amax(-2), h.mean(-2)], -1))


class RewardMember(nn.Module):
    """One ensemble member: motion + music per step -> one scalar per step."""

    def __init__(self, config: dict):
        super().__init__()
        width = config["hidden"]
        self.motion_in = nn.Linear(motion_dim(config["frames_per_step"], config["frame_velocities"]), width)
        self.frame_encoder = None
        if config.get("frame_encoder", 0):
            if not config["frame_velocities"]:
                raise E3D2Error("reward model: frame_encoder needs frame_velocities: true")
            self.frame_encoder = FrameEncoder(config["frames_per_step"], config["frame_encoder"], width)
            self.frame_dims = config["frames_per_step"] * 72
        self.music_in = nn.Linear(config["music_dim"], width)
        self.blocks = nn.ModuleList(CausalConvBlock(width, config["kernel"], 2 ** i, config["dropout"])
                                    for i in range(config["layers"]))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 1)

    def hidden(self, motion, music):  # (B,N,Dm), (B,N,Da) -> (B,N,W): what the reward head reads
        x = self.motion_in(motion) + self.music_in(music)
        if self.frame_encoder is not None:  # the per-frame velocities are the last block of the step features
            x = x + self.frame_encoder(motion[..., -self.frame_dims:])
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, motion, music):  # (B,N,Dm), (B,N,Da) -> (B,N)
        return self.head(self.hidden(motion, music)).squeeze(-1)


class RewardModel(nn.Module):
    """R_θ: an ensemble of :class:`RewardMember` with input normalisation stored as buffers.

    ``config`` is plain data (see :data:`DEFAULT_CONFIG`); the checkpoint holds it with the state dict.
    """

    def __init__(self, config: dict):
        super().__init__()
        self.config = {**DEFAULT_CONFIG, **config}
        cfg = self.config
        self.members = nn.ModuleList(RewardMember(cfg) for _ in range(cfg["ensemble"]))
        dm, da = motion_dim(cfg["frames_per_step"], cfg["frame_velocities"]), cfg["music_dim"]
        self.register_buffer("motion_mean", torch.zeros(dm))
        self.register_buffer("motion_std", torch.ones(dm))
        self.register_buffer("music_mean", torch.zeros(da))
        self.register_buffer("music_std", torch.ones(da))

    @property
    def context_steps(self) -> int:
        """How many steps (including the current one) a per-step reward depends on."""
        cfg = self.config
        return 1 + (cfg["kernel"] - 1) * (2 ** cfg["layers"] - 1)

    @property
    def step_seconds(self) -> float:
        return self.config["frames_per_step"] / self.config["fps"]

    def fit_normalisation(self, motion_feats: torch.Tensor, music: torch.Tensor) -> None:
        """Set input z-score statistics from training data: (..., Dm) and (..., Da)."""
        m = motion_feats.reshape(-1, motion_feats.shape[-1]).float()
        a = music.reshape(-1, music.shape[-1]).float()
        self.motion_mean.copy_(m.mean(0))
        self.motion_std.copy_(m.std(0).clamp_min(1e-3))
        self.music_mean.copy_(a.mean(0))
        self.music_std.copy_(a.std(0).clamp_min(1e-3))

    def _inputs(self, motion_feats: torch.Tensor, music: torch.Tensor):
        if motion_feats.shape[:2] != music.shape[:2]:
            raise E3D2Error(f"motion steps {tuple(motion_feats.shape[:2])} != music steps {tuple(music.shape[:2])}")
        return ((motion_feats.float() - self.motion_mean) / self.motion_std,
                (music.float() - self.music_mean) / self.music_std)

    def member_rewards(self, motion_feats: torch.Tensor, music: torch.Tensor) -> torch.Tensor:
        """(E, B, N) per-step rewards of every member from :func:`step_features` output and music (B,N,Da)."""
        x, a = self._inputs(motion_feats, music)
        return torch.stack([member(x, a) for member in self.members])

    def member_hidden(self, motion_feats: torch.Tensor, music: torch.Tensor) -> torch.Tensor:
        """(E, B, N, hidden) per-step features that each member's reward head reads (for training probes)."""
        x, a = self._inputs(motion_feats, music)
        return torch.stack([member.hidden(x, a) for member in self.members])

    def forward(self, motion_feats: torch.Tensor, music: torch.Tensor) -> torch.Tensor:
        """(B, N) per-step reward: the ensemble mean."""
        return self.member_rewards(motion_feats, music).mean(0)

    def features(self, joints: torch.Tensor, fps: float | None = None) -> torch.Tensor:
        """:func:`step_features` as this model reads them, from joints (B, T, 24, 3) at ``fps`` (default: the
        model's)."""
        cfg = self.config
        return step_features(joints, fps or cfg["fps"], cfg["frames_per_step"], cfg["frame_velocities"])

    def reward_joints(self, joints: torch.Tensor, music: torch.Tensor) -> torch.Tensor:
        """(B, N) per-step reward from joints (B, T, 24, 3) at the model fps and music (B, >=N, Da)."""
        feats = self.features(joints)
        return self(feats, music[:, :feats.shape[1]])


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def describe(config: dict) -> str:
    cfg = {**DEFAULT_CONFIG, **config}
    context = 1 + (cfg["kernel"] - 1) * (2 ** cfg["layers"] - 1)
    frames = (f", per-frame encoder {cfg['frame_encoder']} wide" if cfg["frame_encoder"] else
              ", per-frame velocities" if cfg["frame_velocities"] else "")
    return (f"R_θ: causal dilated conv, {cfg['layers']} layers x {cfg['hidden']} wide{frames}, "
            f"ensemble {cfg['ensemble']}, context {context} steps "
            f"({context * cfg['frames_per_step'] / cfg['fps']:.2f} s), "
            f"music {cfg['music_dim']}-d")
