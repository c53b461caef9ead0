"""Motion: the one dance format every part of e3d2 reads and writes.

A Motion is SMPL local joint rotations plus a root translation at a frame rate:

* ``poses``: float32 (T, 24, 3) axis-angle (radians), SMPL joint order;
* ``trans``: float32 (T, 3) pelvis translation in metres, **Y up**, facing +Z, floor at y = 0;
* ``fps``: frames per second;
* ``meta``: a JSON-able dict (model, checkpoint hash, seed, audio hash, source file...).

On disk it is an ``.npz`` with those four entries (``meta`` as a JSON string); no pickles.

Resampling lives here too, for Motions and for joint-position tracks (one time grid for both). Nothing here
imports torch or scipy: Blender's own Python reads, writes and resamples Motions with this module.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from e3d2_core import rotations
from e3d2_core.errors import E3D2Error
from e3d2_core.fileio import atomic_open
from e3d2_core.skeleton import NUM_JOINTS, Skeleton, default_skeleton, forward_kinematics

MAX_FPS = 1000.0


@dataclass
class Motion:
    poses: np.ndarray
    trans: np.ndarray
    fps: float
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.poses = np.asarray(self.poses, dtype=np.float32)
        self.trans = np.asarray(self.trans, dtype=np.float32)
        self.fps = float(self.fps)
        self.meta = dict(self.meta or {})
        self.validate()

    # ------------------------------------------------------------------ checks and basic facts
    def validate(self, path=None) -> None:
        """Raise :class:`E3D2Error` unless shapes, frame rate and values make a usable motion."""
        if self.poses.ndim != 3 or self.poses.shape[1:] != (NUM_JOINTS, 3):
            raise E3D2Error(f"poses must be (T, 24, 3) axis-angle, got {self.poses.shape}", path=path)
        if self.trans.shape != (self.poses.shape[0], 3):
            raise E3D2Error(f"trans must be (T, 3) with T = {self.poses.shape[0]}, got {self.trans.shape}",
                            path=path)
        if self.poses.shape[0] < 1:
            raise E3D2Error("motion has no frames", path=path)
        if not (0.0 < self.fps <= MAX_FPS):
            raise E3D2Error(f"fps must be in (0, {MAX_FPS:g}], got {self.fps}", path=path)
        if not (np.isfinite(self.poses).all() and np.isfinite(self.trans).all()):
            raise E3D2Error("motion contains NaN or infinite values", path=path)

    def __len__(self) -> int:
        return self.poses.shape[0]

    @property
    def num_frames(self) -> int:
        return self.poses.shape[0]

    @property
    def duration(self) -> float:
        """Seconds covered, counting each frame as 1/fps long."""
        return self.num_frames / self.fps

    @property
    def skeleton(self) -> Skeleton:
        """The skeleton this motion was made for: ``meta["skeleton"]`` when present, else the bundled one."""
        data = self.meta.get("skeleton")
        return Skeleton.from_dict(data) if isinstance(data, dict) else default_skeleton()

    def joints(self, skeleton: Skeleton | None = None) -> np.ndarray:
        """(T, 24, 3) float32 joint positions in metres (Y up) by forward kinematics.

        Uses ``skeleton`` if given, else the motion's own (:attr:`skeleton`).
        """
        return forward_kinematics(self.poses, self.trans, skeleton or self.skeleton).astype(np.float32)

    # ------------------------------------------------------------------ I/O
    def save(self, path) -> Path:
        """Write ``path`` (.npz) atomically: the old file survives any failure."""
        path = Path(path)
        if path.suffix != ".npz":
            raise E3D2Error("a Motion is saved as .npz", path=path)
        with atomic_open(path) as handle:
            np.savez(handle, poses=self.poses, trans=self.trans, fps=np.float64(self.fps),
                     meta=np.array(json.dumps(self.meta)))
        return path

    @classmethod
    def load(cls, path) -> "Motion":
        """Read a Motion ``.npz``, with a one-line error for anything missing, truncated or malformed."""
        path = Path(path)
        if not path.is_file():
            raise E3D2Error("no such motion file", path=path)
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = {"poses", "trans", "fps"} - set(data.files)
                if missing:
                    raise E3D2Error(f"not a Motion file: missing {', '.join(sorted(missing))}", path=path)
                meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
                motion = cls.__new__(cls)
                motion.poses = np.asarray(data["poses"], dtype=np.float32)
                motion.trans = np.asarray(data["trans"], dtype=np.float32)
                motion.fps = float(data["fps"])
                motion.meta = meta if isinstance(meta, dict) else {}
        except E3D2Error:
            raise
        except (OSError, ValueError, zipfile.BadZipFile, EOFError, json.JSONDecodeError) as err:
            raise E3D2Error(f"unreadable Motion file ({type(err).__name__}: {err})", path=path) from None
        motion.validate(path=path)
        return motion

    # ------------------------------------------------------------------ edits (each returns a new Motion)
    def copy(self, **changes) -> "Motion":
        fields = {"poses": self.poses.copy(), "trans": self.trans.copy(), "fps": self.fps,
                  "meta": json.loads(json.dumps(self.meta))}
        fields.update(changes)
        return Motion(**fields)

    def trim(self, start: int = 0, stop: int | None = None) -> "Motion":
        """Frames ``[start, stop)`` (Python slice semantics)."""
        poses, trans = self.poses[start:stop], self.trans[start:stop]
        if len(poses) == 0:
            raise E3D2Error(f"trim [{start}:{stop}] leaves no frames of {self.num_frames}")
        return self.copy(poses=poses.copy(), trans=trans.copy())

    def trim_seconds(self, start: float = 0.0, stop: float | None = None) -> "Motion":
        """The frames whose time lies in ``[start, stop)`` seconds."""
        first = int(np.ceil(start * self.fps - 1e-9))
        last = None if stop is None else int(np.ceil(stop * self.fps - 1e-9))
        return self.trim(first, last)

    def resample(self, fps: float) -> "Motion":
        """The same motion at another frame rate: slerp for rotations, linear for translation.

        New frame k sits at time k / fps; frames stop at the last original frame's time.
        """
        fps = float(fps)
        if not (0.0 < fps <= MAX_FPS):
            raise E3D2Error(f"target fps must be in (0, {MAX_FPS:g}], got {fps}")
        if abs(fps - self.fps) < 1e-9:
            return self.copy()
        poses, trans = self.sample(resample_times(self.num_frames, self.fps, fps))
        return self.copy(poses=poses, trans=trans, fps=fps)

    def sample(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Poses and trans at any ``times`` (seconds, clamped to the motion): slerp and lerp between frames.

        Returns:
            poses (N, 24, 3) float64 axis-angle, trans (N, 3) float64 metres.
        """
        lo, hi, frac = frame_weights(times, self.fps, self.num_frames)
        return slerp_frames(self.poses, lo, hi, frac), lerp_frames(self.trans, lo, hi, frac)

    def mirror(self, skeleton: Skeleton | None = None) -> "Motion":
        """Left/right mirror image through the body's sagittal (YZ) plane.

        Reflecting x -> -x maps a rotation R to M R M (M = diag(-1, 1, 1)), i.e. axis-angle (x, y, z) ->
        (x, -y, -z), and swaps every left joint with its right twin.
        """
        swap = (skeleton or default_skeleton()).mirror_map
        poses = self.poses[:, swap] * np.array([1.0, -1.0, -1.0], dtype=np.float32)
        trans = self.trans * np.array([-1.0, 1.0, 1.0], dtype=np.float32)
        return self.copy(poses=poses, trans=trans)

    def in_place(self) -> "Motion":
        """No root travel on the floor plane: x and z held at frame 0's values (height kept)."""
        trans = self.trans.copy()
        trans[:, [0, 2]] = trans[:1, [0, 2]]
        return self.copy(trans=trans)


