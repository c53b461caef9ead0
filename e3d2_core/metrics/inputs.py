"""Reading the dances to evaluate: folders of dance files, as joint positions resampled to 60 fps.

Accepted per file (metres, SMPL joint order):

* ``.npz`` Motion files (``e3d2_core.motion``): the Motion is resampled to 60 fps (slerp), then forward kinematics;
* ``.npy`` / ``.csv`` joint tracks, (T, 72) or (T, 24, 3), Y up; they carry no frame rate, so ``fps``
  (``--fps``) gives it, else 60 fps is assumed and reported;
* ``.pkl`` AIST++ motion annotations (SMPL poses, 60 fps; the published GT pool) and ``.bvh`` mocap (retargeted);
* with ``fmt="bailando"``: Bailando's pickled ``.npy`` dicts ``{'pred_position': (T, 72)}`` (60 fps, Y up);
* with ``fmt="edge"``: EDGE's ``.pkl`` outputs (Z up, 30 fps).

Everything but Motion files is read by :func:`e3d2_core.io.load_joint_track` (pickles through its data-only
unpickler; Bailando/EDGE pickles only when ``fmt`` names them), without floor shifting. Joint tracks are
resampled linearly to 60 fps on the same time grid as ``Motion.resample``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from e3d2_core.errors import E3D2Error
from e3d2_core.io import load_joint_track
from e3d2_core import motion as motion_module
from e3d2_core.motion import Motion

TARGET_FPS = 60.0
FORMATS = ("bailando", "edge")
TRACK_SUFFIXES = (".npz", ".npy", ".csv", ".pkl", ".bvh")
AUDIO_SUFFIXES = (".wav", ".mp3", ".ogg", ".flac", ".m4a", ".aac", ".opus", ".aiff", ".aif")
# AIST++ music ids: genre code + digit, e.g. mBR0, mLH4 (sequence names read ..._mBR0_ch02...).
AIST_MUSIC_ID = re.compile(r"(?:^|_)(m(?:BR|PO|LO|MH|LH|HO|WA|KR|JS|JB)\d)(?:_|$)")


@dataclass
class Track:
    """One dance as joint positions at 60 fps."""
    name: str               # file stem
    path: Path
    joints: np.ndarray      # (T, 24, 3) float64, metres, Y up, 60 fps
    source_fps: float       # the file's own frame rate
    fps_assumed: bool       # True when the file carries no frame rate and none was given


def list_track_files(folder, fmt: str | None = None) -> list[Path]:
    """Sorted dance files of ``folder`` (hidden files skipped); ``[folder]`` when it is one dance file."""
    folder = Path(folder)
    if fmt is not None and fmt not in FORMATS:
        raise E3D2Error(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if folder.is_file() and folder.suffix.lower() in TRACK_SUFFIXES:
        return [folder]
    if not folder.is_dir():
        raise E3D2Error("no such folder", path=folder)
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in TRACK_SUFFIXES)
    if not files:
        raise E3D2Error(f"no dance files ({', '.join(TRACK_SUFFIXES)}) in this folder", path=folder)
    return files


def _is_pickled_npy(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            return read_header(handle)[2].hasobject
    except (OSError, ValueError, EOFError):
        return False  # the joint reader gives the one-line error


def file_format(path: Path, fmt: str | None) -> str | None:
    """The io format of one file: ``fmt`` applies to its own kind of file (pickled .npy / .pkl); others by suffix.

    So with ``--format bailando`` a folder may still hold plain ``.npy`` tracks or Motion files.
    """
    suffix = path.suffix.lower()
    if fmt == "bailando" and suffix == ".npy" and _is_pickled_npy(path):
        return "bailando"
    if fmt == "edge" and suffix == ".pkl":
        return "edge"
    return None


def _load_raw(path: Path, fmt: str | None, fps: float | None):
    """(joints at the file's rate, that rate, whether the rate was assumed, whether already at 60 fps)."""
    if path.suffix.lower() == ".npz":
        motion = Motion.load(path)
        at_60 = motion.resample(TARGET_FPS) if abs(motion.fps - TARGET_FPS) > 1e-9 else motion
        return at_60.joints().astype(np.float64), motion.fps, False, True
    kind = file_format(path, fmt)
    plain_joints = kind is None and path.suffix.lower() in (".npy", ".csv")
    # --fps is the rate of files that carry none: it never overrides a file's or a format's own rate
    joints, source_fps = load_joint_track(path, fmt=kind, fps=fps if plain_joints else None, floor=False)
    if source_fps is None:
        return joints, TARGET_FPS, True, False
    return joints, float(source_fps), False, False


def resample_positions(joints: np.ndarray, fps: float, target: float = TARGET_FPS) -> np.ndarray:
    """Linear resampling of (T, J, 3) positions from ``fps`` to ``target`` (60 fps unless given), by
    :func:`e3d2_core.motion.resample_positions`."""
    return motion_module.resample_positions(joints, fps, target)


def load_track(path, *, fmt: str | None = None, fps: float | None = None) -> Track:
    """Read one dance file as a 60-fps :class:`Track` (see the module docstring for the formats)."""
    path = Path(path)
    if fps is not None and not (0 < fps <= 1000):
        raise E3D2Error(f"--fps must be in (0, 1000], got {fps}")
    joints, source_fps, assumed, at_target = _load_raw(path, fmt, fps)
    if not at_target:
        joints = resample_positions(joints, source_fps)
    return Track(name=path.stem, path=path, joints=joints, source_fps=float(source_fps), fps_assumed=assumed)


def load_folder(folder, *, fmt: str | None = None, fps: float | None = None) -> list[Track]:
    """Every dance of ``folder`` as 60-fps tracks, in file-name order."""
    return [load_track(path, fmt=fmt, fps=fps) for path in list_track_files(folder, fmt)]


def root_relative(joints: np.ndarray) -> np.ndarray:
    """Positions minus frame 0's root joint (one translation for the whole clip), as the reference does."""
    return joints - joints[:1, :1]


# ---------------------------------------------------------------------------------------------------- music
def is_music_file(path) -> bool:
    """True when ``path`` is one music file (audio or ``.npy`` beat indices) rather than a folder."""
    path = Path(path)
    return path.suffix.lower() in AUDIO_SUFFIXES + (".npy",) and not path.is_dir()


def music_file(path) -> Path:
    """One music file given for every dance; E3D2Error when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise E3D2Error("no such music file", path=path)
    return path


def music_index(folder) -> dict[str, list[Path]]:
    """stem -> music files (audio or ``.npy`` beat indices) of ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise E3D2Error("no such music folder", path=folder)
    index: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in AUDIO_SUFFIXES + (".npy",):
            index.setdefault(path.stem, []).append(path)
    if not index:
        raise E3D2Error("no music files (audio or .npy beat indices) in this folder", path=folder)
    return index


def match_music(track_path: Path, index: dict[str, list[Path]]) -> Path:
    """The music file of a dance: identical stem, else the AIST++ music id (``mBR0``...) in its name.

    Beat-index ``.npy`` files win over audio when both exist (they reproduce published numbers exactly).
    """
    stem = Path(track_path).stem
    candidates = index.get(stem)
    if not candidates:
        found = AIST_MUSIC_ID.search(stem)
        if found:
            music_id = found.group(1)
            candidates = index.get(music_id) or [p for s, paths in index.items() for p in paths
                                                 if AIST_MUSIC_ID.search(s) and AIST_MUSIC_ID.search(s).group(1)
                                                 == music_id]
    if not candidates:
        raise E3D2Error("no music for this dance in --music (needs the same file stem or its AIST++ music id)",
                        path=track_path)
    beats = [p for p in candidates if p.suffix.lower() == ".npy"]
    return (beats or candidates)[0]


def load_music_beats(path: Path, fps: float = TARGET_FPS) -> np.ndarray:
    """(K,) int64 music-beat frame indices at 60 fps from a ``.npy`` of indices or an audio file."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            beats = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise E3D2Error(f"unreadable beat file ({err})", path=path) from None
        if beats.ndim != 1 or beats.dtype.kind not in "fiu":
            raise E3D2Error(f"beat file must be a 1-D array of frame indices, got {beats.dtype} {beats.shape}",
                            path=path)
        if not np.isfinite(beats).all() or (beats < 0).any() or not np.all(beats == np.round(beats)):
            raise E3D2Error("beat frame indices must be non-negative whole numbers", path=path)
        return np.unique(beats.astype(np.int64))
    try:
        from e3d2_core.audio import music_beats
    except ImportError:
        raise E3D2Error("beats from audio need e3d2_core.audio, which is not installed here; "
                        "give a .npy of beat frame indices at 60 fps instead", path=path) from None
    try:
        return np.asarray(music_beats(path, fps=fps), dtype=np.int64)
    except E3D2Error as err:  # e.g. a song without beats: BAS is undefined for it
        raise E3D2Error(f"{err} [for BAS, --music may also hold a .npy of beat frame indices at 60 fps]") from None
