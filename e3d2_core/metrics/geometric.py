"""Geometric ("manual") features (32-d): Müller-style Boolean templates averaged over frames.

Same definition as the AIST++ API ``features/manual.py`` = Bailando ``utils/features/manual_new.py``, vectorised
over frames. Each template is evaluated at frames ``t = 1 .. T-1`` (velocity templates use frame t-1 too) and the
32 Booleans are averaged over those T-1 frames (in float32, as the reference does).

Quirks kept by default:

* velocity templates divide a one-frame displacement by 1/120 s although the data is 60 fps
  (``fixed=True``: by the true frame time, 1/60 s);
* ``move(j1, j2, j3, j4)`` ignores ``j4``: it measures the velocity of ``j3`` relative to ``j1`` along ``j1 -> j2``
  (kept in both variants: for two of its four uses ``j3`` is the intended joint, so there is no unambiguous fix);
* thresholds are multiples of a fixed humerus length, shoulder width and hip width (SMPL rest pose constants);
* ``y_min`` is (0, lowest joint height of the current frame, 0).
"""
from __future__ import annotations

import numpy as np

from e3d2_core.errors import E3D2Error

REFERENCE_TIME_PER_FRAME = 1.0 / 120.0

# SMPL joint names as the reference spells them (index = SMPL joint index).
JOINT_NAMES = (
    "root", "lhip", "rhip", "belly", "lknee", "rknee", "spine", "lankle", "rankle", "chest", "ltoes", "rtoes",
    "neck", "linshoulder", "rinshoulder", "head", "lshoulder", "rshoulder", "lelbow", "relbow", "lwrist", "rwrist",
    "lhand", "rhand",
)
_JOINT = {name: index for index, name in enumerate(JOINT_NAMES)}


def _distance(a, b) -> float:
    return float(np.linalg.norm(np.array(a) - np.array(b)))


# Body-size constants of the reference (rest-pose SMPL joint positions).
HUMERUS_LENGTH = _distance([1.99113488e-01, 2.36807942e-01, -1.80702247e-02],
                           [4.54445392e-01, 2.21158922e-01, -4.10167128e-02])
SHOULDER_WIDTH = _distance([1.99113488e-01, 2.36807942e-01, -1.80702247e-02],
                           [-1.91692337e-01, 2.36928746e-01, -1.23055102e-02])
HIP_WIDTH = _distance([5.64076714e-02, -3.23069185e-01, 1.09197125e-02],
                      [-6.24834076e-02, -3.31302464e-01, 1.50412619e-02])
_UNIT = {"hl": HUMERUS_LENGTH, "sw": SHOULDER_WIDTH, "hw": HIP_WIDTH}

# The 32 templates in the reference's order: (kind, joints, threshold factor, unit) or (kind, joints, (lo, hi)).
TEMPLATES = (
    ("nmove", ("neck", "rhip", "lhip", "rwrist"), 1.8, "hl"),
    ("nmove", ("neck", "lhip", "rhip", "lwrist"), 1.8, "hl"),
    ("nplane", ("chest", "neck", "neck", "rwrist"), 0.2, "hl"),
    ("nplane", ("chest", "neck", "neck", "lwrist"), 0.2, "hl"),
    ("move", ("belly", "chest", "chest", "rwrist"), 1.8, "hl"),
    ("move", ("belly", "chest", "chest", "lwrist"), 1.8, "hl"),
    ("angle", ("relbow", "rshoulder", "relbow", "rwrist"), (0, 110)),
    ("angle", ("lelbow", "lshoulder", "lelbow", "lwrist"), (0, 110)),
    ("nplane", ("lshoulder", "rshoulder", "lwrist", "rwrist"), 2.5, "sw"),
    ("move", ("lwrist", "rwrist", "rwrist", "lwrist"), 1.4, "hl"),
    ("move", ("rwrist", "root", "lwrist", "root"), 1.4, "hl"),
    ("move", ("lwrist", "root", "rwrist", "root"), 1.4, "hl"),
    ("fast", ("rwrist",), 2.5, "hl"),
    ("fast", ("lwrist",), 2.5, "hl"),
    ("plane", ("root", "lhip", "ltoes", "rankle"), 0.38, "hl"),
    ("plane", ("root", "rhip", "rtoes", "lankle"), 0.38, "hl"),
    ("nplane", ("zero", "y_unit", "y_min", "rankle"), 1.2, "hl"),
    ("nplane", ("zero", "y_unit", "y_min", "lankle"), 1.2, "hl"),
    ("nplane", ("lhip", "rhip", "lankle", "rankle"), 2.1, "hw"),
    ("angle", ("rknee", "rhip", "rknee", "rankle"), (0, 110)),
    ("angle", ("lknee", "lhip", "lknee", "lankle"), (0, 110)),
    ("fast", ("rankle",), 2.5, "hl"),
    ("fast", ("lankle",), 2.5, "hl"),
    ("angle", ("neck", "root", "rshoulder", "relbow"), (25, 180)),
    ("angle", ("neck", "root", "lshoulder", "lelbow"), (25, 180)),
    ("angle", ("neck", "root", "rhip", "rknee"), (50, 180)),
    ("angle", ("neck", "root", "lhip", "lknee"), (50, 180)),
    ("plane", ("rankle", "neck", "lankle", "root"), 0.5, "hl"),
    ("angle", ("neck", "root", "zero", "y_unit"), (70, 110)),
    ("nplane", ("zero", "minus_y_unit", "y_min", "rwrist"), -1.2, "hl"),
    ("nplane", ("zero", "minus_y_unit", "y_min", "lwrist"), -1.2, "hl"),
    ("fast", ("root",), 2.3, "hl"),
)
NUM_FEATURES = len(TEMPLATES)