def from_z_up(points: np.ndarray) -> np.ndarray:
    """Rotate Z-up coordinates to Y-up: (x, y, z) -> (x, z, -y). A rotation, not an axis swap (no mirroring)."""
    points = np.asarray(points)
    return np.stack([points[..., 0], points[..., 2], -points[..., 1]], axis=-1)


def to_z_up(points: np.ndarray) -> np.ndarray:
    """Inverse of :func:`from_z_up`: (x, y, z) -> (x, -z, y)."""
    points = np.asarray(points)
    return np.stack([points[..., 0], -points[..., 2], points[..., 1]], axis=-1)


# ---------------------------------------------------------------------------------------------- resampling
def resample_times(num_frames: int, fps: float, target: float) -> np.ndarray:
    """Times (seconds) of the frames of ``num_frames`` at ``fps`` resampled to ``target`` fps: frame k at k / target,
    up to the last original frame's time."""
    last_time = (num_frames - 1) / fps
    return np.arange(int(np.floor(last_time * target + 1e-6)) + 1) / target


def frame_weights(times: np.ndarray, fps: float, num_frames: int):
    """The two frames around each of ``times`` (seconds, clamped to the clip) and the blend between them.

    Returns:
        lo (N,) int64 and hi (N,) int64 frame indices, frac (N,) float64 in [0, 1]: value = lo * (1 - frac) + hi * frac.
    """
    position = np.clip(np.asarray(times, dtype=np.float64) * fps, 0, num_frames - 1)
    lo = np.minimum(np.floor(position).astype(np.int64), num_frames - 1)
    hi = np.minimum(lo + 1, num_frames - 1)
    return lo, hi, position - lo


