"""BVH: parser, forward kinematics, and retargeting of real CMU salsa mocap onto the SMPL skeleton."""
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from e3d2_core.errors import E3D2Error
from e3d2_core.io import load_motion_file
from e3d2_core.io.bvh import bvh_forward_kinematics, read_bvh
from e3d2_core.io.floor import sole_heights
from e3d2_core.retarget.to_smpl import _SMPL_CAPS, CMU, _choose_map, _targets
from e3d2_core.skeleton import default_skeleton, forward_kinematics

CLIP = Path(__file__).parent / "data" / "cmu_salsa_60_01_clip.bvh"


@pytest.fixture(scope="module")
def clip_motion():
    return load_motion_file(CLIP)


def write_smpl_bvh(path, poses, trans, names, order="ZXY"):
    """A BVH of the SMPL skeleton itself (names given), with rotation channels in ``order``."""
    skeleton = default_skeleton()
    children = {j: [c for c in range(24) if skeleton.parents[c] == j] for j in range(24)}
    lines = ["HIERARCHY"]
    order_written = []                       # BVH channels follow the hierarchy's depth-first order
    channel_names = " ".join(f"{axis}rotation" for axis in order)

    def joint(j, depth):
        pad = "  " * depth
        keyword = "ROOT" if j == 0 else "JOINT"
        order_written.append(j)
        lines.append(f"{pad}{keyword} {names[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {' '.join(f'{v:.8f}' for v in skeleton.offsets[j])}")
        if j == 0:
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition {channel_names}")
        else:
            lines.append(f"{pad}  CHANNELS 3 {channel_names}")
        for c in children[j]:
            joint(c, depth + 1)
        if not children[j]:
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET 0 0.05 0", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    joint(0, 0)
    euler = Rotation.from_rotvec(poses.reshape(-1, 3)).as_euler(order, degrees=True).reshape(len(poses), 24, 3)
    euler = euler[:, order_written].reshape(len(poses), 24 * 3)
    lines += ["MOTION", f"Frames: {len(poses)}", "Frame Time: 0.033333"]
    for t in range(len(poses)):
        values = list(trans[t]) + list(euler[t])
        lines.append(" ".join(f"{v:.10f}" for v in values))
    Path(path).write_text("\n".join(lines) + "\n")


def standing_poses(frames, seed):
    """Random but upright poses: moderate joint rotations, pelvis 1 m up."""
    rng = np.random.default_rng(seed)
    poses = rng.normal(scale=0.25, size=(frames, 24, 3))
    poses[:, 0] = rng.normal(scale=0.2, size=(frames, 3))
    trans = np.column_stack([rng.normal(size=frames), 1.0 + 0.05 * rng.normal(size=frames),
                             rng.normal(size=frames)])
    return poses, trans


# ------------------------------------------------------------------------------------------------ parser
def test_parse_real_cmu_clip():
    bvh = read_bvh(CLIP)
    assert bvh.num_frames == 480
    assert len(bvh.joints) == 43
    assert bvh.values.shape == (480, 6 + 42 * 3)
    assert abs(bvh.fps - 120.0) < 0.01
    assert bvh.joints[0].name == "hip" and bvh.joints[0].channels[:3] == ["xposition", "yposition", "zposition"]


def test_bvh_rotation_channels_compose_in_listed_order():
    bvh = read_bvh(CLIP)
    _, world, _ = bvh_forward_kinematics(bvh)
    abdomen = bvh.index()["abdomen"]
    joint = bvh.joints[abdomen]
    angles = bvh.values[:20, joint.first_channel:joint.first_channel + 3]       # Z X Y, degrees
    local = np.swapaxes(world[:20, 0], -1, -2) @ world[:20, abdomen]
    np.testing.assert_allclose(local, Rotation.from_euler("ZXY", angles, degrees=True).as_matrix(), atol=1e-12)


@pytest.mark.parametrize("names", [default_skeleton().names, _SMPL_CAPS], ids=["snake", "caps"])
@pytest.mark.parametrize("order", ["ZXY", "XYZ", "YZX"])
def test_smpl_named_bvh_round_trips_exactly(tmp_path, names, order):
    poses, trans = standing_poses(12, seed=len(order) + len(names[1]))
    path = tmp_path / "smpl.bvh"
    write_smpl_bvh(path, poses, trans, names, order)
    motion = load_motion_file(path)
    assert motion.meta["bvh_skeleton"].startswith("SMPL") and motion.meta["bvh_leg_scale"] == pytest.approx(1)
    assert motion.fps == pytest.approx(30.0, rel=1e-4)
    got, want = motion.joints(), forward_kinematics(poses, trans)
    offset = got - want
    np.testing.assert_allclose(offset[..., [0, 2]], 0.0, atol=2e-5)
    np.testing.assert_allclose(offset[..., 1], offset[0, 0, 1], atol=2e-5)      # one vertical floor shift
    # rotations carry through exactly (BVH twist used), not just positions
    delta = Rotation.from_rotvec(motion.poses.reshape(-1, 3).astype(np.float64)).inv() * \
        Rotation.from_rotvec(poses.reshape(-1, 3))
    assert np.max(delta.magnitude()) < 1e-4


