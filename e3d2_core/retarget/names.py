"""Recognise a humanoid rig from its bone names and hierarchy: a preset when one fits, else a proposed map.

The generic matcher reads each name as a side (``.L``/``_l``/``Left``/``left_``/``L_``/``_L_``, any case) and
body-part words (``UpLeg``, ``thigh``, ``calf``, ``forearm``...), then uses the hierarchy to settle what names
alone cannot: the pelvis is the lowest common ancestor of the thighs among the candidates, the spine joints are
the bones between the hips' and the neck's common ancestor and the neck, the collar is the arm's parent. It
proposes a :class:`~e3d2_core.retarget.bonemap.BoneMap` and says which joints it could not place. The same
matcher serves importers of unknown BVH/FBX skeletons (iClone's ``CC_Base_*``, ``Neo_*``...).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from e3d2_core.errors import E3D2Error
from e3d2_core.retarget.bonemap import PRESET_NAMES, BoneMap, joint_names, preset_score, resolve_preset

# Words that mark helper bones rather than the skeleton's main chain (scored down, not excluded: iClone's only
# neck bones are "NeckTwist01/02").
_HELPER_WORDS = {"twist", "roll", "ik", "pole", "target", "mch", "ctrl", "helper", "end", "nub", "tip", "null",
                 "ctr", "vis", "wgt", "tweak", "parent", "socket", "prop", "weapon", "attach", "offset", "jiggle",
                 "bend", "share", "share", "corrective", "adj", "sec", "fk"}
# Body-part words per SMPL joint (side-less names), best first.
_PART_WORDS = {
    "hip": [("upleg",), ("upperleg",), ("thigh",), ("femur",), ("leg", "upper"), ("hip",)],
    "knee": [("lowerleg",), ("calf",), ("shin",), ("knee",), ("leg", "lower"), ("crus",), ("leg",)],
    "ankle": [("foot",), ("ankle",)],
    "foot": [("toebase",), ("toe", "base"), ("toes",), ("toe",), ("ball",)],
    "collar": [("clavicle",), ("collar",), ("collarbone",), ("clav",), ("shoulder",)],
    "shoulder": [("upperarm",), ("uparm",), ("arm", "upper"), ("arm",), ("shoulder",)],
    "elbow": [("forearm",), ("lowerarm",), ("elbow",), ("arm", "lower"), ("arm", "fore")],
    "wrist": [("hand",), ("wrist",)],
    "hand": [("middle", "1"), ("middle", "01"), ("middle", "proximal"), ("middle",), ("hand", "middle", "1")],
}
_CENTRE_WORDS = {"pelvis": [("pelvis",), ("hips",), ("hip",), ("root", "hips")],
                 "neck": [("neck",), ("neck", "01"), ("neck", "1")],
                 "head": [("head",)]}
_SIDE_PATTERNS = [  # (regex, side); the matched text is removed from the name
    (re.compile(r"(?:^|[_.\-\s])(left)(?=$|[_.\-\s])", re.I), "left"),
    (re.compile(r"(?:^|[_.\-\s])(right)(?=$|[_.\-\s])", re.I), "right"),
    (re.compile(r"(Left)(?=[A-Z0-9_])"), "left"), (re.compile(r"(Right)(?=[A-Z0-9_])"), "right"),
    (re.compile(r"(?<=[a-z0-9])(Left)$"), "left"), (re.compile(r"(?<=[a-z0-9])(Right)$"), "right"),
    (re.compile(r"^(left)(?=[A-Z0-9])"), "left"), (re.compile(r"^(right)(?=[A-Z0-9])"), "right"),
    (re.compile(r"(?:^|[_.\-\s])([lL])(?=$|[_.\-\s])"), "left"), (re.compile(r"(?:^|[_.\-\s])([rR])(?=$|[_.\-\s])"), "right"),
    (re.compile(r"^(l)(?=[A-Z])"), "left"), (re.compile(r"^(r)(?=[A-Z])"), "right"),
]


@dataclass(frozen=True)
class Detection:
    """What :func:`detect_rig` found: the preset's id (or "generic"), the map, and the joints left unmapped."""

    rig: str
    bone_map: BoneMap
    unmapped: tuple[str, ...]


