"""Scoring any Motion with R_θ: its total, return per minute and per-step curve.

The reward model lives either in a checkpoint bundle (``bundle["reward"]``) or in a stand-alone reward file
(``{"format": "e3d2-reward", ...}``, written by ``e3d2 train reward``). Its entry holds the config, the weights,
and the fingerprint of the π_BC whose demonstrations trained it; a bundle whose policy has another fingerprint is
refused (R_θ ranks *that* policy's noise levels, nothing says it ranks another's).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from e3d2_core.errors import E3D2Error
from e3d2_core.models.reward import RewardModel

REWARD_FORMAT = "e3d2-reward"
REWARD_VERSION = 1
MIN_STEPS = 1


@dataclass
class Score:
    """R_θ's verdict on one motion.

    total: summed per-step reward; per_minute: total / scored minutes (compares songs of different lengths);
    times: (N,) seconds, the centre of each code step; values: (N,) reward per step; note: what was scored
    when motion and music lengths differ (empty otherwise).
    """

    total: float
    per_minute: float
    times: list[float]
    values: list[float]
    note: str = ""
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The ``e3d2 score --json`` object: {"total", "per_minute", "times", "values"} (+ "note", "seconds")."""
        data = {"total": self.total, "per_minute": self.per_minute, "times": self.times, "values": self.values,
                "seconds": self.seconds}
        if self.note:
            data["note"] = self.note
        return data


