"""From a Motion to keyframes: the timing, the names, the per-bone channels, and the bulk writer.

Everything above ``write_dance_action`` is pure numpy (tested without Blender). Coordinates: the Motion is Y-up
SMPL; the armature's own space is whatever its rest pose says (``armature_frame`` finds it), so the Y-up ->
Z-up change stays in the armature object's transform and never in the keys.

Quaternions are (w, x, y, z), Blender's order.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from e3d2_core import rotations
from e3d2_core.retarget.kinematics import snap_to_axes

MAX_ID_NAME_BYTES = 63  # Blender's MAX_ID_NAME - 2


# ---------------------------------------------------------------------------------------------- timing
@dataclass(frozen=True)
class StripTiming:
    """Where a sound strip's audible part sits, in scene frames and in the song's seconds.

    ``first_frame``: the scene frame where the strip starts to sound (``frame_final_start``);
    ``audio_offset``: seconds into the audio file heard at ``first_frame`` (trimmed strips start late);
    ``seconds``: how long the strip sounds; ``fps``: the scene's frame rate (``fps / fps_base``).
    """

    first_frame: int
    audio_offset: float
    seconds: float
    fps: float

    @property
    def last_frame(self) -> int:
        """The last frame that still sounds (inclusive)."""
        return self.first_frame + max(int(round(self.seconds * self.fps)) - 1, 0)


def scene_fps(fps: int, fps_base: float) -> float:
    """Blender's effective frame rate (e.g. 30000/1001 for fps=30, fps_base=1.001)."""
    return float(fps) / float(fps_base)


def strip_timing(frame_start: float, frame_final_start: int, frame_final_end: int, fps: float,
                 sound_offset: float = 0.0) -> StripTiming:
    """Timing of a sound strip from its frame numbers.

    ``frame_start`` is where the untrimmed sound would begin, ``frame_final_start``/``frame_final_end`` (end
    exclusive) bound the part that plays; ``sound_offset`` (5.0) shifts the sound inside the strip, seconds.
    """
    offset = (frame_final_start - frame_start) / fps + sound_offset
    return StripTiming(int(frame_final_start), max(float(offset), 0.0),
                       max(frame_final_end - frame_final_start, 0) / fps, float(fps))


def key_frames(first_frame: int, num_frames: int) -> np.ndarray:
    """(T,) float32 scene frames of a motion already resampled to the scene rate, starting at the strip."""
    return first_frame + np.arange(num_frames, dtype=np.float32)