def _dot(a, b):
    return (a * b).sum(axis=-1)


def _norm(a):
    return np.sqrt(_dot(a, a))


class _Frames:
    """Joint positions of frames 1..T-1 (``cur``) and 0..T-2 (``prev``), with the reference's virtual points."""

    def __init__(self, positions: np.ndarray):
        self.cur = positions[1:]
        self.prev = positions[:-1]
        n = len(self.cur)
        self._virtual = {
            "zero": np.zeros((n, 3)),
            "y_unit": np.broadcast_to(np.array([0.0, 1.0, 0.0]), (n, 3)),
            "minus_y_unit": np.broadcast_to(np.array([0.0, -1.0, 0.0]), (n, 3)),
        }

    def now(self, name):
        if name in self._virtual:
            return self._virtual[name]
        if name == "y_min":
            out = np.zeros((len(self.cur), 3))
            out[:, 1] = self.cur[:, :, 1].min(axis=1)
            return out
        return self.cur[:, _JOINT[name]]

    def before(self, name):
        return self.prev[:, _JOINT[name]]


def _template(frames: _Frames, kind: str, joints, limit, time_per_frame: float) -> np.ndarray:
    """One template at every frame: (T-1,) bool."""
    if kind == "fast":
        (j,) = joints
        return _norm(frames.now(j) - frames.before(j)) / time_per_frame > limit
    if kind == "angle":
        a, b, c, d = (frames.now(j) for j in joints)
        u, v = b - a, d - c
        angle = np.degrees(np.arccos(_dot(u, v) / (_norm(u) * _norm(v))))
        return (angle > limit[0]) & (angle < limit[1])
    if kind == "plane":
        a, b, c, p = (frames.now(j) for j in joints)
        normal = np.cross(c - a, b - a)
        return _dot(normal, p - a) / _norm(normal) > limit
    if kind == "nplane":
        n1, n2, a, p = (frames.now(j) for j in joints)
        normal = n2 - n1
        return _dot(normal, p - a) / _norm(normal) > limit
    j1, j2, j3, j4 = joints
    if kind == "move":  # j4 ignored, as in the reference
        moving = j3
        direction = frames.now(j2) - frames.now(j1)
    elif kind == "nmove":
        moving = j4
        direction = np.cross(frames.now(j3) - frames.now(j1), frames.now(j2) - frames.now(j1))
    else:
        raise E3D2Error(f"unknown template kind {kind!r}")
    velocity = (frames.now(moving) - frames.now(j1)) - (frames.before(moving) - frames.before(j1))
    along = _dot(velocity, direction) / _norm(direction) / time_per_frame
    return along > limit


def geometric_features(positions: np.ndarray, *, fixed: bool = False, frame_time: float = 1.0 / 60.0) -> np.ndarray:
    """32 geometric features of one track.

    Parameters
    ----------
    positions : (T, 24, 3) float, metres, Y up, SMPL joint order, T >= 2.
    fixed : velocity templates use ``frame_time`` instead of the reference's 1/120 s.
    frame_time : the true seconds per frame (used only with ``fixed``).

    Returns
    -------
    (32,) float32: the fraction of frames 1..T-1 on which each template holds.
    """
    p = np.asarray(positions, dtype=np.float64)
    if p.shape[0] < 2:
        raise E3D2Error(f"geometric features need at least 2 frames, got {p.shape[0]}")
    frames = _Frames(p)
    time_per_frame = frame_time if fixed else REFERENCE_TIME_PER_FRAME
    columns = []
    with np.errstate(invalid="ignore", divide="ignore"):  # degenerate directions give NaN -> False, as in the reference
        for kind, joints, *rest in TEMPLATES:  # 32 templates, each over all frames at once
            limit = rest[0] if kind == "angle" else rest[0] * _UNIT[rest[1]]
            columns.append(_template(frames, kind, joints, limit, time_per_frame))
    return np.stack(columns, axis=1).astype(np.float32).mean(axis=0)
