"""Bone maps: which bone of a character carries each of SMPL's 24 joints, as data.

A *preset* (``presets/<rig>.json``) lists candidate bone names per SMPL joint for one family of rigs (Mixamo,
Rigify, the Unreal mannequins, VRM, SMPL/SMPL-X); :func:`resolve_preset` picks, for one armature, the candidate
it has. A resolved :class:`BoneMap` names one bone (or none) per joint; users save and load it as JSON::

    {"e3d2_bone_map": 1, "rig": "mixamo",
     "bones": {"pelvis": "mixamorig:Hips", "left_hip": "mixamorig:LeftUpLeg", ..., "left_hand": null}}

Optional preset keys: ``read`` (other bones to read the motion back from, e.g. Rigify's deform bones while the
dance is keyed on its controls), ``properties`` ({bone: {property: value}} keyed constant in every new action,
e.g. Rigify's IK/FK switches), ``unused`` ({joint: why it has no bone}), ``root`` (the rig's root bone above the
hips, if any), ``prefixes`` (regular expressions of name prefixes to ignore), ``detect`` / ``reject`` (bone
names whose presence or absence tells this family apart from a similar one).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from e3d2_core.errors import E3D2Error
from e3d2_core.fileio import atomic_open
from e3d2_core.skeleton import default_skeleton

FORMAT_VERSION = 1
PRESET_DIR = Path(__file__).with_name("presets")
# The presets the CLI and the panel offer, in menu order (file stems of presets/).
PRESET_NAMES = ("mixamo", "rigify", "rigify_def", "ue5", "ue4", "vrm", "smpl", "smplx")
# The joints without which a rig is not a humanoid this can dance: the legs carry the root motion and the floor
# contact, and the body's up direction needs a bone above the pelvis.
REQUIRED = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
TORSO = ("spine1", "spine2", "spine3", "neck", "head")
MAJOR_JOINTS = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
                "spine1", "spine2", "spine3", "neck", "head", "left_shoulder", "right_shoulder", "left_elbow",
                "right_elbow", "left_wrist", "right_wrist")


def joint_names() -> tuple[str, ...]:
    """SMPL's 24 joint names in SMPL order."""
    return default_skeleton().names


@dataclass(frozen=True)
class BoneMap:
    """One bone name (or None) per SMPL joint, for one armature.

    ``bones``: {joint: bone or None} for all 24 joints; ``read``: the bones to read the motion back from (the same
    as ``bones`` unless the preset says otherwise); ``properties``: {bone: {name: value}} keyed constant in each
    new action; ``rig``: the preset's id ("mixamo", "generic", ...); ``notes``: {joint: why it has no bone}.
    """

    bones: dict
    rig: str = "custom"
    read: dict | None = None
    properties: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)

    def __post_init__(self):
        names = joint_names()
        unknown = sorted(set(self.bones) - set(names))
        if unknown:
            raise E3D2Error(f"not SMPL joints: {', '.join(unknown)} (the joints are {', '.join(names)})")
        object.__setattr__(self, "bones", {n: (self.bones.get(n) or None) for n in names})
        read = self.bones if self.read is None else {n: (self.read.get(n) or None) for n in names}
        object.__setattr__(self, "read", read)

    @property
    def mapped(self) -> list[str]:
        """The joints that have a bone, in SMPL order."""
        return [n for n, b in self.bones.items() if b]

    @property
    def unmapped(self) -> list[str]:
        """The joints without a bone, in SMPL order."""
        return [n for n, b in self.bones.items() if not b]

    def missing_required(self) -> list[str]:
        """Required joints (:data:`REQUIRED`, and one torso joint) this map has no bone for."""
        missing = [n for n in REQUIRED if not self.bones[n]]
        if not any(self.bones[n] for n in TORSO):
            missing.append("a spine, neck or head bone")
        return missing

    def with_bone(self, joint: str, bone: str | None) -> "BoneMap":
        """A copy with ``joint`` mapped to ``bone`` (None: unmapped); the read map follows when it was the same."""
        bones = dict(self.bones, **{joint: bone or None})
        read = None if self.read == self.bones else dict(self.read, **{joint: bone or None})
        return BoneMap(bones, "custom", read, self.properties, self.notes)

    def to_dict(self) -> dict:
        out = {"e3d2_bone_map": FORMAT_VERSION, "rig": self.rig, "bones": dict(self.bones)}
        if self.read != self.bones:
            out["read"] = dict(self.read)
        if self.properties:
            out["properties"] = self.properties
        return out


# ---------------------------------------------------------------------------------------------- presets
@lru_cache(maxsize=None)
def load_preset(rig: str) -> dict:
    """The preset ``rig`` (a name from :data:`PRESET_NAMES`) as stored in ``presets/<rig>.json``."""
    path = PRESET_DIR / f"{rig}.json"
    if rig not in PRESET_NAMES or not path.is_file():
        raise E3D2Error(f"unknown rig preset {rig!r}; choose one of auto, {', '.join(PRESET_NAMES)}")
    return json.loads(path.read_text(encoding="utf-8"))