def test_z_up_bvh_is_rotated_not_mirrored(tmp_path):
    poses, trans = standing_poses(6, seed=9)
    z_up = Rotation.from_euler("x", 90, degrees=True)               # Y-up body -> Z-up world
    # a Z-up file has Z-up rest offsets, so every local rotation is conjugated: Q R Q^-1
    tilted = (z_up * Rotation.from_rotvec(poses.reshape(-1, 3)) * z_up.inv()).as_rotvec().reshape(poses.shape)
    path = tmp_path / "zup.bvh"
    write_smpl_bvh(path, tilted, z_up.apply(trans), default_skeleton().names)
    text = path.read_text().splitlines()
    out = []
    for line in text:
        if line.strip().startswith("OFFSET") and line.split()[1:] != ["0", "0.05", "0"]:
            xyz = np.array(line.split()[1:], dtype=float)
            line = line[:line.index("OFFSET")] + "OFFSET " + " ".join(f"{v:.8f}" for v in z_up.apply(xyz))
        out.append(line)
    path.write_text("\n".join(out) + "\n")
    with pytest.raises(E3D2Error, match="rest pose"):
        load_motion_file(path)                                      # read as Y up: lying down
    motion = load_motion_file(path, up="z")
    want = forward_kinematics(poses, trans)
    got = motion.joints()
    offset = got - want
    np.testing.assert_allclose(offset[..., [0, 2]], 0.0, atol=5e-5)
    # left stays left: the left hip is at +x of the right hip in the pelvis frame for both
    assert np.all(np.sign(got[:, 1, 0] - got[:, 2, 0]) == np.sign(want[:, 1, 0] - want[:, 2, 0]))


# ------------------------------------------------------------------------------------------------ real CMU clip
def test_cmu_clip_feet_on_floor_and_plausible_height(clip_motion):
    joints = clip_motion.joints()
    assert clip_motion.num_frames == 480 and clip_motion.fps == 120.0
    soles = sole_heights(joints)
    assert abs(np.percentile(soles, 5)) < 1e-6                     # the floor rule
    assert soles.min() > -0.05                                     # feet never far below the floor
    assert np.median(soles) < 0.05                                 # a foot is on the floor most of the time
    feet = joints[:, [10, 11], 1].min(axis=1)                      # lowest foot joint per frame
    assert 0.0 < np.median(feet) < 0.1 and feet.min() > -0.05
    head = np.median(joints[:, 15, 1])
    assert 1.35 < head < 1.75                                      # an SMPL-sized adult's head joint


def test_cmu_clip_bone_lengths_are_smpl_and_constant(clip_motion):
    joints = clip_motion.joints().astype(np.float64)
    skeleton = default_skeleton()
    parents = np.array(skeleton.parents[1:])
    lengths = np.linalg.norm(joints[:, 1:] - joints[:, parents], axis=-1)
    assert lengths.std(axis=0).max() < 1e-5
    np.testing.assert_allclose(lengths.mean(axis=0), skeleton.bone_lengths()[1:], atol=1e-5)


def test_cmu_clip_left_right_and_facing_follow_the_mocap(clip_motion):
    bvh = read_bvh(CLIP)
    mapping, names = _choose_map(bvh)
    assert mapping is CMU
    positions, _, ends = bvh_forward_kinematics(bvh)
    targets = _targets(mapping, names, positions, ends) * clip_motion.meta["bvh_leg_scale"]
    joints = clip_motion.joints().astype(np.float64)
    joints[..., 1] -= clip_motion.meta["floor_shift_m"]           # back to the mocap's vertical origin
    # each SMPL wrist/ankle is nearer the mocap's same-side joint than the opposite one (no left/right swap)
    for left, right in ((20, 21), (7, 8), (18, 19)):
        same = np.linalg.norm(joints[:, left] - targets[:, left], axis=-1)
        other = np.linalg.norm(joints[:, left] - targets[:, right], axis=-1)
        assert np.mean(same < other) > 0.95
    # the body's facing (from the hips) agrees with the toes' direction: not turned around
    across = joints[:, 1] - joints[:, 2]
    facing = np.cross(across, [0.0, 1.0, 0.0])
    toes = joints[:, 10] - joints[:, 7]
    assert np.mean(np.sum(facing * toes, axis=-1) > 0) > 0.9
    # the pelvis follows the mocap root, scaled by the leg-length ratio
    assert 1.2 < clip_motion.meta["bvh_leg_scale"] < 1.35
    np.testing.assert_allclose(joints[:, 0, [0, 2]], targets[:, 0, [0, 2]], atol=1e-5)


# ------------------------------------------------------------------------------------------------ bad files
def _clip_text():
    return CLIP.read_text()


@pytest.mark.parametrize("mutate, message", [
    (lambda t: "", "empty"),
    (lambda t: t[: t.index("MOTION")], "no MOTION"),
    (lambda t: t[: len(t) // 2], "truncated"),
    (lambda t: t[: t.index("MOTION") + 60] + "\n", "truncated"),
    (lambda t: t.replace("Zrotation", "Qrotation", 1), "unknown channel"),
    (lambda t: t.replace("OFFSET 0.000000 0.161626", "OFFSET zero 0.161626", 1), "line 8"),
    (lambda t: t.replace("Frames: 480", "Frames: 400"), "more than"),
    (lambda t: t.replace("Frame Time: 0.008333", "Frame Time: -1"), "frame time"),
    (lambda t: t.replace("JOINT lShin", "JOINT leftShin"), "unknown BVH skeleton.*lShin"),
    (lambda t: t.replace("JOINT chest", "JOINT torso"), "missing joints.*chest"),
])
def test_malformed_bvh_gets_one_line_error(tmp_path, mutate, message):
    path = tmp_path / "bad.bvh"
    path.write_text(mutate(_clip_text()))
    with pytest.raises(E3D2Error, match=message) as info:
        load_motion_file(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_bvh_with_nan_values(tmp_path):
    text = _clip_text()
    head, frames = text.split("Frame Time: 0.008333\n")
    rows = frames.splitlines()
    rows[3] = " ".join(["nan"] + rows[3].split()[1:])
    path = tmp_path / "nan.bvh"
    path.write_text(head + "Frame Time: 0.008333\n" + "\n".join(rows) + "\n")
    with pytest.raises(E3D2Error, match="NaN"):
        load_motion_file(path)