def split_side(name: str) -> tuple[str | None, str]:
    """("left" | "right" | None, the name without its side marker and namespace)."""
    base = name.rsplit(":", 1)[-1]
    for pattern, side in _SIDE_PATTERNS:
        match = pattern.search(base)
        if match:
            start, end = match.span()
            return side, base[:start] + " " + base[end:]
    return None, base


def words(name: str) -> list[str]:
    """Lower-case words of a side-less name: camelCase, separators and digits split ("UpperArm01" ->
    ["upper", "arm", "01"]); common prefixes like ``CC_Base`` and ``J_Bip_C`` stay as words of their own."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    spaced = re.sub(r"([A-Za-z])([0-9])", r"\1 \2", spaced)
    spaced = re.sub(r"([0-9])([A-Za-z])", r"\1 \2", spaced)
    return [w.lower() for w in re.split(r"[\s_.\-:]+", spaced) if w]


def _score(name_words: list[str], patterns) -> int:
    """How well ``name_words`` match a part's patterns: higher is better, 0 = no match."""
    joined = "".join(name_words)
    best = 0
    for rank, pattern in enumerate(patterns):
        if all(p in name_words for p in pattern) or (len(pattern) == 1 and pattern[0] in joined and
                                                     len(pattern[0]) >= 4):
            score = 100 - 10 * rank
            # a name made of nothing but the part's words beats one that also says something else
            extra = len([w for w in name_words if w not in pattern and not w.isdigit()])
            score -= 3 * extra
            if _HELPER_WORDS & set(name_words):
                score -= 60
            best = max(best, score)
    return best


