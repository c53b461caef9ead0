"""Reading the dances to evaluate: folders of Motion ``.npz`` files or joint tracks, resampled to 60 fps.

Accepted per file (metres):

* ``.npz`` Motion files (``e3d2_core.motion``): forward kinematics after resampling the Motion to 60 fps (slerp);
* ``.npy`` joint tracks, (T, 72) or (T, 24, 3), Y up, SMPL joint order; they carry no frame rate, so ``fps``
  (``--fps``) gives it, else 60 fps is assumed and reported;
* with ``fmt="bailando"``: Bailando's pickled ``.npy`` dicts ``{'pred_position': (T, 72)}`` (60 fps, Y up);
* with ``fmt="edge"``: EDGE's ``.pkl`` dicts with ``full_pose`` (T, 24, 3), Z up, 30 fps.

Pickles are read only when ``fmt`` asks for them, through an unpickler that can build nothing but numpy arrays,
dicts and lists. Joint tracks are resampled linearly to 60 fps on the same time grid as ``Motion.resample``.
"""
from __future__ import annotations

import io
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from e3d2_core.errors import E3D2Error
from e3d2_core.motion import Motion, from_z_up
from e3d2_core.skeleton import NUM_JOINTS

TARGET_FPS = 60.0
FORMATS = ("bailando", "edge")
BAILANDO_FPS = 60.0
EDGE_FPS = 30.0
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


def _suffixes(fmt: str | None) -> tuple[str, ...]:
    return (".npz", ".npy", ".pkl") if fmt == "edge" else (".npz", ".npy")


def list_track_files(folder, fmt: str | None = None) -> list[Path]:
    """Sorted dance files of ``folder`` (hidden files skipped)."""
    folder = Path(folder)
    if fmt is not None and fmt not in FORMATS:
        raise E3D2Error(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not folder.is_dir():
        raise E3D2Error("no such folder", path=folder)
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in _suffixes(fmt))
    if not files:
        kinds = ", ".join(_suffixes(fmt))
        raise E3D2Error(f"no dance files ({kinds}) in this folder", path=folder)
    return files


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Builds numpy arrays, dtypes and scalars (plus plain containers); refuses every other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("collections", "OrderedDict"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(data: bytes):
    return _NumpyOnlyUnpickler(io.BytesIO(data)).load()


def _read_pickled_npy(path: Path):
    """The object inside a pickled ``.npy`` (``np.save`` of a dict), without running arbitrary code."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        if not dtype.hasobject:
            raise E3D2Error("expected a pickled dict in this .npy", path=path)
        array = _unpickle(handle.read())
    if isinstance(array, np.ndarray) and array.dtype.hasobject and array.size == 1:
        return array.reshape(-1)[0]
    return array


def _positions_from_array(array, path: Path) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype.kind not in "fiu":
        raise E3D2Error(f"joint track must be numeric, got dtype {array.dtype}", path=path)
    if array.ndim == 2 and array.shape[1] == NUM_JOINTS * 3:
        array = array.reshape(len(array), NUM_JOINTS, 3)
    if array.ndim != 3 or array.shape[1:] != (NUM_JOINTS, 3):
        raise E3D2Error(f"joint track must be (T, 72) or (T, 24, 3), got {array.shape}", path=path)
    if len(array) == 0:
        raise E3D2Error("joint track has no frames", path=path)
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).any(axis=(1, 2)).sum())
        raise E3D2Error(f"joint track has NaN or infinite values in {bad} frame(s)", path=path)
    return array


def resample_positions(joints: np.ndarray, fps: float, target: float = TARGET_FPS) -> np.ndarray:
    """Linear resampling of (T, J, 3) positions from ``fps`` to ``target`` (frame k at time k / target)."""
    if abs(fps - target) < 1e-9:
        return joints
    count = len(joints)
    last_time = (count - 1) / fps
    times = np.arange(int(np.floor(last_time * target + 1e-6)) + 1) / target
    position = np.clip(times * fps, 0, count - 1)
    lo = np.minimum(np.floor(position).astype(np.int64), count - 1)
    hi = np.minimum(lo + 1, count - 1)
    frac = (position - lo)[:, None, None]
    return joints[lo] * (1 - frac) + joints[hi] * frac


def _load_raw(path: Path, fmt: str | None, fps: float | None):
    """(joints at the file's rate, that rate, whether the rate was assumed)."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        motion = Motion.load(path)
        joints = motion.resample(TARGET_FPS).joints() if abs(motion.fps - TARGET_FPS) > 1e-9 else motion.joints()
        return _positions_from_array(joints, path), motion.fps, False, True
    if suffix == ".pkl":  # fmt == "edge" (listed only then)
        try:
            data = _unpickle(path.read_bytes())
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as err:
            raise E3D2Error(f"not an EDGE .pkl ({err})", path=path) from None
        if not isinstance(data, dict) or "full_pose" not in data:
            raise E3D2Error("EDGE .pkl must be a dict with 'full_pose' (T, 24, 3)", path=path)
        joints = _positions_from_array(data["full_pose"], path)
        return from_z_up(joints), (fps or EDGE_FPS), False, False
    # .npy: a plain track, or with fmt="bailando" a pickled {'pred_position'} dict
    try:
        array = np.load(path, allow_pickle=False)
        plain = True
    except ValueError as err:
        if "pickled" not in str(err) and "allow_pickle" not in str(err):
            raise E3D2Error(f"unreadable .npy ({err})", path=path) from None
        plain = False
    except (OSError, EOFError) as err:
        raise E3D2Error(f"unreadable .npy ({err})", path=path) from None
    if plain:
        joints = _positions_from_array(array, path)
        if fps is None:
            return joints, TARGET_FPS, True, False
        return joints, float(fps), False, False
    if fmt != "bailando":
        raise E3D2Error("this .npy holds a pickle; pass --format bailando to read Bailando's pickled outputs",
                        path=path)
    try:
        data = _read_pickled_npy(path)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as err:
        raise E3D2Error(f"not a Bailando output .npy ({err})", path=path) from None
    if not isinstance(data, dict) or "pred_position" not in data:
        raise E3D2Error("Bailando .npy must hold a dict with 'pred_position' (T, 72)", path=path)
    return _positions_from_array(data["pred_position"], path), (fps or BAILANDO_FPS), False, False


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
