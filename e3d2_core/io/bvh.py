"""A small BVH reader: hierarchy, channels in any order, frames; forward kinematics of the file's own skeleton.

Conventions of the format as read here: rotation channels compose in the order listed (``Zrotation Xrotation
Yrotation`` is R = Rz @ Rx @ Ry, degrees, acting on column vectors); position channels, where a joint has them,
replace its OFFSET. Units are whatever the file uses (the CMU salsa files: metres). Every problem in a file is a
one-line :class:`E3D2Error` naming the file and, in the hierarchy, the line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from e3d2_core.errors import E3D2Error

_CHANNELS = {f"{axis}{kind}" for axis in "xyz" for kind in ("position", "rotation")}
_TOKEN = re.compile(r"\S+")


@dataclass
class BvhJoint:
    name: str
    parent: int                      # index into Bvh.joints, -1 for the root
    offset: np.ndarray               # (3,)
    channels: list[str]              # lower-case, e.g. ["xposition", ..., "zrotation"]
    end_site: np.ndarray | None = None   # (3,) offset of the first End Site below this joint, if any
    first_channel: int = 0           # column of this joint's first channel in Bvh.values


@dataclass
class Bvh:
    joints: list[BvhJoint]
    frame_time: float                # seconds
    values: np.ndarray = field(repr=False)   # (frames, channels) float64
    path: str = ""

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def num_frames(self) -> int:
        return self.values.shape[0]

    def index(self) -> dict[str, int]:
        """Joint name -> index."""
        return {joint.name: i for i, joint in enumerate(self.joints)}


def read_bvh(path) -> Bvh:
    """Parse a BVH file. Raises :class:`E3D2Error` for anything missing, malformed or truncated."""
    path = Path(path)
    if not path.is_file():
        raise E3D2Error("no such BVH file", path=path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise E3D2Error(f"cannot read BVH file ({err.strerror})", path=path) from None
    if not text.strip():
        raise E3D2Error("BVH file is empty", path=path)
    split = re.search(r"^\s*MOTION\b", text, flags=re.MULTILINE)
    if split is None:
        raise E3D2Error("not a BVH file: no MOTION section (truncated?)", path=path)
    joints, num_channels = _Hierarchy(text[:split.start()], path).parse()
    frames, frame_time, values = _motion(text[split.end():], num_channels, path)
    return Bvh(joints, frame_time, values.reshape(frames, num_channels), str(path))


class _Hierarchy:
    """Recursive-descent parser of the HIERARCHY section."""

    def __init__(self, text: str, path: Path):
        self.text, self.path = text, path
        self.tokens = [(m.group(), m.start()) for m in _TOKEN.finditer(text)]
        self.pos = 0
        self.joints: list[BvhJoint] = []
        self.channel_count = 0

    def parse(self):
        self.expect("HIERARCHY")
        self.expect("ROOT")
        self.joint(parent=-1)
        if self.pos != len(self.tokens):
            self.fail(f"unexpected '{self.tokens[self.pos][0]}' after the root joint (one ROOT supported)")
        if self.channel_count == 0:
            self.fail("the hierarchy has no channels")
        return self.joints, self.channel_count

    def joint(self, parent: int):
        name = self.next("a joint name")
        if name == "{":
            self.fail("joint without a name")
        if any(j.name == name for j in self.joints):
            self.fail(f"joint name '{name}' used twice")
        self.expect("{")
        self.expect("OFFSET")
        offset = self.numbers(3, "OFFSET")
        channels = []
        if self.peek() == "CHANNELS":
            self.next()
            count = self.integer("the CHANNELS count")
            channels = [self.next("a channel name").lower() for _ in range(count)]
            unknown = [c for c in channels if c not in _CHANNELS]
            if unknown:
                self.fail(f"joint '{name}' has unknown channel(s) {', '.join(unknown)}")
        index = len(self.joints)
        self.joints.append(BvhJoint(name, parent, offset, channels, first_channel=self.channel_count))
        self.channel_count += len(channels)
        while True:
            token = self.next(f"'}}' closing joint '{name}'")
            if token == "}":
                return
            if token == "JOINT":
                self.joint(parent=index)
            elif token == "End":
                self.expect("Site")
                self.expect("{")
                self.expect("OFFSET")
                end = self.numbers(3, "End Site OFFSET")
                self.expect("}")
                if self.joints[index].end_site is None:
                    self.joints[index].end_site = end
            else:
                self.fail(f"unexpected '{token}' in joint '{name}'")

    # -- token helpers
    def peek(self):
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def next(self, what: str = "more hierarchy"):
        if self.pos >= len(self.tokens):
            raise E3D2Error(f"BVH hierarchy ends early: expected {what} (truncated file?)", path=self.path)
        token = self.tokens[self.pos][0]
        self.pos += 1
        return token

    def expect(self, word: str):
        token = self.next(f"'{word}'")
        if token != word:
            self.pos -= 1
            self.fail(f"expected '{word}', found '{token}'")

    def numbers(self, count: int, what: str) -> np.ndarray:
        values = [self.next(f"{count} numbers after {what}") for _ in range(count)]
        try:
            out = np.array([float(v) for v in values])
        except ValueError:
            self.pos -= count
            self.fail(f"{what} needs {count} numbers, found {' '.join(values)}")
        if not np.isfinite(out).all():
            self.fail(f"{what} is not finite")
        return out

    def integer(self, what: str) -> int:
        token = self.next(what)
        if not token.isdigit():
            self.pos -= 1
            self.fail(f"{what} must be a whole number, found '{token}'")
        return int(token)

    def fail(self, message: str):
        offset = self.tokens[min(self.pos, len(self.tokens) - 1)][1] if self.tokens else 0
        line = self.text.count("\n", 0, offset) + 1
        raise E3D2Error(f"malformed BVH at line {line}: {message}", path=self.path)


def _motion(text: str, num_channels: int, path: Path):
    header = re.match(r"\s*Frames:\s*(\S+)\s+Frame\s+Time:\s*(\S+)", text)
    if header is None:
        raise E3D2Error("malformed BVH: MOTION must be followed by 'Frames: N' and 'Frame Time: SECONDS'", path=path)
    try:
        frames, frame_time = int(header.group(1)), float(header.group(2))
    except ValueError:
        raise E3D2Error(f"malformed BVH: bad frame count or frame time "
                        f"('{header.group(1)}', '{header.group(2)}')", path=path) from None
    if frames < 1:
        raise E3D2Error(f"BVH has no frames (Frames: {frames})", path=path)
    if not (np.isfinite(frame_time) and frame_time > 0):
        raise E3D2Error(f"BVH frame time must be positive, got {header.group(2)}", path=path)
    body = text[header.end():].split()
    expected = frames * num_channels
    if len(body) < expected:
        raise E3D2Error(f"BVH is truncated: {frames} frames x {num_channels} channels need {expected} values, "
                        f"found {len(body)}", path=path)
    if len(body) > expected:
        raise E3D2Error(f"BVH has {len(body) - expected} values more than {frames} frames x {num_channels} "
                        f"channels (wrong 'Frames:' count?)", path=path)
    try:
        values = np.array(body, dtype=np.float64)
    except ValueError:
        bad = next(v for v in body if not _is_number(v))
        raise E3D2Error(f"BVH motion data holds a non-number '{bad[:20]}'", path=path) from None
    if not np.isfinite(values).all():
        raise E3D2Error("BVH motion data holds NaN or infinite values", path=path)
    return frames, frame_time, values


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def bvh_forward_kinematics(bvh: Bvh):
    """World positions and rotations of every joint of the file's own skeleton.

    Returns:
        positions (F, J, 3) in the file's units, rotations (F, J, 3, 3) world rotations, and
        end_sites {joint index: (F, 3)} world positions of End Sites.
    """
    frames = bvh.num_frames
    positions, world = [], []
    end_sites = {}
    for index, joint in enumerate(bvh.joints):
        local_rot = np.broadcast_to(np.eye(3), (frames, 3, 3))
        translation = np.broadcast_to(joint.offset, (frames, 3)).copy()
        has_position = False
        for k, channel in enumerate(joint.channels):
            column = bvh.values[:, joint.first_channel + k]
            axis = "xyz".index(channel[0])
            if channel.endswith("rotation"):
                local_rot = local_rot @ _axis_rotation(axis, np.deg2rad(column))
            else:
                if not has_position:
                    translation[:] = 0.0
                    has_position = True
                translation[:, axis] = column
        if joint.parent < 0:
            world_rot, position = local_rot, translation
        else:
            parent_rot = world[joint.parent]
            world_rot = parent_rot @ local_rot
            position = positions[joint.parent] + (parent_rot @ translation[..., None])[..., 0]
        world.append(world_rot)
        positions.append(position)
        if joint.end_site is not None:
            end_sites[index] = position + world_rot @ joint.end_site
    return np.stack(positions, axis=1), np.stack(world, axis=1), end_sites


def bvh_rest_positions(bvh: Bvh):
    """(J, 3) joint positions and {joint: (3,)} end-site positions of the rest pose (all channels zero)."""
    positions, ends = [], {}
    for index, joint in enumerate(bvh.joints):
        base = np.zeros(3) if joint.parent < 0 else positions[joint.parent]
        positions.append(base + joint.offset)
        if joint.end_site is not None:
            ends[index] = positions[-1] + joint.end_site
    return np.stack(positions), ends


def _axis_rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    """(F, 3, 3) rotations by ``angle`` radians about coordinate axis 0, 1 or 2."""
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out[:, axis, axis] = 1.0
    out[:, i, i] = c
    out[:, j, j] = c
    out[:, i, j] = -s
    out[:, j, i] = s
    return out
