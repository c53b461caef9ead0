"""Training shards and the window datasets the stages train on.

A **shard** is one ``.npz`` per split (``train.npz``, ``val.npz``, ``test.npz``) written by the data recipes
(``training/prepare_aistpp.py``, ``training/prepare_bundled.py``); the stages read nothing else. No pickles:

=================  ===========================  ===============================================================
key                shape / type                 meaning
=================  ===========================  ===============================================================
``poses``          (N, 24, 3) float32           SMPL local axis-angle of all sequences, concatenated
``trans``          (N, 3) float32               pelvis translation, metres, Y up
``motion_offsets`` (S+1,) int64                 sequence s = frames ``[offsets[s], offsets[s+1])``
``music``          (M, D) float32               music features at the code rate, concatenated
``music_offsets``  (S+1,) int64                 row j of sequence s is the music at motion frame ``j * fps/music_fps``
``names``          (S,) str                     sequence names (e.g. ``gBR_sBM_cAll_d04_mBR0_ch01``)
``music_ids``      (S,) str                     the song each sequence dances to
``fps``            float                        motion frame rate (60 for AIST++)
``music_fps``      float                        music feature rate = the code rate (``fps / 8``)
``beat_frames``    (B,) int64, optional         music beats of every sequence, frame indices at ``fps`` (its own clock)
``beat_offsets``   (S+1,) int64, optional       sequence s's beats = ``beat_frames[beat_offsets[s]:beat_offsets[s+1]]``
``music_kind``     str                          ``bailando`` (438-d) or ``compact``
``split``          str                          ``train`` / ``val`` / ``test``
``note``           str                          where the data came from (licences, recipe, alignment)
=================  ===========================  ===============================================================

Every sequence has exactly ``n_frames // ratio`` music rows (``ratio = fps / music_fps``): whole code steps.

``beat_frames``/``beat_offsets`` (added later, same format version): the song's beats at the *motion* frame rate
(``e3d2_core.audio.tracked_beats(song, fps=fps)``) that fall inside the sequence, shifted to its first frame — the
music beats BAS is defined with (docs/metrics.md). Shards without them still load (``Sequence.beat_frames`` is None) and
evaluation then falls back to the code-rate beat column; :func:`add_beat_frames` upgrades a shard in place.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from e3d2_core.errors import E3D2Error
from e3d2_core.fileio import atomic_open
from e3d2_core.skeleton import NUM_JOINTS

SHARD_FORMAT = "e3d2-shard"
SHARD_VERSION = 1


@dataclass
class Sequence:
    """One dance with its music: poses (T,24,3), trans (T,3) at ``fps``; music (T // ratio, D)."""

    name: str
    music_id: str
    poses: np.ndarray
    trans: np.ndarray
    music: np.ndarray
    beat_frames: np.ndarray | None = None   # (K,) int64 music beats at the motion fps, or None (older shards)

    @property
    def num_frames(self) -> int:
        return len(self.poses)


@dataclass
class Shard:
    sequences: list[Sequence]
    fps: float
    music_fps: float
    music_kind: str
    split: str
    note: str = ""
    path: Path | None = field(default=None, repr=False)

    @property
    def ratio(self) -> int:
        return int(round(self.fps / self.music_fps))

    @property
    def music_dim(self) -> int:
        return self.sequences[0].music.shape[1] if self.sequences else 0

    def minutes(self) -> float:
        return sum(s.num_frames for s in self.sequences) / self.fps / 60.0

    @property
    def has_beats(self) -> bool:
        """True when every sequence carries exact music beats (``beat_frames``)."""
        return bool(self.sequences) and all(s.beat_frames is not None for s in self.sequences)


def code_ratio(fps: float, music_fps: float) -> int:
    ratio = fps / music_fps
    if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
        raise E3D2Error(f"motion fps {fps:g} is not a whole multiple of the music (code) rate {music_fps:g}")
    return int(round(ratio))


def write_shard(path, sequences: list[Sequence], *, fps: float, music_fps: float, music_kind: str, split: str,
                note: str = "") -> Path:
    """Write one split's sequences to ``path`` (.npz) atomically, checking every shape first."""
    ratio = code_ratio(fps, music_fps)
    if not sequences:
        raise E3D2Error(f"split '{split}' has no sequences", path=path)
    dims = {s.music.shape[1] for s in sequences}
    if len(dims) != 1:
        raise E3D2Error(f"split '{split}': music features of different widths {sorted(dims)}", path=path)
    for s in sequences:
        if s.poses.shape != (s.num_frames, NUM_JOINTS, 3) or s.trans.shape != (s.num_frames, 3):
            raise E3D2Error(f"sequence {s.name}: poses {s.poses.shape} / trans {s.trans.shape} do not match")
        if len(s.music) != s.num_frames // ratio:
            raise E3D2Error(f"sequence {s.name}: {len(s.music)} music rows for {s.num_frames} frames; "
                            f"need {s.num_frames // ratio} (one per {ratio} frames)")
    with_beats = [s.beat_frames is not None for s in sequences]
    if any(with_beats) and not all(with_beats):
        raise E3D2Error(f"split '{split}': some sequences have music beats and some do not", path=path)
    beats = {}
    if all(with_beats):
        for s in sequences:
            b = np.asarray(s.beat_frames)
            if b.ndim != 1 or (len(b) and (b.min() < 0 or b.max() >= s.num_frames or np.any(np.diff(b) <= 0))):
                raise E3D2Error(f"sequence {s.name}: music beats must be increasing frame indices in "
                                f"[0, {s.num_frames})", path=path)
        beats = {"beat_frames": np.concatenate([np.asarray(s.beat_frames, np.int64) for s in sequences]),
                 "beat_offsets": np.cumsum([0] + [len(s.beat_frames) for s in sequences]).astype(np.int64)}
    offsets = np.cumsum([0] + [s.num_frames for s in sequences]).astype(np.int64)
    music_offsets = np.cumsum([0] + [len(s.music) for s in sequences]).astype(np.int64)
    with atomic_open(path) as handle:
        np.savez(handle, format=np.array(SHARD_FORMAT), version=np.int64(SHARD_VERSION),
                 poses=np.concatenate([s.poses for s in sequences]).astype(np.float32),
                 trans=np.concatenate([s.trans for s in sequences]).astype(np.float32),
                 motion_offsets=offsets,
                 music=np.concatenate([s.music for s in sequences]).astype(np.float32),
                 music_offsets=music_offsets,
                 names=np.array([s.name for s in sequences]), music_ids=np.array([s.music_id for s in sequences]),
                 fps=np.float64(fps), music_fps=np.float64(music_fps), music_kind=np.array(music_kind),
                 split=np.array(split), note=np.array(note), **beats)
    return Path(path)


def load_shard(path) -> Shard:
    """Read a shard written by :func:`write_shard`, with a one-line error for anything wrong."""
    path = Path(path)
    if not path.is_file():
        raise E3D2Error("no such training shard; run the data recipe first (see docs/training.md)", path=path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "format" not in data.files or str(data["format"]) != SHARD_FORMAT:
                raise E3D2Error("not an e3d2 training shard", path=path)
            if int(data["version"]) != SHARD_VERSION:
                raise E3D2Error(f"shard version {int(data['version'])}, this code reads {SHARD_VERSION}", path=path)
            arrays = {key: data[key] for key in data.files}
    except E3D2Error:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        raise E3D2Error(f"unreadable training shard ({type(err).__name__}: {err})", path=path) from None
    off, moff = arrays["motion_offsets"], arrays["music_offsets"]
    boff = arrays.get("beat_offsets")
    if boff is not None and ("beat_frames" not in arrays or len(boff) != len(off)):
        raise E3D2Error("shard's music beats do not match its sequences", path=path)
    sequences = [Sequence(str(arrays["names"][i]), str(arrays["music_ids"][i]),
                          arrays["poses"][off[i]:off[i + 1]], arrays["trans"][off[i]:off[i + 1]],
                          arrays["music"][moff[i]:moff[i + 1]],
                          None if boff is None else arrays["beat_frames"][boff[i]:boff[i + 1]])
                 for i in range(len(off) - 1)]
    return Shard(sequences, float(arrays["fps"]), float(arrays["music_fps"]), str(arrays["music_kind"]),
                 str(arrays["split"]), str(arrays["note"]), path)


def add_beat_frames(path, beats: list) -> Path:
    """Upgrade the shard at ``path`` in place with exact music beats (atomic: the old file stays until done).

    ``beats[s]``: sequence s's music-beat frames at the shard's fps on the sequence's own clock (frame 0 = its
    first frame), in the shard's order; beats outside ``[0, num_frames)`` are dropped. Everything else in the shard
    is rewritten unchanged.
    """
    shard = load_shard(path)
    if len(beats) != len(shard.sequences):
        raise E3D2Error(f"{len(beats)} beat lists for {len(shard.sequences)} sequences", path=path)
    for seq, frames in zip(shard.sequences, beats):
        frames = np.unique(np.asarray(frames, dtype=np.int64))
        seq.beat_frames = frames[(frames >= 0) & (frames < seq.num_frames)]
    return write_shard(path, shard.sequences, fps=shard.fps, music_fps=shard.music_fps,
                       music_kind=shard.music_kind, split=shard.split, note=shard.note)


# ---------------------------------------------------------------------------------------------- datasets
class MotionWindows:
    """Fixed-length motion windows for the VQ-VAE: item = {"poses": (W,24,3), "trans": (W,3)} float32.

    Windows start every ``stride`` frames in every sequence (Bailando: W = 240, stride 40 at 60 fps); a
    sequence shorter than one window gives none. ``trans`` is left absolute — the model decides what of the
    root it encodes (it turns the root into floor velocity, height and yaw rate: docs/models.md).
    """

    def __init__(self, sequences: list[Sequence], window: int, stride: int):
        if window < 1 or stride < 1:
            raise E3D2Error(f"window ({window}) and stride ({stride}) must be positive")
        self.sequences = sequences
        self.window = window
        self.index = [(s, start) for s, seq in enumerate(sequences)
                      for start in range(0, seq.num_frames - window + 1, stride)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        s, start = self.index[i]
        seq = self.sequences[s]
        return {"poses": seq.poses[start:start + self.window], "trans": seq.trans[start:start + self.window]}


class CodeWindows:
    """Windows of ``length`` code steps for the policy: item = {"music": (L,D) float32, "up": (L,) int64,
    "down": (L,) int64}, all three aligned in time (row i of each belongs to code step i).

    The one-step shift (token i predicts code i+1 while seeing music i+1; docs/models.md) is the model's job
    (``DancePolicy.forward`` does teacher forcing). Windows start at *every* ``stride`` code steps over the whole
    sequence — this fixes Bailando's window-start quirk (docs/training.md), whose loop ran over the number of
    7.5 fps music frames while stepping in 60 fps dance frames and so only ever started windows in the first
    eighth of each dance.
    """

    def __init__(self, up: list[np.ndarray], down: list[np.ndarray], music: list[np.ndarray], length: int,
                 stride: int = 1):
        if length < 2 or stride < 1:
            raise E3D2Error(f"code window length ({length}) must be ≥ 2 and stride ({stride}) ≥ 1")
        self.up, self.down, self.music = up, down, music
        self.length = length
        self.index = []
        for s, (u, d, m) in enumerate(zip(up, down, music)):
            if not (len(u) == len(d) == len(m)):
                raise E3D2Error(f"sequence {s}: {len(u)} up, {len(d)} down codes and {len(m)} music rows differ")
            self.index += [(s, start) for start in range(0, len(u) - length + 1, stride)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        s, a = self.index[i]
        b = a + self.length
        return {"music": self.music[s][a:b], "up": self.up[s][a:b], "down": self.down[s][a:b]}


def music_stats(music: list[np.ndarray], normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std over all rows (std floored at 1e-4); identity (0, 1) when not ``normalize``."""
    dim = music[0].shape[1]
    if not normalize:
        return np.zeros(dim, np.float32), np.ones(dim, np.float32)
    rows = np.concatenate(music).astype(np.float64)
    return rows.mean(0).astype(np.float32), np.maximum(rows.std(0), 1e-4).astype(np.float32)