# ---------------------------------------------------------------------------------------------- names
def _utf8_truncate(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")[:max_bytes]
    return encoded.decode("utf-8", errors="ignore")  # drops a cut multi-byte character


def action_name(song: str, seed: int, take: int | None = None, existing=()) -> str:
    """``dance_<song>_<seed>`` (``_t<k>`` for takes after the first), at most 63 UTF-8 bytes, not in ``existing``.

    ``song`` is the file's stem; spaces and punctuation become ``_``; non-ASCII letters are kept. The song part
    is shortened (never the seed) and a ``.001``-style suffix avoids a clash, as Blender would, but decided here
    so the name is known before the action exists. For the takes of one generation use :func:`take_names`.
    """
    take = int(take or 0)
    return take_names(song, seed, take + 1, existing)[take]


def take_names(song: str, seed: int, takes: int, existing=()) -> list[str]:
    """The action names of one generation's ``takes``: ``dance_<song>_<seed>``, ``…_t2``, ``…_t3``…

    A song part too long for the longest name (with room for a ``.001``-style suffix) is cut once, so every
    take shares one prefix, also with a later generation of the same song and seed; when any name is taken,
    all of them get the same suffix (the first free one). Each name is at most 63 UTF-8 bytes (Blender's limit).
    """
    stem = re.sub(r"[\W_]+", "_", song).strip("_") or "song"
    tails = [f"_{int(seed)}" + (f"_t{k + 1}" if k else "") for k in range(max(int(takes), 1))]
    room = MAX_ID_NAME_BYTES - len("dance_") - max(len(t) for t in tails) - len(".001")
    if len(stem.encode()) > room:
        stem = _utf8_truncate(stem, room).rstrip("_")
    existing = set(existing)
    for n in range(1000):
        suffix = "" if n == 0 else f".{n:03d}"
        names = [f"dance_{stem}{tail}{suffix}" for tail in tails]
        if not existing.intersection(names):
            return names
    raise ValueError("no free action name")


# ---------------------------------------------------------------------------------------------- channels
def _body_axes(heads: np.ndarray, names) -> np.ndarray:
    """(3, 3) columns: the body's left, up and front directions from pelvis->neck and right_hip->left_hip."""
    index = {n: i for i, n in enumerate(names)}
    up = heads[index["neck"]] - heads[index["pelvis"]]
    side = heads[index["left_hip"]] - heads[index["right_hip"]]
    up = up / np.linalg.norm(up)
    side = side - up * np.dot(side, up)
    side = side / np.linalg.norm(side)
    return np.stack([side, up, np.cross(side, up)], axis=-1)


def armature_frame(rest_heads: np.ndarray, names, reference_heads: np.ndarray) -> np.ndarray:
    """(3, 3) rotation C taking SMPL's Y-up body frame into the armature's space, found from its rest pose.

    Compares the armature's body axes with the SMPL skeleton's (``reference_heads``, e.g. the bundled
    rest pose) and snaps to the nearest axis-aligned rotation: C = identity for this add-on's armatures (the
    object transform does Y-up -> Z-up), X+90 deg for Z-up ones such as the SMPL-X add-on's.
    ``rest_heads`` is (24, 3) in armature space, in ``names`` order (SMPL order).
    """
    frame = _body_axes(np.asarray(rest_heads, float), names) @ _body_axes(np.asarray(reference_heads, float), names).T
    return snap_to_axes(frame, tolerance=0.35)


def motion_to_bone_channels(poses: np.ndarray, trans: np.ndarray, rest_rotations: np.ndarray,
                            rest_head_root: np.ndarray, frame: np.ndarray | None = None):
    """Per-bone pose channels that reproduce a Motion on an armature with the given rest pose.

    Args:
        poses: (T, 24, 3) SMPL local axis-angle.
        trans: (T, 3) root translation, metres, Y up (the pelvis position when the skeleton's offsets[0] = 0).
        rest_rotations: (24, 3, 3) each bone's rest orientation in armature space (``Bone.matrix_local``).
        rest_head_root: (3,) the root bone's rest head in armature space.
        frame: (3, 3) SMPL -> armature space rotation C (identity for this add-on's armatures).
    Returns:
        quats (T, 24, 4) (w, x, y, z) ``rotation_quaternion`` per bone, continuous in time;
        location (T, 3) the root bone's ``location``.

    A pose bone's rotation is in its rest frame R: SMPL's local rotation L (in C's space) becomes
    R^T (C L C^T) R, and the root's location is R0^T (C trans - rest head).
    """
    frame = np.eye(3) if frame is None else np.asarray(frame, dtype=np.float64)
    rest = np.asarray(rest_rotations, dtype=np.float64)
    local = rotations.quaternion_to_matrix(rotations.axis_angle_to_quaternion(poses))      # (T, 24, 3, 3)
    in_armature = frame @ local @ frame.T
    bone = np.swapaxes(rest, -1, -2)[None] @ in_armature @ rest[None]
    quats = rotations.continuous_quaternions(rotations.matrix_to_quaternion(bone))
    location = (np.asarray(trans, np.float64) @ frame.T - np.asarray(rest_head_root, np.float64)) @ rest[0]
    return quats, location


def bone_channels_to_motion(quats: np.ndarray, location: np.ndarray, rest_rotations: np.ndarray,
                            rest_head_root: np.ndarray, frame: np.ndarray | None = None):
    """Inverse of :func:`motion_to_bone_channels`: (T,24,4), (T,3) -> poses (T,24,3), trans (T,3)."""
    frame = np.eye(3) if frame is None else np.asarray(frame, dtype=np.float64)
    rest = np.asarray(rest_rotations, dtype=np.float64)
    bone = rotations.quaternion_to_matrix(quats)
    local = frame.T @ (rest[None] @ bone @ np.swapaxes(rest, -1, -2)[None]) @ frame
    poses = rotations.quaternion_to_axis_angle(rotations.matrix_to_quaternion(local))
    trans = (np.asarray(location, np.float64) @ rest[0].T + np.asarray(rest_head_root, np.float64)) @ frame
    return poses, trans


# ---------------------------------------------------------------------------------------------- key reduction
def rotation_error_degrees(approx: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """(...,) angle in degrees between the rotations of (..., 4) quaternions; ``approx`` need not be unit
    length (Blender normalises a pose bone's quaternion before using it, so only its direction counts)."""
    approx = approx / np.linalg.norm(approx, axis=-1, keepdims=True)
    exact = exact / np.linalg.norm(exact, axis=-1, keepdims=True)
    dots = np.clip(np.abs(np.sum(approx * exact, axis=-1)), 0.0, 1.0)
    return np.degrees(2.0 * np.arccos(dots))


def position_error_cm(approx: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """(...,) distance in centimetres between (..., 3) positions in metres."""
    return 100.0 * np.linalg.norm(approx - exact, axis=-1)


def linear_keys(values: np.ndarray, tolerance: float, error) -> np.ndarray:
    """Indices of the keys to keep so that linear interpolation between them stays within ``tolerance``.

    ``values`` (T, C) is one channel group keyed on every frame (a bone's 4 quaternion components, or the
    root's 3 location components, which share their keys); ``error(approx, exact) -> (n,)`` measures a
    frame's error. Douglas-Peucker on time: a span between two keys is split at its worst frame until every
    frame of every span is within ``tolerance``. The first and last frames are always kept.
    """
    values = np.asarray(values, dtype=np.float64)
    count = len(values)
    keep = np.zeros(count, dtype=bool)
    keep[[0, count - 1]] = True
    spans = [(0, count - 1)]
    while spans:
        a, b = spans.pop()
        if b - a < 2:
            continue
        weight = (np.arange(a + 1, b) - a)[:, None] / (b - a)
        approx = values[a] + weight * (values[b] - values[a])
        errors = error(approx, values[a + 1:b])
        worst = int(np.argmax(errors))
        if errors[worst] > tolerance:
            middle = a + 1 + worst
            keep[middle] = True
            spans += [(a, middle), (middle, b)]
    return np.flatnonzero(keep)


def interpolate_keys(frames: np.ndarray, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(T, C) values at every frame from the keys ``frames[keys]`` with linear interpolation (what a LINEAR
    F-curve evaluates to)."""
    frames = np.asarray(frames, dtype=np.float64)
    return np.stack([np.interp(frames, frames[keys], values[keys, c]) for c in range(values.shape[1])], axis=-1)


@dataclass(frozen=True)
class ReducedKeys:
    """Which frames keep keys per channel group, and the error that leaves against the dense keys.

    ``bone_keys``: per bone, indices into the dense frames; ``location_keys``: the root location's;
    ``max_degrees`` / ``max_cm``: the largest rotation / root position error over all frames after reduction,
    measured by evaluating the kept keys as Blender does (linear, quaternion normalised).
    """

    bone_keys: tuple
    location_keys: np.ndarray
    max_degrees: float
    max_cm: float

    @property
    def count(self) -> int:
        """Keys kept on all F-curves (4 per bone key, 3 per location key)."""
        return 4 * sum(len(k) for k in self.bone_keys) + 3 * len(self.location_keys)


def reduce_keys(quats: np.ndarray, location: np.ndarray, max_degrees: float, max_cm: float) -> ReducedKeys:
    """Keys of a dense dance to keep so that every bone's rotation stays within ``max_degrees`` and the root's
    location within ``max_cm`` of the dense keys at every frame.

    ``quats`` (T, B, 4) continuous in time (as :func:`motion_to_bone_channels` makes them), ``location`` (T, 3)
    metres. The errors are per channel group: a joint's position error also collects its parents' rotation
    errors (about 1.7 cm at the wrist per degree at the shoulder).
    """
    if not (max_degrees > 0 and max_cm > 0):
        raise ValueError(f"key reduction tolerances must be positive, got {max_degrees} deg, {max_cm} cm")
    frames = np.arange(len(quats), dtype=np.float64)
    bone_keys, worst_degrees = [], 0.0
    for b in range(quats.shape[1]):
        keys = linear_keys(quats[:, b], max_degrees, rotation_error_degrees)
        bone_keys.append(keys)
        approx = interpolate_keys(frames, keys, quats[:, b])
        worst_degrees = max(worst_degrees, float(rotation_error_degrees(approx, quats[:, b]).max()))
    location_keys = linear_keys(location, max_cm, position_error_cm)
    approx = interpolate_keys(frames, location_keys, np.asarray(location, np.float64))
    worst_cm = float(position_error_cm(approx, location).max())
    return ReducedKeys(tuple(bone_keys), location_keys, worst_degrees, worst_cm)


# ---------------------------------------------------------------------------------------------- bpy
def _interleave(frames: np.ndarray, values: np.ndarray) -> np.ndarray:
    co = np.empty(2 * len(frames), dtype=np.float32)
    co[0::2] = frames
    co[1::2] = values
    return co


def write_curve(fcurve, frames: np.ndarray, values: np.ndarray) -> None:
    """Fill an empty F-curve with (frame, value) keys in bulk, linear interpolation (exact at every frame)."""
    points = fcurve.keyframe_points
    points.add(len(frames))
    points.foreach_set("co", _interleave(frames, values))
    points.foreach_set("interpolation", np.ones(len(frames), dtype=np.int32))  # enum index 1 = LINEAR
    fcurve.update()


def write_dance_action(obj, name: str, bone_names, frames: np.ndarray, quats: np.ndarray,
                       root_location: np.ndarray, properties: dict | None = None,
                       reduction: ReducedKeys | None = None):
    """A new action on ``obj`` keyed in bulk: each bone's ``rotation_quaternion``, the root's ``location``.

    ``frames`` (T,), ``quats`` (T, B, 4), ``root_location`` (T, 3); ``bone_names[0]`` is the root. With
    ``reduction`` (:func:`reduce_keys`) only its keys are written, else every frame. Existing actions are never
    edited: the new one is created and assigned (the previous stays in the file). Pose bones are switched to
    quaternion rotation mode, which is what the keys animate.
    """
    from . import compat  # bpy-dependent; imported here so the pure part loads without Blender

    every = np.arange(len(frames))
    action, curves = compat.new_action_for(obj, name)
    for b, bone in enumerate(bone_names):
        obj.pose.bones[bone].rotation_mode = "QUATERNION"
        path = f'pose.bones["{bone}"].rotation_quaternion'
        keys = every if reduction is None else reduction.bone_keys[b]
        for c in range(4):
            write_curve(curves.new(path, index=c, group_name=bone), frames[keys], quats[keys, b, c])
    path = f'pose.bones["{bone_names[0]}"].location'
    keys = every if reduction is None else reduction.location_keys
    for c in range(3):
        write_curve(curves.new(path, index=c, group_name=bone_names[0]), frames[keys], root_location[keys, c])
    for key, value in (properties or {}).items():
        action[key] = value
    action.use_fake_user = True  # a take the user switches away from must survive saving
    return action


def read_dance_channels(obj, bone_names, frames: np.ndarray):
    """Sample an armature's action back into (T, B, 4) quaternions and (T, 3) root location at ``frames``.

    Bones without keys keep their rest pose (identity); works for any action, keyed densely or not.
    """
    from . import compat

    curves = {(fc.data_path, fc.array_index): fc for fc in compat.action_fcurves(obj)}
    quats = np.zeros((len(frames), len(bone_names), 4))
    quats[..., 0] = 1.0
    location = np.zeros((len(frames), 3))
    for b, bone in enumerate(bone_names):
        for c in range(4):
            fc = curves.get((f'pose.bones["{bone}"].rotation_quaternion', c))
            if fc is not None:
                quats[:, b, c] = [fc.evaluate(f) for f in frames]
    for c in range(3):
        fc = curves.get((f'pose.bones["{bone_names[0]}"].location', c))
        if fc is not None:
            location[:, c] = [fc.evaluate(f) for f in frames]
    return quats, location