# ------------------------------------------------------------------------------------------------ checkpoints
def policy_fingerprint(state_dict: dict) -> str:
    """sha256 over a policy's parameter names, shapes and bytes (order-independent of dict insertion)."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name]
        if torch.is_tensor(tensor):
            digest.update(name.encode())
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def reward_entry(model: RewardModel, *, policy_fingerprint: str | None, music_kind: str, note: str = "",
                 metrics: dict | None = None) -> dict:
    """The plain-data dict stored as ``bundle["reward"]`` (or, with a format tag, as a stand-alone file)."""
    return {"config": dict(model.config), "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "policy_fingerprint": policy_fingerprint, "music_kind": music_kind, "note": note,
            "metrics": metrics or {}}


def save_reward_file(path, entry: dict) -> Path:
    from e3d2_core.fileio import atomic_open

    with atomic_open(path) as handle:
        torch.save({"format": REWARD_FORMAT, "version": REWARD_VERSION, **entry}, handle)
    return Path(path)


def _read(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise E3D2Error("no such checkpoint file", path=path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        raise E3D2Error(f"unreadable checkpoint ({type(err).__name__}: {str(err).splitlines()[0][:200]})",
                        path=path) from None
    if not isinstance(data, dict):
        raise E3D2Error("not an e3d2 checkpoint", path=path)
    return data


def reward_from_entry(entry: dict, *, policy_state: dict | None = None, where: str = "checkpoint") -> RewardModel:
    """Build R_θ from a reward entry; refuse it if ``policy_state`` (the π_BC it is used with) differs."""
    if not isinstance(entry, dict) or "config" not in entry or "state_dict" not in entry:
        raise E3D2Error(f"{where}: malformed reward entry (needs config and state_dict)")
    if policy_state is not None and entry.get("policy_fingerprint"):
        found = policy_fingerprint(policy_state)
        if found != entry["policy_fingerprint"]:
            raise E3D2Error(f"{where}: the reward model was trained on demonstrations of another policy "
                            f"(fingerprint {entry['policy_fingerprint']}, this policy {found}); retrain it with "
                            f"`e3d2 train reward` for this policy")
    try:
        model = RewardModel(entry["config"])
        model.load_state_dict(entry["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        raise E3D2Error(f"{where}: reward weights do not fit their config ({str(err).splitlines()[0][:200]})") \
            from None
    return model.eval()


def load_reward(checkpoint=None, *, policy_state: dict | None = None) -> tuple[RewardModel, dict]:
    """R_θ and its entry from a bundle or a stand-alone reward file (the default bundle when None).

    For a bundle, the reward must match the bundle's π_BC (``bundle["policy"]``); ``policy_state`` overrides the
    policy it is checked against.
    """
    if checkpoint is None:
        from e3d2_core.checkpoint import default_checkpoint

        checkpoint = default_checkpoint()
    data = checkpoint if isinstance(checkpoint, dict) else _read(checkpoint)
    where = "checkpoint" if isinstance(checkpoint, dict) else str(checkpoint)
    kind = data.get("format")
    if kind == REWARD_FORMAT:
        return reward_from_entry(data, policy_state=policy_state, where=where), data
    if kind == "e3d2-bundle":
        if "reward" not in data:
            raise E3D2Error(f"{where}: this checkpoint has no reward model (R_θ); train one with "
                            f"`e3d2 train reward` or pass a checkpoint that has one")
        if policy_state is None and isinstance(data.get("policy"), dict):
            policy_state = data["policy"].get("state_dict")
        return reward_from_entry(data["reward"], policy_state=policy_state, where=where), data["reward"]
    raise E3D2Error(f"{where}: not an e3d2 bundle or reward file (format {kind!r})")


# ------------------------------------------------------------------------------------------------ inputs
def motion_joints(motion, fps: float, *, motion_fps: float | None = None) -> np.ndarray:
    """(T, 24, 3) joint positions at ``fps`` from a Motion, a Motion path, or a joint array.

    Joint arrays ((T, 72) or (T, 24, 3), metres, Y up) need ``motion_fps``. Anything that is not the 24 SMPL
    joints, or is too coarse or short for one code step, is refused with the reason.
    """
    from e3d2_core.motion import Motion, resample_positions_interp

    if isinstance(motion, (str, Path)):
        motion = Motion.load(motion)
    if isinstance(motion, Motion):
        if motion.fps < fps / 8.0:
            raise E3D2Error(f"motion at {motion.fps:g} fps is coarser than one reward step ({fps / 8:g} per s)")
        return (motion.resample(fps) if abs(motion.fps - fps) > 1e-9 else motion).joints()
    joints = np.asarray(motion, dtype=np.float32)
    if joints.ndim == 2 and joints.shape[1] % 3 == 0:
        joints = joints.reshape(len(joints), -1, 3)
    if joints.ndim != 3 or joints.shape[-1] != 3:
        raise E3D2Error(f"joint positions must be (T, 72) or (T, 24, 3), got {joints.shape}")
    if joints.shape[1] != 24:
        raise E3D2Error(f"R_θ reads the 24 SMPL joints; this motion has {joints.shape[1]} joints (retarget it "
                        f"first, e.g. `e3d2 import` for BVH)")
    if motion_fps is None:
        raise E3D2Error("a joint array has no frame rate: give its fps")
    if not np.isfinite(joints).all():
        raise E3D2Error("joint positions contain NaN or infinite values")
    if motion_fps < fps / 8.0:
        raise E3D2Error(f"motion at {motion_fps:g} fps is coarser than one reward step ({fps / 8:g} per s)")
    return resample_positions_interp(joints, motion_fps, fps)


def music_at_step_rate(audio, model: RewardModel, kind: str) -> tuple[np.ndarray, float]:
    """(N, D) music features at R_θ's step rate and the music's duration in seconds.

    ``audio``: a path (features extracted by ``e3d2_core.audio``) or an object with ``features``/``fps``/
    ``duration`` at the step rate (a precomputed ``MusicFeatures``).
    """
    step_fps = model.config["fps"] / model.config["frames_per_step"]
    if hasattr(audio, "features"):
        if abs(float(audio.fps) - step_fps) > 1e-6:
            raise E3D2Error(f"music features are at {audio.fps:g} fps; R_θ needs {step_fps:g} fps")
        features = np.asarray(audio.features, dtype=np.float32)
        duration = float(getattr(audio, "duration", len(features) / step_fps))
    else:
        from e3d2_core.audio import extract_features

        music = extract_features(audio, fps=step_fps, kind=kind)
        features, duration = np.asarray(music.features, dtype=np.float32), float(music.duration)
    if features.ndim != 2 or features.shape[1] != model.config["music_dim"]:
        raise E3D2Error(f"music features are {features.shape[1:]}-d; R_θ was trained on "
                        f"{model.config['music_dim']}-d ({kind}) features")
    return features, duration


# ------------------------------------------------------------------------------------------------ scoring
@torch.no_grad()
def score_arrays(model: RewardModel, joints: np.ndarray, music: np.ndarray, *,
                 music_seconds: float | None = None) -> Score:
    """Score (T, 24, 3) joints at the model fps against (N, D) step-rate music, over their overlap."""
    fps, per_step = model.config["fps"], model.config["frames_per_step"]
    motion_steps = len(joints) // per_step
    steps = min(motion_steps, len(music))
    if steps < MIN_STEPS:
        raise E3D2Error(f"too short to score: {len(joints)} frames and {len(music)} music steps; one reward "
                        f"step is {per_step} frames ({per_step / fps:.3f} s)")
    motion_seconds = len(joints) / fps
    music_seconds = len(music) * per_step / fps if music_seconds is None else music_seconds
    note = ""
    if abs(motion_seconds - music_seconds) > per_step / fps:
        note = (f"motion is {motion_seconds:.2f} s and music {music_seconds:.2f} s: scored their overlap, "
                f"the first {steps * per_step / fps:.2f} s")
    feats = model.features(torch.from_numpy(np.ascontiguousarray(joints[:steps * per_step]))[None])
    values = model(feats, torch.from_numpy(music[:steps])[None])[0].double().numpy()
    seconds = steps * per_step / fps
    times = (np.arange(steps) + 0.5) * per_step / fps
    total = float(values.sum())
    return Score(total=total, per_minute=total / (seconds / 60.0), times=[round(float(t), 6) for t in times],
                 values=[float(v) for v in values], note=note, seconds=seconds)


def score(motion, audio, *, checkpoint=None, motion_fps: float | None = None) -> Score:
    """R_θ's score of ``motion`` (Motion, Motion path, or joint array with ``motion_fps``) on ``audio``."""
    model, entry = load_reward(checkpoint)
    joints = motion_joints(motion, model.config["fps"], motion_fps=motion_fps)
    music, duration = music_at_step_rate(audio, model, entry.get("music_kind", "bailando"))
    return score_arrays(model, joints, music, music_seconds=duration)