def name_key(name: str, prefixes=()) -> str:
    """How bone names compare: without a namespace ("rig:Hips"), a listed prefix, case or separators."""
    name = name.rsplit(":", 1)[-1] if ":" in name else name
    for prefix in prefixes:
        name = re.sub(f"^(?:{prefix})", "", name)
    return re.sub(r"[\s_.\-]+", "", name).lower()


def resolve_preset(rig: str, bone_names) -> BoneMap:
    """The preset ``rig`` applied to an armature with ``bone_names``: per joint, the first candidate it has.

    Names are compared exactly first, then by :func:`name_key` (so ``mixamorig1:LeftUpLeg`` matches
    ``LeftUpLeg``). Joints with no candidate present are left unmapped (see :attr:`BoneMap.unmapped`).
    """
    preset = load_preset(rig)
    prefixes = preset.get("prefixes", [])
    exact = set(bone_names)
    by_key = {}
    for name in bone_names:
        by_key.setdefault(name_key(name, prefixes), name)

    def find(candidates):
        for candidate in candidates:
            if candidate in exact:
                return candidate
        for candidate in candidates:
            hit = by_key.get(name_key(candidate, prefixes))
            if hit is not None:
                return hit
        return None

    bones = {joint: find(candidates) for joint, candidates in preset["bones"].items()}
    read = {joint: find(candidates) for joint, candidates in preset["read"].items()} if "read" in preset else None
    properties = {}
    for bone, values in preset.get("properties", {}).items():
        found = find([bone])
        if found is not None:
            properties[found] = dict(values)
    return BoneMap(bones, rig, read, properties, dict(preset.get("unused", {})))


def preset_score(rig: str, bone_names) -> tuple[int, int]:
    """(joints found, candidates wanted) of preset ``rig`` on an armature; (0, n) when its detect/reject names
    say the armature is another family."""
    preset = load_preset(rig)
    prefixes = preset.get("prefixes", [])
    keys = {name_key(n, prefixes) for n in bone_names}
    wanted = sum(1 for c in preset["bones"].values() if c)
    if any(name_key(n, prefixes) not in keys for n in preset.get("detect", [])) \
            or any(name_key(n, prefixes) in keys for n in preset.get("reject", [])):
        return 0, wanted
    return len(resolve_preset(rig, bone_names).mapped), wanted


# ---------------------------------------------------------------------------------------------- files
def save_bone_map(bone_map: BoneMap, path) -> Path:
    """Write ``bone_map`` as JSON (atomically: an existing file survives any failure)."""
    path = Path(path)
    with atomic_open(path, "w") as handle:
        json.dump(bone_map.to_dict(), handle, indent=2)
        handle.write("\n")
    return path


def load_bone_map(path, bone_names=None, *, armature: str = "the armature") -> BoneMap:
    """Read a bone-map file; with ``bone_names``, every bone it names must be one of them.

    Raises E3D2Error naming the file and, where the problem is on one line, that line: not JSON, not a bone map,
    a key that is not an SMPL joint, a bone name that is not a string, a bone the armature lacks.
    """
    path = Path(path)
    if not path.is_file():
        raise E3D2Error("no such bone-map file", path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise E3D2Error(f"unreadable bone-map file ({type(err).__name__}: {err})", path=path) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise E3D2Error(f"line {err.lineno}: not valid JSON ({err.msg}, column {err.colno})", path=path) from None
    if not isinstance(data, dict) or not isinstance(data.get("bones"), dict):
        raise E3D2Error('not a bone map: expected {"e3d2_bone_map": 1, "bones": {"pelvis": "<bone>", ...}}',
                        path=path)
    names = set(joint_names())
    tables = {"bones": data["bones"]}
    if "read" in data:
        if not isinstance(data["read"], dict):
            raise E3D2Error(f"line {_line_of(text, 'read')}: \"read\" must map joints to bones", path=path)
        tables["read"] = data["read"]
    for table in tables.values():
        for joint, bone in table.items():
            where = f"line {_line_of(text, joint)}"
            if joint not in names:
                raise E3D2Error(f"{where}: {joint!r} is not an SMPL joint (the joints are "
                                f"{', '.join(joint_names())})", path=path)
            if bone is not None and not isinstance(bone, str):
                raise E3D2Error(f"{where}: the bone for {joint} must be a name or null, got {bone!r}", path=path)
            if bone and bone_names is not None and bone not in set(bone_names):
                raise E3D2Error(f"{where}: {armature} has no bone {bone!r} (mapped to {joint})", path=path)
    properties = data.get("properties", {})
    if not isinstance(properties, dict) or not all(isinstance(v, dict) for v in properties.values()):
        raise E3D2Error(f"line {_line_of(text, 'properties')}: \"properties\" must be {{bone: {{name: value}}}}",
                        path=path)
    return BoneMap(data["bones"], str(data.get("rig", "custom")), tables.get("read"), properties)


def _line_of(text: str, key: str) -> int:
    """The first line of ``text`` holding ``key`` as a JSON key (1 if none does)."""
    pattern = re.compile(r'"' + re.escape(key) + r'"\s*:')
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.search(line):
            return number
    return 1