def lerp_frames(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """(N, ...) linear blend of ``values`` (T, ...) between frames ``lo`` and ``hi`` by ``frac`` (N,)."""
    frac = frac.reshape(frac.shape + (1,) * (np.ndim(values) - 1))
    return values[lo] * (1 - frac) + values[hi] * frac


def slerp_frames(poses: np.ndarray, lo: np.ndarray, hi: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """(N, 24, 3) float64 axis-angle: each joint's rotation slerped between frames ``lo`` and ``hi`` of ``poses``
    (T, 24, 3) by ``frac`` (N,)."""
    quats = rotations.axis_angle_to_quaternion(np.asarray(poses).astype(np.float64))
    weight = np.repeat(frac[:, None], quats.shape[1], axis=1)
    return rotations.quaternion_to_axis_angle(rotations.quaternion_slerp(quats[lo], quats[hi], weight))


def resample_positions(joints: np.ndarray, fps: float, target: float) -> np.ndarray:
    """(T, J, 3) positions resampled linearly from ``fps`` to ``target`` on :meth:`Motion.resample`'s time grid:
    float64, or ``joints`` itself when the rates match."""
    if abs(fps - target) < 1e-9:
        return joints
    return lerp_frames(joints, *frame_weights(resample_times(len(joints), fps, target), fps, len(joints)))


def resample_positions_interp(joints: np.ndarray, fps: float, target: float) -> np.ndarray:
    """(T, J, 3) positions resampled linearly from ``fps`` to ``target`` as R_θ's joint inputs are: ``np.interp``
    per coordinate on the same time grid, returned as float32.

    Agrees with :func:`resample_positions` to float rounding; kept apart so that reward scores of joint arrays stay
    bit for bit what they were.
    """
    if abs(fps - target) < 1e-9:
        return np.asarray(joints, dtype=np.float32)
    t_in = np.arange(len(joints)) / fps
    t_out = resample_times(len(joints), fps, target)
    flat = np.asarray(joints, dtype=np.float64).reshape(len(joints), -1)
    out = np.stack([np.interp(t_out, t_in, flat[:, k]) for k in range(flat.shape[1])], 1)
    return out.reshape(len(t_out), *np.shape(joints)[1:]).astype(np.float32)

