"""Choreographic memory: two VQ-VAEs (upper and lower body) with a root branch (docs/models.md).

Read top to bottom: config -> residual conv blocks -> encoder / decoder -> EMA codebook -> the model.

Input is the product representation of :mod:`e3d2_core.models.representation` (6D rotations, root velocity in the
heading frame, height, yaw rate). Per half:

* encoder: ``log2(downsample)`` blocks of [Conv1d(k4, s2, p1) -> Resnet1D(depth, dilations growth^0..)],
  then Conv1d(k3) to ``code_dim``: one latent per ``downsample`` (8) frames;
* quantiser: nearest code in L2, straight-through gradient; EMA codebook (decay ``ema_decay`` 0.99), initialised
  from encoder outputs (tiled and jittered with std 0.01/√dim when there are fewer than ``codebook_size``),
  dead-code restart (EMA count < ``restart_threshold`` 1.0 -> a random current encoder output);
* decoder: Conv1d(k3) -> blocks of [Resnet1D (reversed dilations) -> ConvTranspose1d(k4, s2, p1)] -> Conv1d(k3).

The lower encoder reads the 54 pose channels (heading-free orientation + lower joints) and its decoder writes them
back; a **root branch** (a third decoder of the same shape) reads the lower codes and predicts the 4 root channels
(floor velocity, height, yaw rate). Bailando trains that branch in a second stage with everything else frozen;
here it is trained jointly (``root_detach=False``: its gradient also reaches the lower encoder), so the lower
codes learn to carry the travel information the root decoder needs, and one stage instead of two halves the
training time on a CPU budget. ``root_detach=True`` gives Bailando's separation (codes ignore the root loss).

Loss (per half, averaged over halves as Bailando's ×0.5): L1(x̂, x) + vel·L1(Δx̂, Δx) + acc·L1(Δ²x̂, Δ²x)
+ commit·‖sg(z_q) − z_e‖²; plus root·(L1(r̂, r) + L1(Δr̂, Δr)) for the root channels, plus FK
joint-position terms fk·L1(p̂, p) + fk_vel·L1(Δp̂, Δp), p = forward kinematics of the decoded rotations in the
body's heading frame (pelvis at its height, no travel), in metres.

Decoding long code sequences runs in chunks of ``decode_chunk`` codes with an overlap equal to the decoder's
receptive field, so the result equals one-shot decoding and memory is constant in the song's length.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from e3d2_core.errors import E3D2Error
from e3d2_core.models import representation as rep
from e3d2_core.skeleton import Skeleton, default_skeleton, forward_kinematics_torch

DEFAULT_CONFIG = {
    "fps": 60.0,               # motion frame rate the model works at
    "codebook_size": 512,      # codes per half
    "code_dim": 512,           # dimension of a code
    "width": 512,              # conv channels
    "depth": 3,                # residual units per Resnet1D
    "dilation_growth": 3,      # dilations growth^0, growth^1, ...
    "downsample": 8,           # frames per code (a power of 2)
    "commit": 0.02,
    "ema_decay": 0.99,
    "restart_threshold": 1.0,
    "vel_weight": 1.0,
    "acc_weight": 1.0,
    "root_weight": 1.0,
    "fk_weight": 1.0,
    "fk_vel_weight": 1.0,
    "root_detach": False,
    "decode_chunk": 128,       # codes per decoding chunk
    "output_smoothing": 0.0,   # frames: Gaussian sigma on decoded features (0 = none; see decode_features)
}


def make_config(config: dict | None) -> dict:
    """DEFAULT_CONFIG updated by ``config``; unknown keys are an error (catches typos in YAML recipes)."""
    config = dict(config or {})
    unknown = set(config) - set(DEFAULT_CONFIG) - {"skeleton"}
    if unknown:
        raise E3D2Error(f"unknown VQ-VAE config keys: {sorted(unknown)}")
    out = {**DEFAULT_CONFIG, **config}
    levels = math.log2(out["downsample"])
    if levels != int(levels) or levels < 1:
        raise E3D2Error(f"downsample must be a power of 2, got {out['downsample']}")
    return out


# ---------------------------------------------------------------------------------------------- conv blocks
class ResUnit(nn.Module):
    """x + Conv1x1(ReLU(Conv_k3,dilation d(ReLU(x))))."""

    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.proj = nn.Conv1d(width, width, 1)

    def forward(self, x):
        return x + self.proj(F.relu(self.conv(F.relu(x))))


def resnet1d(width: int, depth: int, growth: int, reverse: bool) -> nn.Sequential:
    dilations = [growth ** i for i in range(depth)]
    return nn.Sequential(*[ResUnit(width, d) for d in (dilations[::-1] if reverse else dilations)])


class Encoder(nn.Module):
    """(B, C_in, T) -> (B, code_dim, T / downsample)."""

    def __init__(self, c_in: int, cfg: dict):
        super().__init__()
        width, levels = cfg["width"], int(math.log2(cfg["downsample"]))
        blocks = []
        for i in range(levels):
            blocks += [nn.Conv1d(c_in if i == 0 else width, width, 4, stride=2, padding=1),
                       resnet1d(width, cfg["depth"], cfg["dilation_growth"], reverse=False)]
        blocks.append(nn.Conv1d(width, cfg["code_dim"], 3, padding=1))
        self.net = nn.Sequential(*blocks)

    def forward(self, x):
        return self.net(x)


class Decoder(nn.Module):
    """(B, code_dim, N) -> (B, C_out, N * downsample)."""

    def __init__(self, c_out: int, cfg: dict):
        super().__init__()
        width, levels = cfg["width"], int(math.log2(cfg["downsample"]))
        blocks = [nn.Conv1d(cfg["code_dim"], width, 3, padding=1)]
        for _ in range(levels):
            blocks += [resnet1d(width, cfg["depth"], cfg["dilation_growth"], reverse=True),
                       nn.ConvTranspose1d(width, width, 4, stride=2, padding=1)]
        blocks.append(nn.Conv1d(width, c_out, 3, padding=1))
        self.net = nn.Sequential(*blocks)

    def forward(self, x):
        return self.net(x)


def decoder_reach(cfg: dict) -> int:
    """How many codes on each side can influence a decoded frame (the decoder's receptive field), rounded up."""
    dilation_sum = sum(cfg["dilation_growth"] ** i for i in range(cfg["depth"]))
    reach, rate = 1.0, 1          # first conv k3 at the code rate
    for _ in range(int(math.log2(cfg["downsample"]))):
        reach += (dilation_sum + 1) / rate   # the Resnet1D at this rate, then the transposed conv's one input step
        rate *= 2
    smoothing = math.ceil(4 * float(cfg.get("output_smoothing", 0.0)) / cfg["downsample"])
    return math.ceil(reach + 1.0 / rate) + 1 + smoothing


def smooth_in_time(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, T, C) -> the same, each channel convolved in time with a Gaussian of ``sigma`` frames (truncated at
    4 sigma, edge frames repeated)."""
    radius = max(1, int(math.ceil(4 * sigma)))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(x.dtype).to(x.device)
    b, t, c = x.shape
    channels = x.transpose(1, 2).reshape(b * c, 1, t)
    padded = F.pad(channels, (radius, radius), mode="replicate")
    return F.conv1d(padded, kernel.view(1, 1, -1)).reshape(b, c, t).transpose(1, 2)


# ---------------------------------------------------------------------------------------------- EMA codebook
class EMACodebook(nn.Module):
    """Nearest-neighbour quantiser whose codes follow an exponential moving average of their assigned inputs."""

    def __init__(self, size: int, dim: int, decay: float, threshold: float):
        super().__init__()
        self.size, self.dim, self.decay, self.threshold = size, dim, decay, threshold
        self.register_buffer("codebook", torch.zeros(size, dim))
        self.register_buffer("ema_sum", torch.zeros(size, dim))
        self.register_buffer("ema_count", torch.ones(size))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """(M, D) -> (M,) index of the closest code (L2)."""
        codebook = self.codebook.to(flat.dtype)
        dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.t() + codebook.pow(2).sum(1)[None])
        return dist.argmin(1)

    def _candidates(self, flat: torch.Tensor) -> torch.Tensor:
        """``size`` random rows of ``flat`` (tiled and jittered when there are fewer rows than codes)."""
        if flat.shape[0] < self.size:
            reps = math.ceil(self.size / flat.shape[0])
            flat = flat.repeat(reps, 1)
            flat = flat + torch.randn_like(flat) * (0.01 / math.sqrt(self.dim))
        return flat[torch.randperm(flat.shape[0], device=flat.device)[: self.size]]

    @torch.no_grad()
    def _initialise(self, flat):
        self.codebook.copy_(self._candidates(flat))
        self.ema_sum.copy_(self.codebook)
        self.ema_count.fill_(1.0)
        self.initialised.fill_(True)
        _broadcast(self.codebook, self.ema_sum, self.ema_count)

    @torch.no_grad()
    def _update(self, flat, idx) -> int:
        onehot = F.one_hot(idx, self.size).to(flat.dtype)           # (M, K)
        counts, sums = onehot.sum(0), onehot.t() @ flat
        _all_reduce(counts, sums)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        alive = (self.ema_count >= self.threshold)[:, None].to(flat.dtype)
        fresh = self._candidates(flat)
        self.codebook.copy_(alive * self.ema_sum / self.ema_count.clamp_min(1e-6)[:, None] + (1 - alive) * fresh)
        self.ema_sum.copy_(alive * self.ema_sum + (1 - alive) * fresh)
        self.ema_count.copy_(alive[:, 0] * self.ema_count + (1 - alive[:, 0]))
        _broadcast(self.codebook, self.ema_sum, self.ema_count)
        return int((1 - alive).sum().item())

    def forward(self, z_e: torch.Tensor):
        """(B, D, N) -> (straight-through z_q (B, D, N), codes (B, N), commit loss, logs)."""
        b, d, n = z_e.shape
        flat = z_e.permute(0, 2, 1).reshape(-1, d)
        if self.training and not bool(self.initialised):
            self._initialise(flat.detach().float())
        idx = self.nearest(flat.detach())
        z_q = self.codebook[idx].to(flat.dtype)
        logs = {}
        if self.training:
            logs["restarts"] = float(self._update(flat.detach().float(), idx))
            probs = torch.bincount(idx, minlength=self.size).float() / idx.numel()
            logs["perplexity"] = float(torch.exp(-(probs * torch.log(probs + 1e-10)).sum()))
        commit = F.mse_loss(flat, z_q.detach())
        z_q = flat + (z_q - flat).detach()
        return z_q.reshape(b, n, d).permute(0, 2, 1), idx.reshape(b, n), commit, logs

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, N) codes -> (B, D, N) latents."""
        return self.codebook[codes].permute(0, 2, 1)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _all_reduce(*tensors):
    if _distributed():
        for t in tensors:
            torch.distributed.all_reduce(t)


def _broadcast(*tensors):
    """Rank 0's codebook wins (restarts draw different random candidates on each rank)."""
    if _distributed():
        for t in tensors:
            torch.distributed.broadcast(t, 0)


# ---------------------------------------------------------------------------------------------- the model
def _l1_with_derivatives(pred, target, vel_w, acc_w):
    """L1 on (B, T, C) values, first and second frame differences."""
    loss = F.l1_loss(pred, target)
    dp, dt = pred.diff(dim=1), target.diff(dim=1)
    loss = loss + vel_w * F.l1_loss(dp, dt)
    return loss + acc_w * F.l1_loss(dp.diff(dim=1), dt.diff(dim=1))


class ChoreographicMemory(nn.Module):
    """Upper/lower VQ-VAEs + root branch. ``config``: see DEFAULT_CONFIG (plain data, stored in bundles)."""

    def __init__(self, config: dict | None = None):
        super().__init__()
        self.config = make_config(config)
        cfg = self.config
        self.skeleton = Skeleton.from_dict(cfg["skeleton"]) if "skeleton" in cfg else default_skeleton()
        self.fps = float(cfg["fps"])
        self.downsample = int(cfg["downsample"])
        self.enc_up, self.dec_up = Encoder(rep.UPPER_DIM, cfg), Decoder(rep.UPPER_DIM, cfg)
        self.enc_down, self.dec_down = Encoder(rep.LOWER_POSE_DIM, cfg), Decoder(rep.LOWER_POSE_DIM, cfg)
        self.dec_root = Decoder(rep.ROOT_DIM, cfg)
        args = (cfg["codebook_size"], cfg["code_dim"], cfg["ema_decay"], cfg["restart_threshold"])
        self.vq_up, self.vq_down = EMACodebook(*args), EMACodebook(*args)

    # -------------------------------------------------------------- training
    def features(self, poses, trans):
        """(B,T,24,3), (B,T,3) -> lower (B,T,58), upper (B,T,90) in float32 (computed in float32 or better)."""
        if poses.dtype not in (torch.float32, torch.float64):
            poses, trans = poses.float(), trans.float()
        with torch.autocast(poses.device.type, enabled=False):     # kinematics stay in full precision
            lower, upper = rep.encode(poses, trans, self.fps)
        return lower.float(), upper.float()

    def forward(self, batch: dict):
        """batch {"poses": (B,T,24,3), "trans": (B,T,3)}, T a multiple of ``downsample`` -> (loss, logs)."""
        poses, trans = batch["poses"], batch["trans"]
        if poses.shape[1] % self.downsample:
            raise E3D2Error(f"window length {poses.shape[1]} is not a multiple of {self.downsample}")
        cfg = self.config
        lower, upper = self.features(poses, trans)
        low_pose, root = lower[..., : rep.LOWER_POSE_DIM], lower[..., rep.LOWER_POSE_DIM:]
        zq_up, _, commit_up, logs_up = self.vq_up(self.enc_up(upper.transpose(1, 2)))
        zq_down, _, commit_down, logs_down = self.vq_down(self.enc_down(low_pose.transpose(1, 2)))
        up_hat = self.dec_up(zq_up).transpose(1, 2)
        low_hat = self.dec_down(zq_down).transpose(1, 2)
        root_hat = self.dec_root(zq_down.detach() if cfg["root_detach"] else zq_down).transpose(1, 2)

        rec_up = _l1_with_derivatives(up_hat, upper, cfg["vel_weight"], cfg["acc_weight"])
        rec_down = _l1_with_derivatives(low_hat, low_pose, cfg["vel_weight"], cfg["acc_weight"])
        root_loss = _l1_with_derivatives(root_hat, root, 1.0, 0.0)
        fk_loss = self._fk_loss(low_hat, up_hat, root_hat, low_pose, upper, root)
        commit = 0.5 * (commit_up + commit_down)
        loss = (0.5 * (rec_up + rec_down) + cfg["commit"] * commit + cfg["root_weight"] * root_loss
                + fk_loss)
        logs = {"loss": loss.item(), "rec_up": rec_up.item(), "rec_down": rec_down.item(),
                "root": root_loss.item(), "fk": fk_loss.item(), "commit": commit.item()}
        for name, half in (("up", logs_up), ("down", logs_down)):
            logs.update({f"{k}_{name}": v for k, v in half.items()})
        return loss, logs

    def _fk_loss(self, low_hat, up_hat, root_hat, low, up, root):
        cfg = self.config
        if cfg["fk_weight"] == 0 and cfg["fk_vel_weight"] == 0:
            return low_hat.new_zeros(())

        def body_frame_joints(lower_pose, upper, height):
            mats = rep.local_matrices(lower_pose, upper)
            trans = torch.stack([torch.zeros_like(height), height, torch.zeros_like(height)], -1)
            return forward_kinematics_torch(mats, trans, self.skeleton, rotation_matrices=True)

        with torch.autocast(low_hat.device.type, enabled=False):
            p_hat = body_frame_joints(low_hat.float(), up_hat.float(), root_hat[..., 2].float())
            p = body_frame_joints(low, up, root[..., 2])
        return (cfg["fk_weight"] * F.l1_loss(p_hat, p)
                + cfg["fk_vel_weight"] * F.l1_loss(p_hat.diff(dim=1), p.diff(dim=1)))

    # -------------------------------------------------------------- inference
    @torch.no_grad()
    def encode(self, poses, trans) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,T,24,3), (B,T,3) -> up codes (B,N), down codes (B,N), N = ceil(T/8) (the last frame is repeated
        to fill the last code, as Bailando pads test dances)."""
        poses, trans = torch.as_tensor(poses), torch.as_tensor(trans)
        pad = (-poses.shape[1]) % self.downsample
        if pad:
            poses = torch.cat([poses, poses[:, -1:].expand(-1, pad, -1, -1)], 1)
            trans = torch.cat([trans, trans[:, -1:].expand(-1, pad, -1)], 1)
        codebook = self.vq_up.codebook
        lower, upper = self.features(poses.to(codebook.device), trans.to(codebook.device))
        lower, upper = lower.to(codebook.dtype), upper.to(codebook.dtype)
        dim = self.config["code_dim"]
        up = self.vq_up.nearest(self.enc_up(upper.transpose(1, 2)).permute(0, 2, 1).reshape(-1, dim))
        down = self.vq_down.nearest(self.enc_down(lower[..., : rep.LOWER_POSE_DIM].transpose(1, 2))
                                    .permute(0, 2, 1).reshape(-1, dim))
        n = poses.shape[1] // self.downsample
        return up.reshape(-1, n), down.reshape(-1, n)

    @torch.no_grad()
    def decode_features(self, up, down) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,N) codes -> lower (B,8N,58), upper (B,8N,90) features, decoded in one shot.

        With ``output_smoothing`` σ > 0 the features are low-passed in time (a Gaussian of σ frames, edges
        repeated): the transposed convolutions leave a frame-to-frame tremor (mean joint acceleration ~19 m/s²
        unsmoothed against 6-14 for the real salsa) that a viewer sees as vibration and the feet as sliding;
        σ = 1 frame removes it and keeps everything slower than ~10 Hz (docs/models.md has the numbers)."""
        zu, zd = self.vq_up.lookup(up), self.vq_down.lookup(down)
        lower = torch.cat([self.dec_down(zd), self.dec_root(zd)], 1).transpose(1, 2)
        upper = self.dec_up(zu).transpose(1, 2)
        sigma = float(self.config["output_smoothing"])
        if sigma > 0:
            lower, upper = smooth_in_time(lower, sigma), smooth_in_time(upper, sigma)
        return lower, upper

    @torch.no_grad()
    def decode_chunks(self, up, down, *, init_trans=None, init_heading=None, chunk=None):
        """Decode (B,N) codes piece by piece: yields (poses (B,t,24,3), trans (B,t,3)) for consecutive frames.

        Each chunk of ``chunk`` codes is decoded with ``decoder_reach`` codes of context on both sides, so the
        pieces equal one-shot decoding; the root is integrated across pieces. ``init_trans`` (B,3) or (3,):
        frame 0's floor position (its x, z; height comes from the decoder); ``init_heading`` (B,) or scalar.
        """
        chunk = int(chunk or self.config["decode_chunk"])
        reach = decoder_reach(self.config)
        b, n = up.shape
        xz = None if init_trans is None else torch.as_tensor(init_trans, dtype=torch.float32)[..., [0, 2]]
        psi = init_heading
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            lo, hi = max(0, start - reach), min(n, stop + reach)
            lower, upper = self.decode_features(up[:, lo:hi], down[:, lo:hi])
            keep = slice((start - lo) * self.downsample, (stop - lo) * self.downsample)
            lower, upper = lower[:, keep].float().cpu(), upper[:, keep].float().cpu()
            poses, trans = rep.decode(lower, upper, self.fps, init_xz=xz, init_heading=psi)
            # where the next piece starts: one more integration step past this piece's last frame
            root = lower[..., rep.LOWER_POSE_DIM:]
            ext_trans, ext_psi = rep.integrate_root(torch.cat([root, root[:, -1:]], 1), self.fps,
                                                    init_xz=xz, init_heading=psi)
            xz, psi = ext_trans[:, -1, [0, 2]], ext_psi[:, -1]
            yield poses, trans

    @torch.no_grad()
    def decode(self, up, down, *, init_trans=None, init_heading=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,N) up and down codes -> poses (B,8N,24,3) axis-angle, trans (B,8N,3) metres (chunked decoding)."""
        pieces = list(self.decode_chunks(up, down, init_trans=init_trans, init_heading=init_heading))
        return torch.cat([p for p, _ in pieces], 1), torch.cat([t for _, t in pieces], 1)