def propose_map(names, parents) -> BoneMap:
    """A bone map for an unknown rig from its bone ``names`` and ``parents`` (index, -1 for a root).

    Returns a BoneMap with ``rig="generic"``; joints it could not place are unmapped (:attr:`BoneMap.unmapped`).
    """
    names = list(names)
    parents = list(parents)
    index = {n: i for i, n in enumerate(names)}
    children = {i: [] for i in range(len(names))}
    for i, p in enumerate(parents):
        if p >= 0:
            children[p].append(i)

    def ancestors(i):
        out = []
        while parents[i] >= 0:
            i = parents[i]
            out.append(i)
        return out

    parsed = [(split_side(n)[0], words(split_side(n)[1])) for n in names]
    chosen: dict[str, int] = {}
    used: set[int] = set()

    def best(candidates, patterns, side, within=None):
        scored = []
        for i in candidates:
            s, w = parsed[i]
            if s != side or i in used or (within is not None and i not in within):
                continue
            score = _score(w, patterns)
            if score > 0:
                scored.append((score, -len(ancestors(i)), i))
        if not scored:
            return None
        top = max(scored)[:2]
        tied = sorted((i for *key, i in scored if tuple(key) == top), key=lambda i: names[i])
        # a row of equal bones (toe1-1 ... toe5-1) is centred on the middle one, as SMPL's joint is
        return tied[len(tied) // 2]

    everything = range(len(names))
    for side in ("left", "right"):
        # the leg top-down, each part searched below the previous one
        hip = best(everything, _PART_WORDS["hip"], side)
        if hip is not None:
            used.add(hip)
            chosen[f"{side}_hip"] = hip
            below = set(_descendants(hip, children))
            for part in ("knee", "ankle", "foot"):
                found = best(everything, _PART_WORDS[part], side, within=below)
                if found is None:
                    break
                used.add(found)
                chosen[f"{side}_{part}"] = found
                below = set(_descendants(found, children))
        # the arm: the upper arm first (its parent is the collar when that is a side bone of the shoulder)
        collar = best(everything, _PART_WORDS["collar"], side)
        upper = best(everything, [p for p in _PART_WORDS["shoulder"] if p != ("shoulder",)], side)
        if upper is None:
            # "shoulder" is the upper arm below a clavicle, or (the only arm bone above the elbow) the upper arm
            if collar is not None:
                used.add(collar)
            below_collar = set(_descendants(collar, children)) if collar is not None else None
            upper = best(everything, [("shoulder",)], side, within=below_collar)
            if collar is not None:
                used.discard(collar)
            if upper is None and collar is not None and not _score(parsed[collar][1], [("clavicle",), ("collar",)]):
                upper, collar = collar, None
        if upper is not None:
            used.add(upper)
            chosen[f"{side}_shoulder"] = upper
            if collar is not None and collar in ancestors(upper):
                used.add(collar)
                chosen[f"{side}_collar"] = collar
            below = set(_descendants(upper, children))
            for part in ("elbow", "wrist", "hand"):
                found = best(everything, _PART_WORDS[part], side, within=below)
                if found is None:
                    break
                used.add(found)
                chosen[f"{side}_{part}"] = found
                below = set(_descendants(found, children))

    thighs = [chosen[k] for k in ("left_hip", "right_hip") if k in chosen]
    common = _common_ancestors(thighs, ancestors) if thighs else []
    pelvis = best(common or everything, _CENTRE_WORDS["pelvis"], None)
    if pelvis is None and common:
        pelvis = common[0]
    if pelvis is not None:
        chosen["pelvis"] = pelvis
        used.add(pelvis)
    neck = best(everything, _CENTRE_WORDS["neck"], None)
    if neck is not None:
        used.add(neck)
        chosen["neck"] = neck
        head = best(_descendants(neck, children), _CENTRE_WORDS["head"], None)
    else:
        head = best(everything, _CENTRE_WORDS["head"], None)
    if head is not None:
        chosen["head"] = head
        used.add(head)
    top = neck if neck is not None else head
    if top is not None and thighs:
        base = _common_ancestors(thighs + [top], ancestors)
        chain = []
        for i in ancestors(top):
            if base and i == base[0]:
                break
            chain.append(i)
        chain = [i for i in reversed(chain) if i not in used]
        if chain:
            chosen["spine3"] = chain[-1]
            if len(chain) >= 2:
                chosen["spine1"] = chain[0]
            if len(chain) >= 3:
                chosen["spine2"] = chain[len(chain) // 2]
    bones = {joint: names[chosen[joint]] if joint in chosen else None for joint in joint_names()}
    return BoneMap(bones, "generic")


def _descendants(i, children) -> list[int]:
    out, stack = [], list(children[i])
    while stack:
        j = stack.pop()
        out.append(j)
        stack.extend(children[j])
    return out


def _common_ancestors(nodes, ancestors) -> list[int]:
    """The ancestors shared by all ``nodes``, nearest first."""
    shared = None
    for n in nodes:
        chain = ancestors(n)
        shared = chain if shared is None else [a for a in shared if a in set(chain)]
    return shared or []


def detect_rig(names, parents, rig: str = "auto") -> Detection:
    """The bone map for an armature: preset ``rig``, or with ``"auto"`` the preset that maps the most joints
    (all the required ones), else the generic matcher's proposal.

    Raises E3D2Error with one line naming the required joints (:data:`~e3d2_core.retarget.bonemap.REQUIRED`) the
    rig lacks when even the best map is not a humanoid's.
    """
    names = list(names)
    if rig != "auto":
        bone_map = resolve_preset(rig, names)
        return Detection(rig, bone_map, tuple(bone_map.unmapped))
    ranked = []
    for preset in PRESET_NAMES:
        found, wanted = preset_score(preset, names)
        if found:
            bone_map = resolve_preset(preset, names)
            if not bone_map.missing_required():
                ranked.append((found / max(wanted, 1), found, preset, bone_map))
    if ranked:
        _, _, preset, bone_map = max(ranked, key=lambda r: (r[0], r[1]))
        return Detection(preset, bone_map, tuple(bone_map.unmapped))
    bone_map = propose_map(names, parents)
    return Detection("generic", bone_map, tuple(bone_map.unmapped))


def require_humanoid(bone_map: BoneMap, armature: str = "the armature") -> None:
    """Raise one E3D2Error line naming the required joints ``bone_map`` has no bone for."""
    missing = bone_map.missing_required()
    if missing:
        raise E3D2Error(f"{armature} is not a humanoid rig e3d2 can dance: no bone for {', '.join(missing)} "
                        f"(map them in the bone map, or load a bone-map file)")
